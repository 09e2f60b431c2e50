"""Benchmark: one symmetric QEP sample of a 50–100-atom Rydberg array with the ``mps`` backend, against
emu-mps's DMRG on the same free Hamiltonian, and the QEP gradient against central finite differences.

Model (AnalogDevice C6 = 865 723 rad/µs·µm⁶, spacing 6 µm, PHYSICS.md §3 large-N anchors):

    H = Σ_i (Ω/2) X_i − Σ_i δ_i n_i − x n_0 + Σ_{i<j} J_ij n_i n_j,   Ω = 2π, δ_i = 1.5 Ω, J_ij = C6/r_ij⁶

with all δ_i and J_ij trainable (every ∂H/∂θ_k = −n_i or n_i n_j is measured: N + N(N−1)/2 parameters),
the input x = 0 on atom 0 (so the free Hamiltonian is a global pulse that emu-mps can take without a
DMM), outputs n on the last two atoms, targets (1, 0) and cost-operator nudging Ĉ = Σ (n_ℓ − t_ℓ)².
The geometries exceed AnalogDevice's 38 µm radius: these are emulations of the physics, not
sequences for that device.

Both engines are warmed up on a 4-atom chain first (one-off library start-up is not timed).
Per case it prints, from one run:
* the time of one symmetric QEP sample (free + ±β phases, every ⟨∂H/∂θ_k⟩), split into the free
  phase, each nudged phase (warm-started from the free MPS) and the expectation values;
* emu-mps 2.10 ``Solver.DMRG`` on the same free Hamiltonian (same interaction matrix, χ ≤ ``--max-bond``),
  its time, the ratio to our free phase and the relative energy difference;
* on the first chain, N = 50 by default (``--fd``): the QEP gradient on 5 parameters against central
  finite differences of ⟨Ĉ⟩, both with tight tolerances (cutoff 1e-12, energy_tol 1e-11, local
  eigensolver tolerance 1e-10: expectation errors scale as the square root of the energy error).

Run one geometry per locked job (each ≤ 10 min), e.g.
``flock /tmp/qep_cpu.lock python bench/mps.py --cases chain50 --emu chain50``,
``… --cases chain100 --emu chain100 --no-fd --no-gap``,
``… --cases ladder10x5 --emu "" --no-fd --no-gap --no-warm --variance-tol 1e-5`` (the QEP sample) and
``… --cases ladder10x5 --emu ladder10x5 --free-only`` (both engines' free phases only; emu-mps ≈ 5 min).
``--opt key=value`` passes an option to every mps backend (e.g. ``--opt local_eig_tol=1e-7``). Wall and CPU
seconds of this process are printed with the load average: on the shared machine the CPU figures are the
steadier ones.
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import time
import warnings

import numpy as np

from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium import get_backend
from qep_analog.learning.gradient import GradientConfig, estimate_gradient, objective_value

OMEGA = 2 * np.pi
DELTA = 1.5 * OMEGA
SPACING_UM = 6.0
TORCH_THREADS = 1  # emu-mps on one torch thread, as our DMRG on one BLAS thread (blas_threads=1): on this shared
# 2-core machine threaded small-matrix kernels thrash (measured: 50 s instead of 6 s for a 6-atom emu-mps sweep)


def geometry(case: str) -> np.ndarray:
    if case.startswith("chain"):
        n = int(case[5:])
        return np.c_[np.arange(n) * SPACING_UM, np.zeros(n)]
    cols, rows = (int(v) for v in case[6:].split("x"))  # "ladder10x5": 10 columns of 5, listed row by row
    return np.array([[SPACING_UM * i, SPACING_UM * j] for j in range(rows) for i in range(cols)], dtype=float)


def model_for(positions: np.ndarray) -> RydbergModel:
    n = len(positions)
    return RydbergModel(positions_um=positions, device="AnalogDevice", omega=OMEGA, detunings=np.full(n, DELTA),
                        input_atoms=(0,), output_atoms=(n - 1, n - 2))


class TimedBackend:
    """Wraps a backend and records (phase, seconds, state) of every prepare call."""

    def __init__(self, inner):
        self.inner, self.name, self.log = inner, inner.name, []

    def prepare(self, hamiltonian, theta, x=None, nudge=None, reference=None):
        start, cpu = time.perf_counter(), time.process_time()
        state = self.inner.prepare(hamiltonian, theta, x, nudge, reference)
        state.info["cpu_s"] = time.process_time() - cpu
        self.log.append(("free" if nudge is None else "nudged", time.perf_counter() - start, state))
        return state


def warm_up_emu_mps() -> None:
    """One tiny emu-mps run, so that its one-off start-up (torch, first sequence) is not timed."""
    emu_mps_free_energy(model_for(geometry("chain4")), 8)


OPTIONS: dict = {}  # backend options from --opt (e.g. local_eig_tol=1e-3, mpo_cutoff=1e-13), used by every mps run


def backend(model: RydbergModel, **options):
    return get_backend("mps", model=model, **{**OPTIONS, **options})


def mps_free_phase(model: RydbergModel, max_bond: int, energy_tol: float) -> tuple[float, float, int]:
    """(seconds, energy, sweeps) of our free phase on a fresh model (lowering included), at ``energy_tol``."""
    h = model.hamiltonian()
    start = time.perf_counter()
    state = backend(model, max_bond=max_bond, energy_tol=energy_tol).prepare(h, model.theta(), [0.0])
    return time.perf_counter() - start, state.energy, state.info["sweeps"]


def emu_mps_free_energy(model: RydbergModel, max_bond: int) -> tuple[float, float]:
    """(seconds, ground energy) of emu-mps DMRG on the free Hamiltonian (a constant global pulse)."""
    import pulser
    from emu_mps import MPSBackend, MPSConfig
    from emu_mps.solver import Solver
    from pulser.backend import Energy
    from pulser.devices import MockDevice

    reg = pulser.Register.from_coordinates(np.asarray(model.positions_um), prefix="q")
    seq = pulser.Sequence(reg, MockDevice)
    seq.declare_channel("rydberg_global", "rydberg_global")
    seq.add(pulser.Pulse.ConstantPulse(100, OMEGA, DELTA, 0.0), "rydberg_global")
    config = MPSConfig(solver=Solver.DMRG, dt=100, observables=[Energy(evaluation_times=[1.0])],
                       interaction_matrix=model.couplings().tolist(), max_bond_dim=max_bond, gpu=False,
                       log_level=logging.WARN)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    try:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = MPSBackend(seq, config=config).run()
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return elapsed, float(result.energy[-1])


def warm_step(model: RydbergModel, args, step: float = 0.05) -> dict:
    """Free phase at θ + Δθ (a training step: every δ_i moved by ``step`` × N(0, 1) rad/µs), cold (random start)
    against ``warm_free`` (started from the free MPS at θ, as across training steps)."""
    h = model.hamiltonian()
    theta = model.theta()
    moved = theta.copy()
    names = list(h.parameter_names)
    rng = np.random.default_rng(7)
    for k, name in enumerate(names):
        if name.startswith("delta_"):
            moved[k] += step * rng.normal()
    warm = backend(model, max_bond=args.max_bond, warm_free=True)
    warm.prepare(h, theta, [0.0])
    cold = backend(model, max_bond=args.max_bond)
    start = time.perf_counter()
    a = cold.prepare(h, moved, [0.0])
    t_cold = time.perf_counter() - start
    start = time.perf_counter()
    b = warm.prepare(h, moved, [0.0])
    t_warm = time.perf_counter() - start
    return dict(t_cold=t_cold, t_warm=t_warm, sweeps=(a.info["sweeps"], b.info["sweeps"]),
                de=abs(a.energy - b.energy) / abs(a.energy), warm=b.info["warm_start"])


def qep_sample(case: str, args) -> dict:
    model = model_for(geometry(case))
    h = model.hamiltonian()
    theta, targets = model.theta(), np.array([[1.0, 0.0]])
    timed = TimedBackend(backend(model, max_bond=args.max_bond, variance_tol=args.variance_tol))
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=args.beta)
    start, cpu = time.perf_counter(), time.process_time()
    est = estimate_gradient(h, timed, theta, [[0.0]], targets, config)
    total, total_cpu = time.perf_counter() - start, time.process_time() - cpu
    free = [(t, s) for phase, t, s in timed.log if phase == "free"]
    nudged = [(t, s) for phase, t, s in timed.log if phase == "nudged"]
    t_free, s_free = free[0]
    row = dict(case=case, n=h.n_qubits, parameters=len(theta), total=total, t_free=t_free,
               t_nudged=[t for t, _ in nudged], measure=total - t_free - sum(t for t, _ in nudged),
               chi=s_free.info["max_bond_reached"], mpo_bond=s_free.info["mpo_bond"],
               sweeps=(s_free.info["sweeps"], [s.info["sweeps"] for _, s in nudged]),
               variance=s_free.info["variance"], flags=[s.info["flags"] for _, _, s in timed.log],
               energy=s_free.energy, order=s_free.info["order"], crossings=len(est.crossings),
               overlaps=[s_free.overlap(s) for _, s in nudged], lowering=s_free.info["time_lowering_s"],
               total_cpu=total_cpu, cpu=[s.info["cpu_s"] for _, _, s in timed.log],
               t_variance=[s.info["time_variance_s"] for _, _, s in timed.log])
    row["nudged_fraction"] = float(np.mean(row["t_nudged"]) / t_free)
    return row, model, est


def fd_check(model: RydbergModel, args) -> dict:
    """QEP (β = ``--fd-beta``) vs central finite differences of ⟨Ĉ⟩ on 5 parameters, tight tolerances."""
    h = model.hamiltonian()
    theta, target = model.theta(), np.array([1.0, 0.0])
    names = list(h.parameter_names)
    n = h.n_qubits
    picked = [f"delta_{n - 1}", f"delta_{n - 3}", f"delta_{n // 2}", f"J_{n - 3}_{n - 2}", f"J_{n - 4}_{n - 2}"]
    index = [names.index(p) for p in picked]
    tight = (backend(model, max_bond=args.max_bond, cutoff=1e-12, energy_tol=1e-11, local_eig_tol=1e-10)
             if args.fd_tight else backend(model, max_bond=args.max_bond))
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=args.fd_beta)
    start = time.perf_counter()
    est = estimate_gradient(h, tight, theta, [[0.0]], [target], config)
    t_qep = time.perf_counter() - start
    free = tight.prepare(h, theta, [0.0])
    objective = config.objective
    fd = []
    start = time.perf_counter()
    for k in index:
        step = np.zeros_like(theta)
        step[k] = args.fd_step
        plus = tight.prepare(h, theta + step, [0.0], reference=free)
        minus = tight.prepare(h, theta - step, [0.0], reference=free)
        fd.append((objective_value(objective, h, plus, target) - objective_value(objective, h, minus, target))
                  / (2 * args.fd_step))
    t_fd = time.perf_counter() - start
    fd, qep = np.array(fd), est.gradient[index]
    cosine = float(qep @ fd / (np.linalg.norm(qep) * np.linalg.norm(fd)))
    return dict(names=picked, qep=qep, fd=fd, cosine=cosine,
                rel=float(np.linalg.norm(qep - fd) / np.linalg.norm(fd)),
                rel_each=np.abs(qep - fd) / np.abs(fd), t_qep=t_qep, t_fd=t_fd)


def _timed_emu_mps(model, max_bond: int) -> tuple[float, float, float]:
    """emu-mps's DMRG free phase: (wall s, energy, CPU s of this process)."""
    cpu = time.process_time()
    t_emu, e_emu = emu_mps_free_energy(model, max_bond)
    return t_emu, e_emu, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="chain50,chain100,ladder10x5")
    parser.add_argument("--emu", default="chain50,chain100", help="cases also run with emu-mps DMRG")
    parser.add_argument("--emu-ladder", action="store_true", help="also run emu-mps on the ladder (~12 min)")
    parser.add_argument("--max-bond", type=int, default=128)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--variance-tol", type=float, default=1e-6,
                        help="per-site energy-variance tolerance (rad/µs)²; above it a phase is flagged")
    parser.add_argument("--fd", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--gap", action=argparse.BooleanOptionalAction, default=True,
                        help="on the first case: the cost of gap=True")
    parser.add_argument("--warm", action=argparse.BooleanOptionalAction, default=True,
                        help="on chains: the free phase after a training step, cold vs warm_free")
    parser.add_argument("--fd-beta", type=float, default=0.02)
    parser.add_argument("--fd-step", type=float, default=1e-3)
    parser.add_argument("--fd-tight", action=argparse.BooleanOptionalAction, default=True,
                        help="FD check with tight tolerances (default) or the backend's defaults (--no-fd-tight)")
    parser.add_argument("--free-only", action="store_true",
                        help="only the free phase of each case (and emu-mps's, for --emu cases): no QEP sample")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                        help="an mps backend option for every run, e.g. --opt local_eig_tol=1e-3 (repeatable)")
    args = parser.parse_args()
    for item in args.opt:
        key, _, value = item.partition("=")
        OPTIONS[key.strip()] = ast.literal_eval(value.strip())
    print(f"load average {os.getloadavg()[0]:.2f} at start; backend options {OPTIONS or 'default'}")
    emu_cases = set(args.emu.split(",")) if args.emu else set()
    if args.emu_ladder:
        emu_cases |= {c for c in args.cases.split(",") if c.startswith("ladder")}
    fd_model, warmed = None, False
    mps_free_phase(model_for(geometry("chain4")), 8, 1e-8)  # quimb/numba one-off start-up, not timed below
    for case in args.cases.split(","):
        if args.free_only:  # only the free phases of both engines (the ladder's emu-mps run alone, ≤ 10 min)
            model = model_for(geometry(case))
            cpu = time.process_time()
            t_mps, e_mps, sweeps = mps_free_phase(model, args.max_bond, 1e-8)
            cpu_mps = time.process_time() - cpu
            print(f"\n== {case}: mps free phase {t_mps:.1f} s (CPU {cpu_mps:.1f} s, {sweeps} sweeps), "
                  f"E = {e_mps:.9f}   load average {os.getloadavg()[0]:.2f}")
            if case in emu_cases:
                warm_up_emu_mps()
                t_emu, e_emu, cpu_emu = _timed_emu_mps(model, args.max_bond)
                print(f"  emu-mps DMRG free phase: {t_emu:.1f} s (CPU {cpu_emu:.1f} s), E = {e_emu:.9f}; ratio "
                      f"emu-mps/mps {t_emu / t_mps:.2f} (CPU {cpu_emu / cpu_mps:.2f}), "
                      f"|ΔE|/|E| = {abs(e_emu - e_mps) / abs(e_mps):.2e}   load average {os.getloadavg()[0]:.2f}")
            continue
        row, model, _ = qep_sample(case, args)
        nudged = " + ".join(f"{t:.1f}" for t in row["t_nudged"])
        print(f"\n== {case}: N = {row['n']}, {row['parameters']} parameters, order {row['order']}, "
              f"χ = {row['chi']}, MPO bond {row['mpo_bond']}")
        print(f"  one symmetric QEP sample: {row['total']:.1f} s = free {row['t_free']:.1f} s "
              f"(lowering {row['lowering']:.1f} s, {row['sweeps'][0]} sweeps) + nudged {nudged} s "
              f"({row['sweeps'][1]} sweeps) + expectations {row['measure']:.1f} s")
        print(f"  CPU time of this process: sample {row['total_cpu']:.1f} s, phases "
              f"{' + '.join(f'{c:.1f}' for c in row['cpu'])} s; variance ⟨H²⟩ − ⟨H⟩² "
              f"{' + '.join(f'{t:.2f}' for t in row['t_variance'])} s (wall, inside the phases)   "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"  nudged/free time: {row['nudged_fraction']:.2f}   overlaps ⟨ψ0|ψ±β⟩: "
              f"{', '.join(f'{o:.6f}' for o in row['overlaps'])}   variance {row['variance']:.2e}   "
              f"flags {row['flags']}   crossings {row['crossings']}")
        if case in emu_cases:
            if not warmed:
                warm_up_emu_mps()
                warmed = True
            t_emu, e_emu, cpu_emu = _timed_emu_mps(model, args.max_bond)
            print(f"  emu-mps DMRG free phase: {t_emu:.1f} s   ratio emu-mps/mps(free) = {t_emu / row['t_free']:.2f}   "
                  f"E_mps = {row['energy']:.9f}  E_emu = {e_emu:.9f}  "
                  f"|ΔE|/|E| = {abs(e_emu - row['energy']) / abs(row['energy']):.2e}")
            print(f"  CPU time: emu-mps {cpu_emu:.1f} s, mps free {row['cpu'][0]:.1f} s, ratio "
                  f"{cpu_emu / row['cpu'][0]:.2f}   load average {os.getloadavg()[0]:.2f}")
            # emu-mps's DMRG stops when a sweep changes the energy by < 1e-5: our free phase at that criterion
            t_loose, e_loose, sweeps = mps_free_phase(model, args.max_bond, 1e-5)
            print(f"  mps free phase at energy_tol 1e-5 (emu-mps's criterion): {t_loose:.1f} s ({sweeps} sweeps)   "
                  f"ratio emu-mps/mps = {t_emu / t_loose:.2f}   |E − E_emu|/|E| = "
                  f"{abs(e_loose - e_emu) / abs(e_emu):.2e}")
        if args.warm and case.startswith("chain"):
            w = warm_step(model, args)
            print(f"  free phase after a training step (δ_i += 0.05·N(0,1) rad/µs): cold {w['t_cold']:.1f} s "
                  f"({w['sweeps'][0]} sweeps), warm_free {w['t_warm']:.1f} s ({w['sweeps'][1]} sweeps, warm start "
                  f"{w['warm']}), ratio {w['t_cold'] / w['t_warm']:.1f}, |ΔE|/|E| = {w['de']:.1e}")
        if args.gap and case == args.cases.split(",")[0]:
            start = time.perf_counter()
            g = backend(model, max_bond=args.max_bond, gap=True).prepare(model.hamiltonian(),
                                                                                         model.theta(), [0.0])
            t_gap = time.perf_counter() - start
            info = g.info['gap']
            print(f"  gap=True: {t_gap:.1f} s for ground + first excited state (excited {info['time_s']:.1f} s, "
                  f"{g.info['gap']['sweeps']} sweeps, χ {g.info['gap']['max_bond']}); E1 − E0 = {g.gap:.6f} rad/µs, "
                  f"|⟨ψ0|ψ1⟩| = {g.info['gap']['overlap']:.1e}, flags {g.info['gap']['flags']}")
        if case.startswith("chain") and fd_model is None:
            fd_model = model
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    if args.fd and fd_model is not None and not args.free_only:
        r = fd_check(fd_model, args)
        print(f"\n== QEP (β = {args.fd_beta}) vs central FD (step {args.fd_step}) of ⟨Ĉ⟩ at N = {fd_model.n_atoms}, "
              f"{'tight' if args.fd_tight else 'default'} tolerances")
        for name, q, f, e in zip(r["names"], r["qep"], r["fd"], r["rel_each"], strict=True):
            print(f"  {name:>10s}  QEP {q: .8f}   FD {f: .8f}   rel {e:.1e}")
        print(f"  cosine {r['cosine']:.9f}   relative error ‖g_QEP − g_FD‖/‖g_FD‖ = {r['rel']:.2e}   "
              f"(QEP {r['t_qep']:.1f} s, FD {r['t_fd']:.1f} s)")


if __name__ == "__main__":
    main()
