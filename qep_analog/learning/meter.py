"""Measuring prepared states for QEP: settings per model, shots or exact expectations, outputs and objective.

``measurement_plan(h)`` groups the ∂H/∂θ products and the output products into qubit-wise-commuting settings
(cached on the Hamiltonian). ``_Meter`` measures a prepared state under a :class:`GradientConfig`: exact
expectations (``shots=None``), the Gaussian idealisation (mean + N(0, Var/M)), or M projective shots per setting
with readout errors (mitigated if asked), counting preparations. Split out of :mod:`.gradient`, which runs the
phases and the estimators on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from qep_analog.equilibrium.base import EquilibriumState
from qep_analog.errors import QepValueError
from qep_analog.learning.objectives import Objective
from qep_analog.measurement.estimate import estimate_products
from qep_analog.measurement.grouping import Setting, group_qubitwise
from qep_analog.measurement.observables import derivative_structure, output_expectations
from qep_analog.measurement.sampling import sample_bitstrings
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliProduct

if TYPE_CHECKING:
    from qep_analog.learning.gradient import GradientConfig


@dataclass(frozen=True)
class MeasurementPlan:
    """Settings for the free and nudged phases of one model."""

    derivative_settings: tuple[Setting, ...]
    output_settings: tuple[Setting, ...]
    joint_settings: tuple[Setting, ...]
    derivative_products: tuple[PauliProduct, ...]
    output_products: tuple[PauliProduct, ...]
    joint_products: tuple[PauliProduct, ...]


def measurement_plan(hamiltonian: Hamiltonian) -> MeasurementPlan:
    """Group ∂H/∂θ products, output products, and both together into settings (cached)."""
    cache = hamiltonian._cache
    if "measurement_plan" not in cache:
        n = hamiltonian.n_qubits
        deriv = derivative_structure(hamiltonian)[0]
        outs = tuple(dict.fromkeys(p for o in hamiltonian.outputs for p in o.observable.products))
        joint = tuple(dict.fromkeys(deriv + outs))
        cache["measurement_plan"] = MeasurementPlan(
            group_qubitwise(deriv, n), group_qubitwise(outs, n), group_qubitwise(joint, n), deriv, outs, joint)
    return cache["measurement_plan"]


class _Meter:
    """Measures product expectations of a prepared state under a config (shots or exact)."""

    def __init__(self, hamiltonian: Hamiltonian, config: GradientConfig, rng: np.random.Generator):
        self.h, self.cfg, self.rng = hamiltonian, config, rng
        self.preparations = 0

    def products(self, state: EquilibriumState, products, settings) -> tuple[np.ndarray, np.ndarray]:
        exact = state.expect(tuple(products))
        cfg = self.cfg
        if cfg.shots is None:
            return exact, np.zeros_like(exact)
        if cfg.measurement == "gaussian":
            var = np.array([_product_variance(p, e) for p, e in zip(products, exact, strict=True)])
            self.preparations += len(products) * cfg.shots
            se = np.sqrt(var / cfg.shots)
            return exact + se * self.rng.standard_normal(len(products)), se
        means, ses = np.empty(len(products)), np.empty(len(products))
        for setting in settings:
            members = [products[i] for i in setting.members]
            bits = sample_bitstrings(state, setting.basis, cfg.shots, self.rng, cfg.readout)
            m, s = estimate_products(bits, members, cfg.readout if cfg.mitigate_readout else None)
            means[list(setting.members)], ses[list(setting.members)] = m, s
            self.preparations += cfg.shots
        return means, ses

    def derivatives(self, state) -> tuple[np.ndarray, np.ndarray]:
        """⟨A_k⟩ and standard errors (products of one A_k sharing shots: covariance neglected)."""
        plan = measurement_plan(self.h)
        coef = derivative_structure(self.h)[1]
        means, ses = self.products(state, plan.derivative_products, plan.derivative_settings)
        return coef @ means, np.sqrt((coef**2) @ (ses**2))

    def derivatives_and_outputs(self, state) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One-sided free phase: ⟨A_k⟩ and the outputs from one joint set of settings."""
        if self.cfg.shots is None or self.cfg.measurement == "gaussian":
            return (*self.derivatives(state), self.outputs(state))
        plan = measurement_plan(self.h)
        coef = derivative_structure(self.h)[1]
        means, ses = self.products(state, plan.joint_products, plan.joint_settings)
        k = len(plan.derivative_products)
        y = _outputs_from_products(self.h, plan.joint_products, means)
        return coef @ means[:k], np.sqrt((coef**2) @ (ses[:k] ** 2)), y

    def outputs(self, state) -> np.ndarray:
        cfg = self.cfg
        if cfg.shots is None or cfg.measurement == "gaussian":
            return output_expectations(self.h, state)  # exact error signal in the idealisation
        plan = measurement_plan(self.h)
        means, _ = self.products(state, plan.output_products, plan.output_settings)
        return _outputs_from_products(self.h, plan.output_products, means)


def measure_outputs(hamiltonian: Hamiltonian, state: EquilibriumState, config: GradientConfig, *,
                    shots: int | None, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The outputs ⟨O_ℓ⟩ of a prepared state as a lab reads them: ``shots`` projective shots per
    qubit-wise-commuting output setting (``config.readout`` errors applied, mitigated if the config
    says so), whatever ``config.measurement`` is — the Gaussian idealisation has no output shot
    model. ``shots=None`` gives the exact expectations and 0 preparations.

    Returns (outputs, preparations).
    """
    if shots is None:
        return output_expectations(hamiltonian, state), 0
    meter = _Meter(hamiltonian, replace(config, shots=shots, measurement="grouped"), rng)
    return meter.outputs(state), meter.preparations


def objective_value(objective: Objective, hamiltonian: Hamiltonian, state: EquilibriumState,
                    target: np.ndarray) -> float:
    """The objective evaluated exactly on a prepared state, through the state interface: L(⟨O⟩) for
    error-signal nudging, ⟨Ĉ⟩ = c₀ + Σ_j c_j ⟨P_j⟩ for cost-operator nudging."""
    if objective.kind == "error-signal":
        return objective.loss_of_outputs(output_expectations(hamiltonian, state), target)
    cost = objective.cost_operator(hamiltonian, target)
    return float(state.expect_sums([cost])[0])


def _product_variance(p: PauliProduct, mean: float) -> float:
    if any(letter == "n" for _, letter in p.factors):
        if all(letter == "n" for _, letter in p.factors):
            return max(mean - mean**2, 0.0)  # a projector: P² = P
        raise QepValueError("gaussian measurement mode needs pure Pauli or pure occupation products")
    return max(1.0 - mean**2, 0.0)


def _outputs_from_products(h: Hamiltonian, products, means) -> np.ndarray:
    index = {p: i for i, p in enumerate(products)}
    return np.array([o.observable.constant + sum(c * means[index[p]] for c, p in o.observable.terms)
                     for o in h.outputs])
