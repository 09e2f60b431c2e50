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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import numpy as np
import pulser
from pulser.backend.abc import Backend
from pulser.devices import Device

from qep_analog.device.devices import device_json, load_device
from qep_analog.device.protocol_section import register_protocol_section
from qep_analog.device.rydberg import RydbergModel
from qep_analog.device.sequences import RampSpec, model_sequence
from qep_analog.equilibrium.adiabatic import nudge_to_detunings
from qep_analog.errors import QepValueError
from qep_analog.learning.objectives import Objective
from qep_analog.measurement.estimate import estimate_products
from qep_analog.measurement.sampling import ReadoutError, counts_to_bits
from qep_analog.models.pauli import PauliProduct

FORMAT, VERSION = "qep_analog.rydberg-bundle", 1
PHASES = ("free", "plus", "minus")
_NUMS = {"type": "array", "items": {"type": "number"}}
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["format", "version", "step", "device", "register", "model", "ramp", "parameters",
                 "training", "data", "sequences", "gradient_rule", "counts_format", "files", "checksum"],
    "properties": {
        "format": {"const": FORMAT},
        "version": {"const": VERSION},
        "step": {"type": "integer", "minimum": 0},
        "device": {"type": "object", "required": ["name", "file"]},
        "register": {"type": "object", "required": ["qubit_ids", "positions_um", "layout"]},
        "model": {"type": "object", "required": ["omega", "phase", "detunings", "input_atoms", "output_atoms",
                                                 "input_mode", "train_positions"]},
        "ramp": {"type": "object", "required": ["duration_ns", "start_detuning", "shape"]},
        "parameters": {"type": "object", "required": ["names", "values"],
                       "properties": {"names": {"type": "array", "items": {"type": "string"}}, "values": _NUMS}},
        "training": {"type": "object", "required": ["beta", "shots", "learning_rate", "position_learning_rate",
                                                    "objective", "estimator"],
                     "properties": {"beta": {"type": "number", "exclusiveMinimum": 0},
                                    "shots": {"type": "integer", "minimum": 1}}},
        "data": {"type": "object", "required": ["inputs", "targets"]},
        "sequences": {"type": "array", "minItems": 3, "items": {
            "type": "object", "required": ["id", "file", "sample", "phase", "beta", "shots", "observables"],
            "properties": {"phase": {"enum": list(PHASES)}, "shots": {"type": "integer", "minimum": 1}}}},
        "files": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
        "checksum": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
}


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _canonical(manifest: dict) -> str:
    return json.dumps({k: v for k, v in manifest.items() if k != "checksum"}, sort_keys=True,
                      separators=(",", ":"))


# ---------------------------------------------------------------------------- the QEP step spec
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
    return {
        "device": dev["name"],
        "model": {"positions_um": dev["positions_um"], "omega": dev["omega"], "phase": dev.get("phase", 0.0),
                  "detunings": dev["detunings"], "input_atoms": dev.get("input_atoms", []),
                  "output_atoms": dev.get("output_atoms", []), "input_mode": dev.get("input_mode", "local"),
                  "train_positions": dev.get("train_positions", True)},
        "ramp": {"duration_ns": dev.get("duration_ns", 3000), "start_detuning": dev.get("start_detuning", -20.0),
                 "shape": dev.get("shape", "cosine")},
        "layout": dev.get("layout", None),
        "data": {"inputs": data.get("inputs", [[] for _ in data["targets"]]), "targets": data["targets"]},
        "training": {"beta": grad.get("beta", 0.5), "shots": grad.get("shots", 500),
                     "learning_rate": train.get("learning_rate", 0.5),
                     "position_learning_rate": dev.get("position_learning_rate", 1.0),
                     "objective": "⟨Ĉ⟩, Ĉ = Σ(n_ℓ − t_ℓ)²", "estimator": "symmetric"},
    }


def model_from(spec: dict) -> RydbergModel:
    m = spec["model"]
    return RydbergModel(positions_um=m["positions_um"], device=spec["device_object"], omega=m["omega"],
                        phase=m["phase"], detunings=m["detunings"], input_atoms=tuple(m["input_atoms"]),
                        output_atoms=tuple(m["output_atoms"]), input_mode=m["input_mode"],
                        train_positions=m["train_positions"])


def sample_nudges(model: RydbergModel, target, beta: float) -> dict:
    """Per-phase detuning changes of one sample: ±β Ĉ(t) as local detunings on the outputs."""
    h = model.hamiltonian()
    objective = Objective(kind="cost-operator", loss="mse")
    cost = objective.cost_operator(h, objective.check_targets(h, target))
    return {"free": np.zeros(model.n_atoms), "plus": nudge_to_detunings(cost.scaled(beta), model.n_atoms),
            "minus": nudge_to_detunings(cost.scaled(-beta), model.n_atoms)}


# ---------------------------------------------------------------------------- atomic writing
@contextmanager
def atomic_directory(out_dir: str | Path, force: bool = False):
    """Yield a temporary directory that becomes ``out_dir`` only if the block succeeds."""
    out = Path(out_dir).resolve()
    if out.exists() and not force:
        raise QepValueError(f"output directory '{out}' already exists (use --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


# ---------------------------------------------------------------------------- export
def write_bundle(spec: dict, out_dir: str | Path, *, step: int = 0, force: bool = False, drawings: bool = True,
                 extra_files: dict[str, str] | None = None) -> dict:
    """Build every sequence of one QEP step for ``spec`` and write the bundle atomically."""
    device = load_device(spec["device"])
    spec = dict(spec, device_object=device)
    model = model_from(spec).validate()
    ramp = RampSpec(duration_ns=int(spec["ramp"]["duration_ns"]), start_detuning=spec["ramp"]["start_detuning"],
                    shape=spec["ramp"]["shape"])
    use_layout = spec.get("layout")
    use_layout = bool(device.requires_layout) if use_layout is None else bool(use_layout)
    layout_seconds = 0.0
    register = model.register()
    if use_layout:
        register, layout_seconds = model.register_with_layout()
    training = spec["training"]
    beta, shots = float(training["beta"]), int(training["shots"])
    inputs, targets = spec["data"]["inputs"], spec["data"]["targets"]
    if len(inputs) != len(targets):
        raise QepValueError(f"'data.inputs' has {len(inputs)} samples but 'data.targets' has {len(targets)}")
    h = model.hamiltonian()
    theta = model.theta()
    table, coef = h.derivative_map
    observables = sorted({str(p) for p in table.products} | {f"n{ell}" for ell in model.output_atoms})
    entries, texts, free_seq = [], {}, None
    for k, (x, t) in enumerate(zip(inputs, targets, strict=True)):
        controls = model.controls(theta, model.inputs(x))
        for phase, change in sample_nudges(model, t, beta).items():
            seq, plan = model_sequence(model, controls, ramp, nudge_detunings=change, register=register)
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
    texts["device.json"] = device_json(device)
    manifest = {
        "format": FORMAT, "version": VERSION, "step": int(step),
        "device": {"name": device.name, "file": "device.json", "spec": spec["device"]},
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
            "derivatives": {name: [[float(c), str(p)] for c, p in zip(coef[i], table.products, strict=True) if c]
                            for i, name in enumerate(h.parameter_names)},
            "positions": "dL/dr_i = sum_j dL/dJ_ij * (-6 C6 (r_i - r_j) / |r_i - r_j|^8)",
            "update": "theta <- project(theta - learning_rate * g); positions <- project(positions - "
                      "position_learning_rate * dL/dr)",
        },
        "counts_format": "COUNTS_DIR/<id>.json = {bitstring: count}; '1' = Rydberg; leftmost char = q0",
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
        jsonschema.validate(manifest, MANIFEST_SCHEMA)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def export_protocol(protocol_path: str | Path, out_dir: str | Path, *, force: bool = False,
                    drawings: bool = True) -> dict:
    """``qep-analog export``: read a protocol TOML and write the step-0 bundle."""
    from qep_analog.protocol import load_protocol

    register_protocol_section()
    protocol = load_protocol(protocol_path)
    return write_bundle(step_spec(protocol.sections), out_dir, force=force, drawings=drawings)


# ---------------------------------------------------------------------------- reading and update
def read_bundle(bundle_dir: str | Path, *, expected_device: str | None = None) -> dict:
    """Load and check a bundle: schema, version, checksum, file hashes, device identity."""
    root = Path(bundle_dir)
    path = root / "manifest.json"
    if not path.is_file():
        raise QepValueError(f"'{root}' is not a bundle: no manifest.json")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise QepValueError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(manifest, dict) and manifest.get("version") not in (None, VERSION):
        raise QepValueError(f"{path}: bundle version {manifest.get('version')!r}, this code reads {VERSION}")
    try:
        jsonschema.validate(manifest, MANIFEST_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "<root>"
        raise QepValueError(f"{path}: manifest field '{where}' is invalid: {exc.message}") from None
    if _sha(_canonical(manifest)) != manifest["checksum"]:
        raise QepValueError(f"{path}: checksum mismatch — the manifest was modified after export")
    for rel, digest in manifest["files"].items():
        f = root / rel
        if not f.is_file() or _sha(f.read_bytes()) != digest:
            raise QepValueError(f"{root}: file '{rel}' is missing or modified (sha256 mismatch)")
    device = load_device(str(root / manifest["device"]["file"]))
    if device.name != manifest["device"]["name"]:
        raise QepValueError(f"{path}: device.json is {device.name!r} but the manifest names "
                            f"{manifest['device']['name']!r}")
    if expected_device is not None:
        expected = load_device(expected_device)
        if expected.name != device.name or device_json(expected) != device_json(device):
            raise QepValueError(f"bundle '{root}' is for device {device.name!r}, not {expected.name!r}")
    manifest["_device_object"] = device
    try:
        model = model_from(spec_from_manifest(manifest))
        names = list(model.hamiltonian().parameter_names)
    except QepValueError as exc:
        raise QepValueError(f"{path}: the manifest's model is invalid: {exc}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise QepValueError(f"{path}: the manifest's model is invalid: {exc!r}") from None
    if names != manifest["parameters"]["names"]:
        raise QepValueError(f"{path}: parameter names {manifest['parameters']['names']} do not match the model's "
                            f"{names}")
    return manifest


def read_counts(manifest: dict, counts_dir: str | Path) -> dict[str, np.ndarray]:
    """Bits (shots × atoms) for every sequence of the bundle; errors name the file at fault."""
    n = len(manifest["register"]["qubit_ids"])
    out = {}
    for entry in manifest["sequences"]:
        f = Path(counts_dir) / f"{entry['id']}.json"
        if not f.is_file():
            raise QepValueError(f"counts file '{f}' is missing (one per sequence id)")
        try:
            counts = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise QepValueError(f"counts file '{f}': not valid JSON ({exc})") from None
        if not isinstance(counts, dict):
            raise QepValueError(f"counts file '{f}' must be a JSON object {{bitstring: count}}")
        try:
            out[entry["id"]] = counts_to_bits(counts, n)
        except QepValueError as exc:
            raise QepValueError(f"counts file '{f}': {exc} ({n} atoms in this bundle)") from None
    return out


def spec_from_manifest(manifest: dict) -> dict:
    return {"device": manifest["device"]["spec"], "device_object": manifest["_device_object"],
            "model": dict(manifest["model"], positions_um=manifest["register"]["positions_um"]),
            "ramp": dict(manifest["ramp"]), "layout": manifest["register"]["layout"],
            "data": dict(manifest["data"]), "training": dict(manifest["training"])}


def gradient_from_bits(manifest: dict, bits: dict[str, np.ndarray], readout=None) -> dict:
    """QEP gradient, standard errors and loss from the bitstrings of every sequence.

    ``readout`` (a measurement-layer ReadoutError) mitigates known readout flips by inverting the
    per-qubit confusion matrix (unbiased means, larger standard errors)."""
    model = model_from(spec_from_manifest(manifest))
    h = model.hamiltonian()
    if list(h.parameter_names) != manifest["parameters"]["names"]:
        raise QepValueError("manifest parameters do not match its model")
    table, coef = h.derivative_map
    by_sample: dict[int, dict] = {}
    for entry in manifest["sequences"]:
        by_sample.setdefault(entry["sample"], {})[entry["phase"]] = entry
    grads, variances, losses = [], [], []
    for k in sorted(by_sample):
        phases = by_sample[k]
        if set(phases) != set(PHASES):
            raise QepValueError(f"sample {k} lacks phases {sorted(set(PHASES) - set(phases))}")
        beta = phases["plus"]["beta"]
        m_plus, s_plus = estimate_products(bits[phases["plus"]["id"]], table.products, readout)
        m_minus, s_minus = estimate_products(bits[phases["minus"]["id"]], table.products, readout)
        grads.append(coef @ (m_plus - m_minus) / (2 * beta))
        variances.append((coef**2) @ (s_plus**2 + s_minus**2) / (2 * beta) ** 2)
        t = np.asarray(phases["free"]["target"])
        outs = [PauliProduct.parse(f"n{ell}", model.n_atoms) for ell in model.output_atoms]
        n_out, _ = estimate_products(bits[phases["free"]["id"]], outs, readout)
        losses.append(float(np.sum(n_out * (1 - 2 * t) + t**2)))
    grad = np.mean(grads, axis=0)
    stderr = np.sqrt(np.sum(variances, axis=0)) / len(grads)
    return {"names": list(h.parameter_names), "gradient": grad, "stderr": stderr, "loss": float(np.mean(losses))}


def apply_update(model: RydbergModel, gradient, *, learning_rate: float, position_learning_rate: float,
                 ) -> RydbergModel:
    """θ ← θ − η ĝ for local detunings, r ← r − η_r ∂L/∂r for positions, projected on the device."""
    grad_pos, grad_det = model.split_gradient(gradient)
    det = model.detunings - learning_rate * grad_det
    pos = model.positions_um - (position_learning_rate * grad_pos if model.train_positions else 0.0)
    return model.project(positions_um=pos, detunings=det)


def update_bundle(bundle_dir: str | Path, counts_dir: str | Path, out_dir: str | Path | None = None, *,
                  expected_device: str | None = None, force: bool = False, drawings: bool = True,
                  readout: ReadoutError | None = None) -> dict:
    """``qep-analog update``: counts → gradient → new parameters → the next bundle (atomic).

    ``readout="device"`` mitigates with the SPAM rates of the bundle's device noise model."""
    manifest = read_bundle(bundle_dir, expected_device=expected_device)
    bits = read_counts(manifest, counts_dir)
    if readout == "device":
        nm = manifest["_device_object"].noise_model
        if nm is None or "SPAM" not in nm.noise_types:
            raise QepValueError(f"readout mitigation: device {manifest['device']['name']!r} has no SPAM noise model")
        readout = ReadoutError(p_false_pos=float(nm.p_false_pos), p_false_neg=float(nm.p_false_neg))
    result = gradient_from_bits(manifest, bits, readout)
    spec = spec_from_manifest(manifest)
    model = model_from(spec)
    training = manifest["training"]
    new_model = apply_update(model, result["gradient"], learning_rate=training["learning_rate"],
                             position_learning_rate=training["position_learning_rate"])
    spec["model"] = dict(spec["model"], positions_um=new_model.positions_um.tolist(),
                         detunings=new_model.detunings.tolist())
    step = manifest["step"] + 1
    out = Path(out_dir) if out_dir is not None else Path(f"{Path(bundle_dir).resolve()}_step{step}")
    report = {"from_bundle": str(Path(bundle_dir).resolve()), "from_step": manifest["step"],
              "names": result["names"], "gradient": result["gradient"].tolist(),
              "stderr": result["stderr"].tolist(), "loss": result["loss"],
              "readout_mitigation": None if readout is None else [readout.p_false_pos, readout.p_false_neg],
              "positions_um": new_model.positions_um.tolist(), "detunings": new_model.detunings.tolist(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    spec.pop("device_object")
    write_bundle(spec, out, step=step, force=force, drawings=drawings,
                 extra_files={"gradient.json": json.dumps(report, indent=1)})
    return dict(report, out_dir=str(out))


# ---------------------------------------------------------------------------- emulated lab
def simulate_counts(bundle_dir: str | Path, counts_dir: str | Path, *, seed: int = 0, shots: int | None = None,
                    noise_model=None, n_trajectories: int | None = None) -> None:
    """Play the lab: run every bundle sequence (loaded from its JSON) in pulser-simulation and write
    counts sampled from the final state with a seeded Generator (atomic write). A noise model's SPAM
    readout flips (p_false_pos, p_false_neg) are applied to the sampled bits, as a detector would."""
    from qep_analog.equilibrium.adiabatic import emulate_pulser
    from qep_analog.measurement.sampling import ReadoutError, bits_to_counts

    readout = None
    if noise_model is not None and "SPAM" in noise_model.noise_types:
        readout = ReadoutError(p_false_pos=float(noise_model.p_false_pos), p_false_neg=float(noise_model.p_false_neg))

    manifest = read_bundle(bundle_dir)
    rng = np.random.default_rng(seed)
    n = len(manifest["register"]["qubit_ids"])
    with atomic_directory(counts_dir) as tmp:
        for entry in manifest["sequences"]:
            seq = pulser.Sequence.from_abstract_repr((Path(bundle_dir) / entry["file"]).read_text())
            state = emulate_pulser(seq, noise_model=noise_model, n_trajectories=n_trajectories)
            probs = np.abs(state) ** 2 if state.ndim == 1 else np.clip(np.real(np.diag(state)), 0, None)
            hits = rng.multinomial(shots or entry["shots"], probs / probs.sum())
            counts = {format(i, f"0{n}b"): int(c) for i, c in enumerate(hits) if c}
            if readout is not None:
                counts = bits_to_counts(readout.apply(counts_to_bits(counts, n), rng))
            (tmp / f"{entry['id']}.json").write_text(json.dumps(counts), encoding="utf-8")
