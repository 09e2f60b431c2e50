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

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.learning.gradient import estimate_gradient
from qep_analog.protocol import build_backend, build_gradient_config, build_model
from qep_analog.tasks.common import RunContext, require_int, require_positive

EXPLORATION_STARTS = [[-0.1, 0.4], [0.2, 0.9]]
SENSITIVITY_STARTS = [[-0.2, -1.5, -1.5], [-0.5, 0.3, 1.0]]


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
                         or not all(isinstance(v, (int, float)) for v in s) for s in starts):
        raise QepValueError(f"'task.starts' must be a list of [{'g_x, g_zz' if width == 2 else 'g_x1, g_x2, g_zz'}] "
                            f"points, not {starts!r}")
    tr = p.section("training")
    steps = require_int(tr, "steps", 100, 1, "training")
    lr = require_positive(tr, "learning_rate", 0.1, "training")
    return h, config, build_backend(p), [list(map(float, s)) for s in starts], steps, lr


def _value_and_gradient(h, backend, config, g_x: float, g_zz: float, seed) -> tuple[float, np.ndarray, dict]:
    """⟨A⟩ (exact, for the record), its QEP gradient as (∂/∂g_x, ∂/∂g_zz), and diagnostics."""
    theta = h.theta_vector({"g_x": g_x, "g_zz": g_zz})
    est = estimate_gradient(h, backend, theta, None, [[1.0]], config, seed=seed)  # L = +⟨A⟩
    names = h.parameter_names
    grad = np.array([est.gradient[names.index("g_x")], est.gradient[names.index("g_zz")]])
    info = {"crossings": len(est.crossings), "dropped": est.samples_dropped,
            "preparations": est.preparations or 0,
            "degenerate": any(c.get("kind") == "degenerate" for c in est.crossings)}
    return float(est.loss), grad, info


def _normalised(direction: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(direction))
    return direction / norm if norm > 0 and np.isfinite(norm) else np.zeros_like(direction)


def _loop(ctx: RunContext, starts, steps: int, step_fn, record_fn) -> dict:
    """Run ``steps`` steps from every start with checkpoints; ``step_fn(i, point, step)``."""
    state = ctx.load_checkpoint() or {"step": 0, "points": starts, "trajectories": [[s] for s in starts],
                                      "history": []}
    bar = ctx.progress_bar(steps, state["step"], ctx.task)
    try:
        while state["step"] < steps:
            s = state["step"]
            record = {"step": s + 1, "preparations": 0, "crossings": 0, "dropped": 0}
            for i, point in enumerate(state["points"]):
                new, value, info = step_fn(i, np.array(point), s)
                state["points"][i] = new.tolist()
                state["trajectories"][i].append(new.tolist())
                record[f"value_{i}"] = value
                for key in ("preparations", "crossings", "dropped"):
                    record[key] += info[key]
            record["batch_loss"] = -float(np.mean([record[f"value_{i}"] for i in range(len(starts))]))
            state["history"].append(record)
            state["step"] = s + 1
            bar.update(1)
            bar.set_postfix({"objective": f"{-record['batch_loss']:.4f}"})
            ctx.step_done(state["step"], steps, lambda: state)
    finally:
        bar.close()
    return record_fn(state)


def run_exploration(ctx: RunContext) -> dict:
    h, config, backend, starts, steps, lr = _setup(ctx, 2, EXPLORATION_STARTS)

    def step_fn(i, point, s):
        g_x, g_zz = point
        value, grad, info = _value_and_gradient(h, backend, config, g_x, g_zz,
                                                np.random.SeedSequence([ctx.seed, i, s]))
        return point + lr * _normalised(grad), value, info

    def record_fn(state):
        finals = []
        for traj in state["trajectories"]:
            g_x, g_zz = traj[-1]
            theta = h.theta_vector({"g_x": g_x, "g_zz": g_zz})
            finals.append({"g_x": g_x, "g_zz": g_zz, "value": float(h.output_expectations(
                backend.prepare(h, theta, None).state)[0]), "start": traj[0]})
        final = {"points": finals, "steps": state["step"],
                 "max_abs_final_g_zz": max(abs(f["g_zz"]) for f in finals),
                 "min_final_value": min(f["value"] for f in finals),
                 "crossing_events": int(sum(r["crossings"] for r in state["history"]))}
        return {"history": state["history"], "final": final,
                "plot": {"trajectories": state["trajectories"], "kind": "exploration"}}

    result = _loop(ctx, starts, steps, step_fn, record_fn)
    result["plot"].update(_slice_map(ctx, h, backend, result["plot"]["trajectories"]))
    return result


def _g_zxz(ctx: RunContext) -> float:
    return float(ctx.protocol.section("model").get("g_zxz", G_ZXZ))


def run_sensitivity(ctx: RunContext) -> dict:
    h, config, backend, starts, steps, lr = _setup(ctx, 3, SENSITIVITY_STARTS)
    for s in starts:
        if s[0] == s[1]:
            raise QepValueError(f"'task.starts': the two g_x of a sensitivity start must differ, not {s}")

    def step_fn(i, point, s):
        x1, x2, z = point
        seeds = np.random.SeedSequence([ctx.seed, i, s]).spawn(2)
        a1, g1, info1 = _value_and_gradient(h, backend, config, x1, z, seeds[0])
        a2, g2, info2 = _value_and_gradient(h, backend, config, x2, z, seeds[1])
        delta = x2 - x1
        slope = (a2 - a1) / delta
        grad = np.array([(slope - g1[0]) / delta, (g2[0] - slope) / delta, (g2[1] - g1[1]) / delta])
        info = {k: info1[k] + info2[k] for k in ("preparations", "crossings", "dropped")}
        return point + lr * np.sign(slope) * _normalised(grad), abs(slope), info

    def record_fn(state):
        finals = []
        for traj in state["trajectories"]:
            x1, x2, z = traj[-1]
            vals = [float(h.output_expectations(backend.prepare(
                h, h.theta_vector({"g_x": x, "g_zz": z}), None).state)[0]) for x in (x1, x2)]
            mid = 0.5 * (x1 + x2)
            finals.append({"g_x1": x1, "g_x2": x2, "g_zz": z, "slope": (vals[1] - vals[0]) / (x2 - x1),
                           "start": traj[0], "distance_to_boundary": boundary_distance(mid, z, _g_zxz(ctx))})
        final = {"points": finals, "steps": state["step"],
                 "max_distance_to_boundary": max(f["distance_to_boundary"] for f in finals),
                 "crossing_events": int(sum(r["crossings"] for r in state["history"]))}
        return {"history": state["history"], "final": final,
                "plot": {"trajectories": state["trajectories"], "kind": "sensitivity"}}

    result = _loop(ctx, starts, steps, step_fn, record_fn)
    result["plot"].update(_slice_map(ctx, h, backend, result["plot"]["trajectories"]))
    return result


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
        values = [[float(h.output_expectations(backend.prepare(
            h, h.theta_vector({"g_x": a, "g_zz": b}), None).state)[0]) for a in g_x] for b in g_zz]
        return {"g_x": g_x.tolist(), "g_zz": g_zz.tolist(), "value": values}

    out = {"g_zxz": _g_zxz(ctx), "maps": [grid((-1.6, 1.6), (-1.6, 1.6))]}
    pts = np.array([p for t in trajectories for p in t])
    xs, zs = pts[:, :-1].ravel(), pts[:, -1]
    if xs.min() < -1.6 or xs.max() > 1.6 or zs.min() < -1.6 or zs.max() > 1.6:
        out["maps"].append(grid((min(-1.6, xs.min() - 0.3), max(1.6, xs.max() + 0.3)),
                                (min(-1.6, zs.min() - 0.3), max(1.6, zs.max() + 0.3))))
    return out
