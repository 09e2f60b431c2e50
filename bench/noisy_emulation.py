"""Benchmark: noisy emulation — our quantum-jump trajectories vs pulser-simulation and emu-sv.

Case, per size N (default 6, 8, 10): a chain at 6 µm on ``devices/qep_lab_device.json`` (C6 = 865 723
rad/µs·µm⁶) with its own noise model (SPAM, amplitude σ = 0.03 with a 175 µm laser waist, dephasing
0.05/µs, relaxation 0.01/µs, Doppler at 50 µK); a 4 µs ramp Ω 0 → 9.42 → 0 rad/µs, δ −15 → 12 rad/µs,
φ = 0.5, plus a DMM map (weights 0.2 … 1) with detuning 0 → −4 → −2 rad/µs; ⟨n_i⟩ at the end.

Columns, timed in one run (each peer under the same 2 cores):
- ours: ``run_trajectories`` with K trajectories (default 100; tolerance 1e-6), all setup included;
- pulser-simulation trajectories (its own noise trajectories, ``Solver.DEFAULT`` = one ``mcsolve``
  trajectory per noise draw, QuTiP's default tolerances), run with K_p = min(K, --peer-trajectories)
  trajectories and EXTRAPOLATED linearly to K (printed as "ext"). This goes through ``QutipEmulator``'s
  trajectory loop, the engine under ``QutipBackendV2`` without the latter's per-trajectory state
  post-processing, so it is if anything faster than what a user of QutipBackendV2 sees;
- the same at converged tolerances (atol 1e-10, rtol 1e-8) for N ≤ --converged-max;
- pulser ``mesolve`` per noise draw (exact Lindblad average for each draw) for N ≤ 8, with
  --mesolve-draws draws, extrapolated to K;
- emu-sv (CPU, dt = 10 ns) with K_p trajectories; its time for K is extrapolated from a 1-trajectory
  run and the K_p run: t(K) = t₁ + (K − 1)(t_Kp − t₁)/(K_p − 1).
- ours in the blockade subspace (``method="subspace"``, default radius (C6/Ω_max)^(1/6), Schrieffer–Wolff
  corrected; the lab model's channels all keep the subspace), K trajectories with the SAME seeds as the
  full-space ones: "paired z" = max over atoms of |mean of the per-trajectory differences| / its standard
  error (the subspace approximation's bias shows up here; its own estimate √error_estimate is printed).
  At 6 µm U_nn = 18.6 rad/µs is NOT ≫ Ω = 9.42 (the subspace warns); ``--spacing-um 5`` is a more blockaded case.
Agreement: z = |⟨n_i⟩_ours − ⟨n_i⟩_peer| / √(σ_ours² + σ_peer²), the largest over atoms. σ_peer is the
standard error over pulser's own per-trajectory values; emu-sv exposes only the mean, so its σ is
OUR per-trajectory standard deviation / √K_p (stated as an approximation).

    flock /tmp/qep_cpu.lock python bench/noisy_emulation.py                        # 6 8 10, K = 100
    flock /tmp/qep_cpu.lock python bench/noisy_emulation.py --sizes 6 --trajectories 20 --peer-trajectories 5
    flock /tmp/qep_cpu.lock python bench/noisy_emulation.py --sizes 6 8 10 12 --pulser-max 10 --skip-emu-sv \
        --mesolve-draws 0 --converged-max 0 --spacing-um 5          # ours, subspace, pulser trajectories
"""

from __future__ import annotations

import argparse
import logging
import random
import time
import warnings
from functools import partial

import numpy as np

SPACING_UM = 6.0
DURATION_NS = 4000


def lab_ramp(n_atoms: int, *, duration_ns: int = DURATION_NS, phase: float = 0.5, spacing_um: float = SPACING_UM):
    """The benchmark ramp (see module docstring) on qep_lab_device."""
    from pulser import Pulse, Register, Sequence
    from pulser.waveforms import InterpolatedWaveform

    from qep_analog.device.devices import load_device

    device = load_device("qep_lab_device")
    reg = Register.from_coordinates([(i * spacing_um, 0.0) for i in range(n_atoms)], prefix="q")
    seq = Sequence(reg, device)
    seq.declare_channel("ryd", "rydberg_global")
    weights = {f"q{i}": float(w) for i, w in enumerate(np.linspace(0.2, 1.0, n_atoms))}
    seq.config_detuning_map(reg.define_detuning_map(weights), "dmm_0")
    seq.add_dmm_detuning(InterpolatedWaveform(duration_ns, [0.0, -4.0, -2.0]), "dmm_0")
    amp = InterpolatedWaveform(duration_ns, [0.0, 9.42, 9.42, 0.0])
    det = InterpolatedWaveform(duration_ns, [-15.0, -5.0, 5.0, 12.0])
    seq.add(Pulse(amp, det, phase), "ryd", protocol="no-delay")
    return seq, device.noise_model


def occupations(probs: np.ndarray, n: int) -> np.ndarray:
    occ = ((np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)[None, :]) & 1).astype(float)
    return probs @ occ


def run_ours(seq, nm, k: int, seed: int, method: str = "krylov") -> tuple[float, np.ndarray, np.ndarray, dict]:
    from qep_analog.equilibrium.emulators.trajectories import run_trajectories

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the subspace's "not ≫ Ω" warning: its estimate is printed
        res = run_trajectories(seq, nm, n_trajectories=k, seed=seed, method=method)
    wall = time.perf_counter() - t0
    return wall, occupations(np.abs(res.states) ** 2, res.n_atoms), res.n_jumps, res.info


def run_pulser_trajectories(seq, nm, k: int, seed: int, *, solver: str = "default",
                            options: dict | None = None) -> tuple[float, np.ndarray]:
    """pulser-simulation's own trajectory loop; returns (wall time, per-trajectory ⟨n_i⟩ rows)."""
    from pulser_simulation import QutipEmulator
    from pulser_simulation.simulation import Solver

    from qep_analog.equilibrium.emulators.reference import seeded_global_numpy

    n = len(seq.register.qubit_ids)
    chosen = {"default": Solver.DEFAULT, "mesolve": Solver.MESOLVER}[solver]
    t0 = time.perf_counter()
    rows = []
    with seeded_global_numpy(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = QutipEmulator.from_sequence(seq, noise_model=nm, n_trajectories=k, solver=chosen,
                                          evaluation_times="Minimal")
        opts = dict(options or {})
        sim._validate_options(opts)
        for result, reps in sim._noisy_runs(progress_bar=False, **opts):
            state = result.get_final_state().full()
            probs = np.real(np.diag(state)) if state.shape[1] > 1 else np.abs(state[:, 0]) ** 2
            probs = probs[::-1] / probs.sum()  # pulser's (r, g) order → ours
            rows.extend([occupations(probs, n)] * reps)
    return time.perf_counter() - t0, np.array(rows)


def run_emu_sv(seq, nm, k: int, seed: int) -> tuple[float, np.ndarray]:
    from emu_sv import SVBackend, SVConfig
    from pulser.backend.default_observables import Occupation

    random.seed(seed)
    np.random.seed(seed % 2**32)
    obs = Occupation(evaluation_times=[1.0])
    config = SVConfig(observables=[obs], dt=10, gpu=False, noise_model=nm, n_trajectories=k,
                      log_level=logging.WARNING)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = SVBackend(seq, config=config).run()
    wall = time.perf_counter() - t0
    return wall, np.asarray(result.get_result(obs, 1.0), dtype=float)


def z_max(mean_a, err_a, mean_b, err_b) -> float:
    return float(np.max(np.abs(mean_a - mean_b) / np.sqrt(err_a**2 + err_b**2 + 1e-30)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[6, 8, 10])
    parser.add_argument("--trajectories", type=int, default=100)
    parser.add_argument("--peer-trajectories", type=int, default=20,
                        help="trajectories actually run by pulser and emu-sv (times extrapolated to --trajectories)")
    parser.add_argument("--converged-max", type=int, default=6)
    parser.add_argument("--mesolve-draws", type=int, default=3)
    parser.add_argument("--skip-emu-sv", action="store_true")
    parser.add_argument("--skip-subspace", action="store_true")
    parser.add_argument("--pulser-max", type=int, default=10, help="largest N for the pulser trajectory column")
    parser.add_argument("--spacing-um", type=float, default=SPACING_UM)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    k = args.trajectories
    kp = min(k, args.peer_trajectories)

    seq4, nm = lab_ramp(4, duration_ns=400)  # compile kernels, import solvers outside the timings
    run_ours(seq4, nm, 2, 0)
    if not args.skip_subspace:
        run_ours(seq4, nm, 2, 0, method="subspace")
    run_pulser_trajectories(seq4, nm, 1, 0)
    if not args.skip_emu_sv:
        run_emu_sv(seq4, nm, 1, 0)
    print(f"noise model: {nm}")
    print(f"K = {k} trajectories (ours); peers run K_p = {kp} and are extrapolated to K where marked 'ext'\n")
    rows = []
    for n in args.sizes:
        seq, nm = lab_ramp(n, spacing_um=args.spacing_um)
        row: dict = {"n": n}
        wall, per_traj, jumps, info = run_ours(seq, nm, k, args.seed)
        mean, err = per_traj.mean(axis=0), per_traj.std(axis=0, ddof=1) / np.sqrt(k)
        row.update(ours_s=wall, jumps=float(jumps.mean()), steps=info["n_steps"], est=info["error_estimate"])
        print(f"[{n} atoms] ours {wall:.2f} s ({info['n_steps']} steps, error estimate {info['error_estimate']:.1e}, "
              f"{jumps.mean():.2f} jumps/trajectory); <n_i> = {np.round(mean, 3)} ± {np.round(err, 3)}")

        m_p = None
        if n <= args.pulser_max:
            t_p, rows_p = run_pulser_trajectories(seq, nm, kp, args.seed + 1)
            m_p, e_p = rows_p.mean(axis=0), rows_p.std(axis=0, ddof=1) / np.sqrt(rows_p.shape[0])
            row.update(pulser_s=t_p * k / kp, pulser_z=z_max(mean, err, m_p, e_p))
            print(f"[{n} atoms] pulser trajectories {t_p:.1f} s for {kp} → ext {row['pulser_s']:.0f} s for {k}; "
                  f"max z = {row['pulser_z']:.2f}")
        if not args.skip_subspace:
            w_s, per_s, _, info_s = run_ours(seq, nm, k, args.seed, method="subspace")
            diff = per_s - per_traj
            paired = float(np.max(np.abs(diff.mean(axis=0)) / (diff.std(axis=0, ddof=1) / np.sqrt(k) + 1e-30)))
            row.update(sub_s=w_s, sub_paired_z=paired, sub_est=info_s["error_estimate"], sub_dim=info_s["dimension"],
                       sub_bias=float(np.max(np.abs(diff.mean(axis=0)))))
            if m_p is not None:
                row.update(sub_pulser_z=z_max(per_s.mean(axis=0), per_s.std(axis=0, ddof=1) / np.sqrt(k), m_p, e_p))
            print(f"[{n} atoms] subspace {w_s:.2f} s (dimension {info_s['dimension']}, radius "
                  f"{info_s['blockade_radius_um']:.2f} µm, error estimate {info_s['error_estimate']:.1e} → "
                  f"√ = {np.sqrt(info_s['error_estimate']):.1e}); max |paired mean difference| {row['sub_bias']:.1e}, "
                  f"paired z {paired:.2f}" + (f", z vs pulser {row['sub_pulser_z']:.2f}" if m_p is not None else ""))
        if n <= args.converged_max:
            t_c, rows_c = run_pulser_trajectories(seq, nm, kp, args.seed + 2,
                                                  options={"atol": 1e-10, "rtol": 1e-8})
            m_c, e_c = rows_c.mean(axis=0), rows_c.std(axis=0, ddof=1) / np.sqrt(rows_c.shape[0])
            row.update(pulser_conv_s=t_c * k / kp, pulser_conv_z=z_max(mean, err, m_c, e_c))
            print(f"[{n} atoms] pulser converged {t_c:.1f} s for {kp} → ext {row['pulser_conv_s']:.0f} s; "
                  f"max z = {row['pulser_conv_z']:.2f}")
        if n <= 8 and args.mesolve_draws > 0:
            t_m, rows_m = run_pulser_trajectories(seq, nm, args.mesolve_draws, args.seed + 3, solver="mesolve")
            row.update(mesolve_s=t_m * k / args.mesolve_draws)
            print(f"[{n} atoms] pulser mesolve {t_m:.1f} s for {args.mesolve_draws} draws → ext "
                  f"{row['mesolve_s']:.0f} s for {k}")
        if not args.skip_emu_sv:
            t_1, _ = run_emu_sv(seq, nm, 1, args.seed + 4)
            t_s, m_s = run_emu_sv(seq, nm, kp, args.seed + 5)
            per = (t_s - t_1) / (kp - 1) if kp > 1 else t_s
            row.update(emu_sv_s=t_1 + (k - 1) * per,
                       emu_sv_z=z_max(mean, err, m_s, per_traj.std(axis=0, ddof=1) / np.sqrt(kp)))
            print(f"[{n} atoms] emu-sv {t_1:.1f} s for 1, {t_s:.1f} s for {kp} → ext {row['emu_sv_s']:.0f} s for {k};"
                  f" max z = {row['emu_sv_z']:.2f} (σ_emu-sv approximated)")
        rows.append(row)
        print()
    _print_table(rows, k)


def _print_table(rows: list[dict], k: int) -> None:
    def cell(row, key, fmt="{:.1f}"):
        return fmt.format(row[key]) if key in row else "—"

    print(f"wall time for K = {k} trajectories (s; peers extrapolated), ratio = peer / ours, max z of <n_i>")
    print(f"{'N':>3} {'ours':>7} {'pulser':>8} {'ratio':>7} {'z':>5} {'pul.conv':>9} {'ratio':>7} "
          f"{'mesolve':>8} {'ratio':>7} {'emu-sv':>8} {'ratio':>7} {'z':>5} {'subspace':>9} {'ratio':>7} "
          f"{'krylov/sub':>10} {'√est':>8} {'bias':>8} {'pair z':>6}")
    def ratio_of(r, key):
        return f"{r[key] / r['ours_s']:.1f}×" if key in r else "—"

    def sub_ratio(r, key):
        return f"{r[key] / r['sub_s']:.1f}×" if key in r and "sub_s" in r else "—"

    for r in rows:
        ratio = partial(ratio_of, r)
        root_est = f"{np.sqrt(r['sub_est']):.1e}" if "sub_est" in r else "—"

        print(f"{r['n']:>3} {r['ours_s']:>7.2f} {cell(r, 'pulser_s'):>8} {ratio('pulser_s'):>7} "
              f"{cell(r, 'pulser_z', '{:.2f}'):>5} {cell(r, 'pulser_conv_s'):>9} {ratio('pulser_conv_s'):>7} "
              f"{cell(r, 'mesolve_s'):>8} {ratio('mesolve_s'):>7} {cell(r, 'emu_sv_s'):>8} {ratio('emu_sv_s'):>7} "
              f"{cell(r, 'emu_sv_z', '{:.2f}'):>5} {cell(r, 'sub_s', '{:.2f}'):>9} {sub_ratio(r, 'pulser_s'):>7} "
              f"{sub_ratio(r, 'ours_s'):>10} {root_est:>8} "
              f"{cell(r, 'sub_bias', '{:.1e}'):>8} {cell(r, 'sub_paired_z', '{:.2f}'):>6}")


if __name__ == "__main__":
    main()
