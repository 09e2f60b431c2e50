"""Sympathetic cooling of a Rydberg chain by two pumped three-level ancillas (qutip mesolve).

1. Cooling curve: energy above the ground state, ground-state fidelity, purity and residual
   ‖dρ/dt‖ against time for N system atoms + 2 ancillas (default 6 + 2: dimension 2^6·3^2 = 576),
   from all atoms in |g⟩; plotted to ``<out>/sympathetic_cooling.png``.
2. QEP in the non-equilibrium steady state (default 3 + 2 atoms): the symmetric nudged estimate
   d/dβ⟨∂H/∂d_i⟩_β (nudge β·n_out, a local detuning) against central finite differences of
   ⟨n_out⟩ in the same steady state — no reciprocity assumed — and against what a Gibbs state
   at the steady state's effective temperature would give.

    python bench/sympathetic_cooling.py [--curve-atoms 6] [--bias-atoms 3] [--t-max 200]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from qep_analog.equilibrium import get_backend
from qep_analog.equilibrium.sympathetic import rydberg_chain_with_ancillas
from qep_analog.learning.thermal import finite_difference_gradient, nudged_gradient, thermal_response
from qep_analog.models.pauli import PauliSum

ANCILLA = dict(omega_ancilla=1.0, omega_pump=3.0, decay_rate=20.0)


def chain(n: int, offset_um: float):
    h, cfg = rydberg_chain_with_ancillas(n, ancilla_offset_um=offset_um, **ANCILLA)
    theta = np.full(n, 2.0)
    energies = np.linalg.eigvalsh(h.dense(theta))
    import dataclasses

    cfg = dataclasses.replace(cfg, delta_ancilla=-(energies[1] - energies[0]))  # resonant with the gap
    return h, cfg, theta, energies


def _mesolve_backend(cfg, t_max: float, *, atol: float, rtol: float, **options):
    """The sympathetic-cooling backend integrated with qutip.mesolve up to ``t_max`` µs."""
    return get_backend("cooling", scheme="sympathetic", sympathetic=cfg, method="mesolve", t_max=t_max,
                       solver_options={"atol": atol, "rtol": rtol, "nsteps": 10**6}, **options)


def cooling_curve(n: int, t_max: float, offset_um: float, out: Path) -> None:
    h, cfg, theta, energies = chain(n, offset_um)
    backend = _mesolve_backend(cfg, t_max, n_checkpoints=25, tolerance=1e-12, initial="zero", atol=1e-8, rtol=1e-6)
    start = time.perf_counter()
    from qep_analog.errors import ConvergenceError

    try:
        state = backend.prepare(h, theta, None)
        traj = state.info["trajectory"]
    except ConvergenceError as exc:  # expected with tolerance 1e-12: we want the whole curve
        traj = exc.trajectory
    wall = time.perf_counter() - start
    print(
        f"# 1. cooling curve: {n} system atoms + {cfg.n_ancillas} ancillas (dim {2**n * 9}), "
        f"gap {energies[1] - energies[0]:.3f} rad/µs, Δ_a = {cfg.delta_ancilla:.3f}, "
        f"V_max = {np.max(cfg.couplings):.2f}, wall {wall:.0f} s"
    )
    print(f"{'t (µs)':>8} {'E - E0':>8} {'fidelity':>9} {'purity':>7} {'tr.dist':>8} {'min eig':>9} {'residual':>9}")
    for k in range(traj.times.size):
        print(
            f"{traj.times[k]:8.2f} {traj.energy_above_ground[k]:8.4f} {traj.fidelity[k]:9.4f} "
            f"{traj.purity[k]:7.4f} {traj.trace_distance[k]:8.4f} {traj.min_eigenvalue[k]:9.1e} "
            f"{traj.residual[k]:9.2e}"
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(traj.times, traj.energy_above_ground, "o-", label="⟨H⟩ − E₀ (rad/µs)")
    ax.plot(traj.times, traj.fidelity, "s-", label="ground-state fidelity")
    ax.plot(traj.times, traj.purity, "^-", label="purity")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("time (µs)")
    ax.set_title(f"sympathetic cooling, {n} atoms + 2 pumped ancillas")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out / "sympathetic_cooling.png"
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def gradient_bias(n: int, offset_um: float, beta: float, step: float, t_max: float) -> None:
    h, cfg, theta, energies = chain(n, offset_um)
    cost = PauliSum.from_spec(f"n{n - 1}")
    backend = _mesolve_backend(cfg, t_max, n_checkpoints=40, tolerance=1e-7, atol=1e-10, rtol=1e-8)
    start = time.perf_counter()
    free = backend.prepare(h, theta, None)
    qep = nudged_gradient(h, theta, None, cost, beta=beta, estimator="symmetric", backend=backend)
    fd = finite_difference_gradient(h, theta, None, cost, None, step=step, backend=backend, warm_start=True)
    t_eff = free.info["effective_temperature"]
    gibbs_grad = thermal_response(h, theta, None, cost, t_eff) if 0 < t_eff < np.inf else np.full(n, np.nan)
    wall = time.perf_counter() - start
    cos = float(qep @ fd / (np.linalg.norm(qep) * np.linalg.norm(fd)))
    print(
        f"\n# 2. QEP in the sympathetic steady state: {n} atoms + 2 ancillas, C = n{n - 1}, "
        f"beta = {beta}, fd step = {step}, wall {wall:.0f} s"
    )
    print(
        f"steady state: fidelity {free.info['fidelity']:.4f}, E − E0 {free.info['energy_above_ground']:.4f}, "
        f"T_eff {t_eff:.4f}, trace distance to Gibbs(T_eff) {free.info['trace_distance_to_effective_gibbs']:.4f}, "
        f"residual {free.info['residual']:.1e}"
    )
    print(f"{'param':>6} {'QEP (sym)':>11} {'FD of <C>':>11} {'QEP - FD':>11} {'Gibbs(T_eff)':>13}")
    for k, name in enumerate(h.parameter_names):
        print(f"{name:>6} {qep[k]:11.5f} {fd[k]:11.5f} {qep[k] - fd[k]:11.5f} {gibbs_grad[k]:13.5f}")
    print(f"relative bias ‖QEP − FD‖/‖FD‖ = {np.linalg.norm(qep - fd) / np.linalg.norm(fd):.3f}, cosine {cos:.4f}")
    print(f"Gibbs(T_eff) vs FD: relative difference {np.linalg.norm(gibbs_grad - fd) / np.linalg.norm(fd):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--curve-atoms", type=int, default=6)
    parser.add_argument("--bias-atoms", type=int, default=3)
    parser.add_argument("--t-max", type=float, default=200.0, help="cooling-curve duration (µs)")
    parser.add_argument("--bias-t-max", type=float, default=4000.0)
    parser.add_argument("--offset-um", type=float, default=7.0)
    parser.add_argument("--beta", type=float, default=0.02)
    parser.add_argument("--step", type=float, default=0.02)
    parser.add_argument("--skip-curve", action="store_true")
    parser.add_argument("--skip-bias", action="store_true")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.skip_bias:
        gradient_bias(args.bias_atoms, args.offset_um, args.beta, args.step, args.bias_t_max)
    if not args.skip_curve:
        cooling_curve(args.curve_atoms, args.t_max, args.offset_um, out)


if __name__ == "__main__":
    main()
