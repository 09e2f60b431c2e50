"""Protocol bundles: every sequence of a QEP step as pulser JSON, a manifest, drawings; and the update.

A bundle directory holds::

    manifest.json          versioned, schema-validated, with a checksum of its own content
    device.json            the pulser device (abstract repr)
    sequences/<id>.json    pulser abstract-repr sequences, one per (sample, phase ∈ free, plus, minus)
    drawings/register.png, drawings/free_sequence.png   pulser's own drawings (Agg backend)

QEP step on a Rydberg array (cost-operator nudging; Ĉ = Σ_ℓ (n_ℓ − t_ℓ)² is linear in n_ℓ):
each sample runs free, +β and −β sequences; the ±β nudge is β(1 − 2t_ℓ) n_ℓ → δ_ℓ − ±β(1 − 2t_ℓ),
ramped with the controls. From Z-basis counts, ∂⟨Ĉ⟩/∂θ_k ≈ mean over samples of
[⟨A_k⟩_{+β} − ⟨A_k⟩_{−β}]/(2β) with A = ∂H/∂J_ij = n_i n_j and ∂H/∂δ_i = −n_i; positions follow by
the chain rule ∂J_ij/∂r_i = −6 C6 (r_i − r_j)/r_ij⁸. ``update`` reads the lab's counts
(``COUNTS_DIR/<id>.json`` = {bitstring: count}, '1' = Rydberg, leftmost = q0), applies
Δθ = −η ĝ projected onto the device limits, and writes the next bundle. Writes are atomic.

Reading and checking a returned bundle is :mod:`qep_analog.device.bundle_io`; the update from counts
and the emulated lab are :mod:`qep_analog.device.bundle_lab`.

Devices without a DMM (e.g. ``fresnel_like``: global drive only) take only a global nudge: the cost must be
Ĉ = Σ_i (n_i − t)² over every atom (N × the Rydberg-fraction cost), whose ±β nudge β(1 − 2t) Σ_i n_i shifts
the global detuning by ∓β(1 − 2t); the detunings stay uniform (one global Δ, updated by Σ_i ∂L/∂δ_i) and the
inputs must be global. Export refuses a local nudge on such a device and says why. Every sequence is split
into jobs of at most ``max_runs_per_job`` runs (lab sidecar, else pulser's ``max_runs``), listed in the
manifest's ``jobs``; ``shot_bill`` states the step's shots, jobs, hours and cost (:mod:`qep_analog.device.lab`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pulser
from pulser.backend.abc import Backend
from pulser.devices import Device

from qep_analog.device import limits
from qep_analog.device.bundle_io import (
    FORMAT,
    PHASES,
    VERSION,
    _canonical,
    _check_ramp,
    _dumps,
    _sha,
    _validate_schema,
    atomic_directory,
    model_from,
)
from qep_analog.device.devices import device_json, load_device
from qep_analog.device.lab import job_split, lab_metadata, shot_bill
from qep_analog.device.limits import check_number, show
from qep_analog.device.protocol_section import register_protocol_section
from qep_analog.device.pulse_limits import check_pulse_limits
from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium.adiabatic import AdiabaticBackend, nudge_to_detunings
from qep_analog.equilibrium.schedules import DEFAULT_BOUNDARY, DEFAULT_POINTS, GAP_AWARE, SCHEDULES
from qep_analog.errors import QepValueError
from qep_analog.learning.objectives import Objective
from qep_analog.measurement.observables import derivative_structure


def step_spec(protocol_sections: dict) -> dict:
    """Normalise the ``[device]``, ``[data]``, ``[gradient]``, ``[training]`` sections of a protocol."""
    dev = dict(protocol_sections.get("device", {}))
    data = protocol_sections.get("data", {})
    grad = protocol_sections.get("gradient", {})
    train = protocol_sections.get("training", {})
    for key in ("name", "positions_um", "omega", "detunings"):
        if key not in dev:
            raise QepValueError(f"missing key 'device.{key}'")
    if grad.get("nudge", "cost-operator") != "cost-operator" or grad.get("estimator", "symmetric") != "symmetric":
        raise QepValueError("a Rydberg bundle runs symmetric cost-operator QEP (the nudge must be known before "
                            "the free phase is measured); set gradient.nudge = 'cost-operator', "
                            "gradient.estimator = 'symmetric'")
    if "targets" not in data:
        raise QepValueError("missing key 'data.targets' (inline data: inputs per input atom, targets per output)")
    if not isinstance(data["targets"], list):
        raise QepValueError(f"'data.targets' must be a list (one list of targets per sample), not "
                            f"{show(data['targets'])}")
    return {
        "device": dev["name"],
        "model": {"positions_um": dev["positions_um"], "omega": dev["omega"], "phase": dev.get("phase", 0.0),
                  "detunings": dev["detunings"], "input_atoms": dev.get("input_atoms", []),
                  "output_atoms": dev.get("output_atoms", []), "input_mode": dev.get("input_mode", "local"),
                  "train_positions": dev.get("train_positions", True)},
        "ramp": _ramp_spec(dev),
        "layout": dev.get("layout", None),
        "data": {"inputs": data.get("inputs", [[] for _ in data["targets"]]), "targets": data["targets"]},
        "training": {"beta": grad.get("beta", 0.5), "shots": grad.get("shots", 500),
                     "learning_rate": train.get("learning_rate", 0.5),
                     "position_learning_rate": dev.get("position_learning_rate", 1.0),
                     "objective": "⟨Ĉ⟩, Ĉ = Σ(n_ℓ − t_ℓ)²", "estimator": "symmetric"},
    }


def _ramp_spec(dev: dict) -> dict:
    """``[device]`` ramp keys: duration, start detuning, ``shape`` (any schedule of the adiabatic backend) and, for
    the gap-aware schedules, ``schedule_boundary`` and ``schedule_points`` (the backend's defaults if absent)."""
    ramp = {"duration_ns": dev.get("duration_ns", 3000), "start_detuning": dev.get("start_detuning", -20.0),
            "shape": dev.get("shape", "cosine")}
    if ramp["shape"] not in SCHEDULES:
        raise QepValueError(f"'device.shape' must be one of {SCHEDULES}, not {show(ramp['shape'])}")
    if ramp["shape"] in GAP_AWARE:
        ramp["schedule_boundary"] = dev.get("schedule_boundary", DEFAULT_BOUNDARY)
        ramp["schedule_points"] = dev.get("schedule_points", DEFAULT_POINTS)
    return ramp


def preparation_backend(model: RydbergModel, ramp: dict, *, emulator: str = "krylov") -> AdiabaticBackend:
    """The adiabatic backend that builds a bundle's sequences: the ramp's schedule (for a gap-aware one, computed
    per sample from the free path and shared by its ±β sequences), duration and start detuning. Training with the
    same ``[device]`` ramp (``tasks/rydberg.py``) builds its sequences with this same backend method
    (:meth:`AdiabaticBackend.sequence`), so the lab plays the pulses that were emulated."""
    shape = ramp.get("shape", "cosine")
    if shape not in SCHEDULES:
        raise QepValueError(f"'ramp.shape' must be one of {SCHEDULES}, not {show(shape)}")
    options = {}
    if shape in GAP_AWARE:
        check_number(ramp.get("schedule_boundary", DEFAULT_BOUNDARY), "ramp.schedule_boundary", low=1e-9, high=1.0)
        check_number(ramp.get("schedule_points", DEFAULT_POINTS), "ramp.schedule_points", low=3, high=1001,
                     integer=True)
        options = dict(schedule_boundary=float(ramp.get("schedule_boundary", DEFAULT_BOUNDARY)),
                       schedule_points=int(ramp.get("schedule_points", DEFAULT_POINTS)))
    return AdiabaticBackend(model=model, duration_ns=int(ramp["duration_ns"]),
                            start_detuning=float(ramp["start_detuning"]), schedule=shape, emulator=emulator,
                            compare_exact=False, **options)


def sample_nudge_operators(model: RydbergModel, target, beta: float) -> dict:
    """Per-phase nudge operators of one sample: None (free), +β Ĉ(t), −β Ĉ(t), Ĉ = Σ_ℓ (n_ℓ − t_ℓ)²."""
    h = model.hamiltonian()
    objective = Objective(kind="cost-operator", loss="mse")
    cost = objective.cost_operator(h, objective.check_targets(h, target))
    return {"free": None, "plus": cost.scaled(beta), "minus": cost.scaled(-beta)}


def sample_nudges(model: RydbergModel, target, beta: float) -> dict:
    """Per-phase detuning changes of one sample: ±β Ĉ(t) as local detunings on the outputs."""
    return {phase: nudge_to_detunings(op, model.n_atoms)
            for phase, op in sample_nudge_operators(model, target, beta).items()}


PREPARATION_FLAG = 0.03  # second-ramp distance above which a sample is flagged (bench/adiabatic_qep.py, issue 14)


MAX_ESTIMATED_ATOMS = 12  # the export emulates each sequence (state vector) to estimate its preparation error


def _ground_state(matrix) -> tuple[np.ndarray, float]:
    """(ground state, gap E₁ − E₀) of a sparse Hermitian matrix: dense ``eigh`` up to 2¹⁰, else Lanczos."""
    import scipy.linalg
    import scipy.sparse.linalg

    if matrix.shape[0] <= 1024:
        w, v = scipy.linalg.eigh(matrix.toarray())
    else:
        w, v = scipy.sparse.linalg.eigsh(matrix, k=2, which="SA", tol=1e-10)
        order = np.argsort(w)
        w, v = w[order], v[:, order]
    return v[:, 0], float(w[1] - w[0])


def _preparation_estimate(backend: AdiabaticBackend, h, theta, xv, nudge, seq, *, free: bool) -> dict:
    """1 − F of the exported sequence, emulated noiselessly by the backend, against the exact ground state of
    H(θ, x) + nudge; for the free phase also the backend's no-exact-state estimate (second-ramp distance)."""
    state = backend.run_sequence(seq)
    state = state / np.linalg.norm(state)
    extra = None if nudge is None else nudge.matrix(h.n_qubits)
    ground, gap = _ground_state(h.matrix(theta, xv, extra=extra))
    out = {"infidelity": float(min(max(1.0 - abs(np.vdot(ground, state)) ** 2, 0.0), 1.0)), "gap": max(gap, 0.0)}
    if free:
        quality = backend.preparation_quality(h, theta, xv, state)
        out.update(second_ramp_distance=min(float(quality["second_ramp_distance"]), 1.0),
                   second_ramp_ns=int(quality["second_ramp_ns"]))
    return out


def _draw(seq: pulser.Sequence, register, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir()
    try:
        register.draw(fig_name=str(folder / "register.png"), show=False)
        plt.close("all")
        # pulser appends "_pulses" to the figure name: drawings/free_sequence_pulses.png
        seq.draw(mode="input", fig_name=str(folder / "free_sequence.png"), show=False)
    finally:
        plt.close("all")


def check_nudge_realisable(model: RydbergModel, targets) -> str:
    """'local' on a device with a DMM; 'global' on one without, after checking that every control is global:
    uniform detunings, global inputs, and a cost over every atom with one target per sample (so that the
    ±β nudge β Σ_i (1 − 2t) n_i is a shift of the global detuning). Raise naming the reason otherwise."""
    device = model.device
    if device.dmm_channels:
        return "local"
    name, n = device.name, model.n_atoms
    why = f"{name} has no DMM (global drive only), so QEP can only nudge the global detuning"
    if set(model.output_atoms) != set(range(n)):
        raise QepValueError(f"a local nudge cannot run on {name}: the ±β nudge β(1 − 2t_ℓ) n_ℓ on output atoms "
                            f"{list(model.output_atoms)} is a local detuning, and {why}. Use a global cost: "
                            f"'device.output_atoms' = every atom (the Rydberg fraction), one target for all")
    for k, t in enumerate(targets):
        if len(set(map(float, t))) > 1:
            raise QepValueError(f"a local nudge cannot run on {name}: 'data.targets[{k}]' = {show(t)} differ between "
                                f"atoms, so the nudge β Σ_i (1 − 2t_i) n_i is local, and {why}")
    if np.ptp(model.detunings) > 1e-9:
        raise QepValueError(f"'device.detunings' = {show(model.detunings.tolist())} are not uniform, and {why} "
                            "(and detune every atom alike)")
    if model.input_atoms and model.input_mode != "global":
        raise QepValueError(f"local inputs on atoms {list(model.input_atoms)} need a DMM, and {why}; set "
                            "'device.input_mode' = 'global' (inputs are (Ω, global Δ))")
    return "global"


def _lab_for(device, name: str, *, trusted: bool):
    """The device's lab sidecar. A protocol's own device spec (``trusted``) may be a name or a JSON path; a name
    read from a returned manifest is only looked up as a stem in the device directories, and its sidecar is
    used only if that directory's device is the bundle's verified device (never a path from the manifest)."""
    if trusted:
        return lab_metadata(name)
    if not isinstance(name, str) or any(c in name for c in "/\\") or name.endswith(".json") or name.startswith("."):
        return None
    try:
        same = device_json(load_device(name)) == device_json(device)
    except QepValueError:
        return None
    return lab_metadata(name) if same else None


def write_bundle(spec: dict, out_dir: str | Path, *, step: int = 0, force: bool = False, drawings: bool = True,
                 extra_files: dict[str, str] | None = None, estimate_preparation: bool | None = None) -> dict:
    """Build every sequence of one QEP step for ``spec`` and write the bundle atomically.

    The sequences come from :func:`preparation_backend` (the same method training uses), each checked against
    the device's limits (:mod:`qep_analog.device.pulse_limits`). ``estimate_preparation`` (default: up to
    ``MAX_ESTIMATED_ATOMS`` atoms) emulates every sequence without noise and records its 1 − F against the exact
    ground state, and for each free phase the second-ramp distance; the manifest's ``preparation`` summarises
    them and flags the samples whose distance exceeds ``PREPARATION_FLAG``."""
    device = load_device(spec["device"])
    device_spec = spec.get("device_spec", spec["device"] if isinstance(spec["device"], str) else device.name)
    spec = dict(spec, device_object=device)
    model = model_from(spec).validate()
    _check_ramp(spec["ramp"], device, "ramp")
    training = spec["training"]
    check_number(training["beta"], "gradient.beta", low=0, high=limits.MAX_RATE_RAD_PER_US)
    check_number(training["learning_rate"], "training.learning_rate", low=0, high=limits.MAX_LEARNING_RATE)
    check_number(training["position_learning_rate"], "device.position_learning_rate", low=0,
                 high=limits.MAX_LEARNING_RATE)
    check_number(training["shots"], "gradient.shots", low=limits.MIN_BUNDLE_SHOTS, high=limits.MAX_SHOTS,
                 integer=True)
    beta, shots = float(training["beta"]), int(training["shots"])
    if beta <= 0:
        raise QepValueError(f"'gradient.beta' must be > 0, not {beta}")
    inputs, targets = spec["data"]["inputs"], spec["data"]["targets"]
    for key, rows, (low, high) in (("data.inputs", inputs, (-limits.MAX_RATE_RAD_PER_US, limits.MAX_RATE_RAD_PER_US)),
                                   ("data.targets", targets, (0.0, 1.0))):
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise QepValueError(f"'{key}' must be a list of lists of numbers, not {show(rows)}")
        for k, row in enumerate(rows):
            for i, value in enumerate(row):
                check_number(value, f"{key}[{k}][{i}]", low=low, high=high)
    if len(inputs) != len(targets):
        raise QepValueError(f"'data.inputs' has {len(inputs)} samples but 'data.targets' has {len(targets)}")
    if not 1 <= len(targets) <= limits.MAX_SAMPLES:
        raise QepValueError(f"a bundle holds 1 to {limits.MAX_SAMPLES} samples, not {len(targets)} ('data.targets')")
    total_ns = len(PHASES) * len(targets) * int(spec["ramp"]["duration_ns"])
    if total_ns > limits.MAX_BUNDLE_NS:
        raise QepValueError(f"the bundle would hold {len(PHASES) * len(targets)} sequences of "
                            f"{spec['ramp']['duration_ns']} ns = {total_ns:,} ns of pulses, more than the "
                            f"{limits.MAX_BUNDLE_NS:,} ns a bundle may hold; use fewer samples ('data.targets') "
                            "or a shorter ramp ('duration_ns')")
    backend = preparation_backend(model, spec["ramp"])
    if estimate_preparation is None:
        estimate_preparation = model.n_atoms <= MAX_ESTIMATED_ATOMS
    nudge_kind = check_nudge_realisable(model, targets)
    use_layout = spec.get("layout")
    use_layout = bool(device.requires_layout) if use_layout is None else bool(use_layout)
    layout_seconds = 0.0
    register = model.register()
    if use_layout:
        register, layout_seconds = model.register_with_layout()
    h = model.hamiltonian()
    theta = model.theta()
    products, coef = derivative_structure(h)  # no 2^N table: any register size
    observables = sorted({str(p) for p in products} | {f"n{ell}" for ell in model.output_atoms})
    entries, texts, free_seq = [], {}, None
    from tqdm.auto import tqdm

    samples = tqdm(list(zip(inputs, targets, strict=True)), desc="export", unit="sample", leave=False,
                   disable=None if total_ns > 100_000 else True)  # a bar only on a terminal, for long exports
    worst_slew = worst_lag = 0.0
    try:
        for k, (x, t) in enumerate(samples):
            xv = model.inputs(x)
            for phase, nudge in sample_nudge_operators(model, t, beta).items():
                change = nudge_to_detunings(nudge, model.n_atoms)
                seq, plan = backend.sequence(theta, xv, nudge, register=register)
                for load in check_pulse_limits(seq, what=f"sequence s{k:03d}_{phase}"):
                    worst_slew, worst_lag = max(worst_slew, load.slew_fraction), max(worst_lag, load.lag_fraction)
                if isinstance(device, Device):
                    try:
                        Backend.validate_sequence(seq, mimic_qpu=use_layout)
                    except (ValueError, TypeError) as exc:
                        raise QepValueError(f"sequence s{k:03d}_{phase} fails pulser's validation on "
                                            f"{device.name}: {exc}") from None
                text = seq.to_abstract_repr()
                try:
                    pulser.Sequence.from_abstract_repr(text)  # must round-trip
                except Exception as exc:  # pulser raises schema / value errors of several kinds
                    raise QepValueError(
                        f"sequence s{k:03d}_{phase} does not round-trip through pulser JSON: {exc}"
                    ) from None
                sid = f"s{k:03d}_{phase}"
                texts[f"sequences/{sid}.json"] = text
                if free_seq is None:
                    free_seq = seq
                sign = {"free": 0.0, "plus": 1.0, "minus": -1.0}[phase]
                entries.append({"id": sid, "file": f"sequences/{sid}.json", "sample": k, "phase": phase,
                                "beta": sign * beta, "shots": shots, "input": list(map(float, x)),
                                "target": list(map(float, t)), "nudge_detunings": change.tolist(),
                                "final_detunings": plan.realised.tolist(), "dmm_plan": plan.reason,
                                "observables": observables if phase != "free" else [f"n{e}" for e in
                                                                                   model.output_atoms]})
                if estimate_preparation:
                    entries[-1]["preparation"] = _preparation_estimate(backend, h, theta, xv, nudge, seq,
                                                                       free=phase == "free")
    finally:  # on a terminal, the bar must be gone before an error line is printed
        samples.close()
    texts["device.json"] = device_json(device)
    lab = _lab_for(device, spec["device"] if isinstance(spec["device"], str) else device_spec,
                   trusted=isinstance(spec["device"], str))
    runs = (lab.max_runs_per_job if lab is not None else None) or device.max_runs
    jobs = [{"id": f"{e['id']}_j{j}" if len(split) > 1 else e["id"], "sequence": e["id"], "runs": r}
            for e in entries for split in [job_split(e["shots"], runs)] for j, r in enumerate(split)]
    bill = shot_bill([e["shots"] for e in entries], device=device, lab=lab)
    manifest = {
        "format": FORMAT, "version": VERSION, "step": int(step),
        "device": {"name": device.name, "file": "device.json", "spec": str(device_spec)},
        "register": {"qubit_ids": list(model.qubit_ids), "positions_um": model.positions_um.tolist(),
                     "layout": use_layout, "layout_seconds": layout_seconds},
        "model": {"omega": model.omega, "phase": model.phase, "detunings": model.detunings.tolist(),
                  "input_atoms": list(model.input_atoms), "output_atoms": list(model.output_atoms),
                  "input_mode": model.input_mode, "train_positions": model.train_positions},
        "ramp": dict(spec["ramp"]),
        "parameters": {"names": list(h.parameter_names), "values": theta.tolist()},
        "training": dict(training),
        "data": {"inputs": [list(map(float, x)) for x in inputs], "targets": [list(map(float, t)) for t in targets]},
        "sequences": entries,
        "gradient_rule": {
            "estimator": "g_k = mean_samples (<A_k>_plus - <A_k>_minus) / (2 beta)",
            "derivatives": {name: [[float(c), str(p)] for c, p in zip(coef[i], products, strict=True) if c]
                            for i, name in enumerate(h.parameter_names)},
            "positions": "dL/dr_i = sum_j dL/dJ_ij * (-6 C6 (r_i - r_j) / |r_i - r_j|^8)",
            "update": "theta <- project(theta - learning_rate * g); positions <- project(positions - "
                      "position_learning_rate * dL/dr)",
        },
        "counts_format": "COUNTS_DIR/<id>.json = {bitstring: count}; '1' = Rydberg; leftmost char = q0"
                         "; a sequence split into jobs (see 'jobs') gets one counts file: the sum of its jobs' counts",
        "preparation": _preparation_summary(spec["ramp"]["shape"], entries, estimate_preparation, model.n_atoms),
        "pulse_limits": {"max_slew_fraction": worst_slew, "max_lag_fraction": worst_lag,
                         "rule": "slew = max|dx/dt| / (full scale / channel rise time); lag = max|modulated − x| / "
                                 "max|x| (pulser channel.modulate, ends held)"},
        "nudge": nudge_kind,
        "jobs": jobs,
        "shot_bill": bill.as_dict(),
    }
    texts.update(extra_files or {})
    with atomic_directory(out_dir, force=force) as tmp:
        (tmp / "sequences").mkdir()
        for rel, text in texts.items():
            (tmp / rel).write_text(text, encoding="utf-8")
        if drawings:
            _draw(free_seq, register, tmp / "drawings")
        manifest["files"] = {str(p.relative_to(tmp)): _sha(p.read_bytes()) for p in sorted(tmp.rglob("*"))
                             if p.is_file()}
        manifest["checksum"] = _sha(_canonical(manifest))
        _validate_schema(manifest, "the bundle to write")
        (tmp / "manifest.json").write_text(_dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def _preparation_summary(schedule: str, entries: list[dict], estimated: bool, n_atoms: int) -> dict:
    if not estimated:
        return {"schedule": schedule, "estimated": False,
                "reason": f"not estimated ({n_atoms} atoms; the export emulates up to {MAX_ESTIMATED_ATOMS})"}
    infidelity = [e["preparation"]["infidelity"] for e in entries]
    distance = {e["id"]: e["preparation"]["second_ramp_distance"] for e in entries if e["phase"] == "free"}
    return {"schedule": schedule, "estimated": True,
            "estimator": "1 - F: noiseless emulation (krylov) of each exported sequence against the exact ground "
                         "state of H(theta, x) + nudge; second_ramp_distance: total-variation distance of the "
                         "Z-basis distributions after the ramp and after a shortened one (needs no exact state)",
            "max_infidelity": float(max(infidelity)), "median_infidelity": float(np.median(infidelity)),
            "max_second_ramp_distance": float(max(distance.values())), "flag_threshold": PREPARATION_FLAG,
            "flagged": sorted(sid for sid, d in distance.items() if d > PREPARATION_FLAG)}


def export_protocol(protocol_path: str | Path, out_dir: str | Path, *, force: bool = False,
                    drawings: bool = True) -> dict:
    """``qep-analog export``: read a protocol TOML and write the step-0 bundle."""
    from qep_analog.protocol import load_protocol

    register_protocol_section()
    try:
        protocol = load_protocol(protocol_path)
        return write_bundle(step_spec(protocol.sections), out_dir, force=force, drawings=drawings)
    except QepValueError as exc:  # name the protocol file unless the message already names a file
        if str(protocol_path) in str(exc) or str(exc).startswith(("output directory", "device file", "cannot")):
            raise
        raise QepValueError(f"{protocol_path}: {exc}") from None
