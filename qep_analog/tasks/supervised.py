"""Supervised tasks: the phase sensor (Wanjura–Marquardt) and the Ising classifier (Scellier).

Both are a :class:`SpinTask` (QEP gradients of the protocol's ``[gradient]`` section on a batch,
exact test metrics, measured validation metrics) run by the one driver with the ``[training]``
keys. Extra results:

* ``phase-sensor``: max-choice and single-shot test accuracy, the crossings the policy touched,
  the cumulative state preparations, and the predicted phase on a grid over the triangle
  g_ZXZ + g_ZZ + g_X = 4 (``task.plot_resolution`` points per edge).
* ``classifier``: test accuracy next to a plain logistic regression on the same data
  (:func:`logistic_regression`, numpy/scipy, L2 penalty ``task.baseline_l2``), and the model's
  output over the input plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from qep_analog.equilibrium.base import EquilibriumBackend
from qep_analog.errors import QepValueError
from qep_analog.executor import Executor
from qep_analog.learning.driver import Draw, Driver, StepEstimate, TrainingConfig, default_initial_theta
from qep_analog.learning.evaluation import evaluate, validate
from qep_analog.learning.gradient import GradientConfig, estimate_gradient
from qep_analog.measurement.observables import output_expectations
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.spin_models import PHASES, cluster_ising_phase
from qep_analog.tasks.build import build_backend, build_data, build_gradient_config, build_model
from qep_analog.tasks.common import RunContext, drive, require_int


@dataclass(kw_only=True)
class SpinTask:
    """A supervised spin network: QEP gradients of a batch, exact test metrics, measured validation.

    ``gradient`` seeds the batch's shot noise from ``SeedSequence([seed, step])``; validation (if
    ``validation_targets`` are given) scores measured outputs, ``validation_shots`` per setting.
    """

    hamiltonian: Hamiltonian
    backend: EquilibriumBackend
    config: GradientConfig
    inputs: np.ndarray | None
    targets: np.ndarray
    test_inputs: np.ndarray | None = None
    test_targets: np.ndarray | None = None
    validation_inputs: np.ndarray | None = None
    validation_targets: np.ndarray | None = None
    validation_shots: int | None = None
    metric: str = "argmax"
    executor: Executor | None = None

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(self.hamiltonian.parameter_names)

    @property
    def n_samples(self) -> int:
        return len(self.targets)

    def initial_theta(self, config: TrainingConfig) -> np.ndarray:
        if config.theta0 is not None:
            return self.hamiltonian.theta_vector(config.theta0)
        return default_initial_theta(self, config)

    def gradient(self, theta: np.ndarray, batch: np.ndarray, draw: Draw) -> StepEstimate:
        est = estimate_gradient(self.hamiltonian, self.backend, theta,
                                None if self.inputs is None else self.inputs[batch], self.targets[batch],
                                self.config, seed=draw.sequence(), executor=self.executor)
        return StepEstimate.from_estimate(est)

    def evaluate(self, theta: np.ndarray) -> dict:
        if self.test_targets is None:
            return {}
        metrics = evaluate(self.hamiltonian, self.backend, theta, self.test_inputs, self.test_targets, self.config,
                           self.metric)
        return {f"test_{k}": v for k, v in metrics.items()}

    def validate(self, theta: np.ndarray, rng: np.random.Generator) -> dict:
        if self.validation_targets is None or len(self.validation_targets) == 0:
            raise QepValueError("'training.validation' needs a non-empty validation set")
        return validate(self.hamiltonian, self.backend, theta, self.validation_inputs, self.validation_targets,
                        self.config, shots=self.validation_shots, rng=rng, metric=self.metric)

    def outputs(self, theta: np.ndarray, inputs) -> np.ndarray:
        """Exact ⟨O_ℓ⟩ of the prepared states at each input row."""
        h = self.hamiltonian
        return np.array([output_expectations(h, self.backend.prepare(h, theta, h.input_vector(x)))
                         for x in inputs])


def split_validation(n_validation: int, data) -> tuple:
    """(inputs, targets, validation inputs, validation targets): the last ``n_validation`` training
    samples are held out (the samples are i.i.d., so the last ones are a random subset)."""
    x, t = data.inputs, data.targets
    if n_validation == 0:
        return x, t, None, None
    if n_validation >= len(t):
        raise QepValueError(f"'training.validation' must be smaller than the {len(t)} training samples, "
                            f"not {n_validation}")
    k = len(t) - n_validation
    return (None if x is None else x[:k]), t[:k], (None if x is None else x[k:]), t[k:]


def _train(ctx: RunContext) -> tuple[Driver, SpinTask, object]:
    """Build model/data/backend/task from the protocol and run the driver."""
    from qep_analog.tasks.common import training_config

    p = ctx.protocol
    h = build_model(p)
    data = build_data(p, h)
    config = build_gradient_config(p)
    training = training_config(ctx)
    x, t, x_val, t_val = split_validation(training.validation, data)
    task = SpinTask(hamiltonian=h, backend=build_backend(p), config=config, inputs=x, targets=t,
                    test_inputs=data.test_inputs, test_targets=data.test_targets, validation_inputs=x_val,
                    validation_targets=t_val, metric=training.metric,
                    validation_shots=training.validation_shots if training.validation_shots is not None
                    else config.shots, executor=ctx.executor)
    return drive(ctx, task), task, data


def _common_final(driver: Driver, task: SpinTask, data) -> dict:
    config, totals = task.config, driver.totals()
    return {
        **task.evaluate(driver.parameters_),
        **totals,
        "samples_seen": driver.step_ * min(driver.config.batch_size, task.n_samples),
        "preparations": totals["preparations"] if config.shots is not None else None,
        "objective": config.objective.name,
        "measurement": config.measurement if config.shots is not None else "exact-expectations",
    }


def first_reaching(history: list[dict], key: str, level: float) -> dict | None:
    """The first evaluated record with ``key`` ≥ level, with cumulative preparations up to it."""
    preps = 0
    for rec in history:
        preps += rec.get("preparations") or 0
        if key in rec and rec[key] >= level:
            return {"step": rec["step"], "preparations": preps}
    return None


# ----------------------------------------------------------------------------- phase sensor
def triangle_grid(resolution: int, total: float = 4.0) -> np.ndarray:
    """Points (g_ZXZ, g_ZZ, g_X) on the simplex, ``resolution`` intervals per edge."""
    pts = [(i, j, resolution - i - j) for i in range(resolution + 1) for j in range(resolution + 1 - i)]
    return np.array(pts, dtype=float) * total / resolution


def run_phase_sensor(ctx: RunContext) -> dict:
    driver, task, data = _train(ctx)
    final = _common_final(driver, task, data)
    for level in (0.9, 0.94):
        final[f"reached_{level}"] = first_reaching(driver.history_, "test_accuracy", level)
    res = require_int(ctx.protocol.section("task"), "plot_resolution", 20, 2, "task")
    grid = triangle_grid(res)
    outputs = task.outputs(driver.parameters_, grid)
    exact = [PHASES.index(cluster_ising_phase(*g)) for g in grid]
    final["grid_accuracy"] = float(np.mean(np.argmax(outputs, axis=1) == np.array(exact)))
    return {
        "history": driver.history_, "final": final, "theta": driver.named(), **driver.last_iterate(),
        "plot": {"grid": grid.tolist(), "outputs": outputs.tolist(), "exact": exact, "phases": list(PHASES)},
    }


# ----------------------------------------------------------------------------- classifier
def logistic_regression(x: np.ndarray, labels: np.ndarray, *, l2: float = 1e-3) -> np.ndarray:
    """Weights (w, b) of a logistic regression p(y=1|x) = σ(w·x + b), fitted by L-BFGS.

    Minimises the mean log-loss + (l2/2)|w|². ``labels`` are 0/1 or ±1.
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = (np.asarray(labels, dtype=float).reshape(-1) > 0).astype(float)
    xb = np.hstack([x, np.ones((len(x), 1))])

    def loss_grad(w):
        z = xb @ w
        loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * np.sum(w[:-1] ** 2)
        p = 0.5 * (1 + np.tanh(0.5 * z))  # σ(z), overflow-free
        grad = xb.T @ (p - y) / len(y)
        grad[:-1] += l2 * w[:-1]
        return loss, grad

    res = minimize(loss_grad, np.zeros(xb.shape[1]), jac=True, method="L-BFGS-B")
    return res.x


def logistic_accuracy(weights: np.ndarray, x: np.ndarray, labels: np.ndarray) -> float:
    z = np.hstack([np.atleast_2d(x), np.ones((len(x), 1))]) @ weights
    return float(np.mean((z > 0) == (np.asarray(labels).reshape(-1) > 0)))


def run_classifier(ctx: RunContext) -> dict:
    data = build_data(ctx.protocol, build_model(ctx.protocol))
    if data.inputs is None or data.test_inputs is None or data.targets.shape[1] != 1:
        raise QepValueError("task 'classifier' needs inputs, test data and exactly one ±1 output")
    driver, task, data = _train(ctx)
    final = _common_final(driver, task, data)
    l2 = float(ctx.protocol.section("task").get("baseline_l2", 1e-3))
    w = logistic_regression(data.inputs, data.targets, l2=l2)
    final["logistic_test_accuracy"] = logistic_accuracy(w, data.test_inputs, data.test_targets)
    final["logistic_train_accuracy"] = logistic_accuracy(w, data.inputs, data.targets)
    plot = {"test_inputs": data.test_inputs.tolist(), "test_targets": data.test_targets.ravel().tolist(),
            "logistic_weights": w.tolist()}
    if data.inputs.shape[1] == 2:
        res = require_int(ctx.protocol.section("task"), "plot_resolution", 25, 2, "task")
        lo = np.min(np.vstack([data.inputs, data.test_inputs]), axis=0) - 0.2
        hi = np.max(np.vstack([data.inputs, data.test_inputs]), axis=0) + 0.2
        g0, g1 = np.linspace(lo[0], hi[0], res), np.linspace(lo[1], hi[1], res)
        out = [task.outputs(driver.parameters_, [[a, b] for a in g0])[:, 0].tolist() for b in g1]
        plot.update(grid_x0=g0.tolist(), grid_x1=g1.tolist(), grid_output=out)
    return {"history": driver.history_, "final": final, "theta": driver.named(), **driver.last_iterate(),
            "plot": plot}
