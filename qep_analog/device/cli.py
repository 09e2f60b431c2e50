"""``qep-analog devices | export | update | lab-counts``: the device layer's subcommands."""

from __future__ import annotations

import argparse
import json
import sys

from qep_analog.errors import QepValueError


def _devices(args) -> int:
    from qep_analog.device.devices import list_devices

    problems: list[str] = []
    rows = list_devices(problems)
    if args.json:
        print(json.dumps(rows, indent=1))
        return _report(problems)
    print(f"{'device':24} {'C6 rad/µs·µm⁶':>14} {'dmin µm':>8} {'atoms':>6} {'R µm':>6} {'Ω max':>7} "
          f"{'|δ| max':>8} {'T max ns':>9} {'DMM bottom':>11} {'DMM min avg':>11}  source")
    for r in rows:
        dmm = r["dmm"] or {}

        def f(v, fmt="{:.4g}"):
            return "—" if v is None else fmt.format(v)

        print(f"{r['name']:24} {r['C6_rad_per_us_um6']:>14.7g} {f(r['min_distance_um']):>8} "
              f"{f(r['max_atoms'], '{}'):>6} {f(r['max_radial_distance_um']):>6} "
              f"{f(r['max_omega_rad_per_us']):>7} {f(r['max_abs_delta_rad_per_us']):>8} "
              f"{f(r['max_sequence_duration_ns'], '{}'):>9} "
              f"{f(dmm.get('bottom_detuning_rad_per_us')) if dmm else 'no DMM':>11} "
              f"{f(dmm.get('min_avg_abs_detuning_rad_per_us')) if dmm else '':>11}  {r['source']}")
    return _report(problems)


def _report(problems: list[str]) -> int:
    """The good devices are listed; each unreadable device file is one line on stderr, and exit code 2."""
    for problem in problems:
        print(f"qep-analog: error: {' '.join(problem.split())}", file=sys.stderr)
    return 2 if problems else 0


def _export(args) -> int:
    from qep_analog.device.bundle import export_protocol

    manifest = export_protocol(args.protocol, args.out_dir, force=args.force, drawings=not args.no_drawings)
    print(f"wrote {len(manifest['sequences'])} sequences for {manifest['device']['name']} to {args.out_dir} "
          f"(layout {manifest['register']['layout_seconds']:.2f} s)")
    prep = manifest["preparation"]
    print(f"ramp: {prep['schedule']}, {manifest['ramp']['duration_ns']} ns; "
          + (f"estimated preparation error 1 - F: median {prep['median_infidelity']:.2g}, "
             f"max {prep['max_infidelity']:.2g}; {len(prep['flagged'])} sample(s) flagged by the second-ramp check"
             if prep["estimated"]
             else prep["reason"]))
    bill = manifest["shot_bill"]
    print(f"shot bill: {bill['shots']:,} shots in {bill['jobs']:,} jobs"
          + (f" = {bill['hours']:,.1f} h, {bill['cost']:,.0f} {bill['currency']} ({bill['rate_source']})"
             if bill["hours"] is not None else " (no lab metadata for this device: devices/<stem>.lab.json)"))
    return 0


def _update(args) -> int:
    from qep_analog.device.bundle_lab import update_bundle

    report = update_bundle(args.bundle, args.counts_dir, args.out, expected_device=args.device,
                           force=args.force, drawings=not args.no_drawings,
                           readout="device" if args.mitigate_readout else None)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"loss {report['loss']:.4g}; next bundle (step {report['from_step'] + 1}) in {report['out_dir']}")
    return 0


def _lab_counts(args) -> int:
    from qep_analog.device import limits
    from qep_analog.device.bundle_lab import simulate_counts

    limits.check_number(args.seed, "--seed", low=0, high=limits.MAX_SEED, integer=True)
    if args.shots is not None:
        limits.check_number(args.shots, "--shots", low=1, high=limits.MAX_SHOTS, integer=True)
    if args.trajectories is not None:
        limits.check_number(args.trajectories, "--trajectories", low=1, high=limits.MAX_TRAJECTORIES, integer=True)
    noise = None
    if args.device_noise:
        from qep_analog.device.bundle_io import read_bundle

        noise = read_bundle(args.bundle)["_device_object"].noise_model
        if noise is None:
            raise QepValueError("--device-noise: the bundle's device has no noise model")
    from tqdm import tqdm

    bars = []  # the bar appears with the first finished sequence, after every check has passed, and
    # leaves no line behind: an error stays the only line on stderr, also on a terminal

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="seq", desc="lab-counts", file=sys.stderr, disable=None, leave=False))
        bars[0].update(done - bars[0].n)

    from qep_analog.distributed import make_executor

    executor = make_executor(workers=args.workers, scheduler=args.scheduler)  # serial unless asked
    try:
        simulate_counts(args.bundle, args.counts_dir, seed=args.seed, shots=args.shots, noise_model=noise,
                        n_trajectories=args.trajectories, force=args.force, emulator=args.emulator,
                        progress=progress, executor=executor if hasattr(executor, "close") else None)
    finally:
        for bar in bars:
            bar.close()
        if hasattr(executor, "close"):
            executor.close()
    print(f"wrote emulated counts to {args.counts_dir}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from qep_analog.device.protocol_section import register_protocol_section

    register_protocol_section()  # protocols may carry a [device] section for every command
    p = subparsers.add_parser("devices", help="list pulser devices and devices/*.json with key limits")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_devices)

    p = subparsers.add_parser("export", help="write a lab bundle (pulser JSON sequences + manifest)")
    p.add_argument("protocol")
    p.add_argument("out_dir")
    p.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    p.add_argument("--no-drawings", action="store_true")
    p.set_defaults(func=_export)

    p = subparsers.add_parser("update", help="lab counts → QEP gradient → next bundle")
    p.add_argument("bundle")
    p.add_argument("counts_dir")
    p.add_argument("--out", default=None, help="next bundle directory (default BUNDLE_step<k+1>)")
    p.add_argument("--device", default=None, help="refuse a bundle for another device")
    p.add_argument("--force", action="store_true")
    p.add_argument("--no-drawings", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--mitigate-readout", action="store_true",
                   help="invert the readout confusion of the device's SPAM noise model")
    p.set_defaults(func=_update)

    p = subparsers.add_parser("lab-counts", help="emulate the lab: counts for a bundle from pulser-simulation")
    p.add_argument("bundle")
    p.add_argument("counts_dir")
    p.add_argument("--seed", type=int, default=0, help="sampling seed, 0 to 2^63 - 1")
    p.add_argument("--shots", type=int, default=None,
                   help="shots per sequence (default: the manifest's; update accepts 90-100 %% of them)")
    p.add_argument("--device-noise", action="store_true", help="emulate with the device's own noise model")
    p.add_argument("--trajectories", type=int, default=None,
                   help="noise trajectories (shot-to-shot noise), 1 to 10,000")
    p.add_argument("--emulator", choices=("trajectories", "pulser"), default=None,
                   help="noisy emulation: our quantum-jump trajectories (default with --trajectories) or "
                        "pulser-simulation")
    p.add_argument("--force", action="store_true", help="replace COUNTS_DIR if it exists")
    p.add_argument("--workers", type=int, default=None, metavar="K",
                   help="emulate the sequences on a local Dask cluster of K worker processes (one task each)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="or on a running Dask scheduler")
    p.set_defaults(func=_lab_counts)
