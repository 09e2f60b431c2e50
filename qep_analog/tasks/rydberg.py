"""The flagship: a Rydberg-array classifier trained by QEP on a device with a DMM.

Model (:class:`~qep_analog.device.rydberg.RydbergModel`, pulser's convention, PHYSICS.md §3):

    H = Σ_i (Ω/2) X_i − Σ_i (δ_i + x_i) n_i + Σ_{i<j} C6/r_ij⁶ n_i n_j

Trainable: the atom positions r_i (µm, through J_ij = C6/r_ij⁶ and the chain rule
∂J_ij/∂r_i = −6 C6 (r_i − r_j)/r_ij⁸) and the local detunings δ_i (rad/µs, realised by the DMM).
Inputs x are local detunings on the input atoms; the outputs are the occupations ⟨n_ℓ⟩ of the
output atoms, with targets t ∈ {0, 1}. Each step estimates ∂⟨Ĉ⟩/∂θ, Ĉ = Σ_ℓ (n_ℓ − t_ℓ)², by
symmetric cost-operator QEP: the ±β nudge is the local detuning change δ_ℓ → δ_ℓ ∓ β(1 − 2t_ℓ).
All measured observables are Z-diagonal, so one setting (Z-basis bitstrings, with the readout
errors of ``gradient.p_false_pos``/``p_false_neg``) serves every parameter. The ground state is
prepared by the ``[backend]`` (``adiabatic``: cosine ramps emulated by pulser-simulation or a fast
emulator; ``exact``: ideal). Updates δ ← δ − η ∂L/∂δ and r ← r − η_r ∂L/∂r are projected on the
device limits (:meth:`RydbergModel.project`).

Protocol: ``[device]`` (the device layer's section: device name or JSON, positions, Ω, detunings,
input/output atoms, ramp, ``position_learning_rate``), ``[data]`` (``blobs`` with ±1 labels mapped
to t = 0/1, input_scale in rad/µs; or inline), ``[backend]``, ``[gradient]``, ``[training]``. The
final model is exported as a lab bundle (``bundle/``, see ``qep-analog update``).
"""

from __future__ import annotations

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.learning.gradient import estimate_gradient
from qep_analog.protocol import build_data, build_gradient_config
from qep_analog.tasks.common import RunContext, require_int, require_positive


def _model(ctx: RunContext):
    from qep_analog.device.bundle import model_from, register_protocol_section, step_spec
    from qep_analog.device.devices import load_device

    register_protocol_section()
    sections = dict(ctx.protocol.sections, data={"inputs": [], "targets": []})  # data: built below
    spec = step_spec(sections)
    spec["device_object"] = load_device(spec["device"])
    return spec, model_from(spec).validate()


def _backend(ctx: RunContext, spec: dict, model):
    from qep_analog.equilibrium.base import get_backend

    b = ctx.protocol.section("backend")
    name = b.get("name", "adiabatic")
    options = dict(b.get("options", {}))
    if name == "adiabatic":
        options.setdefault("duration_ns", spec["ramp"]["duration_ns"])
        options.setdefault("start_detuning", spec["ramp"]["start_detuning"])
        options.setdefault("shape", spec["ramp"]["shape"])
        return get_backend(name, model=model, **options)
    if options:
        ctx.notes.append(f"backend {name!r}: the adiabatic options {sorted(options)} are ignored")
    return get_backend(name)


def _data(ctx: RunContext, h):
    data = build_data(ctx.protocol, h)
    if data.test_targets is None:
        raise QepValueError("task 'rydberg-classifier' needs test data (data.kind = 'blobs' or test_* keys)")

    def occupation_targets(t):
        t = np.asarray(t, dtype=float)
        return (t > 0).astype(float) if np.any(t < 0) else t

    return data.inputs, occupation_targets(data.targets), data.test_inputs, occupation_targets(data.test_targets)


def evaluate_model(model, backend, inputs, targets) -> dict:
    """Exact test metrics of the prepared states: cost ⟨Ĉ⟩ and accuracy of ⟨n_ℓ⟩ > ½ ⇔ t_ℓ = 1."""
    h = model.hamiltonian()
    b = backend.with_model(model) if hasattr(backend, "with_model") else backend
    costs, hits = [], []
    for x, t in zip(inputs, targets, strict=True):
        n_out = h.output_expectations(b.prepare(h, model.theta(), model.inputs(x)).state)
        costs.append(float(np.sum((1 - 2 * t) * n_out + t**2)))
        hits.append(bool(np.all((n_out > 0.5) == (t > 0.5))))
    return {"test_loss": float(np.mean(costs)), "test_accuracy": float(np.mean(hits))}


def run_rydberg(ctx: RunContext) -> dict:
    spec, model0 = _model(ctx)
    h0 = model0.hamiltonian()
    x_train, t_train, x_test, t_test = _data(ctx, h0)
    config = build_gradient_config(ctx.protocol)
    if config.nudge != "cost-operator" or config.estimator != "symmetric":
        raise QepValueError("task 'rydberg-classifier' runs symmetric cost-operator QEP (gradient.nudge = "
                            "'cost-operator', gradient.estimator = 'symmetric')")
    tr = ctx.protocol.section("training")
    steps = require_int(tr, "steps", 20, 1, "training")
    batch_size = require_int(tr, "batch_size", 4, 1, "training")
    eval_every = require_int(tr, "eval_every", max(steps // 5, 1), 1, "training")
    lr = require_positive(tr, "learning_rate", 1.0, "training")
    lr_pos = float(spec["training"]["position_learning_rate"])
    backend = _backend(ctx, spec, model0)

    state = ctx.load_checkpoint()
    if state is None:
        state = {"step": 0, "positions_um": model0.positions_um.tolist(), "detunings": model0.detunings.tolist(),
                 "history": []}
        first = evaluate_model(model0, backend, x_test, t_test)
        state["history"].append({"step": 0, "batch_loss": first["test_loss"], "preparations": 0,
                                 "crossings": 0, "dropped": 0, **first})
    bar = ctx.progress_bar(steps, state["step"], ctx.task)
    try:
        while state["step"] < steps:
            s = state["step"]
            model = model0.with_(positions_um=np.array(state["positions_um"]), detunings=np.array(state["detunings"]))
            h = model.hamiltonian()
            rng = np.random.default_rng([ctx.seed, s])
            batch = rng.choice(len(t_train), size=min(batch_size, len(t_train)), replace=False)
            b = backend.with_model(model) if hasattr(backend, "with_model") else backend
            est = estimate_gradient(h, b, model.theta(), x_train[batch], t_train[batch], config,
                                    seed=np.random.SeedSequence([ctx.seed, s]))
            grad_pos, grad_det = model.split_gradient(est.gradient)
            pos = model.positions_um - (lr_pos * grad_pos if model.train_positions else 0.0)
            model = model.project(positions_um=pos, detunings=model.detunings - lr * grad_det)
            state["positions_um"], state["detunings"] = model.positions_um.tolist(), model.detunings.tolist()
            state["step"] = s + 1
            record = {"step": s + 1, "batch_loss": est.loss, "grad_norm": float(np.linalg.norm(est.gradient)),
                      "preparations": est.preparations or 0, "crossings": len(est.crossings),
                      "dropped": est.samples_dropped}
            if state["step"] % eval_every == 0 or state["step"] == steps:
                record.update(evaluate_model(model, backend, x_test, t_test))
            state["history"].append(record)
            bar.update(1)
            post = {"loss": f"{est.loss:.4f}"}
            last = [r for r in state["history"] if "test_accuracy" in r]
            if last:
                post["acc"] = f"{last[-1]['test_accuracy']:.3f}"
            bar.set_postfix(post)
            ctx.step_done(state["step"], steps, lambda: state)
    finally:
        bar.close()

    model = model0.with_(positions_um=np.array(state["positions_um"]), detunings=np.array(state["detunings"]))
    hist = state["history"]
    from qep_analog.tasks.supervised import logistic_accuracy, logistic_regression

    w = logistic_regression(x_train, t_train[:, 0], l2=1e-3)
    final = {k: hist[-1][k] for k in ("test_loss", "test_accuracy") if k in hist[-1]}
    final.update({"initial_test_accuracy": hist[0]["test_accuracy"], "initial_test_loss": hist[0]["test_loss"],
                  "steps": state["step"], "preparations": int(sum(r["preparations"] for r in hist)),
                  "crossing_events": int(sum(r["crossings"] for r in hist)),
                  "logistic_test_accuracy": logistic_accuracy(w, x_test, t_test[:, 0]),
                  "violations": model.violations(), "objective": config.objective.name,
                  "device": model.device.name})
    bundle = _export(ctx, spec, model, x_test[:4], t_test[:4])
    return {"history": hist, "final": final,
            "theta": dict(zip(model.hamiltonian().parameter_names, model.theta().tolist(), strict=True)),
            "plot": {"kind": "rydberg", "positions_before": model0.positions_um.tolist(),
                     "positions_after": model.positions_um.tolist(), "detunings_before": model0.detunings.tolist(),
                     "detunings_after": model.detunings.tolist(), "input_atoms": list(model.input_atoms),
                     "output_atoms": list(model.output_atoms), "device": model.device.name},
            "bundle": bundle}


def _export(ctx: RunContext, spec: dict, model, inputs, targets) -> dict:
    """Write the trained protocol as a lab bundle (one QEP step on a few test inputs) in ``bundle/``."""
    from qep_analog.device.bundle import write_bundle

    final = dict(spec, model=dict(spec["model"], positions_um=model.positions_um.tolist(),
                                  detunings=model.detunings.tolist()),
                 data={"inputs": np.asarray(inputs).tolist(), "targets": np.asarray(targets).tolist()})
    final.pop("device_object", None)
    try:
        manifest = write_bundle(final, ctx.out_dir / "bundle", force=True, drawings=False)
    except QepValueError as exc:  # reported, never fatal: the training result stands
        ctx.notes.append(f"bundle export failed: {exc}")
        return {"written": False, "error": str(exc)}
    return {"written": True, "dir": "bundle", "sequences": len(manifest["sequences"])}
