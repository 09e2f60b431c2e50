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

import dataclasses
from dataclasses import dataclass

import numpy as np

from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium.base import EquilibriumBackend
from qep_analog.errors import QepValueError
from qep_analog.executor import Executor
from qep_analog.learning.driver import Draw, StepEstimate, TrainingConfig
from qep_analog.learning.gradient import GradientConfig, estimate_gradient
from qep_analog.measurement.observables import output_expectations


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
                            crossing_samples=step.crossing_samples, dropped=step.dropped, state=step.state,
                            extras={"runs": list(est.runs)} if est.runs else {})  # a staged allocation's runs

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
            n_out = output_expectations(h, b.prepare(h, model.theta(), model.inputs(x)))
            costs.append(float(np.sum((1 - 2 * t) * n_out + t**2)))
            hits.append(self._hit(n_out, t))
        return float(np.mean(costs)), float(np.mean(hits))

    def _hit(self, n_out: np.ndarray, t: np.ndarray) -> bool:
        return bool(np.all((n_out > 0.5) == (t > 0.5)))


@dataclass(kw_only=True)
class GlobalRydbergTask(RydbergTask):
    """QEP on a device without a DMM: global drive only, so the nudge and the detuning are global.

    Model as :class:`RydbergTask`, with every δ_i = Δ (one global detuning, rad/µs) and the inputs global
    (x = (Ω, Δ_in), ``input_mode = "global"``). The cost is over every atom,

        Ĉ = Σ_i (n_i − t)² = Σ_i (1 − 2t) n_i + N t²   (t ∈ {0, 1}; N × the Rydberg-fraction cost),

    so the symmetric ±β nudge β(1 − 2t) Σ_i n_i is the global detuning shift Δ → Δ ∓ β(1 − 2t): no local
    control is needed. θ = (positions, Δ); ∂⟨Ĉ⟩/∂Δ = Σ_i ∂⟨Ĉ⟩/∂δ_i (all δ_i move together), positions by the
    chain rule. Ω is not trained: ∂H/∂Ω = ½ Σ_i X_i needs an X-basis readout, which interactions corrupt
    (PHYSICS.md §3). Targets are one per sample (broadcast to every atom); a sample is classified 1 when
    the Rydberg fraction (1/N) Σ_i ⟨n_i⟩ exceeds ½.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        n = self.model.n_atoms
        if set(self.model.output_atoms) != set(range(n)):
            raise QepValueError(f"a global-nudge task reads every atom: 'output_atoms' must be 0..{n - 1}, not "
                                f"{list(self.model.output_atoms)}")
        if np.ptp(self.model.detunings) > 1e-12:
            raise QepValueError(f"a global-nudge task has one global detuning: 'detunings' must be uniform, not "
                                f"{self.model.detunings.tolist()}")
        if self.model.input_atoms and self.model.input_mode != "global":
            raise QepValueError("a global-nudge task takes global inputs: set 'input_mode' = 'global'")
        self.targets = self._broadcast(self.targets)
        if self.test_targets is not None:
            self.test_targets = self._broadcast(self.test_targets)

    def _broadcast(self, targets) -> np.ndarray:
        t = np.atleast_2d(np.asarray(targets, dtype=float))
        n = self.model.n_atoms
        if t.shape[1] == n and np.all(np.ptp(t, axis=1) == 0):
            return t
        if t.shape[1] != 1:
            raise QepValueError(f"a global-nudge task takes one target per sample (or {n} equal ones), not "
                                f"{t.shape[1]}")
        return np.repeat(t, n, axis=1)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        n, dim = self.model.positions_um.shape
        return tuple(f"{a}_{i}" for i in range(n) for a in "xyz"[:dim]) + ("detuning",)

    def parameter_groups(self) -> dict[str, np.ndarray]:
        k = self.model.positions_um.size
        return {"positions": np.arange(k), "detunings": np.array([k])}

    def theta_of(self, model: RydbergModel) -> np.ndarray:
        return np.concatenate([model.positions_um.ravel(), model.detunings[:1]])

    def model_at(self, theta: np.ndarray) -> RydbergModel:
        k = self.model.positions_um.size
        return self.model.with_(positions_um=np.asarray(theta[:k]).reshape(self.model.positions_um.shape),
                                detunings=np.full(self.model.n_atoms, float(theta[k])))

    def gradient(self, theta: np.ndarray, batch: np.ndarray, draw: Draw) -> StepEstimate:
        step = super().gradient(theta, batch, draw)
        k = self.model.positions_um.size
        return dataclasses.replace(step, gradient=np.concatenate([step.gradient[:k], [step.gradient[k:].sum()]]))

    def project(self, theta: np.ndarray) -> np.ndarray:
        k = self.model.positions_um.size
        det = np.full(self.model.n_atoms, float(theta[k]))
        projected = self.model.project(positions_um=np.asarray(theta[:k]).reshape(self.model.positions_um.shape),
                                       detunings=det)
        return self.theta_of(projected)

    def _hit(self, n_out: np.ndarray, t: np.ndarray) -> bool:
        return bool((np.mean(n_out) > 0.5) == (t[0] > 0.5))
