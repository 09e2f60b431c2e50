"""Benchmark: the reference adiabatic sweep, pulser-simulation vs our emulators.

Reference sweep (PHYSICS.md §3): chain at 5.7 µm on MockDevice (C6 = 5 420 158.53 rad/µs·µm⁶),
4 µs = 0.2 µs Ω ramp 0 → 9.18 rad/µs at δ = −20.4, 3.6 µs δ ramp −20.4 → 9.18 rad/µs at
constant Ω, 0.2 µs Ω ramp down at δ = 9.18 rad/µs, φ = 0, starting from |g…g⟩.

Timed in one run, per size: pulser-simulation (QutipBackendV2, QuTiP sesolve "adams",
atol = 1e-8, rtol = 1e-6 — QuTiP's defaults, written explicitly — max_step = pulser's choice,
1 ns here), its convergence at atol = 1e-10, rtol = 1e-8 (sizes ≤ --check-max-size), "krylov"
(tolerance 1e-7), "subspace" with and without the SW correction. Fidelities |⟨ψ|ψ_pulser⟩|².

    python bench/emulation.py                 # 8 10 12 14 16 (about 10 min on 2 cores)
    python bench/emulation.py --sizes 8 10    # quick
"""

from __future__ import annotations

import argparse
import time

import numpy as np

PULSER_LIMIT_S = 600.0


def reference_sequence(n_atoms: int, spacing_um: float = 5.7):
    """The reference sweep on a chain of ``n_atoms`` (MockDevice)."""
    from pulser import Pulse, Register, Sequence
    from pulser.devices import MockDevice
    from pulser.waveforms import RampWaveform

    reg = Register.rectangle(1, n_atoms, spacing=spacing_um, prefix="q")
    seq = Sequence(reg, MockDevice)
    seq.declare_channel("ising", "rydberg_global")
    omega, delta0, delta1 = 9.18, -20.4, 9.18
    seq.add(Pulse.ConstantDetuning(RampWaveform(200, 0.0, omega), delta0, 0.0), "ising")
    seq.add(Pulse.ConstantAmplitude(omega, RampWaveform(3600, delta0, delta1), 0.0), "ising")
    seq.add(Pulse.ConstantDetuning(RampWaveform(200, omega, 0.0), delta1, 0.0), "ising")
    return seq


def fidelity(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(np.vdot(a, b)) ** 2)


def main(argv: list[str] | None = None) -> None:
    from qep_analog.equilibrium.emulators import emulate
    from qep_analog.equilibrium.emulators.reference import SolverOptions, run_pulser

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 10, 12, 14, 16])
    parser.add_argument("--check-max-size", type=int, default=12,
                        help="largest size at which pulser's convergence is checked (tight run)")
    parser.add_argument("--tolerance", type=float, default=1e-7)
    args = parser.parse_args(argv)

    emulate(reference_sequence(4), "krylov")  # compile / load the numba kernels
    emulate(reference_sequence(4), "subspace")
    run_pulser(reference_sequence(3))  # import qutip & pulser-simulation outside the timings
    tight = SolverOptions(atol=1e-10, rtol=1e-8)
    rows = []
    last_pulser: list[tuple[int, float]] = []
    for n in args.sizes:
        seq = reference_sequence(n)
        row: dict = {"n": n}
        predicted = _predict(last_pulser, n)
        if predicted is not None and predicted > PULSER_LIMIT_S:
            print(f"[{n} atoms] pulser-simulation skipped: predicted {predicted:.0f} s > "
                  f"{PULSER_LIMIT_S:.0f} s (geometric extrapolation of the smaller sizes)")
            ref = None
        else:
            t0 = time.perf_counter()
            ref, _ = run_pulser(seq)
            row["pulser_s"] = time.perf_counter() - t0
            last_pulser.append((n, row["pulser_s"]))
            if n <= args.check_max_size:
                ref_tight, _ = run_pulser(seq, options=tight)
                row["pulser_conv"] = 1 - fidelity(ref, ref_tight)
                row["krylov_vs_tight"] = None  # filled below
        kry = emulate(seq, "krylov", tolerance=args.tolerance)
        row["krylov"] = kry
        if "pulser_conv" in row:
            row["krylov_vs_tight"] = 1 - fidelity(kry.state, ref_tight)
        sub_c = emulate(seq, "subspace", tolerance=args.tolerance, correction=True)
        sub_u = emulate(seq, "subspace", tolerance=args.tolerance, correction=False)
        row["sub_c"], row["sub_u"] = sub_c, sub_u
        row["sub_u_vs_krylov"] = 1 - fidelity(sub_u.state, kry.state)
        row["sub_c_vs_krylov"] = 1 - fidelity(sub_c.state, kry.state)
        if ref is not None:
            for key in ("krylov", "sub_c", "sub_u"):
                row[key + "_fid"] = fidelity(row[key].state, ref)
        rows.append(row)
        _print_row(row)
    print()
    _print_table(rows, args.tolerance)


def _predict(history: list[tuple[int, float]], n: int) -> float | None:
    if len(history) < 2:
        return None
    (n1, t1), (n2, t2) = history[-2], history[-1]
    rate = (t2 / t1) ** (1.0 / max(n2 - n1, 1))
    return t2 * rate ** (n - n2)


def _print_row(row: dict) -> None:
    kry = row["krylov"]
    print(f"[{row['n']} atoms] pulser {row.get('pulser_s', float('nan')):.2f} s, krylov "
          f"{kry.wall_time_s:.2f} s ({kry.info['n_steps']} steps), subspace "
          f"{row['sub_c'].wall_time_s:.2f}/{row['sub_u'].wall_time_s:.2f} s (dim "
          f"{row['sub_c'].dimension})", flush=True)


def _print_table(rows: list[dict], tolerance: float) -> None:
    nan = float("nan")
    print(f"Reference sweep, MockDevice chain at 5.7 µm; emulator tolerance {tolerance:g}; "
          "fidelity F = |<psi|psi_pulser>|^2; 1-F(est) = the emulator's own error estimate")
    head = (f"{'N':>3} {'pulser s':>9} {'conv':>8} | {'krylov s':>8} {'ratio':>6} {'1-F':>8} "
            f"{'est':>8} | {'dim':>5} {'subSW s':>7} {'ratio':>6} {'1-F':>8} {'est':>8} | "
            f"{'sub s':>6} {'ratio':>6} {'1-F':>8} {'est':>8} | {'SW vs kry':>9} "
            f"{'plain vs kry':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        tp = r.get("pulser_s", nan)
        k, c, u = r["krylov"], r["sub_c"], r["sub_u"]
        print(f"{r['n']:>3} {tp:>9.2f} {r.get('pulser_conv', nan):>8.1e} | "
              f"{k.wall_time_s:>8.2f} {tp / k.wall_time_s:>6.1f} "
              f"{1 - r.get('krylov_fid', nan):>8.1e} {k.error_estimate:>8.1e} | "
              f"{c.dimension:>5} {c.wall_time_s:>7.2f} {tp / c.wall_time_s:>6.0f} "
              f"{1 - r.get('sub_c_fid', nan):>8.1e} {c.error_estimate:>8.1e} | "
              f"{u.wall_time_s:>6.2f} {tp / u.wall_time_s:>6.0f} "
              f"{1 - r.get('sub_u_fid', nan):>8.1e} {u.error_estimate:>8.1e} | "
              f"{r['sub_c_vs_krylov']:>9.1e} {r['sub_u_vs_krylov']:>12.1e}")
    for r in rows:
        if r.get("krylov_vs_tight") is not None:
            print(f"N={r['n']}: 1 − F(krylov, pulser atol 1e-10 rtol 1e-8) = "
                  f"{r['krylov_vs_tight']:.1e}")
    print("conv = 1 − F(pulser default, pulser atol 1e-10 rtol 1e-8); ratio = pulser time / "
          "emulator time; 'SW vs kry' / 'plain vs kry' = infidelity of the subspace states "
          "against krylov")


if __name__ == "__main__":
    main()
