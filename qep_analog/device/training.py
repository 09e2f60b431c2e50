"""Training a Rydberg array with QEP: local detunings every step, positions per layout stage.

Each step estimates ∂⟨Ĉ⟩/∂θ over a batch with the generic QEP estimator (symmetric, cost-operator
nudging Ĉ = Σ_ℓ (n_ℓ − t_ℓ)², Z-basis shots only), then

    δ ← δ − η ∂L/∂δ                       (every step: the DMM map changes online)
    r ← r − η_r Σ_stage ∂L/∂r              (chain rule ∂J_ij/∂r_i = −6 C6 (r_i − r_j)/r_ij⁸)

with positions moved only at the end of each stage of ``stage_steps`` steps (``stage_steps=1`` is
"positions train in emulation"; larger stages model one trap layout per stage on hardware, whose
cost is counted when the device requires a layout). Every update is projected on the device limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium.base import get_backend
from qep_analog.errors import QepValueError
from qep_analog.learning.gradient import GradientConfig, estimate_gradient


@dataclass(frozen=True, kw_only=True)
class RydbergTrainingConfig:
    """Hyperparameters, stored as given."""

    beta: float = 1.0
    shots: int | None = 1000
    learning_rate: float = 1.0
    position_learning_rate: float = 1.0
    steps: int = 20
    batch_size: int = 4
    stage_steps: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "stage_steps"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise QepValueError(f"'{name}' must be a positive integer, not {value!r}")


@dataclass(kw_only=True)
class RydbergTrainer:
    """``fit`` trains a :class:`RydbergModel`; learned values end in ``_``.

    ``backend`` is "exact" (ideal equilibrium) or "adiabatic" (pulser ramps), with ``backend_options``
    (for "adiabatic" the model is supplied at every step).
    """

    config: RydbergTrainingConfig
    backend: str = "adiabatic"
    backend_options: dict = field(default_factory=dict)
    model_: RydbergModel | None = None
    history_: list = field(default_factory=list)
    layouts_: int = 0
    layout_seconds_: float = 0.0

    def _backend(self, model: RydbergModel):
        if self.backend == "adiabatic":
            return get_backend("adiabatic", model=model, **self.backend_options)
        return get_backend(self.backend, **self.backend_options)

    def fit(self, model: RydbergModel, inputs, targets) -> RydbergTrainer:
        cfg = self.config
        inputs = np.atleast_2d(np.asarray(inputs, dtype=float))
        targets = np.atleast_2d(np.asarray(targets, dtype=float))
        if len(inputs) != len(targets):
            raise QepValueError(f"'inputs' has {len(inputs)} samples but 'targets' has {len(targets)}")
        rng = np.random.default_rng(cfg.seed)
        grad_config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=cfg.beta, shots=cfg.shots)
        model = model.validate()
        pending = np.zeros_like(model.positions_um)
        for step in range(cfg.steps):
            batch = rng.choice(len(targets), size=min(cfg.batch_size, len(targets)), replace=False)
            h = model.hamiltonian()
            est = estimate_gradient(h, self._backend(model), model.theta(), inputs[batch], targets[batch],
                                    grad_config, seed=int(rng.integers(2**31)))
            grad_pos, grad_det = model.split_gradient(est.gradient)
            pending += grad_pos
            det = model.detunings - cfg.learning_rate * grad_det
            pos = model.positions_um
            end_of_stage = (step + 1) % cfg.stage_steps == 0
            if model.train_positions and end_of_stage:
                pos = pos - cfg.position_learning_rate * pending
                pending = np.zeros_like(pending)
            model = model.project(positions_um=pos, detunings=det)
            if model.train_positions and end_of_stage and model.device.requires_layout:
                _, seconds = model.register_with_layout()
                self.layouts_ += 1
                self.layout_seconds_ += seconds
            self.history_.append({"step": step, "loss": est.loss, "gradient_norm": float(np.linalg.norm(est.gradient)),
                                  "preparations": est.preparations, "crossings": len(est.crossings)})
        self.model_ = model
        return self


def mean_cost(model: RydbergModel, inputs, targets, backend: str = "exact", **options) -> float:
    """⟨Ĉ⟩ = mean over samples of Σ_ℓ (1 − 2t_ℓ)⟨n_ℓ⟩ + t_ℓ², exactly (no shots)."""
    h = model.hamiltonian()
    b = get_backend("adiabatic", model=model, **options) if backend == "adiabatic" else get_backend(backend, **options)
    values = []
    for x, t in zip(np.atleast_2d(inputs), np.atleast_2d(targets), strict=True):
        state = b.prepare(h, model.theta(), model.inputs(x))
        n_out = h.output_expectations(state.state)
        values.append(float(np.sum((1 - 2 * t) * n_out + t**2)))
    return float(np.mean(values))
