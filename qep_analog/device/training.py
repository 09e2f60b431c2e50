"""A Rydberg array as a task of the one training driver: positions and local detunings trained by QEP.

Model (:class:`~qep_analog.device.rydberg.RydbergModel`, pulser's convention, PHYSICS.md §3):

    H = Σ_i (Ω/2) X_i − Σ_i (δ_i + x_i) n_i + Σ_{i<j} C6/r_ij⁶ n_i n_j

The driver's θ is (r_0x, r_0y, …, r_(N−1)y, δ_0, …, δ_(N−1)) in µm and rad/µs, in two parameter
groups ``positions`` and ``detunings`` with their own learning rates. Each step estimates ∂⟨Ĉ⟩/∂θ
over a batch with the generic QEP estimator (symmetric, cost-operator nudging
Ĉ = Σ_ℓ (n_ℓ − t_ℓ)², Z-basis shots only) on the Hamiltonian's parameters (J_ij, δ_i), and maps
∂L/∂J_ij to the positions by the chain rule ∂J_ij/∂r_i = −6 C6 (r_i − r_j)/r_ij⁸. Every update is
projected on the device limits (:meth:`RydbergModel.project`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium.base import EquilibriumBackend
from qep_analog.errors import QepValueError
from qep_analog.executor import Executor
from qep_analog.learning.driver import Draw, StepEstimate, TrainingConfig
from qep_analog.learning.gradient import GradientConfig, estimate_gradient


@dataclass(kw_only=True)
class RydbergTask:
    """QEP on a :class:`RydbergModel` for the driver: gradient, exact test metrics, projection.

    ``backend`` is any equilibrium backend; one with ``with_model`` (the adiabatic pulser ramps)
    is re-bound to the current model at every step. ``inputs``/``targets`` are the training set
    (targets are occupations t ∈ {0, 1}).
    """

    model: RydbergModel
    backend: EquilibriumBackend
    config: GradientConfig
    inputs: np.ndarray
    targets: np.ndarray
    test_inputs: np.ndarray | None = None
    test_targets: np.ndarray | None = None
    evaluate_initial: bool = True
    executor: Executor | None = None

    def __post_init__(self) -> None:
        self.inputs = np.atleast_2d(np.asarray(self.inputs, dtype=float))
        self.targets = np.atleast_2d(np.asarray(self.targets, dtype=float))
        if len(self.inputs) != len(self.targets):
            raise QepValueError(f"'inputs' has {len(self.inputs)} samples but 'targets' has {len(self.targets)}")
        if self.config.nudge != "cost-operator" or self.config.estimator != "symmetric":
            raise QepValueError("a Rydberg task runs symmetric cost-operator QEP (gradient.nudge = "
                                "'cost-operator', gradient.estimator = 'symmetric')")
        self.model = self.model.validate()

    # -------------------------------------------------------------- parameters
    @property
    def parameter_names(self) -> tuple[str, ...]:
        n, dim = self.model.positions_um.shape
        axes = "xyz"[:dim]
        return tuple(f"{a}_{i}" for i in range(n) for a in axes) + tuple(f"delta_{i}" for i in range(n))

    @property
    def n_samples(self) -> int:
        return len(self.targets)

    def parameter_groups(self) -> dict[str, np.ndarray]:
        k = self.model.positions_um.size
        return {"positions": np.arange(k), "detunings": np.arange(k, k + self.model.n_atoms)}

    def initial_theta(self, config: TrainingConfig) -> np.ndarray:
        if config.theta0 is not None:
            raise QepValueError("'training.theta0' does not apply to a Rydberg task: set [device] positions_um "
                                "and detunings")
        return self.theta_of(self.model)

    def theta_of(self, model: RydbergModel) -> np.ndarray:
        return np.concatenate([model.positions_um.ravel(), model.detunings])

    def model_at(self, theta: np.ndarray) -> RydbergModel:
        k = self.model.positions_um.size
        return self.model.with_(positions_um=np.asarray(theta[:k]).reshape(self.model.positions_um.shape),
                                detunings=np.asarray(theta[k:]))

    def _backend(self, model: RydbergModel) -> EquilibriumBackend:
        return self.backend.with_model(model) if hasattr(self.backend, "with_model") else self.backend

    # -------------------------------------------------------------- the driver's hooks
    def gradient(self, theta: np.ndarray, batch: np.ndarray, draw: Draw) -> StepEstimate:
        model = self.model_at(theta)
        est = estimate_gradient(model.hamiltonian(), self._backend(model), model.theta(), self.inputs[batch],
                                self.targets[batch], self.config, seed=draw.sequence(), executor=self.executor)
        grad_pos, grad_det = model.split_gradient(est.gradient)
        if not model.train_positions:
            grad_pos = np.zeros_like(grad_pos)
        step = StepEstimate.from_estimate(est)
        return StepEstimate(gradient=np.concatenate([grad_pos.ravel(), grad_det]), loss=step.loss,
                            preparations=step.preparations or 0, crossings=step.crossings,
                            crossing_samples=step.crossing_samples, dropped=step.dropped, state=step.state)

    def project(self, theta: np.ndarray) -> np.ndarray:
        k = self.model.positions_um.size
        projected = self.model.project(positions_um=np.asarray(theta[:k]).reshape(self.model.positions_um.shape),
                                       detunings=np.asarray(theta[k:]))
        return self.theta_of(projected)

    def evaluate(self, theta: np.ndarray) -> dict:
        """Exact test metrics of the prepared states: cost ⟨Ĉ⟩ and accuracy of ⟨n_ℓ⟩ > ½ ⇔ t_ℓ = 1."""
        if self.test_targets is None:
            return {}
        cost, accuracy = self.cost(theta, self.test_inputs, self.test_targets)
        return {"test_loss": cost, "test_accuracy": accuracy}

    def cost(self, theta: np.ndarray, inputs, targets) -> tuple[float, float]:
        """(mean ⟨Ĉ⟩ = Σ_ℓ (1 − 2t_ℓ)⟨n_ℓ⟩ + t_ℓ², accuracy) over the samples, exactly (no shots)."""
        model = self.model_at(theta)
        h, b = model.hamiltonian(), self._backend(model)
        costs, hits = [], []
        for x, t in zip(np.atleast_2d(inputs), np.atleast_2d(targets), strict=True):
            n_out = h.output_expectations(b.prepare(h, model.theta(), model.inputs(x)).state)
            costs.append(float(np.sum((1 - 2 * t) * n_out + t**2)))
            hits.append(bool(np.all((n_out > 0.5) == (t > 0.5))))
        return float(np.mean(costs)), float(np.mean(hits))
