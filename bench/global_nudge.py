"""Global-nudge QEP on a device without a DMM (fresnel_like), through an adiabatic ramp, against references.

3 atoms (triangle, 7 µm), inputs (Ω, Δ_in) global, cost Ĉ = Σ_i (n_i − t)² over every atom, symmetric ±β
global nudge. For each ramp shape (cosine; the adiabatic backend's default schedule) prints the relative
error ‖g − g_ref‖/‖g_ref‖ of the QEP gradient (noiseless, Krylov emulator) against
  (a) central finite differences (h = 1e-3) of the same ramp-prepared objective ⟨Ĉ⟩, and
  (b) the exact ground-state gradient (exact backend, β = 1e-3),
and of (a) against (b) (how far the ramp's objective is from the ground state's).

    python bench/global_nudge.py [--duration-ns 6000] [--beta 0.2]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from qep_analog.device.rydberg import RydbergModel
from qep_analog.device.training import GlobalRydbergTask
from qep_analog.equilibrium import get_backend
from qep_analog.learning import GradientConfig
from qep_analog.learning.driver import Draw

POSITIONS = [[0.0, 0.0], [7.0, 0.0], [3.5, 6.0]]
X, T = [[6.0, 2.0], [9.0, -1.0]], [[1.0], [0.0]]


def _task(model, backend, beta):
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=beta)
    return GlobalRydbergTask(model=model, backend=backend, config=config, inputs=X, targets=T)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration-ns", type=int, default=6000)
    p.add_argument("--beta", type=float, default=0.2)
    args = p.parse_args(argv)
    model = RydbergModel(positions_um=POSITIONS, device="fresnel_like", omega=6.0, detunings=[3.0] * 3,
                         input_atoms=(0, 1, 2), output_atoms=(0, 1, 2), input_mode="global")
    exact = _task(model, get_backend("exact"), 1e-3)
    theta = exact.theta_of(model)
    g_exact = exact.gradient(theta, np.arange(len(X)), Draw(0, 0)).gradient
    for shape in ("cosine", None):
        options = {"shape": shape} if shape else {}
        backend = get_backend("adiabatic", model=model, duration_ns=args.duration_ns, start_detuning=-20.0,
                              emulator="krylov", **options)
        task = _task(model, backend, args.beta)
        g = task.gradient(theta, np.arange(len(X)), Draw(0, 0)).gradient
        fd = np.zeros_like(theta)
        for k in range(theta.size):
            e = np.zeros_like(theta)
            e[k] = 1e-3
            fd[k] = (task.cost(theta + e, X, task.targets)[0] - task.cost(theta - e, X, task.targets)[0]) / 2e-3
        rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))  # noqa: E731
        print(f"{shape or 'backend default':>16} {args.duration_ns} ns, β = {args.beta}: "
              f"QEP vs FD of the ramp objective {rel(g, fd):.4f}; QEP vs ground-state gradient {rel(g, g_exact):.4f}; "
              f"ramp FD vs ground-state gradient {rel(fd, g_exact):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
