"""The one training driver: every task's loop (NetKet's driver shape, scikit-learn's estimator habits).

A task supplies only what differs (:class:`Task`): its parameters and their initial values, a
``gradient(theta, batch, draw) -> StepEstimate`` (QEP on spins, adiabatic Rydberg QEP, oscillator
QEP, or an unsupervised objective's descent direction), optionally ``evaluate(theta)``,
``validate(theta, rng)`` and ``project(theta)``. The driver owns the loop:

* step s draws its batch from ``numpy.random.default_rng([seed, s])`` and hands the task
  ``Draw(seed, s)``, from which every other random draw of the step is seeded, so a run resumed at
  step s from a checkpoint continues exactly as an uninterrupted one;
* the optimiser (:mod:`qep_analog.learning.optimizers`), its learning-rate schedule and per-group
  learning rates (``learning_rates = {positions = 2.0}``), or normalised steps per group;
* the projection on constraints: ``bounds`` (clip), then the task's own ``project`` (device limits);
* parameter averaging and model selection on a validation set;
* evaluation every ``eval_every`` steps, history records with the preparation, shot and crossing
  counts, the progress bar;
* checkpoints every ``checkpoint_every`` steps through a :class:`Checkpointer` (the task layer
  writes the file atomically; the learning layer touches no files).

Model selection (``validation > 0`` in the protocol, ``selection="best-validation"`` here): every
``validate_every`` steps the current θ is scored by ``task.validate`` on held-out samples from
*measured* outputs; the best (highest accuracy, ties to the lower output error) is the θ evaluated,
reported and saved, while the optimiser walks on from the last iterate. The validation shots of
step s come from ``SeedSequence([seed, s, 2**30 + 1])``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.learning.optimizers import OPTIMIZERS, make_optimizer

SCHEDULES = ("constant", "exponential", "cosine")
SELECTIONS = ("last", "best-validation")
_VALIDATION_STREAM = 2**30 + 1
_INIT_STREAM = 2**31 - 1
MAX_STEPS = 10_000_000


def learning_rate_at(step: int, n_steps: int, *, initial: float, final: float | None,
                     schedule: str = "constant") -> float:
    """Learning rate of step ``step`` (0-based) out of ``n_steps``.

    ``constant``: η₀; ``exponential``: η₀ (η₁/η₀)^(s/n); ``cosine``: η₁ + ½(η₀ − η₁)(1 + cos πs/n).
    """
    if schedule not in SCHEDULES:
        raise QepValueError(f"'training.schedule' must be one of {SCHEDULES}, not {schedule!r}")
    if schedule == "constant" or final is None:
        return float(initial)
    frac = min(step / max(n_steps, 1), 1.0)
    if schedule == "exponential":
        return float(initial * (final / initial) ** frac)
    return float(final + 0.5 * (initial - final) * (1 + np.cos(np.pi * frac)))


# ----------------------------------------------------------------------------- configuration
def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """The documented ``[training]`` keys, honoured by every task. Stored as given, validated here.

    ``learning_rates`` maps a task's parameter group (e.g. ``positions``) to its own initial rate;
    with a schedule every group follows the same relative decay. ``normalize = true`` makes every
    step θ_g ← θ_g − η g_g/|g_g| per group (Wanjura–Marquardt's normalised steps; with ``sgd``).
    """

    optimizer: str = "adam"
    learning_rate: float = 0.01
    final_learning_rate: float | None = None
    schedule: str = "constant"
    learning_rates: Mapping[str, float] | None = None
    normalize: bool = False
    batch_size: int = 10
    steps: int = 100
    eval_every: int | None = None
    seed: int = 0
    init_scale: float = 0.1
    theta0: Any = None
    bounds: tuple[float, float] | None = None
    metric: str = "argmax"
    checkpoint_every: int = 10
    average: float | None = None
    validation: int = 0
    validation_shots: int | None = None
    validate_every: int | None = None

    def __post_init__(self) -> None:
        def fail(key: str, what: str, value) -> None:
            raise QepValueError(f"'training.{key}' must be {what}, not {value!r}")

        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", f"one of {sorted(OPTIMIZERS)}", self.optimizer)
        for key in ("learning_rate", "final_learning_rate", "init_scale"):
            value = getattr(self, key)
            if value is None and key == "final_learning_rate":
                continue
            if not _is_number(value) or not np.isfinite(value) or value <= 0 or value > 1e6:
                fail(key, "a positive number ≤ 1e6", value)
        if self.schedule not in SCHEDULES:
            fail("schedule", f"one of {SCHEDULES}", self.schedule)
        if self.learning_rates is not None:
            if not isinstance(self.learning_rates, Mapping):
                fail("learning_rates", "a table {group = rate}", self.learning_rates)
            for name, value in self.learning_rates.items():
                if not _is_number(value) or not np.isfinite(value) or value <= 0 or value > 1e6:
                    fail(f"learning_rates.{name}", "a positive number ≤ 1e6", value)
        if not isinstance(self.normalize, bool):
            fail("normalize", "a boolean", self.normalize)
        for key, low, high in (("batch_size", 1, 10**6), ("steps", 1, MAX_STEPS), ("seed", 0, 2**63 - 1),
                               ("checkpoint_every", 1, MAX_STEPS), ("validation", 0, 10**7)):
            value = getattr(self, key)
            if not _is_int(value) or not low <= value <= high:
                fail(key, f"an integer in [{low}, {high}]", value)
        for key in ("eval_every", "validate_every", "validation_shots"):
            value = getattr(self, key)
            if value is not None and (not _is_int(value) or not 1 <= value <= 10**9):
                fail(key, "an integer ≥ 1", value)
        if self.bounds is not None:
            b = self.bounds
            if (not isinstance(b, (list, tuple)) or len(b) != 2 or not all(_is_number(v) and np.isfinite(v) for v in b)
                    or not b[0] < b[1]):
                fail("bounds", "[low, high] with low < high", b)
        if self.metric not in ("argmax", "sign", "none"):
            fail("metric", "one of ('argmax', 'sign', 'none')", self.metric)
        if self.average is not None and (not _is_number(self.average) or not 0.0 <= self.average < 1.0):
            fail("average", "the decay of the parameter average, in [0, 1)", self.average)

    @classmethod
    def from_section(cls, section: Mapping, **defaults) -> TrainingConfig:
        """From a protocol's ``[training]`` table over task ``defaults``; an unknown key is refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise QepValueError(f"unknown key(s) {['training.' + k for k in unknown]}; allowed: {sorted(known)}")
        values = {**defaults, **section}
        if values.get("bounds") is not None and isinstance(values["bounds"], list):
            values["bounds"] = tuple(values["bounds"])
        return cls(**values)

    @property
    def evaluation_interval(self) -> int:
        return self.eval_every if self.eval_every is not None else max(self.steps // 10, 1)

    @property
    def selection(self) -> str:
        return "best-validation" if self.validation > 0 else "last"


# ----------------------------------------------------------------------------- task interface
@dataclass(frozen=True)
class Draw:
    """The random stream of one step: every draw of step ``step`` is seeded by (seed, step, ...)."""

    seed: int
    step: int

    def sequence(self, *extra: int) -> np.random.SeedSequence:
        return np.random.SeedSequence([self.seed, self.step, *extra])


@dataclass(frozen=True, kw_only=True)
class StepEstimate:
    """What a task's gradient returns for one step: the descent direction of its loss and counts.

    ``gradient`` is ∂L/∂θ of the loss the driver minimises (an ascent task returns −∇ of its
    objective); ``loss`` is the batch loss for the record; ``extras`` are task-specific record fields.
    """

    gradient: np.ndarray
    loss: float
    preparations: int | None = 0
    crossings: int = 0
    crossing_samples: int = 0
    dropped: int = 0
    state: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_estimate(cls, est, **extras) -> StepEstimate:
        """From a :class:`~qep_analog.learning.gradient.GradientEstimate` of a batch."""
        return cls(gradient=est.gradient, loss=est.loss, preparations=est.preparations,
                   crossings=len(est.crossings),
                   crossing_samples=len({c["sample"] for c in est.crossings if c.get("kind") == "crossing"}),
                   dropped=est.samples_dropped, state="+".join(est.state_kinds), extras=extras)


class Task(Protocol):
    """What a task supplies to the :class:`Driver` (see ``README`` "Writing a task")."""

    parameter_names: tuple[str, ...]
    n_samples: int  # training samples to batch from (0: no batches, e.g. unsupervised walks)

    def initial_theta(self, config: TrainingConfig) -> np.ndarray: ...

    def gradient(self, theta: np.ndarray, batch: np.ndarray | None, draw: Draw) -> StepEstimate: ...


class Checkpointer(Protocol):
    """Where the driver's state goes: ``load() -> dict | None`` and ``save(dict)`` (atomic)."""

    def load(self) -> dict | None: ...

    def save(self, state: dict) -> None: ...


def parameter_groups(task) -> dict[str, np.ndarray]:
    """The task's parameter groups (name → indices); one group ``all`` by default."""
    groups = getattr(task, "parameter_groups", None)
    if groups is None:
        return {"all": np.arange(len(task.parameter_names))}
    return {name: np.asarray(idx, dtype=int) for name, idx in groups().items()}


def default_initial_theta(task, config: TrainingConfig) -> np.ndarray:
    """``theta0`` (dict by name or list) if given, else ``init_scale``·N(0, 1) from (seed, 2³¹ − 1)."""
    names = task.parameter_names
    if config.theta0 is not None:
        if isinstance(config.theta0, Mapping):
            missing = sorted(set(names) - set(config.theta0))
            extra = sorted(set(config.theta0) - set(names))
            if missing or extra:
                raise QepValueError(f"'training.theta0' must name exactly the parameters; missing {missing}, "
                                    f"unknown {extra}")
            return np.array([float(config.theta0[n]) for n in names])
        values = np.asarray(config.theta0, dtype=float).reshape(-1)
        if values.shape != (len(names),) or not np.all(np.isfinite(values)):
            raise QepValueError(f"'training.theta0' must hold {len(names)} finite numbers, not {config.theta0!r}")
        return values
    rng = np.random.default_rng([config.seed, _INIT_STREAM])
    return config.init_scale * rng.standard_normal(len(names))


# ----------------------------------------------------------------------------- the driver
class Driver:
    """Train a :class:`Task` with ``config``. ``fit`` returns ``self``; learned values end in ``_``.

    Example::

        driver = Driver(task=SpinTask(...), config=TrainingConfig(steps=200, learning_rate=0.01, seed=1))
        driver.fit()
        driver.parameters_, driver.history_
    """

    def __init__(self, *, task, config: TrainingConfig, checkpointer: Checkpointer | None = None,
                 progress: bool = False, description: str = "QEP training",
                 callback: Callable[[Driver, dict], None] | None = None):
        self.task, self.config, self.checkpointer = task, config, checkpointer
        self.progress, self.description, self.callback = progress, description, callback
        if config.selection == "best-validation" and getattr(task, "validate", None) is None:
            raise QepValueError("'training.validation' needs a task with a validation set (supervised tasks)")
        self.groups_ = parameter_groups(task)
        unknown = sorted(set(config.learning_rates or {}) - set(self.groups_))
        if unknown:
            raise QepValueError(f"'training.learning_rates' names unknown parameter group(s) {unknown}; "
                                f"this task has {sorted(self.groups_)}")
        self.optimizer = make_optimizer(config.optimizer, learning_rate=config.learning_rate)
        self.theta_: np.ndarray | None = None
        self.theta_sum_: np.ndarray | None = None
        self.best_theta_: np.ndarray | None = None
        self.best_score_: tuple[float, float] | None = None
        self.best_step_: int | None = None
        self.history_: list[dict] = []
        self.step_ = 0

    # -------------------------------------------------------------- learning rates and steps
    def learning_rate(self, step: int):
        """The rate of step ``step``: a float, or per-parameter rates when groups have their own."""
        c = self.config
        base = learning_rate_at(step, c.steps, initial=c.learning_rate, final=c.final_learning_rate,
                                schedule=c.schedule)
        if not c.learning_rates:
            return base
        factor = 1.0 if base == c.learning_rate else base / c.learning_rate
        rates = np.full(len(self.task.parameter_names), base)
        for name, rate in c.learning_rates.items():
            rates[self.groups_[name]] = rate * factor
        return rates

    def _direction(self, gradient: np.ndarray) -> np.ndarray:
        """The gradient, or with ``normalize`` the per-group unit vectors (zero where |g| is 0 or not finite)."""
        if not self.config.normalize:
            return gradient
        out = np.zeros_like(gradient)
        for idx in self.groups_.values():
            norm = float(np.linalg.norm(gradient[idx]))
            if norm > 0 and np.isfinite(norm):
                out[idx] = gradient[idx] / norm
        return out

    # -------------------------------------------------------------- the loop
    def fit(self) -> Driver:
        c, task = self.config, self.task
        state = self.checkpointer.load() if self.checkpointer is not None else None
        if state is not None:
            self.load_state_dict(state)
        if self.theta_ is None:
            init = getattr(task, "initial_theta", None)
            self.theta_ = np.asarray(init(c) if init is not None else default_initial_theta(task, c), dtype=float)
            if getattr(task, "evaluate_initial", False) and getattr(task, "evaluate", None) is not None:
                self.history_.append({"step": 0, "preparations": 0, "crossings": 0, "dropped": 0,
                                      **task.evaluate(self.theta_)})
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=c.steps, initial=self.step_, desc=self.description, unit="step", dynamic_ncols=True)
        running = None
        for rec in self.history_:
            running = self._running(running, rec)
        try:
            while self.step_ < c.steps:
                record = self._step()
                running = self._running(running, record)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(self._postfix(running))
                if self.checkpointer is not None and (self.step_ % c.checkpoint_every == 0 or self.step_ == c.steps):
                    self.checkpointer.save(self.state_dict())
                if self.callback is not None:
                    self.callback(self, record)
        finally:
            if bar is not None:
                bar.close()
        return self

    def _step(self) -> dict:
        c, task, step = self.config, self.task, self.step_
        lr = self.learning_rate(step)
        self.optimizer.learning_rate = lr
        batch = None
        if task.n_samples > 0:
            rng = np.random.default_rng([c.seed, step])
            batch = rng.choice(task.n_samples, size=min(c.batch_size, task.n_samples), replace=False)
        est = task.gradient(self.theta_, batch, Draw(c.seed, step))
        theta = self.optimizer.step(self.theta_, self._direction(est.gradient))
        if c.bounds is not None:
            theta = np.clip(theta, *c.bounds)
        project = getattr(task, "project", None)
        if project is not None:
            theta = project(theta)
        self.theta_ = theta
        self.step_ = step + 1
        if c.average is not None:
            d = c.average
            self.theta_sum_ = (1 - d) * theta if self.theta_sum_ is None else d * self.theta_sum_ + (1 - d) * theta
        record = {"step": self.step_, "batch_loss": est.loss, "grad_norm": float(np.linalg.norm(est.gradient)),
                  "preparations": est.preparations, "crossings": est.crossings,
                  "crossing_samples": est.crossing_samples, "dropped": est.dropped}
        if est.state is not None:
            record["state"] = est.state
        record.update(est.extras)
        if getattr(task, "record_parameters", False):
            record["theta"] = theta.tolist()
        if c.selection == "best-validation" and (self.step_ % (c.validate_every or c.evaluation_interval) == 0
                                                  or self.step_ == c.steps):
            record.update(self._validate())
            if record["preparations"] is not None:
                record["preparations"] += record["validation_preparations"]
        evaluate = getattr(task, "evaluate", None)
        if evaluate is not None and (self.step_ % c.evaluation_interval == 0 or self.step_ == c.steps):
            record.update(evaluate(self.parameters_))
        record["learning_rate"] = lr if np.isscalar(lr) else {n: float(lr[i[0]]) for n, i in self.groups_.items()
                                                              if len(i)}
        self.history_.append(record)
        return record

    def _validate(self) -> dict:
        current = self.current_parameters_
        rng = np.random.default_rng([self.config.seed, self.step_, _VALIDATION_STREAM])
        val = self.task.validate(current, rng)
        score = (val.get("accuracy") or 0.0, -val["output_error"])
        if self.best_score_ is None or score > self.best_score_:
            self.best_score_, self.best_theta_, self.best_step_ = score, current.copy(), self.step_
        return {"validation_accuracy": val.get("accuracy"), "validation_output_error": val["output_error"],
                "validation_preparations": val["preparations"], "selected_step": self.best_step_}

    @staticmethod
    def _running(running: dict | None, record: dict) -> dict:
        running = dict(running or {"loss": None, "acc": None})
        if "batch_loss" in record:
            loss = record["batch_loss"]
            running["loss"] = loss if running["loss"] is None else 0.9 * running["loss"] + 0.1 * loss
        if "test_accuracy" in record:
            running["acc"] = record["test_accuracy"]
        return running

    @staticmethod
    def _postfix(running: dict) -> dict:
        post = {}
        if running["loss"] is not None:
            post["loss"] = f"{running['loss']:.4f}"
        if running["acc"] is not None:
            post["acc"] = f"{running['acc']:.3f}"
        return post

    # -------------------------------------------------------------- results
    @property
    def current_parameters_(self) -> np.ndarray | None:
        """θ, or with ``average = d`` the bias-corrected exponential average
        Σ_s d^(t−s)(1 − d) θ_s / (1 − d^t) of the iterates (Polyak–Ruppert averaging)."""
        if self.config.average is None or self.theta_sum_ is None or self.step_ == 0:
            return self.theta_
        return self.theta_sum_ / (1 - self.config.average**self.step_)

    @property
    def parameters_(self) -> np.ndarray | None:
        """The parameters to use: the selected θ with validation selection (once a validation has
        run), else :attr:`current_parameters_`."""
        if self.config.selection == "best-validation" and self.best_theta_ is not None:
            return self.best_theta_
        return self.current_parameters_

    def totals(self) -> dict:
        """Run totals from the history: steps, preparations, crossings, drops, validation shots."""
        hist = [r for r in self.history_ if r["step"] > 0]
        preps = [r.get("preparations") for r in hist]
        return {
            "steps": self.step_,
            "preparations": None if any(p is None for p in preps) else int(sum(preps)),
            "validation_preparations": int(sum(r.get("validation_preparations", 0) for r in hist)),
            "crossing_events": int(sum(r.get("crossings", 0) for r in hist)),
            "crossing_samples": int(sum(r.get("crossing_samples", 0) for r in hist)),
            "samples_dropped": int(sum(r.get("dropped", 0) for r in hist)),
            "selected_step": self.best_step_,
            "final_batch_loss": hist[-1]["batch_loss"] if hist else None,
        }

    def named(self, theta: np.ndarray | None = None) -> dict:
        theta = self.parameters_ if theta is None else theta
        return dict(zip(self.task.parameter_names, np.asarray(theta).tolist(), strict=True))

    def last_iterate(self) -> dict:
        """With averaging or selection, ``theta`` is not the last optimiser iterate: keep that too."""
        if self.config.average is None and self.config.selection == "last":
            return {}
        return {"theta_last_iterate": self.named(self.theta_)}

    # -------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        def listed(a):
            return None if a is None else np.asarray(a).tolist()

        return {"step_": self.step_, "theta_": listed(self.theta_), "theta_sum_": listed(self.theta_sum_),
                "history_": self.history_, "optimizer": self.optimizer.state_dict(),
                "best_theta_": listed(self.best_theta_),
                "best_score_": None if self.best_score_ is None else list(self.best_score_),
                "best_step_": self.best_step_}

    def load_state_dict(self, state: Mapping) -> None:
        def array(a):
            return None if a is None else np.asarray(a, dtype=float)

        try:
            self.step_ = int(state["step_"])
            self.theta_ = array(state["theta_"])
            self.theta_sum_ = array(state.get("theta_sum_"))
            self.history_ = list(state["history_"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.best_theta_ = array(state.get("best_theta_"))
            score = state.get("best_score_")
            self.best_score_ = None if score is None else (float(score[0]), float(score[1]))
            self.best_step_ = state.get("best_step_")
        except (KeyError, TypeError, ValueError) as exc:
            raise QepValueError(f"the checkpoint is not a driver state ({type(exc).__name__}: {exc})") from None
        if self.theta_ is None or self.theta_.shape != (len(self.task.parameter_names),):
            raise QepValueError("the checkpoint's parameters do not match this task's "
                                f"{len(self.task.parameter_names)} parameters")
