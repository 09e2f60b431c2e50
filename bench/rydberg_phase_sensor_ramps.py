"""The Rydberg phase sensor read from hardware-length ramps instead of exact ground states (issue 17, part 1).

A sensor trained by ``qep-analog train protocols/rydberg_phase_sensor.toml`` (exact ground states) is evaluated
on its own test points with every register prepared as a lab would: Ω and Δ ramped from Δ₀ = −20 rad/µs to the
sample's (Ω, Δ) and the sensor's DMM detunings, in T = 4 or 6 µs, emulated noiselessly (``adiabatic`` backend,
krylov), then the sensor's four Z outcomes read from the prepared state. Per (schedule, T) it prints max-choice
and single-shot accuracy, the median and 90th percentile of 1 − F against the exact ground state, and the
accuracy by true phase; the exact-ground-state row is recomputed here from the same registers (it must equal
the run's reported test accuracy: a check of the register and sign mapping).

Each sample is a RydbergModel on the run's device: chain atoms at detuning Δ, sensor atoms at Δ + δ_s,
H = Σ (Ω/2) X_i − Σ_i δ_i n_i + Σ C6/r_ij⁶ n_i n_j (rad/µs, µm), the same Hamiltonian as the task's.

    python bench/rydberg_phase_sensor_ramps.py --run runs/phase_sensor [--durations 4000 6000]
        [--schedules cosine local-adiabatic] [--limit N] [--out bench/results/rydberg_phase_sensor_ramps]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from qep_analog.device.devices import load_device
from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium import get_backend
from qep_analog.tasks.rydberg_chain import ChainSpec
from qep_analog.tasks.rydberg_phases import scores, sensor_outcomes

PHASES = ("disordered", "Z2", "Z3")


def load_run(run_dir: Path) -> dict:
    """θ, test points and labels, chain and device of a finished ``rydberg-phases`` run."""
    results = json.loads((run_dir / "results.json").read_text())
    if results.get("task") != "rydberg-phases":
        raise SystemExit(f"{run_dir}: task {results.get('task')!r}, not 'rydberg-phases'")
    plot, final = results["plot"], results["final"]
    return dict(offsets=np.asarray(plot["sensor_offsets"], float),
                detunings=np.asarray(plot["sensor_detunings"], float),
                units=plot["sensor_units"],
                points=np.asarray(plot["test_inputs"], float),
                labels=np.asarray(plot["test_labels"], int),
                n_chain=int(plot["n_chain"]),
                device=final["device"],
                omega=float(results["config"]["device"].get("omega", 1.6)),
                reported=(final["test_accuracy"], final["test_single_shot_accuracy"]))


def sample_model(run: dict, spec: ChainSpec, device, point) -> RydbergModel:
    detuning, spacing = spec.controls(point)
    chain = spec.positions(spacing)
    scale = spacing if run["units"] == "spacing" else 1.0
    positions = np.vstack([chain, chain[0] + scale * run["offsets"]])
    detunings = np.r_[np.full(run["n_chain"], detuning), detuning + run["detunings"]]
    n = len(positions)
    return RydbergModel(positions_um=positions, device=device, omega=spec.omega, detunings=detunings,
                        output_atoms=(n - 2, n - 1))


def relaxed(device, *, amplitude: bool, dmm: bool, duration: bool = False):
    """A virtual copy of ``device`` without the global channel's minimum average amplitude, the DMM's minimum
    average |detuning| and/or the maximum sequence duration (pulser refuses pulses below or beyond them; the
    emulated physics does not need them: these rows say what a device without the limit would give)."""
    import dataclasses

    v = device.to_virtual()
    channels = tuple(dataclasses.replace(c, min_avg_amp=0.0) if amplitude and hasattr(c, "min_avg_amp") else c
                     for c in v.channel_objects)
    dmms = tuple(dataclasses.replace(d, min_avg_abs_detuning=0.0) if dmm else d for d in v.dmm_objects)
    more = {"max_sequence_duration": None} if duration else {}
    return dataclasses.replace(v, channel_objects=channels, dmm_objects=dmms, name=f"{device.name} (relaxed)",
                               **more)


def evaluate(run: dict, durations, schedules, limit: int | None,
             relax: tuple[bool, bool, bool] = (False, False, False)) -> list[dict]:
    device = load_device(run["device"])
    if any(relax):
        device = relaxed(device, amplitude=relax[0], dmm=relax[1], duration=relax[2])
    spec = ChainSpec(n_atoms=run["n_chain"], omega=run["omega"], c6=float(device.interaction_coeff))
    points, labels = run["points"][:limit], run["labels"][:limit]
    exact = get_backend("exact")
    rows = {("exact", 0): []}
    infid = {}
    start = time.perf_counter()
    for k, point in enumerate(points):
        model = sample_model(run, spec, device, point)
        h, theta, x = model.hamiltonian(), model.theta(), model.inputs([])
        n = h.n_qubits
        ground = exact.prepare(h, theta, x)
        rows[("exact", 0)].append(sensor_outcomes(ground, n - 2, n - 1, n))
        for schedule in schedules:
            for duration in durations:
                backend = get_backend("adiabatic", model=model, duration_ns=int(duration), schedule=schedule,
                                      emulator="krylov", compare_exact=False)
                state = backend.prepare(h, theta, x)
                rows.setdefault((schedule, duration), []).append(sensor_outcomes(state, n - 2, n - 1, n))
                infid.setdefault((schedule, duration), []).append(1 - abs(np.vdot(ground.state, state.state)) ** 2)
        if (k + 1) % 20 == 0 or k + 1 == len(points):
            print(f"  {k + 1}/{len(points)} samples, {time.perf_counter() - start:.0f} s", flush=True)
    out = []
    for (schedule, duration), probs in rows.items():
        probs = np.array(probs)
        s = scores(probs, labels)
        by_phase = {PHASES[c]: float(np.mean(np.argmax(probs[labels == c, :3], axis=1) == c))
                    for c in range(3) if np.any(labels == c)}
        f = np.array(infid.get((schedule, duration), [0.0]))
        out.append(dict(schedule=schedule, duration_ns=int(duration), accuracy=s["accuracy"],
                        single_shot=s["single_shot_accuracy"], loss=s["loss"], by_phase=by_phase,
                        median_infidelity=float(np.median(f)), p90_infidelity=float(np.percentile(f, 90))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished rydberg-phases run directory")
    parser.add_argument("--durations", type=int, nargs="+", default=[4000, 6000], help="total ramp time, ns")
    parser.add_argument("--schedules", nargs="+", default=["cosine", "local-adiabatic"])
    parser.add_argument("--limit", type=int, default=None, help="only the first N test points")
    parser.add_argument("--relax-amplitude", action="store_true",
                        help="drop the global channel's minimum average amplitude (WeightedAnalogDevice: 1.885 rad/µs, "
                             "above the protocol's Ω = 1.6)")
    parser.add_argument("--relax-dmm", action="store_true", help="drop the DMM's minimum average |detuning|")
    parser.add_argument("--relax-duration", action="store_true",
                        help="drop the maximum sequence duration (WeightedAnalogDevice: 6 µs), to see what T would do")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json")
    args = parser.parse_args()
    run = load_run(args.run)
    print(f"run {args.run}: N = {run['n_chain']} + 2 on {run['device']}, Ω = {run['omega']} rad/µs, "
          f"{len(run['points'][:args.limit])} test points; reported (exact) max-choice {run['reported'][0]:.3f}, "
          f"single-shot {run['reported'][1]:.3f}")
    rows = evaluate(run, args.durations, args.schedules, args.limit, (args.relax_amplitude, args.relax_dmm,
                                                                       args.relax_duration))
    print("\n| preparation | T (µs) | max-choice | single-shot | ⟨Ĉ⟩ | by phase (dis / Z2 / Z3) | 1 − F median "
          "[90 %] |\n|---|---|---|---|---|---|---|")
    for r in rows:
        phases = " / ".join(f"{r['by_phase'].get(p, float('nan')):.2f}" for p in PHASES)
        t = "–" if r["schedule"] == "exact" else f"{r['duration_ns'] / 1000:g}"
        f = "0" if r["schedule"] == "exact" else f"{r['median_infidelity']:.3f} [{r['p90_infidelity']:.3f}]"
        print(f"| {r['schedule']} | {t} | {r['accuracy']:.3f} | {r['single_shot']:.3f} | {r['loss']:.3f} | "
              f"{phases} | {f} |")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(dict(run=str(args.run), rows=rows), indent=1))


if __name__ == "__main__":
    main()
