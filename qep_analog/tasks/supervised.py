"""Supervised tasks: the phase sensor (Wanjura–Marquardt) and the Ising classifier (Scellier).

Both train θ with :class:`~qep_analog.learning.trainer.QEPTrainer` (QEP gradients of the
protocol's ``[gradient]`` section, Adam/SGD of ``[training]``) plus a learning-rate schedule
(``training.schedule`` = constant | exponential | cosine, from ``learning_rate`` to
``final_learning_rate``). Extra results:

* ``phase-sensor``: max-choice and single-shot test accuracy, the crossings the policy touched,
  the cumulative state preparations, and the predicted phase on a grid over the triangle
  g_ZXZ + g_ZZ + g_X = 4 (``task.plot_resolution`` points per edge).
* ``classifier``: test accuracy next to a plain logistic regression on the same data
  (:func:`logistic_regression`, numpy/scipy, L2 penalty ``task.baseline_l2``), and the model's
  output over the input plane.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from qep_analog.errors import QepValueError
from qep_analog.learning.optimizers import make_optimizer
from qep_analog.learning.trainer import QEPTrainer, evaluate
from qep_analog.models.spin_models import PHASES, cluster_ising_phase
from qep_analog.protocol import build_backend, build_data, build_gradient_config, build_model
from qep_analog.tasks.common import RunContext, learning_rate_at, require_int, require_positive

_TRAINING_KEYS = ("optimizer", "learning_rate", "batch_size", "steps", "seed", "eval_every", "metric",
                  "init_scale", "bounds", "checkpoint_every", "theta0", "schedule", "final_learning_rate", "average",
                  "validation", "validation_shots", "validate_every")


def build_trainer(ctx: RunContext, hamiltonian, backend, config) -> QEPTrainer:
    tr = ctx.protocol.section("training")
    steps = require_int(tr, "steps", 100, 1, "training")
    lr = require_positive(tr, "learning_rate", 0.01, "training")
    final_lr = tr.get("final_learning_rate")
    if final_lr is not None:
        require_positive(tr, "final_learning_rate", 1.0, "training")
    schedule = tr.get("schedule", "constant")
    learning_rate_at(0, steps, initial=lr, final=final_lr, schedule=schedule)  # validates the name
    bounds = tr.get("bounds")
    if bounds is not None:
        if len(bounds) != 2 or not all(isinstance(b, (int, float)) for b in bounds) or not bounds[0] < bounds[1]:
            raise QepValueError(f"'training.bounds' must be [low, high] with low < high, not {bounds!r}")
        bounds = (float(bounds[0]), float(bounds[1]))
    average = tr.get("average")  # range checked by QEPTrainer
    n_val = require_int(tr, "validation", 0, 0, "training")
    val_shots = tr.get("validation_shots", config.shots)
    if val_shots is not None:
        val_shots = require_int(tr, "validation_shots", 1, 1, "training")
    return QEPTrainer(
        hamiltonian=hamiltonian, backend=backend, gradient=config,
        optimizer=make_optimizer(tr.get("optimizer", "adam"), learning_rate=lr),
        batch_size=require_int(tr, "batch_size", 10, 1, "training"), n_steps=steps, seed=ctx.seed,
        eval_every=require_int(tr, "eval_every", max(steps // 10, 1), 1, "training"),
        theta0=tr.get("theta0"), init_scale=float(tr.get("init_scale", 0.1)), bounds=bounds,
        metric=tr.get("metric", "argmax"), average=None if average is None else float(average),
        selection="best-validation" if n_val > 0 else "last", validation_shots=val_shots,
        validate_every=None if "validate_every" not in tr else require_int(tr, "validate_every", 1, 1, "training"),
    )


def split_validation(ctx: RunContext, data) -> tuple:
    """(inputs, targets, validation inputs, validation targets): the last ``training.validation``
    training samples are held out (the samples are i.i.d., so the last ones are a random subset)."""
    n_val = require_int(ctx.protocol.section("training"), "validation", 0, 0, "training")
    x, t = data.inputs, data.targets
    if n_val == 0:
        return x, t, None, None
    if n_val >= len(t):
        raise QepValueError(f"'training.validation' must be smaller than the {len(t)} training samples, not {n_val}")
    k = len(t) - n_val
    return (None if x is None else x[:k]), t[:k], (None if x is None else x[k:]), t[k:]


def _train(ctx: RunContext) -> tuple[QEPTrainer, object, object]:
    """Build model/data/backend/trainer from the protocol, fit with checkpoints and a progress bar."""
    p = ctx.protocol
    h = build_model(p)
    data = build_data(p, h)
    config = build_gradient_config(p)
    backend = build_backend(p)
    trainer = build_trainer(ctx, h, backend, config)
    tr = p.section("training")
    lr0, lr1 = trainer.optimizer.learning_rate, tr.get("final_learning_rate")
    schedule = tr.get("schedule", "constant")

    def lr_at(step: int) -> float:
        return learning_rate_at(step, trainer.n_steps, initial=lr0, final=lr1, schedule=schedule)

    state = ctx.load_checkpoint()
    if state is not None:
        trainer.load_state_dict(state["trainer"])
    trainer.optimizer.learning_rate = lr_at(trainer.step_)
    bar = ctx.progress_bar(trainer.n_steps, trainer.step_, f"{ctx.task} ({p.section('protocol').get('name', '')})")
    running = {"loss": None, "acc": None}
    for rec in trainer.history_:
        _update_running(running, rec)

    def callback(tr_: QEPTrainer, record: dict) -> None:
        record["learning_rate"] = tr_.optimizer.learning_rate
        tr_.optimizer.learning_rate = lr_at(tr_.step_)
        _update_running(running, record)
        post = {"loss": f"{running['loss']:.4f}"}
        if running["acc"] is not None:
            post["acc"] = f"{running['acc']:.3f}"
        bar.update(1)
        bar.set_postfix(post)
        ctx.step_done(tr_.step_, tr_.n_steps, lambda: {"trainer": tr_.state_dict()})

    trainer.callback = callback
    x, t, x_val, t_val = split_validation(ctx, data)
    try:
        trainer.fit(x, t, test_inputs=data.test_inputs, test_targets=data.test_targets,
                    validation_inputs=x_val, validation_targets=t_val)
    finally:
        bar.close()
    return trainer, data, config


def _update_running(running: dict, record: dict) -> None:
    loss = record["batch_loss"]
    running["loss"] = loss if running["loss"] is None else 0.9 * running["loss"] + 0.1 * loss
    if "test_accuracy" in record:
        running["acc"] = record["test_accuracy"]


def _common_final(trainer: QEPTrainer, data, config) -> dict:
    final = evaluate(trainer.hamiltonian, trainer.backend, trainer.parameters_, data.test_inputs,
                     data.test_targets, config, trainer.metric) if data.test_targets is not None else {}
    hist = trainer.history_
    return {
        **{f"test_{k}": v for k, v in final.items()},
        "steps": trainer.step_,
        "samples_seen": trainer.step_ * min(trainer.batch_size, len(data.targets)),
        "selected_step": trainer.best_step_,  # None without validation selection
        "validation_preparations": int(sum(r.get("validation_preparations", 0) for r in hist)),
        "preparations": sum(r["preparations"] or 0 for r in hist) if config.shots is not None else None,
        "crossing_events": int(sum(r["crossings"] for r in hist)),
        # distinct training samples the crossing policy touched (β shrunk and/or dropped)
        "crossing_samples": int(sum(r.get("crossing_samples", 0) for r in hist)),
        "samples_dropped": int(sum(r["dropped"] for r in hist)),
        "final_batch_loss": hist[-1]["batch_loss"] if hist else None,
        "objective": config.objective.name,
        "measurement": config.measurement if config.shots is not None else "exact-expectations",
    }


def _last_iterate(trainer: QEPTrainer) -> dict:
    """With parameter averaging or validation selection, ``theta`` is the average or the selected
    θ; keep the last optimiser iterate too."""
    if trainer.average is None and trainer.selection == "last":
        return {}
    return {"theta_last_iterate": dict(zip(trainer.hamiltonian.parameter_names, trainer.theta_.tolist(), strict=True))}


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
    trainer, data, config = _train(ctx)
    final = _common_final(trainer, data, config)
    for level in (0.9, 0.94):
        final[f"reached_{level}"] = first_reaching(trainer.history_, "test_accuracy", level)
    res = require_int(ctx.protocol.section("task"), "plot_resolution", 20, 2, "task")
    grid = triangle_grid(res)
    h, backend = trainer.hamiltonian, trainer.backend
    outputs = np.array([h.output_expectations(backend.prepare(h, trainer.parameters_, h.input_vector(x)).state)
                        for x in grid])
    exact = [PHASES.index(cluster_ising_phase(*g)) for g in grid]
    final["grid_accuracy"] = float(np.mean(np.argmax(outputs, axis=1) == np.array(exact)))
    return {
        "history": trainer.history_, "final": final,
        "theta": dict(zip(h.parameter_names, trainer.parameters_.tolist(), strict=True)),
        **_last_iterate(trainer),
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
    trainer, data, config = _train(ctx)
    if data.inputs is None or data.test_inputs is None or data.targets.shape[1] != 1:
        raise QepValueError("task 'classifier' needs inputs, test data and exactly one ±1 output")
    final = _common_final(trainer, data, config)
    l2 = float(ctx.protocol.section("task").get("baseline_l2", 1e-3))
    w = logistic_regression(data.inputs, data.targets, l2=l2)
    final["logistic_test_accuracy"] = logistic_accuracy(w, data.test_inputs, data.test_targets)
    final["logistic_train_accuracy"] = logistic_accuracy(w, data.inputs, data.targets)
    h, backend = trainer.hamiltonian, trainer.backend
    plot = {"test_inputs": data.test_inputs.tolist(), "test_targets": data.test_targets.ravel().tolist(),
            "logistic_weights": w.tolist()}
    if data.inputs.shape[1] == 2:
        res = require_int(ctx.protocol.section("task"), "plot_resolution", 25, 2, "task")
        lo = np.min(np.vstack([data.inputs, data.test_inputs]), axis=0) - 0.2
        hi = np.max(np.vstack([data.inputs, data.test_inputs]), axis=0) + 0.2
        g0, g1 = np.linspace(lo[0], hi[0], res), np.linspace(lo[1], hi[1], res)
        out = [[float(h.output_expectations(backend.prepare(h, trainer.parameters_, h.input_vector([a, b])).state)[0])
                for a in g0] for b in g1]
        plot.update(grid_x0=g0.tolist(), grid_x1=g1.tolist(), grid_output=out)
    return {"history": trainer.history_, "final": final,
            "theta": dict(zip(h.parameter_names, trainer.parameters_.tolist(), strict=True)), "plot": plot}
