"""Objectives, and the nudge that differentiates each (PHYSICS.md §1).

* ``error-signal``: L(⟨O⟩) with L = scale · Σ_ℓ (⟨O_ℓ⟩ − t_ℓ)² (``loss="mse"``) or
  L = Σ_ℓ t_ℓ ⟨O_ℓ⟩ (``loss="linear"``, t are weights; maximise ⟨O⟩ with t = −1).
  Nudge: Σ_ℓ ν_ℓ O_ℓ with ν = β ∂L/∂y (Wanjura–Marquardt eq. 5).
* ``cost-operator``: ⟨Ĉ⟩ with Ĉ = scale · Σ_ℓ (O_ℓ − t_ℓ)² (or Σ t_ℓ O_ℓ for ``linear``).
  Nudge: β Ĉ (Scellier eq. 3). ⟨Ĉ⟩ includes the outputs' quantum variance, so it is a
  different objective from L(⟨O⟩): for Massar–Mognetti's ½(Z − d)² it is minimised by
  ⟨Z⟩ → sign d.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliSum, add, square

NUDGES = ("error-signal", "cost-operator")
LOSSES = ("mse", "linear")


@dataclass(frozen=True, kw_only=True)
class Objective:
    """What a gradient estimator differentiates (see the module docstring)."""

    kind: str = "error-signal"
    loss: str = "mse"
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in NUDGES:
            raise QepValueError(f"'nudge' must be one of {NUDGES}, not {self.kind!r}")
        if self.loss not in LOSSES:
            raise QepValueError(f"'loss' must be one of {LOSSES}, not {self.loss!r}")
        if not np.isfinite(self.scale) or self.scale <= 0:
            raise QepValueError(f"'loss_scale' must be a positive number, not {self.scale}")

    @property
    def name(self) -> str:
        s = "" if self.scale == 1 else f"{self.scale:g}·"
        if self.loss == "linear":
            return "L(⟨O⟩) = Σ t_ℓ⟨O_ℓ⟩" if self.kind == "error-signal" else "⟨Ĉ⟩, Ĉ = Σ t_ℓ O_ℓ"
        if self.kind == "error-signal":
            return f"L(⟨O⟩) = {s}Σ(⟨O_ℓ⟩ − t_ℓ)²"
        return f"⟨Ĉ⟩, Ĉ = {s}Σ(O_ℓ − t_ℓ)²"

    def check_targets(self, hamiltonian: Hamiltonian, target) -> np.ndarray:
        t = np.asarray(target, dtype=float).reshape(-1)
        if not hamiltonian.outputs:
            raise QepValueError("the model has no output terms, so no cost can be formed")
        if t.shape != (len(hamiltonian.outputs),):
            raise QepValueError(f"'target' must have {len(hamiltonian.outputs)} values (one per output "
                                f"{list(hamiltonian.output_names)}), not {t.size}")
        if not np.all(np.isfinite(t)):
            raise QepValueError("'target' values must be finite")
        return t

    # ---------------------------------------------------------------- error-signal side
    def loss_of_outputs(self, y: np.ndarray, t: np.ndarray) -> float:
        """L(y) for output values y (the error-signal objective)."""
        if self.loss == "linear":
            return float(np.dot(t, y))
        return float(self.scale * np.sum((y - t) ** 2))

    def error_signal(self, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        """ε = ∂L/∂y."""
        return t.copy() if self.loss == "linear" else 2.0 * self.scale * (y - t)

    # ---------------------------------------------------------------- operator side
    def cost_operator(self, hamiltonian: Hamiltonian, t: np.ndarray) -> PauliSum:
        """Ĉ = scale Σ (O_ℓ − t_ℓ)², or Σ t_ℓ O_ℓ for the linear loss."""
        observables = [o.observable for o in hamiltonian.outputs]
        if self.loss == "linear":
            return add(*[o.scaled(w) for o, w in zip(observables, t, strict=True)])
        parts = [square(add(o, PauliSum((), -tl))) for o, tl in zip(observables, t, strict=True)]
        return add(*parts).scaled(self.scale)

    def nudge_direction(self, hamiltonian: Hamiltonian, y: np.ndarray, t: np.ndarray) -> PauliSum:
        """The operator multiplied by β in the nudged Hamiltonian."""
        if self.kind == "cost-operator":
            return self.cost_operator(hamiltonian, t)
        eps = self.error_signal(y, t)
        return add(*[o.observable.scaled(e) for o, e in zip(hamiltonian.outputs, eps, strict=True)])

    def exact_value(self, hamiltonian: Hamiltonian, state: np.ndarray, t: np.ndarray) -> float:
        """The objective evaluated exactly on a state vector or density matrix."""
        if self.kind == "error-signal":
            return self.loss_of_outputs(hamiltonian.output_expectations(state), t)
        c = self.cost_operator(hamiltonian, t).matrix(hamiltonian.n_qubits)
        if state.ndim == 1:
            return float(np.real(np.vdot(state, c @ state)))
        return float(np.real((c.multiply(state.T)).sum()))
