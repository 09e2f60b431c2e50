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
prepared by the ``[backend]`` (``adiabatic``: the ``[device]`` ramp, ``shape`` = cosine, linear or the
gap-aware local-adiabatic schedule, emulated by pulser-simulation or a fast emulator, the same sequences
the bundle exports; ``exact``: ideal). Updates δ ← δ − η ∂L/∂δ and r ← r − η_r ∂L/∂r are projected on the
device limits (:meth:`RydbergModel.project`).

Protocol: ``[device]`` (the device layer's section: device name or JSON, positions, Ω, detunings,
input/output atoms, ramp, ``position_learning_rate``), ``[data]`` (``blobs`` with ±1 labels mapped
to t = 0/1, input_scale in rad/µs; or inline), ``[backend]``, ``[gradient]``, ``[training]``. The
final model is exported as a lab bundle (``bundle/``, see ``qep-analog update``). The task object
is :class:`~qep_analog.device.training.RydbergTask`; the one driver runs it, with the parameter
groups ``positions`` (rate ``[device] position_learning_rate``, or ``training.learning_rates``) and
``detunings`` (``training.learning_rate``), plain SGD by default.

On a device without a DMM (``fresnel_like``: global drive only) the same task trains what can be trained
there (:class:`~qep_analog.device.training.GlobalRydbergTask`): positions and the one global detuning Δ,
with inputs x = (Ω, Δ_in) (``input_mode = "global"``; blob features f are mapped to Ω = clip(Ω₀ + f₁,
0.05 Ω_max, Ω_max), Δ_in = f₂), the cost Σ_i (n_i − t)² over every atom (the Rydberg fraction) and the
global ±β nudge Δ → Δ ∓ β(1 − 2t). Every result's ``final.shot_bill`` states the shots, jobs, hours and
cost of the training at the device's lab rate (:mod:`qep_analog.device.lab`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.tasks.build import build_data, build_gradient_config
from qep_analog.tasks.common import RunContext, drive


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
    if name == "adiabatic":  # the ramp is the [device] one, so that training and the exported bundle agree
        ramp = spec["ramp"]
        for key in ("duration_ns", "start_detuning", "shape", "schedule", "schedule_boundary", "schedule_points"):
            wanted = ramp.get("shape" if key == "schedule" else key)
            if key in options and wanted is not None and options[key] != wanted:
                raise QepValueError(f"'backend.options.{key}' = {options[key]!r} differs from the [device] ramp's "
                                    f"{wanted!r}: the exported bundle plays the [device] ramp, so set it there")
        options.update({k: v for k, v in ramp.items() if k != "shape"}, schedule=ramp["shape"])
        options.pop("shape", None)
        return get_backend(name, model=model, **options)
    if name == "mps":  # large registers (issue 13): the register's snake order and the backend's own options
        return get_backend(name, model=model, **options)
    if options:
        ctx.notes.append(f"backend {name!r}: the adiabatic options {sorted(options)} are ignored")
    return get_backend(name)


def _data(ctx: RunContext, h, model=None):
    if model is not None and not model.device.dmm_channels:  # global: blob features → (Ω, Δ_in)
        from qep_analog.device.devices import global_channel

        data = build_data(ctx.protocol, model.with_(output_atoms=(0,)).hamiltonian())
        max_omega = global_channel(model.device)[1].max_amp or 4 * abs(model.omega)

        def to_controls(f):
            if f is None:
                return None
            f = np.atleast_2d(f)
            return np.column_stack([np.clip(model.omega + f[:, 0], 0.05 * max_omega, max_omega), f[:, 1]])

        data = dataclasses.replace(data, inputs=to_controls(data.inputs), test_inputs=to_controls(data.test_inputs))
    else:
        data = build_data(ctx.protocol, h)
    if data.test_targets is None:
        raise QepValueError("task 'rydberg-classifier' needs test data (data.kind = 'blobs' or test_* keys)")

    def occupation_targets(t):
        t = np.asarray(t, dtype=float)
        return (t > 0).astype(float) if np.any(t < 0) else t

    return data.inputs, occupation_targets(data.targets), data.test_inputs, occupation_targets(data.test_targets)


def run_rydberg(ctx: RunContext) -> dict:
    from qep_analog.device.lab import lab_metadata, shot_bill
    from qep_analog.device.training import GlobalRydbergTask, RydbergTask
    from qep_analog.tasks.supervised import logistic_accuracy, logistic_regression

    spec, model0 = _model(ctx)
    global_only = not model0.device.dmm_channels
    x_train, t_train, x_test, t_test = _data(ctx, model0.hamiltonian(), model0)
    task_class = GlobalRydbergTask if global_only else RydbergTask
    if global_only:
        ctx.notes.append(f"{model0.device.name} has no DMM: global nudge (Δ → Δ ∓ β(1 − 2t)), cost over every atom "
                         "(Rydberg fraction), trainable positions and the global detuning")
    task = task_class(model=model0, backend=_backend(ctx, spec, model0), config=build_gradient_config(ctx.protocol),
                       inputs=x_train, targets=t_train, test_inputs=x_test, test_targets=t_test,
                       executor=ctx.executor)
    driver = drive(ctx, task, optimizer="sgd", learning_rate=1.0, steps=20, batch_size=4,
                   learning_rates={"positions": float(spec["training"]["position_learning_rate"])})
    model = task.model_at(driver.parameters_)
    hist = driver.history_
    w = logistic_regression(x_train, t_train[:, 0], l2=1e-3)
    totals = driver.totals()
    final = {k: hist[-1][k] for k in ("test_loss", "test_accuracy") if k in hist[-1]}
    shots = int(task.config.shots or 0)
    if shots and (task.config.shot_allocation != "uniform" or task.config.adaptive_beta):
        from qep_analog.learning.shots import sequence_runs  # pilot, probe and rest: separate runs (jobs)

        runs = sequence_runs(hist, shots)
    else:
        runs = [shots] * (totals["preparations"] // shots if shots else 0)  # one run per (sample, phase) of a step
    bill = shot_bill(runs, device=model.device, lab=lab_metadata(spec["device"]))
    final.update({"initial_test_accuracy": hist[0]["test_accuracy"], "initial_test_loss": hist[0]["test_loss"],
                  "steps": driver.step_, "preparations": totals["preparations"], "shot_bill": bill.as_dict(),
                  "nudge": "global" if global_only else "local",
                  "crossing_events": totals["crossing_events"],
                  "logistic_test_accuracy": logistic_accuracy(w, x_test, t_test[:, 0]),
                  "violations": model.violations(), "objective": task.config.objective.name,
                  "device": model.device.name})
    bundle = _export(ctx, spec, model, x_test[:4], task.test_targets[:4])
    return {"history": hist, "final": final,
            "theta": dict(zip(model.hamiltonian().parameter_names, model.theta().tolist(), strict=True)),
            "parameters": driver.named(),
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
    return {"written": True, "dir": "bundle", "sequences": len(manifest["sequences"]), "jobs": len(manifest["jobs"]),
            "shot_bill": manifest["shot_bill"]}
