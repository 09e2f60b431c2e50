"""Unsupervised tasks on the open cluster-Ising slice (Wanjura–Marquardt Fig. 3; PHYSICS.md §2).

Model: ``cluster_chain_slice`` — H = g_ZXZ Σ Z_{j−1}X_jZ_{j+1} − g_ZZ Σ Z_jZ_{j+1} − g_X Σ X_j on 10
open sites, g_ZXZ = −0.5 fixed, g_X and g_ZZ trainable (either sign); A = X₀X₄ is the output.
Gradients of ⟨A⟩ come from QEP with the protocol's ``[gradient]`` (one-sided, error-signal nudge of
the linear loss, i.e. the nudge is ±β A), and every step is a *normalised* gradient step of length
``training.learning_rate`` (their step rule, lr = 0.1, 100 steps).

* ``exploration``: maximise ⟨A⟩ from each start (g_X, g_ZZ) in ``task.starts``:
  θ ← θ + η ∇⟨A⟩/|∇⟨A⟩|.
* ``sensitivity``: maximise the slope |S| between two points sharing g_ZZ,
  S = (⟨A⟩(g_X⁽²⁾, g_ZZ) − ⟨A⟩(g_X⁽¹⁾, g_ZZ)) / (g_X⁽²⁾ − g_X⁽¹⁾), from each start
  (g_X⁽¹⁾, g_X⁽²⁾, g_ZZ). With Δ = g_X⁽²⁾ − g_X⁽¹⁾ and A_k the values at the two points:
  ∂S/∂g_X⁽¹⁾ = (S − ∂_x A_1)/Δ, ∂S/∂g_X⁽²⁾ = (∂_x A_2 − S)/Δ, ∂S/∂g_ZZ = (∂_z A_2 − ∂_z A_1)/Δ;
  the step is p ← p + η sign(S) ∇S/|∇S| (their eqs. 8–10 are these gradients, of −L).

Phase boundaries of the slice (drawn in the plots): |g_ZZ| = |g_X + g_ZXZ|, and the segment
g_X = g_ZXZ with |g_ZZ| < 2|g_X|. Randomness (shots, if any) of start i, step s is seeded by
(seed, i, s), so checkpoints resume exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.learning.driver import Draw, StepEstimate
from qep_analog.learning.gradient import estimate_gradient
from qep_analog.measurement.observables import output_expectations
from qep_analog.tasks.build import build_backend, build_gradient_config, build_model
from qep_analog.tasks.common import RunContext, drive, require_int

EXPLORATION_STARTS = [[-0.1, 0.4], [0.2, 0.9]]
SENSITIVITY_STARTS = [[-0.2, -1.5, -1.5], [-0.5, 0.3, 1.0]]


@dataclass(kw_only=True)
class SliceWalk:
    """Normalised ascent walks on the slice, one per start, as one driver task.

    θ is the concatenation of the start points (one parameter group per start, so ``normalize``
    gives each walk its own unit step); ``objective(i, point, draw)`` returns (value, ∇value,
    counts) of walk i, and the driver descends −∇value. Shots of walk i at step s are seeded by
    (seed, i, s).
    """

    starts: list[list[float]]
    names: tuple[str, ...]
    objective: Callable[[int, np.ndarray, Draw], tuple[float, np.ndarray, dict]]
    n_samples: int = 0
    record_parameters: bool = True

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(f"start{i}.{n}" for i in range(len(self.starts)) for n in self.names)

    def parameter_groups(self) -> dict[str, np.ndarray]:
        w = len(self.names)
        return {f"start{i}": np.arange(i * w, (i + 1) * w) for i in range(len(self.starts))}

    def initial_theta(self, config) -> np.ndarray:
        return np.array([v for s in self.starts for v in s], dtype=float)

    def gradient(self, theta: np.ndarray, batch, draw: Draw) -> StepEstimate:
        w = len(self.names)
        direction, values, counts = np.zeros_like(theta), {}, {"preparations": 0, "crossings": 0, "dropped": 0}
        for i in range(len(self.starts)):
            value, grad, info = self.objective(i, theta[i * w:(i + 1) * w], draw)
            direction[i * w:(i + 1) * w] = -grad
            values[f"value_{i}"] = value
            for key in counts:
                counts[key] += info[key]
        return StepEstimate(gradient=direction, loss=-float(np.mean(list(values.values()))), extras=values, **counts)

    def trajectories(self, history: list[dict]) -> list[list[list[float]]]:
        w = len(self.names)
        return [[list(s)] + [r["theta"][i * w:(i + 1) * w] for r in history if "theta" in r]
                for i, s in enumerate(self.starts)]


def _setup(ctx: RunContext, width: int, default_starts):
    p = ctx.protocol
    h = build_model(p)
    if set(h.parameter_names) != {"g_x", "g_zz"} or len(h.outputs) != 1:
        raise QepValueError("tasks 'exploration'/'sensitivity' need model.kind = 'cluster-slice' "
                            "(trainables g_x, g_zz and one output)")
    config = build_gradient_config(p)
    if config.loss != "linear":
        raise QepValueError(f"'gradient.loss' must be 'linear' for task {ctx.task!r} (maximise ⟨A⟩), "
                            f"not {config.loss!r}")
    starts = p.section("task").get("starts", default_starts)
    if not starts or any(not isinstance(s, list) or len(s) != width
                         or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                                    for v in s) for s in starts):
        raise QepValueError(f"'task.starts' must be a list of [{'g_x, g_zz' if width == 2 else 'g_x1, g_x2, g_zz'}] "
                            f"points, not {starts!r}")
    return h, config, build_backend(p), [list(map(float, s)) for s in starts]


_WALK_DEFAULTS = {"optimizer": "sgd", "normalize": True, "learning_rate": 0.1, "steps": 100}


def _value_and_gradient(h, backend, config, g_x: float, g_zz: float, seed) -> tuple[float, np.ndarray, dict]:
    """⟨A⟩ (exact, for the record), its QEP gradient as (∂/∂g_x, ∂/∂g_zz), and diagnostics."""
    theta = h.theta_vector({"g_x": g_x, "g_zz": g_zz})
    est = estimate_gradient(h, backend, theta, None, [[1.0]], config, seed=seed)  # L = +⟨A⟩
    names = h.parameter_names
    grad = np.array([est.gradient[names.index("g_x")], est.gradient[names.index("g_zz")]])
    info = {"crossings": len(est.crossings), "dropped": est.samples_dropped,
            "preparations": est.preparations or 0}
    return float(est.loss), grad, info


def _value(h, backend, g_x: float, g_zz: float) -> float:
    theta = h.theta_vector({"g_x": g_x, "g_zz": g_zz})
    return float(output_expectations(h, backend.prepare(h, theta, None))[0])


def run_exploration(ctx: RunContext) -> dict:
    h, config, backend, starts = _setup(ctx, 2, EXPLORATION_STARTS)

    def objective(i, point, draw):
        g_x, g_zz = point
        return _value_and_gradient(h, backend, config, g_x, g_zz, np.random.SeedSequence([draw.seed, i, draw.step]))

    walk = SliceWalk(starts=starts, names=("g_x", "g_zz"), objective=objective)
    driver = drive(ctx, walk, **_WALK_DEFAULTS)
    trajectories = walk.trajectories(driver.history_)
    finals = [{"g_x": t[-1][0], "g_zz": t[-1][1], "value": _value(h, backend, *t[-1]), "start": t[0]}
              for t in trajectories]
    final = {"points": finals, "steps": driver.step_,
             "max_abs_final_g_zz": max(abs(f["g_zz"]) for f in finals),
             "min_final_value": min(f["value"] for f in finals),
             "crossing_events": driver.totals()["crossing_events"]}
    plot = {"trajectories": trajectories, "kind": "exploration", **_slice_map(ctx, h, backend, trajectories)}
    return {"history": driver.history_, "final": final, "theta": driver.named(), "plot": plot}


def _g_zxz(ctx: RunContext) -> float:
    return float(ctx.protocol.section("model").get("g_zxz", G_ZXZ))


def run_sensitivity(ctx: RunContext) -> dict:
    h, config, backend, starts = _setup(ctx, 3, SENSITIVITY_STARTS)
    for s in starts:
        if s[0] == s[1]:
            raise QepValueError(f"'task.starts': the two g_x of a sensitivity start must differ, not {s}")

    def objective(i, point, draw):
        x1, x2, z = point
        seeds = np.random.SeedSequence([draw.seed, i, draw.step]).spawn(2)
        a1, g1, info1 = _value_and_gradient(h, backend, config, x1, z, seeds[0])
        a2, g2, info2 = _value_and_gradient(h, backend, config, x2, z, seeds[1])
        delta = x2 - x1
        slope = (a2 - a1) / delta
        grad = np.array([(slope - g1[0]) / delta, (g2[0] - slope) / delta, (g2[1] - g1[1]) / delta])
        info = {k: info1[k] + info2[k] for k in ("preparations", "crossings", "dropped")}
        return abs(slope), np.sign(slope) * grad, info  # ∇|S| = sign(S) ∇S

    walk = SliceWalk(starts=starts, names=("g_x1", "g_x2", "g_zz"), objective=objective)
    driver = drive(ctx, walk, **_WALK_DEFAULTS)
    trajectories = walk.trajectories(driver.history_)
    finals = []
    for traj in trajectories:
        x1, x2, z = traj[-1]
        vals = [_value(h, backend, x, z) for x in (x1, x2)]
        finals.append({"g_x1": x1, "g_x2": x2, "g_zz": z, "slope": (vals[1] - vals[0]) / (x2 - x1),
                       "start": traj[0], "distance_to_boundary": boundary_distance(0.5 * (x1 + x2), z, _g_zxz(ctx))})
    final = {"points": finals, "steps": driver.step_,
             "max_distance_to_boundary": max(f["distance_to_boundary"] for f in finals),
             "crossing_events": driver.totals()["crossing_events"]}
    plot = {"trajectories": trajectories, "kind": "sensitivity", **_slice_map(ctx, h, backend, trajectories)}
    return {"history": driver.history_, "final": final, "theta": driver.named(), "plot": plot}


G_ZXZ = -0.5


def boundary_distance(g_x: float, g_zz: float, g_zxz: float = G_ZXZ) -> float:
    """Euclidean distance in (g_X, g_ZZ) to the slice's phase boundaries (PHYSICS.md §2)."""
    # |g_ZZ| = |g_X + g_ZXZ|: two lines at 45°
    u = g_x + g_zxz
    d_lines = min(abs(g_zz - u), abs(g_zz + u)) / np.sqrt(2)
    # segment g_X = g_ZXZ, |g_ZZ| < 2|g_X|
    half = 2 * abs(g_zxz)
    d_seg = np.hypot(g_x - g_zxz, max(abs(g_zz) - half, 0.0))
    return float(min(d_lines, d_seg))


def _slice_map(ctx: RunContext, h, backend, trajectories) -> dict:
    """⟨A⟩ on a (g_X, g_ZZ) grid around the phase boundaries (and, if the walks leave it, on a
    second grid covering the trajectories), for the background of the plot."""
    res = require_int(ctx.protocol.section("task"), "plot_resolution", 21, 2, "task")

    def grid(x_range, z_range):
        g_x, g_zz = np.linspace(*x_range, res), np.linspace(*z_range, res)
        values = [[_value(h, backend, a, b) for a in g_x] for b in g_zz]
        return {"g_x": g_x.tolist(), "g_zz": g_zz.tolist(), "value": values}

    out = {"g_zxz": _g_zxz(ctx), "maps": [grid((-1.6, 1.6), (-1.6, 1.6))]}
    pts = np.array([p for t in trajectories for p in t])
    xs, zs = pts[:, :-1].ravel(), pts[:, -1]
    if xs.min() < -1.6 or xs.max() > 1.6 or zs.min() < -1.6 or zs.max() > 1.6:
        out["maps"].append(grid((min(-1.6, xs.min() - 0.3), max(1.6, xs.max() + 0.3)),
                                (min(-1.6, zs.min() - 0.3), max(1.6, zs.max() + 0.3))))
    return out
