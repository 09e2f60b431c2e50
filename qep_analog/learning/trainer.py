"""The trainer: QEP gradient estimates over mini-batches and a local optimiser step.

Randomness: the batch drawn at step s and the shot noise of its gradient come from
``numpy.random.default_rng([seed, s])`` and ``SeedSequence([seed, s])``, so a run resumed at
step s from a checkpoint (θ, optimiser state, history) continues exactly as an uninterrupted one.

Model selection (``selection="best-validation"``): every ``validate_every`` steps the current
parameters are scored on a held-out validation set whose outputs are *measured*
(``validation_shots`` projective shots per output setting, :func:`~qep_analog.learning.gradient.measure_outputs`;
their preparations are counted with the step's), and the trainer keeps the best: highest
validation accuracy, ties broken by the lower measured output error Σ_ℓ(y_ℓ − t_ℓ)². Test
metrics and ``parameters_`` then refer to that selected θ — what one would ship if training
stopped there — while the optimiser walks on from the last iterate. The validation shots of step s
come from ``SeedSequence([seed, s, 2**30 + 1])``, apart from the batch and gradient streams.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qep_analog.equilibrium.base import EquilibriumBackend
from qep_analog.errors import QepValueError
from qep_analog.executor import Executor
from qep_analog.learning.gradient import GradientConfig, estimate_gradient, measure_outputs
from qep_analog.learning.optimizers import SGD, Adam
from qep_analog.models.hamiltonian import Hamiltonian

METRICS = ("argmax", "sign", "none")
SELECTIONS = ("last", "best-validation")
_VALIDATION_STREAM = 2**30 + 1


def evaluate(hamiltonian: Hamiltonian, backend: EquilibriumBackend, theta, inputs, targets,
             config: GradientConfig, metric: str = "argmax") -> dict:
    """Exact test metrics of the free equilibrium state (no shot noise).

    * ``loss``: the objective of ``config`` averaged over samples;
    * ``accuracy`` (``argmax``): the max-choice accuracy, argmax⟨O_ℓ⟩ = argmax t_ℓ;
      ``single_shot_accuracy``: the mean of ⟨O_correct⟩ — the probability that one shot of
      projector outputs names the right class;
    * ``accuracy`` (``sign``): sign⟨O_ℓ⟩ = sign t_ℓ for ±1 outputs such as Z.
    """
    if metric not in METRICS:
        raise QepValueError(f"'metric' must be one of {METRICS}, not {metric!r}")
    obj = config.objective
    inputs = np.atleast_2d(np.asarray(inputs, dtype=float)) if hamiltonian.input_names else None
    targets = np.atleast_2d(np.asarray(targets, dtype=float))
    losses, outputs = [], []
    for i, t in enumerate(targets):
        x = hamiltonian.input_vector(inputs[i] if inputs is not None else None)
        state = backend.prepare(hamiltonian, theta, x)
        outputs.append(hamiltonian.output_expectations(state.state))
        losses.append(obj.exact_value(hamiltonian, state.state, obj.check_targets(hamiltonian, t)))
    outputs = np.array(outputs)
    result = {"loss": float(np.mean(losses)), **_accuracy(outputs, targets, metric)}
    if metric == "argmax":
        result["single_shot_accuracy"] = float(np.mean(outputs[np.arange(len(targets)), np.argmax(targets, axis=1)]))
    return result


def _accuracy(outputs: np.ndarray, targets: np.ndarray, metric: str) -> dict:
    """{"accuracy": …} of outputs against targets (argmax or sign rule; nothing for "none")."""
    if metric == "argmax":
        return {"accuracy": float(np.mean(np.argmax(outputs, axis=1) == np.argmax(targets, axis=1)))}
    if metric == "sign":
        return {"accuracy": float(np.mean(np.all(np.sign(outputs) == np.sign(targets), axis=1)))}
    return {}


def validate(hamiltonian: Hamiltonian, backend: EquilibriumBackend, theta, inputs, targets,
             config: GradientConfig, *, shots: int | None, rng: np.random.Generator,
             metric: str = "argmax") -> dict:
    """Validation metrics from measured outputs (``shots`` per output setting; None = exact).

    * ``accuracy``: as in :func:`evaluate`, from the measured outputs (not for ``metric="none"``);
    * ``output_error``: the mean over samples of Σ_ℓ (y_ℓ − t_ℓ)², y the measured outputs;
    * ``preparations``: the state preparations spent (0 with exact outputs).
    """
    inputs = np.atleast_2d(np.asarray(inputs, dtype=float)) if hamiltonian.input_names else None
    targets = np.atleast_2d(np.asarray(targets, dtype=float))
    outputs, preparations = [], 0
    for i in range(len(targets)):
        x = hamiltonian.input_vector(inputs[i] if inputs is not None else None)
        y, n = measure_outputs(hamiltonian, backend.prepare(hamiltonian, theta, x), config, shots=shots, rng=rng)
        outputs.append(y)
        preparations += n
    outputs = np.array(outputs)
    return {"output_error": float(np.mean(np.sum((outputs - targets) ** 2, axis=1))), "preparations": preparations,
            **_accuracy(outputs, targets, metric)}


class QEPTrainer:
    """Train θ of ``hamiltonian`` with QEP gradients.

    Hyperparameters are stored as given; learned values end in ``_`` (``theta_``, ``history_``).
    ``fit`` returns ``self``. Example::

        trainer = QEPTrainer(hamiltonian=h, backend=get_backend("exact"),
                             gradient=GradientConfig(estimator="symmetric", beta=0.1),
                             optimizer=Adam(learning_rate=0.01), batch_size=10, n_steps=200, seed=1)
        trainer.fit(x_train, t_train, test_inputs=x_test, test_targets=t_test)
    """

    def __init__(self, *, hamiltonian: Hamiltonian, backend: EquilibriumBackend, gradient: GradientConfig,
                 optimizer: SGD | Adam, batch_size: int = 10, n_steps: int = 100, seed: int = 0,
                 eval_every: int = 10, theta0=None, init_scale: float = 0.1,
                 bounds: tuple[float, float] | None = None, metric: str = "argmax",
                 average: float | None = None, selection: str = "last", validation_shots: int | None = None,
                 validate_every: int | None = None, executor: Executor | None = None, progress: bool = False,
                 callback: Callable[[QEPTrainer, dict], None] | None = None):
        if batch_size < 1 or n_steps < 0 or eval_every < 1:
            raise QepValueError("'batch_size' and 'eval_every' must be ≥ 1 and 'n_steps' ≥ 0, "
                                f"not {batch_size}, {eval_every}, {n_steps}")
        if bounds is not None and not bounds[0] < bounds[1]:
            raise QepValueError(f"'bounds' must be (low, high) with low < high, not {bounds}")
        if metric not in METRICS:
            raise QepValueError(f"'metric' must be one of {METRICS}, not {metric!r}")
        if average is not None and not 0.0 <= average < 1.0:
            raise QepValueError(f"'average' (the decay of the parameter average) must lie in [0, 1), not {average}")
        self.hamiltonian, self.backend, self.gradient = hamiltonian, backend, gradient
        self.optimizer, self.batch_size, self.n_steps, self.seed = optimizer, batch_size, n_steps, seed
        self.eval_every, self.theta0, self.init_scale, self.bounds = eval_every, theta0, init_scale, bounds
        self.metric, self.executor, self.progress, self.callback = metric, executor, progress, callback
        if selection not in SELECTIONS:
            raise QepValueError(f"'selection' must be one of {SELECTIONS}, not {selection!r}")
        if validation_shots is not None and (not isinstance(validation_shots, (int, np.integer))
                                             or validation_shots < 1):
            raise QepValueError(f"'validation_shots' must be a positive integer or None, not {validation_shots!r}")
        if validate_every is not None and validate_every < 1:
            raise QepValueError(f"'validate_every' must be ≥ 1, not {validate_every}")
        self.average, self.selection, self.validation_shots = average, selection, validation_shots
        self.validate_every = eval_every if validate_every is None else validate_every
        self.theta_: np.ndarray | None = None
        self.best_theta_: np.ndarray | None = None  # the selected θ (selection="best-validation")
        self.best_score_: tuple[float, float] | None = None  # (validation accuracy, −output error)
        self.best_step_: int | None = None
        self.theta_sum_: np.ndarray | None = None  # decayed sum Σ_s d^(t−s) (1 − d) θ_s of the average
        self.history_: list[dict] = []
        self.step_: int = 0

    def initial_theta(self) -> np.ndarray:
        if self.theta0 is not None:
            return self.hamiltonian.theta_vector(self.theta0)
        rng = np.random.default_rng([self.seed, 2**31 - 1])
        return self.init_scale * rng.standard_normal(len(self.hamiltonian.parameter_names))

    def fit(self, inputs, targets, *, test_inputs=None, test_targets=None, validation_inputs=None,
            validation_targets=None) -> QEPTrainer:
        targets = np.atleast_2d(np.asarray(targets, dtype=float))
        inputs = None if inputs is None else np.atleast_2d(np.asarray(inputs, dtype=float))
        n = len(targets)
        if n < 1:
            raise QepValueError("the training set is empty")
        if self.selection == "best-validation" and (validation_targets is None or len(validation_targets) == 0):
            raise QepValueError("selection='best-validation' needs a non-empty validation set "
                                "(validation_inputs, validation_targets)")
        if self.theta_ is None:
            self.theta_ = self.initial_theta()
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.n_steps, initial=self.step_, desc="QEP training", unit="batch")
        while self.step_ < self.n_steps:
            step = self.step_
            rng = np.random.default_rng([self.seed, step])
            batch = rng.choice(n, size=min(self.batch_size, n), replace=False)
            est = estimate_gradient(self.hamiltonian, self.backend, self.theta_,
                                    None if inputs is None else inputs[batch], targets[batch],
                                    self.gradient, seed=np.random.SeedSequence([self.seed, step]),
                                    executor=self.executor)
            theta = self.optimizer.step(self.theta_, est.gradient)
            if self.bounds is not None:
                theta = np.clip(theta, *self.bounds)
            self.theta_ = theta
            self.step_ = step + 1
            if self.average is not None:
                d = self.average
                self.theta_sum_ = (1 - d) * theta if self.theta_sum_ is None else d * self.theta_sum_ + (1 - d) * theta
            record = {"step": self.step_, "batch_loss": est.loss, "grad_norm": float(np.linalg.norm(est.gradient)),
                      "preparations": est.preparations, "crossings": len(est.crossings),
                      "crossing_samples": len({c["sample"] for c in est.crossings if c.get("kind") == "crossing"}),
                      "dropped": est.samples_dropped, "state": "+".join(est.state_kinds)}
            if self.selection == "best-validation" and (self.step_ % self.validate_every == 0
                                                         or self.step_ == self.n_steps):
                record.update(self._validate(validation_inputs, validation_targets))
                if record["preparations"] is not None:
                    record["preparations"] += record["validation_preparations"]
            if test_targets is not None and (self.step_ % self.eval_every == 0 or self.step_ == self.n_steps):
                record.update({f"test_{k}": v for k, v in evaluate(
                    self.hamiltonian, self.backend, self.parameters_, test_inputs, test_targets,
                    self.gradient, self.metric).items()})
            self.history_.append(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{record[k]:.3f}" for k in ("batch_loss", "test_accuracy") if k in record})
            if self.callback is not None:
                self.callback(self, record)
        if bar is not None:
            bar.close()
        return self

    def _validate(self, inputs, targets) -> dict:
        """Score the current parameters on the validation set; keep them if they are the best."""
        current = self.current_parameters_
        rng = np.random.default_rng([self.seed, self.step_, _VALIDATION_STREAM])
        val = validate(self.hamiltonian, self.backend, current, inputs, targets, self.gradient,
                       shots=self.validation_shots, rng=rng, metric=self.metric)
        score = (val.get("accuracy", 0.0), -val["output_error"])
        if self.best_score_ is None or score > self.best_score_:
            self.best_score_, self.best_theta_, self.best_step_ = score, current.copy(), self.step_
        return {"validation_accuracy": val.get("accuracy"), "validation_output_error": val["output_error"],
                "validation_preparations": val["preparations"], "selected_step": self.best_step_}

    @property
    def current_parameters_(self) -> np.ndarray | None:
        """θ, or with ``average = d`` the bias-corrected exponential average
        Σ_s d^(t−s)(1 − d) θ_s / (1 − d^t) of the iterates (Polyak–Ruppert averaging, which removes
        the late-stage jitter of noisy steps without shrinking the learning rate further)."""
        if self.average is None or self.theta_sum_ is None or self.step_ == 0:
            return self.theta_
        return self.theta_sum_ / (1 - self.average**self.step_)

    @property
    def parameters_(self) -> np.ndarray | None:
        """The parameters to use: the selected θ with ``selection="best-validation"`` (once a
        validation has run), else :attr:`current_parameters_`."""
        if self.selection == "best-validation" and self.best_theta_ is not None:
            return self.best_theta_
        return self.current_parameters_

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {"step_": self.step_, "theta_": None if self.theta_ is None else self.theta_.tolist(),
                "theta_sum_": None if self.theta_sum_ is None else self.theta_sum_.tolist(),
                "history_": self.history_, "optimizer": self.optimizer.state_dict(),
                "best_theta_": None if self.best_theta_ is None else self.best_theta_.tolist(),
                "best_score_": None if self.best_score_ is None else list(self.best_score_),
                "best_step_": self.best_step_}

    def load_state_dict(self, state: dict) -> None:
        self.step_ = int(state["step_"])
        self.theta_ = None if state["theta_"] is None else np.asarray(state["theta_"], dtype=float)
        avg = state.get("theta_sum_")
        self.theta_sum_ = None if avg is None else np.asarray(avg, dtype=float)
        self.history_ = list(state["history_"])
        self.optimizer.load_state_dict(state["optimizer"])
        best = state.get("best_theta_")
        self.best_theta_ = None if best is None else np.asarray(best, dtype=float)
        score = state.get("best_score_")
        self.best_score_ = None if score is None else (float(score[0]), float(score[1]))
        self.best_step_ = state.get("best_step_")
