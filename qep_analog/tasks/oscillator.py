"""Oscillator-network regression (Scellier eq. 19–21) as a task of the one driver.

Learn ⟨r_out⟩ = T x̄ (x̄ = inputs and anchor positions) with a :func:`layered_network`: the springs
k_e are θ, the gradient is :func:`~qep_analog.learning.oscillator.qep_gradient` of each batch sample
(error-signal nudge of the mean by default, PHYSICS.md §2 pitfalls: train the mean, bound k, clamp
an anchor, choose T inside the convex hull), and the one driver runs the loop with the protocol's
``[training]`` keys (``bounds = [k_min, k_max]`` projects the springs). The report compares the
final training mean loss with the optimum of the same constrained problem (L-BFGS-B on the exact
loss, with restarts).

Protocol: ``[oscillator]`` with sub-tables ``network`` (n_inputs, n_outputs, n_hidden,
anchor_positions, init_low, init_high), ``task`` (n_train, n_test, input_low, input_high,
target_map) and ``optimum`` (restarts); ``[gradient]`` (estimator, nudge, beta, shots; no shots =
exact expectations); ``[training]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.learning.driver import Draw, StepEstimate, TrainingConfig
from qep_analog.learning.oscillator import (
    ESTIMATORS,
    NUDGE_OBJECTIVE,
    combine,
    mean_loss_and_gradient,
    optimum_mean_loss,
    qep_gradient,
)
from qep_analog.models.oscillator import OscillatorNetwork, layered_network
from qep_analog.protocol import register_section
from qep_analog.tasks.common import RunContext, drive


@dataclass(frozen=True, kw_only=True, eq=False)
class RegressionTask:
    """Learn ⟨r_out⟩ = T x̄ with x̄ = (inputs, anchor positions); ``target_map`` is T."""

    network: OscillatorNetwork
    target_map: np.ndarray
    xs_train: np.ndarray
    ys_train: np.ndarray
    xs_test: np.ndarray
    ys_test: np.ndarray

    @property
    def target_inside_hull(self) -> bool:
        """Rows ≥ 0 summing to 1: reachable in principle by k ≥ 0 (convex combinations)."""
        t = self.target_map
        return bool(np.all(t >= 0) and np.allclose(t.sum(axis=1), 1.0))


def make_regression_task(
    *, n_inputs: int, n_outputs: int, n_hidden: int, anchor_positions: Sequence[float],
    n_train: int, n_test: int, input_low: float, input_high: float,
    target_map: Sequence[Sequence[float]] | None, rng: np.random.Generator,
) -> RegressionTask:
    """A :func:`layered_network` and a linear target map with its data sets.

    Without ``target_map``, each output row is drawn from a flat Dirichlet over the clamped nodes
    (inputs and anchors), so the target lies inside the convex hull reachable with k ≥ 0.
    """
    net = layered_network(n_inputs, n_outputs, n_hidden=n_hidden, anchor_positions=anchor_positions)
    n_c = len(net.clamped_nodes)
    if target_map is None:
        T = rng.dirichlet(np.ones(n_c), size=n_outputs)
    else:
        T = np.asarray(target_map, dtype=float)
        if T.shape != (n_outputs, n_c) or not np.all(np.isfinite(T)):
            raise QepValueError(
                f"'task.target_map' must be a finite {n_outputs}×{n_c} matrix (outputs × "
                f"inputs+anchors), not shape {T.shape}"
            )
    for name, n in (("task.n_train", n_train), ("task.n_test", n_test)):
        if not isinstance(n, int) or n < 1:
            raise QepValueError(f"'{name}' must be an integer ≥ 1, not {n!r}")
    if not input_low < input_high:
        raise QepValueError(f"'task.input_low' must be < 'task.input_high', not {input_low}")
    anchors = np.asarray(net.anchor_positions)

    def data(n: int) -> tuple[np.ndarray, np.ndarray]:
        xs = rng.uniform(input_low, input_high, (n, n_inputs))
        xbar = np.hstack([xs, np.tile(anchors, (n, 1))])
        return xs, xbar @ T.T

    xs_train, ys_train = data(n_train)
    xs_test, ys_test = data(n_test)
    return RegressionTask(network=net, target_map=T, xs_train=xs_train, ys_train=ys_train,
                          xs_test=xs_test, ys_test=ys_test)


def _dataset_objective(net, theta, xs, ys, objective: str) -> float:
    loss, _ = mean_loss_and_gradient(net, theta, xs, ys)
    if objective == "cost-expectation":  # output variances do not depend on x
        state = net.ground_state(theta, xs[0])
        loss += float(np.sum(np.diag(state.covariance)[list(net.output_nodes)]))
    return loss


@dataclass(kw_only=True)
class OscillatorTask:
    """The oscillator regression for the driver: per-sample QEP gradients of a batch, exact metrics.

    The shot noise of step s comes from ``default_rng(SeedSequence([seed, s]))``; springs start
    uniform in [init_low, init_high] (clipped to ``training.bounds``) unless ``theta0`` is given.
    """

    data: RegressionTask
    nudge: str = "error-signal"
    estimator: str = "symmetric"
    beta: float = 1.0
    shots: int | None = 100
    init_low: float = 0.5
    init_high: float = 1.5
    evaluate_initial: bool = True

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(self.data.network.parameter_names)

    @property
    def n_samples(self) -> int:
        return len(self.data.xs_train)

    @property
    def objective(self) -> str:
        return NUDGE_OBJECTIVE[self.nudge]

    def initial_theta(self, config: TrainingConfig) -> np.ndarray:
        net = self.data.network
        if config.theta0 is not None:
            return net.theta_vector(config.theta0)
        theta = np.random.default_rng([config.seed, 2**31 - 1]).uniform(self.init_low, self.init_high,
                                                                       net.n_parameters)
        return theta if config.bounds is None else np.clip(theta, *config.bounds)

    def gradient(self, theta: np.ndarray, batch: np.ndarray, draw: Draw) -> StepEstimate:
        d, rng = self.data, np.random.default_rng(draw.sequence())
        grad = combine([qep_gradient(d.network, theta, d.xs_train[b], d.ys_train[b], nudge=self.nudge,
                                     estimator=self.estimator, beta=self.beta, shots=self.shots, rng=rng)
                        for b in batch])
        # batch loss for the record: the exact mean loss of the batch (closed form, not measured)
        loss = mean_loss_and_gradient(d.network, theta, d.xs_train[batch], d.ys_train[batch])[0]
        return StepEstimate(gradient=grad.gradient, loss=loss, preparations=grad.preparations)

    def evaluate(self, theta: np.ndarray) -> dict:
        d = self.data
        return {"train_mean_loss": mean_loss_and_gradient(d.network, theta, d.xs_train, d.ys_train)[0],
                "test_loss": mean_loss_and_gradient(d.network, theta, d.xs_test, d.ys_test)[0],
                "train_objective": _dataset_objective(d.network, theta, d.xs_train, d.ys_train, self.objective)}


_SCHEMA: dict[str, dict[str, tuple[type, object]]] = {
    "network": dict(n_inputs=(int, 3), n_outputs=(int, 2), n_hidden=(int, 1), anchor_positions=(list, [0.0]),
                    init_low=(float, 0.5), init_high=(float, 1.5)),
    "task": dict(n_train=(int, 64), n_test=(int, 200), input_low=(float, -1.0),
                 input_high=(float, 1.0), target_map=(list, None)),
    "optimum": dict(restarts=(int, 4)),
}
_GRADIENT_KEYS = ("estimator", "nudge", "beta", "shots")
_MAX_SIZE = {"n_inputs": 64, "n_outputs": 64, "n_hidden": 256, "n_train": 10**6, "n_test": 10**6, "restarts": 1000}


def validated(config: Mapping) -> dict:
    """The [oscillator] table with defaults filled in; unknown keys and wrong types raise
    QepValueError naming the key (``oscillator.task.n_train``)."""
    if not isinstance(config, Mapping):
        raise QepValueError(f"[oscillator] must be a table, not {type(config).__name__}")
    unknown = set(config) - set(_SCHEMA)
    if unknown:
        raise QepValueError(f"unknown key(s) {sorted(f'oscillator.{k}' for k in unknown)}; "
                            f"allowed {sorted(_SCHEMA)} (training keys belong in [training], estimator/nudge/"
                            "beta/shots in [gradient])")
    out: dict = {}
    for section, spec in _SCHEMA.items():
        given = config.get(section, {})
        if not isinstance(given, Mapping):
            raise QepValueError(f"[oscillator.{section}] must be a table, not {given!r}")
        bad = sorted(f"oscillator.{section}.{k}" for k in set(given) - set(spec))
        if bad:
            raise QepValueError(f"unknown key(s) {bad}; allowed {sorted(spec)}")
        out[section] = {}
        for key, (kind, default) in spec.items():
            value = given.get(key, default)
            ok = value is None and default is None
            ok = ok or (isinstance(value, kind) and not isinstance(value, bool))
            ok = ok or (kind is float and isinstance(value, int) and not isinstance(value, bool))
            if ok and kind is float:
                ok = bool(np.isfinite(value))
            if ok and kind is int:
                ok = 0 <= value <= _MAX_SIZE.get(key, 10**6)
            if not ok:
                raise QepValueError(f"'oscillator.{section}.{key}' must be a finite {kind.__name__}"
                                    + (f" in [0, {_MAX_SIZE.get(key, 10**6)}]" if kind is int else "")
                                    + f", not {type(value).__name__} {value!r}")
            out[section][key] = float(value) if kind is float else value
    net = out["network"]
    if not 0 <= net["init_low"] < net["init_high"]:
        raise QepValueError(f"'oscillator.network.init_low' must lie in [0, init_high), not {net['init_low']}")
    return out


def _gradient_options(section: Mapping) -> dict:
    bad = sorted(set(section) - set(_GRADIENT_KEYS))
    if bad:
        raise QepValueError(f"key(s) {['gradient.' + k for k in bad]} do not apply to the oscillator task; "
                            f"allowed {list(_GRADIENT_KEYS)}")
    options = {"nudge": "error-signal", "estimator": "symmetric", "beta": 1.0, "shots": None, **section}
    if options["nudge"] not in NUDGE_OBJECTIVE:
        raise QepValueError(f"'gradient.nudge' must be one of {list(NUDGE_OBJECTIVE)}, not {options['nudge']!r}")
    if options["estimator"] not in ESTIMATORS:
        raise QepValueError(f"'gradient.estimator' must be one of {list(ESTIMATORS)}, not {options['estimator']!r}")
    beta, shots = options["beta"], options["shots"]
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta <= 1e6:
        raise QepValueError(f"'gradient.beta' must be a number in (0, 1e6], not {beta!r}")
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or not 1 <= shots <= 10**7):
        raise QepValueError(f"'gradient.shots' must be an integer in [1, 1e7], not {shots!r}")
    return options


def run_oscillator(ctx: RunContext) -> dict:
    """Train the network on its linear map and compare with the constrained optimum."""
    cfg = validated(ctx.protocol.sections.get("oscillator", {}))
    options = _gradient_options(ctx.protocol.section("gradient"))
    net_cfg = dict(cfg["network"])
    init_low, init_high = net_cfg.pop("init_low"), net_cfg.pop("init_high")
    rng = np.random.default_rng(ctx.seed)
    data = make_regression_task(**net_cfg, **cfg["task"], rng=rng)
    task = OscillatorTask(data=data, init_low=init_low, init_high=init_high, **options)
    driver = drive(ctx, task, optimizer="adam", learning_rate=0.05, final_learning_rate=0.001,
                   schedule="exponential", steps=300, batch_size=8, bounds=(0.01, 100.0))
    net, bounds = data.network, driver.config.bounds or (0.0, None)
    theta = driver.parameters_
    theta_opt, loss_opt = optimum_mean_loss(net, data.xs_train, data.ys_train, k_min=bounds[0], k_max=bounds[1],
                                            restarts=cfg["optimum"]["restarts"], rng=rng, starts=[theta])

    def summary(th) -> dict:
        T = net.output_map(th)
        return dict(train_mean_loss=mean_loss_and_gradient(net, th, data.xs_train, data.ys_train)[0],
                    test_mean_loss=mean_loss_and_gradient(net, th, data.xs_test, data.ys_test)[0],
                    map=T.tolist(), map_error=float(np.linalg.norm(T - data.target_map)))

    fin, opt = summary(theta), summary(theta_opt)
    totals = driver.totals()
    final = {"train_mean_loss": fin["train_mean_loss"], "test_mean_loss": fin["test_mean_loss"],
             "optimum_train_mean_loss": opt["train_mean_loss"], "optimum_test_mean_loss": opt["test_mean_loss"],
             "excess_error": fin["train_mean_loss"] - loss_opt, "map_error": fin["map_error"],
             "optimum_map_error": opt["map_error"], "target_inside_hull": data.target_inside_hull,
             "preparations": totals["preparations"], "steps": driver.step_, "objective": task.objective}
    xbar_test = np.hstack([data.xs_test, np.tile(net.anchor_positions, (len(data.xs_test), 1))])
    return {"history": driver.history_, "final": final, "theta": driver.named(),
            "plot": {"kind": "oscillator", "target_map": data.target_map.tolist(), "final_map": fin["map"],
                     "optimum_map": opt["map"], "targets": data.ys_test.tolist(),
                     "predictions": (xbar_test @ net.output_map(theta).T).tolist()},
            "oscillator": {"config": cfg, "parameter_names": list(net.parameter_names)}}


register_section("oscillator", validated)
