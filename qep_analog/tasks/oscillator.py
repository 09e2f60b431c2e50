"""Oscillator-network regression (Scellier eq. 19–21): runs the oscillator layer's own protocol.

The physics, the QEP gradients and the constrained optimum live in
:func:`qep_analog.learning.oscillator.run_oscillator_protocol` (error-signal nudge of the mean,
bounded springs, clamped inputs plus an anchor, a target map inside the convex hull; PHYSICS.md
§2). This wrapper only reshapes its result for the report. The run is short and has no per-step
hook, so ``--resume`` simply reruns it (same seed, same result).
"""

from __future__ import annotations

from collections.abc import Mapping

from qep_analog.tasks.common import RunContext


def run_oscillator(ctx: RunContext, raw: Mapping) -> dict:
    from qep_analog.learning.oscillator import run_oscillator_protocol

    out = run_oscillator_protocol(raw, ctx.seed)
    hist = out["history"]
    history = [{"step": int(s), "batch_loss": float(tr), "test_loss": float(te), "objective": float(ob),
                "preparations": int(p)}
               for s, tr, te, ob, p in zip(hist["step"], hist["train_mean_loss"], hist["test_mean_loss"],
                                           hist["train_objective"], hist["preparations"], strict=True)]
    final = {"train_mean_loss": out["final"]["train_mean_loss"], "test_mean_loss": out["final"]["test_mean_loss"],
             "optimum_train_mean_loss": out["optimum"]["train_mean_loss"],
             "optimum_test_mean_loss": out["optimum"]["test_mean_loss"],
             "excess_error": out["excess_error"], "map_error": out["final"]["map_error"],
             "optimum_map_error": out["optimum"]["map_error"], "target_inside_hull": out["target_inside_hull"],
             "preparations": out["preparations"], "objective": out["objective"]}
    return {"history": history, "final": final, "theta": out["parameters"],
            "plot": {"kind": "oscillator", "target_map": out["target_map"], "final_map": out["final"]["map"],
                     "optimum_map": out["optimum"]["map"], **out["test_predictions"]},
            "oscillator": {k: out[k] for k in ("config", "parameter_names", "optimizer")}}
