"""Benchmark: what one adiabatic QEP step costs at 25 and 50 atoms with ``emulator="emu-mps"``.

One symmetric QEP sample (free + ±β phases, each a 4 µs pulser sequence emulated by emu-mps's TDVP) on a
Rydberg chain of the pulser MockDevice (no radius limit; it has a DMM for the local detunings):

    H = Σ_i (Ω/2) X_i − Σ_i δ_i n_i − x n_0 + Σ_{i<j} C6/r_ij⁶ n_i n_j,   Ω = 2π rad/µs, δ_i = 1.5 Ω,

atoms every 6 µm, every δ_i trainable, input x = 0.5 rad/µs on atom 0, outputs n on the last two atoms,
targets (1, 0), cost-operator nudging (β = 0.1) ramped with the same cosine schedule (the default
local-adiabatic schedule needs the path's dense spectrum, ≤ 16 atoms). Expectations are exact (no shots).

Per size it prints the time of each phase, emu-mps's bond dimensions, and the ramp's energy above the
``mps`` backend's DMRG ground energy of the same Hamiltonian (measured in the same run; how adiabatic
4 µs is at that size), and the step total. A ``--baseline`` size (default 8) runs the same step with the
full-space ``krylov`` emulator too, for the ratio and the fidelity of emu-mps against it.

    flock /tmp/qep_cpu.lock python bench/emu_mps_step.py --sizes 25,50
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium import get_backend
from qep_analog.learning.gradient import GradientConfig, estimate_gradient

OMEGA = 2 * np.pi
DELTA = 1.5 * OMEGA
SPACING_UM = 6.0


def chain_model(n: int) -> RydbergModel:
    return RydbergModel(positions_um=np.c_[np.arange(n) * SPACING_UM, np.zeros(n)], device="MockDevice",
                        omega=OMEGA, detunings=np.full(n, DELTA), input_atoms=(0,), output_atoms=(n - 1, n - 2),
                        train_positions=False)


class TimedBackend:
    """Wraps a backend and records (phase, seconds, state) of every prepare call, printing as it goes."""

    def __init__(self, inner, label: str):
        self.inner, self.name, self.log, self.label = inner, inner.name, [], label

    def prepare(self, hamiltonian, theta, x=None, nudge=None, reference=None):
        start = time.perf_counter()
        state = self.inner.prepare(hamiltonian, theta, x, nudge, reference)
        seconds = time.perf_counter() - start
        phase = "free" if nudge is None else "nudged"
        self.log.append((phase, seconds, state))
        bonds = state.info.get("max_bond_reached", "-")
        print(f"    {self.label} {phase:6s} {seconds:7.1f} s   max bond {bonds}   E = {state.energy:.6f}", flush=True)
        return state


def qep_step(n: int, emulator: str, args) -> dict:
    model = chain_model(n)
    h = model.hamiltonian()
    options = dict(model=model, duration_ns=args.duration_ns, emulator=emulator, schedule="cosine",
                   compare_exact=False)
    if emulator == "emu-mps":
        options["emulator_tolerance"] = args.precision
    backend = TimedBackend(get_backend("adiabatic", **options), emulator)
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=args.beta)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # emu-mps's notices about observables and qubit ordering
        est = estimate_gradient(h, backend, model.theta(), [[0.5]], np.array([[1.0, 0.0]]), config)
    total = time.perf_counter() - start
    free = next(s for phase, _, s in backend.log if phase == "free")
    return dict(total=total, log=backend.log, free=free, gradient=est.gradient, model=model, h=h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="25,50")
    parser.add_argument("--baseline", type=int, default=8, help="size also run with krylov (0: none)")
    parser.add_argument("--duration-ns", type=int, default=4000)
    parser.add_argument("--precision", type=float, default=1e-5, help="emu-mps precision (its default 1e-5)")
    parser.add_argument("--beta", type=float, default=0.1)
    args = parser.parse_args()
    print(f"{args.duration_ns} ns cosine ramp, emu-mps precision {args.precision:g}, β = {args.beta}", flush=True)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.baseline:
        n = args.baseline
        print(f"\n== N = {n}: krylov (full space) vs emu-mps", flush=True)
        ref = qep_step(n, "krylov", args)
        emu = qep_step(n, "emu-mps", args)
        fid = [abs(np.vdot(k.state, e.to_dense())) ** 2 for (_, _, k), (_, _, e) in zip(ref["log"], emu["log"],
                                                                                         strict=True)]
        g_ref, g_emu = ref["gradient"], emu["gradient"]
        ratio = emu["total"] / ref["total"]
        print(f"  step: krylov {ref['total']:.1f} s, emu-mps {emu['total']:.1f} s (ratio {ratio:.1f})"
              f"   1 − F per phase {', '.join(f'{1 - f:.1e}' for f in fid)}   QEP gradient ‖Δg‖/‖g‖ = "
              f"{np.linalg.norm(g_emu - g_ref) / np.linalg.norm(g_ref):.1e}", flush=True)
    for n in sizes:
        print(f"\n== N = {n}: emu-mps", flush=True)
        row = qep_step(n, "emu-mps", args)
        start = time.perf_counter()
        ground = get_backend("mps", model=row["model"]).prepare(row["h"], row["model"].theta(), [0.5])
        t_ground = time.perf_counter() - start
        free = row["free"]
        phases = " + ".join(f"{t:.1f}" for _, t, _ in row["log"])
        print(f"  one adiabatic QEP step (1 sample, free + ±β): {row['total']:.1f} s = {phases} s (+ expectations)")
        print(f"  free phase: bonds max {free.info['max_bond_reached']}, emu-mps dt {free.info['dt_ns']} ns, "
              f"truncation (bonds at the cap) {free.info['truncation']:.1e}")
        print(f"  E_ramp − E_0 = {free.energy - ground.energy:.4f} rad/µs (E_0 by the mps backend, {t_ground:.1f} s, "
              f"χ = {ground.info['max_bond_reached']}); |⟨ψ_ramp|ψ_0⟩|² = {free.overlap(ground) ** 2:.4f}", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
