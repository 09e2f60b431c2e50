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

A bundle comes back from a lab and is untrusted input. The manifest's checksum is an unkeyed SHA-256:
it catches accidental edits and truncation, not deliberate ones (anyone can recompute it). So
:func:`read_bundle` also checks every field on its own: sequence ids match ``ID_PATTERN``, every path
is relative, resolved and confined to the bundle, every file read is one of the hashed files and is
hashed again when read, every number is finite and within :mod:`qep_analog.device.limits` and the
device's limits, and the parameters, sequences and data agree with each other. Counts files must be
JSON objects {bitstring: integer count} whose total lies in [⌈0.9·shots⌉, shots] of the manifest.
Output directories are created like ``mkdir`` does (mode 0777 minus the umask), as ``train`` does.

Devices without a DMM (e.g. ``fresnel_like``: global drive only) take only a global nudge: the cost must be
Ĉ = Σ_i (n_i − t)² over every atom (N × the Rydberg-fraction cost), whose ±β nudge β(1 − 2t) Σ_i n_i shifts
the global detuning by ∓β(1 − 2t); the detunings stay uniform (one global Δ, updated by Σ_i ∂L/∂δ_i) and the
inputs must be global. Export refuses a local nudge on such a device and says why. Every sequence is split
into jobs of at most ``max_runs_per_job`` runs (lab sidecar, else pulser's ``max_runs``), listed in the
manifest's ``jobs``; ``shot_bill`` states the step's shots, jobs, hours and cost (:mod:`qep_analog.device.lab`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import numpy as np
import pulser
from pulser.backend.abc import Backend
from pulser.devices import Device

from qep_analog.device import limits
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
from qep_analog.measurement.estimate import estimate_products
from qep_analog.measurement.observables import derivative_structure
from qep_analog.measurement.sampling import ReadoutError, counts_to_bits
from qep_analog.models.pauli import PauliProduct

FORMAT, VERSION = "qep_analog.rydberg-bundle", 1
PHASES = ("free", "plus", "minus")
ID_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"  # a file stem: no '/', no leading dot, ≤ 64 characters
# a relative path of such names ('sequences/s000_free.json'): no '..', no absolute path, no hidden files
PATH_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}){0,3}$"
_RATE, _POS = limits.MAX_RATE_RAD_PER_US, limits.MAX_POSITION_UM


def _num(low: float, high: float, **extra) -> dict:
    return {"type": "number", "minimum": low, "maximum": high, **extra}


def _int(low: int, high: int) -> dict:
    return {"type": "integer", "minimum": low, "maximum": high}


def _array(items: dict, max_items: int, min_items: int = 0) -> dict:
    return {"type": "array", "items": items, "minItems": min_items, "maxItems": max_items}


_ATOM = _int(0, limits.MAX_ATOMS - 1)
_RATES = _array(_num(-_RATE, _RATE), limits.MAX_ATOMS)
_SHOTS = _int(limits.MIN_BUNDLE_SHOTS, limits.MAX_SHOTS)
_TEXT = {"type": "string", "maxLength": 256}
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["format", "version", "step", "device", "register", "model", "ramp", "parameters",
                 "training", "data", "sequences", "gradient_rule", "counts_format", "files", "checksum"],
    "properties": {
        "format": {"const": FORMAT},
        "version": {"const": VERSION},
        "step": _int(0, limits.MAX_STEP),
        "device": {"type": "object", "required": ["name", "file"],
                   "properties": {"name": _TEXT, "file": {"const": "device.json"}, "spec": _TEXT}},
        "register": {"type": "object", "required": ["qubit_ids", "positions_um", "layout"], "properties": {
            "qubit_ids": _array({"type": "string", "pattern": ID_PATTERN}, limits.MAX_ATOMS, 1),
            "positions_um": _array(_array(_num(-_POS, _POS), 2, 2), limits.MAX_ATOMS, 1),
            "layout": {"type": "boolean"}, "layout_seconds": _num(0, 1e6)}},
        "model": {"type": "object", "required": ["omega", "phase", "detunings", "input_atoms", "output_atoms",
                                                 "input_mode", "train_positions"], "properties": {
            "omega": _num(-_RATE, _RATE), "phase": _num(-limits.MAX_PHASE_RAD, limits.MAX_PHASE_RAD),
            "detunings": _RATES, "input_atoms": _array(_ATOM, limits.MAX_ATOMS),
            "output_atoms": _array(_ATOM, limits.MAX_ATOMS, 1), "input_mode": {"enum": ["local", "global"]},
            "train_positions": {"type": "boolean"}}},
        "ramp": {"type": "object", "required": ["duration_ns", "start_detuning", "shape"], "properties": {
            "duration_ns": _int(1, limits.MAX_DURATION_NS), "start_detuning": _num(-_RATE, _RATE),
            "shape": {"enum": list(SCHEDULES)}, "schedule_boundary": _num(0, 1, exclusiveMinimum=0),
            "schedule_points": _int(3, 1001)}},
        "preparation": {"type": "object", "required": ["schedule", "estimated"], "properties": {
            "schedule": {"enum": list(SCHEDULES)}, "estimated": {"type": "boolean"}, "estimator": _TEXT,
            "reason": _TEXT, "max_infidelity": _num(0, 1), "median_infidelity": _num(0, 1),
            "max_second_ramp_distance": _num(0, 1), "flag_threshold": _num(0, 1),
            "flagged": _array({"type": "string", "pattern": ID_PATTERN}, 3 * limits.MAX_SAMPLES)}},
        "pulse_limits": {"type": "object", "properties": {
            "max_slew_fraction": _num(0, 1e6), "max_lag_fraction": _num(0, 1e6), "rule": _TEXT}},
        "parameters": {"type": "object", "required": ["names", "values"], "properties": {
            "names": _array(_TEXT, 100_000), "values": _array(_num(-1e15, 1e15), 100_000)}},
        "training": {"type": "object", "required": ["beta", "shots", "learning_rate", "position_learning_rate",
                                                    "objective", "estimator"],
                     "properties": {"beta": _num(0, _RATE, exclusiveMinimum=0), "shots": _SHOTS,
                                    "learning_rate": _num(0, limits.MAX_LEARNING_RATE),
                                    "position_learning_rate": _num(0, limits.MAX_LEARNING_RATE),
                                    "objective": _TEXT, "estimator": {"const": "symmetric"}}},
        "data": {"type": "object", "required": ["inputs", "targets"], "properties": {
            "inputs": _array(_RATES, limits.MAX_SAMPLES),
            "targets": _array(_array(_num(0, 1), limits.MAX_ATOMS, 1), limits.MAX_SAMPLES, 1)}},
        "sequences": {"type": "array", "minItems": 3, "maxItems": 3 * limits.MAX_SAMPLES, "items": {
            "type": "object", "required": ["id", "file", "sample", "phase", "beta", "shots", "observables"],
            "properties": {"id": {"type": "string", "pattern": ID_PATTERN},
                           "file": {"type": "string", "pattern": PATH_PATTERN},
                           "sample": _int(0, limits.MAX_SAMPLES - 1), "phase": {"enum": list(PHASES)},
                           "beta": _num(-_RATE, _RATE), "shots": _SHOTS,
                           "observables": _array(_TEXT, 100_000),
                           "input": _RATES, "target": _array(_num(0, 1), limits.MAX_ATOMS),
                           "nudge_detunings": _array(_num(-1e6, 1e6), limits.MAX_ATOMS),
                           "final_detunings": _array(_num(-1e6, 1e6), limits.MAX_ATOMS),
                           "preparation": {"type": "object", "properties": {
                               "infidelity": _num(0, 1), "gap": _num(0, 1e6), "second_ramp_distance": _num(0, 1),
                               "second_ramp_ns": _int(1, limits.MAX_DURATION_NS)}}}}},
        "gradient_rule": {"type": "object"},
        "counts_format": {"type": "string"},
        "nudge": {"enum": ["local", "global"]},
        "jobs": _array({"type": "object", "required": ["id", "sequence", "runs"], "additionalProperties": False,
                        "properties": {"id": {"type": "string", "pattern": ID_PATTERN},
                                       "sequence": {"type": "string", "pattern": ID_PATTERN},
                                       "runs": _int(1, limits.MAX_SHOTS)}}, 3 * limits.MAX_SAMPLES * 1000),
        "shot_bill": {"type": "object", "properties": {
            "shots": _int(0, 10**12), "sequences": _int(0, 10**6), "jobs": _int(0, 10**12),
            "hours": {"type": ["number", "null"], "minimum": 0}, "cost": {"type": ["number", "null"], "minimum": 0},
            "currency": {"type": ["string", "null"], "maxLength": 3}, "device": _TEXT,
            "max_runs_per_job": {"type": ["integer", "null"], "minimum": 1}, "rate_source": {"type": "string",
                                                                                               "maxLength": 1024}}},
        "files": {"type": "object", "maxProperties": 4 * limits.MAX_SAMPLES + 16,
                  "propertyNames": {"pattern": PATH_PATTERN},
                  "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
        "checksum": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
}


class _NotFinite(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"number {text} overflows a float")
    return value


def _refuse_constant(text: str):
    raise _NotFinite(f"{text} is not a JSON number")


def load_json_file(path: Path, what: str, max_bytes: int):
    """Strict JSON from a file: size-capped, UTF-8, no NaN/Infinity, no number that overflows a float.

    Every failure (unreadable, not UTF-8, invalid or too deeply nested JSON, integers beyond Python's
    digit limit) is a one-line :class:`QepValueError` naming ``what`` and the file."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise QepValueError(f"{what} '{path}' has {size} bytes, more than the {max_bytes} allowed")
        text = path.read_bytes().decode("utf-8")
        return json.loads(text, parse_float=_finite_float, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise QepValueError(f"{what} '{path}': not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise QepValueError(f"{what} '{path}': not valid JSON ({exc})") from None
    except RecursionError:
        raise QepValueError(f"{what} '{path}': JSON nested too deeply") from None
    except _NotFinite as exc:
        raise QepValueError(f"{what} '{path}': not usable JSON ({exc})") from None
    except ValueError:  # Python refuses integer literals of more than 4,300 digits
        raise QepValueError(f"{what} '{path}': not usable JSON (an integer with more than 4,300 digits)") from None
    except OSError as exc:
        raise QepValueError(f"{what} '{path}' cannot be read ({exc.strerror or exc})") from None


def _dumps(obj, **kwargs) -> str:
    """Strict JSON text: a NaN or infinity raises instead of being written as invalid JSON."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError as exc:
        raise QepValueError(f"refusing to write non-finite numbers into JSON ({exc})") from None


def confined(root: Path, rel: str, what: str) -> Path:
    """``root/rel`` resolved, refused unless it stays inside ``root`` (no '..', absolute path or symlink out)."""
    import re

    if not isinstance(rel, str) or not re.fullmatch(PATH_PATTERN, rel):
        raise QepValueError(f"{what} {show(rel)} is not a plain relative path (pattern {PATH_PATTERN})")
    base = root.resolve()
    path = (base / rel).resolve()
    if base not in path.parents:
        raise QepValueError(f"{what} {rel!r} leaves the directory '{root}'")
    return path


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


def model_from(spec: dict) -> RydbergModel:
    m = spec["model"]
    return RydbergModel(positions_um=m["positions_um"], device=spec["device_object"], omega=m["omega"],
                        phase=m["phase"], detunings=m["detunings"], input_atoms=tuple(m["input_atoms"]),
                        output_atoms=tuple(m["output_atoms"]), input_mode=m["input_mode"],
                        train_positions=m["train_positions"])


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


# ---------------------------------------------------------------------------- atomic writing
@contextmanager
def atomic_directory(out_dir: str | Path, force: bool = False):
    """Yield a temporary directory that becomes ``out_dir`` only if the block succeeds.

    On any failure, including KeyboardInterrupt and SIGTERM (which the CLI turns into one), the
    temporary directory and any parent directories created for it are removed. Directories get the
    permissions of a plain ``mkdir`` (0777 minus the umask), like ``train``'s output directory."""
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise QepValueError(f"output directory '{out}' is an existing file")
    if out.exists() and not force:
        raise QepValueError(f"output directory '{out}' already exists (use --force to replace it)")
    created = []
    for parent in reversed(out.parents):
        if not parent.exists():
            try:
                parent.mkdir()
            except OSError as exc:
                _remove_created(created)
                raise QepValueError(f"cannot create directory '{parent}' ({exc.strerror or exc})") from None
            created.append(parent)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        tmp.mkdir()
    except OSError as exc:
        _remove_created(created)
        raise QepValueError(f"cannot write into '{out.parent}' ({exc.strerror or exc})") from None
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_created(created)
        raise


def refuse_overlap(out_dir: str | Path, **inputs: str | Path) -> None:
    """Refuse an output directory that is, contains or lies inside one of the command's inputs
    (``--force`` would replace the input, or part of it, while it is being read)."""
    out = Path(out_dir).resolve()
    for name, path in inputs.items():
        source = Path(path).resolve()
        if source == out or out in source.parents:
            raise QepValueError(f"output directory '{out_dir}' would replace the {name} '{path}' it reads")
        if source in out.parents:
            raise QepValueError(f"output directory '{out_dir}' lies inside the {name} '{path}' it reads")


def _remove_created(created: list[Path]) -> None:
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            break


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


# ---------------------------------------------------------------------------- export
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


_VALIDATOR: list = []


def _validate_schema(manifest, where: str) -> None:
    if not _VALIDATOR:  # built once: jsonschema.validate re-checks the schema itself on every call
        cls = jsonschema.validators.validator_for(MANIFEST_SCHEMA)
        cls.check_schema(MANIFEST_SCHEMA)
        _VALIDATOR.append(cls(MANIFEST_SCHEMA))
    exc = jsonschema.exceptions.best_match(_VALIDATOR[0].iter_errors(manifest))
    if exc is not None:
        field = "/".join(map(str, exc.absolute_path)) or "<root>"
        message = " ".join(exc.message.split())
        raise QepValueError(f"{where}: manifest field '{field}' is invalid: "
                            f"{message if len(message) <= 200 else message[:197] + '...'}")


def _check_ramp(ramp: dict, device, where: str) -> None:
    """The ramp's duration within the project-wide limit and the device's own."""
    check_number(ramp.get("duration_ns"), f"{where}.duration_ns", low=1, high=limits.MAX_DURATION_NS, integer=True)
    longest = device.max_sequence_duration
    if longest is not None and ramp["duration_ns"] > longest:
        raise QepValueError(f"'{where}.duration_ns' = {ramp['duration_ns']} ns exceeds {device.name}'s "
                            f"max_sequence_duration of {longest} ns")


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


# ---------------------------------------------------------------------------- reading and update
def read_bundle(bundle_dir: str | Path, *, expected_device: str | None = None) -> dict:
    """Load and check an (untrusted) bundle: schema and bounds, version, checksum, confined paths, file
    hashes, device identity and limits, and the agreement of parameters, data and sequences."""
    root = Path(bundle_dir)
    path = root / "manifest.json"
    if not path.is_file():
        raise QepValueError(f"'{root}' is not a bundle: no manifest.json")
    manifest = load_json_file(path, "manifest", limits.MAX_MANIFEST_BYTES)
    if isinstance(manifest, dict) and manifest.get("version") not in (None, VERSION):
        raise QepValueError(f"{path}: bundle version {show(manifest.get('version'))}, this code reads {VERSION}")
    _validate_schema(manifest, str(path))
    if _sha(_canonical(manifest)) != manifest["checksum"]:
        raise QepValueError(f"{path}: checksum mismatch — the manifest was modified after export")
    files = manifest["files"]
    for rel, digest in files.items():
        f = confined(root, rel, f"{path}: file")
        if not f.is_file() or _sha(f.read_bytes()) != digest:
            raise QepValueError(f"{root}: file '{rel}' is missing or modified (sha256 mismatch)")
    _check_sequences(manifest, path)
    device_file = confined(root, manifest["device"]["file"], f"{path}: device file")
    if manifest["device"]["file"] not in files:
        raise QepValueError(f"{path}: device file {manifest['device']['file']!r} is not among the hashed files")
    device = load_device(str(device_file))
    if _sha(device_file.read_bytes()) != files[manifest["device"]["file"]]:
        raise QepValueError(f"{root}: file 'device.json' changed while it was read")
    if device.name != manifest["device"]["name"]:
        raise QepValueError(f"{path}: device.json is {device.name!r} but the manifest names "
                            f"{manifest['device']['name']!r}")
    if expected_device is not None:
        expected = load_device(expected_device)
        if expected.name != device.name or device_json(expected) != device_json(device):
            raise QepValueError(f"bundle '{root}' is for device {device.name!r}, not {expected.name!r}")
    longest_job = max((job["runs"] for job in manifest.get("jobs", [])), default=0)
    if device.max_runs is not None and longest_job > device.max_runs:
        raise QepValueError(f"{path}: a job of {longest_job} runs exceeds {device.name}'s max_runs = {device.max_runs}")
    manifest["_device_object"] = device
    try:
        model = model_from(spec_from_manifest(manifest)).validate()
        _check_ramp(manifest["ramp"], device, "ramp")
        names = list(model.hamiltonian().parameter_names)
        theta = model.theta()
    except QepValueError as exc:
        raise QepValueError(f"{path}: the manifest's model is invalid: {exc}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise QepValueError(f"{path}: the manifest's model is invalid: {exc!r}") from None
    if names != manifest["parameters"]["names"]:
        raise QepValueError(f"{path}: parameter names {show(manifest['parameters']['names'])} do not match the "
                            f"model's {show(names)}")
    values = np.asarray(manifest["parameters"]["values"], dtype=float)
    if values.shape != theta.shape or not np.allclose(values, theta, rtol=1e-9, atol=1e-9):
        raise QepValueError(f"{path}: 'parameters.values' do not match the model's positions and detunings")
    if len(manifest["register"]["qubit_ids"]) != model.n_atoms:
        raise QepValueError(f"{path}: 'register.qubit_ids' has {len(manifest['register']['qubit_ids'])} atoms, "
                            f"the positions {model.n_atoms}")
    return manifest


def _check_sequences(manifest: dict, path: Path) -> None:
    """Sequences, data and training agree: three phases per sample, ids unique, files hashed, ±β, shots."""
    training, data = manifest["training"], manifest["data"]
    n_samples = len(data["targets"])
    if len(data["inputs"]) != n_samples:
        raise QepValueError(f"{path}: 'data.inputs' has {len(data['inputs'])} samples but 'data.targets' "
                            f"has {n_samples}")
    sign = {"free": 0.0, "plus": 1.0, "minus": -1.0}
    seen, phases = set(), set()
    for i, entry in enumerate(manifest["sequences"]):
        where = f"{path}: 'sequences[{i}]'"
        if entry["id"] in seen:
            raise QepValueError(f"{where}: id {entry['id']!r} appears twice")
        seen.add(entry["id"])
        if entry["file"] != f"sequences/{entry['id']}.json" or entry["file"] not in manifest["files"]:
            raise QepValueError(f"{where}: file {entry['file']!r} must be 'sequences/{entry['id']}.json' and "
                                "among the hashed files")
        if entry["sample"] >= n_samples or (entry["sample"], entry["phase"]) in phases:
            raise QepValueError(f"{where}: sample {entry['sample']} phase {entry['phase']!r} is out of range or "
                                f"repeated ({n_samples} samples)")
        phases.add((entry["sample"], entry["phase"]))
        if entry["beta"] != sign[entry["phase"]] * training["beta"]:
            raise QepValueError(f"{where}: 'beta' = {entry['beta']} but the {entry['phase']} phase needs "
                                f"{sign[entry['phase']] * training['beta']} (training.beta)")
        if entry["shots"] != training["shots"]:
            raise QepValueError(f"{where}: 'shots' = {entry['shots']} differs from training.shots = "
                                f"{training['shots']}")
        if "target" in entry and list(entry["target"]) != list(data["targets"][entry["sample"]]):
            raise QepValueError(f"{where}: 'target' differs from data.targets[{entry['sample']}]")
    if len(phases) != 3 * n_samples:
        raise QepValueError(f"{path}: 'sequences' must hold the free, plus and minus phases of each of the "
                            f"{n_samples} samples, not {len(phases)} sequences")
    if "jobs" in manifest:  # every sequence's runs, split into jobs, add up to its shots
        runs: dict[str, int] = {}
        job_ids = set()
        for i, job in enumerate(manifest["jobs"]):
            if job["sequence"] not in seen or job["id"] in job_ids:
                raise QepValueError(f"{path}: 'jobs[{i}]': sequence {job['sequence']!r} is unknown or job id "
                                    f"{job['id']!r} repeats")
            job_ids.add(job["id"])
            runs[job["sequence"]] = runs.get(job["sequence"], 0) + job["runs"]
        for entry in manifest["sequences"]:
            if runs.get(entry["id"], 0) != entry["shots"]:
                raise QepValueError(f"{path}: the jobs of sequence {entry['id']!r} run {runs.get(entry['id'], 0)} "
                                    f"times, not its {entry['shots']} shots")


def read_verified(bundle_dir: str | Path, manifest: dict, rel: str) -> bytes:
    """The bytes of one of the bundle's hashed files, hashed again as read (no unverified file is used)."""
    root = Path(bundle_dir)
    if rel not in manifest["files"]:
        raise QepValueError(f"{root}: file {rel!r} is not among the bundle's hashed files")
    data = confined(root, rel, f"{root}: file").read_bytes()
    if _sha(data) != manifest["files"][rel]:
        raise QepValueError(f"{root}: file '{rel}' is modified (sha256 mismatch)")
    return data


def read_counts(manifest: dict, counts_dir: str | Path) -> dict[str, np.ndarray]:
    """Bits (shots × atoms) for every sequence of the bundle; errors name the file at fault.

    Each ``<id>.json`` must be an object {bitstring: count} with bitstrings of the register's length
    over '0'/'1', integer counts ≥ 0 (booleans and floats refused) and a total in
    [⌈SHOT_TOLERANCE·shots⌉, shots] of the manifest's shots for that sequence."""
    import re

    n = len(manifest["register"]["qubit_ids"])
    root = Path(counts_dir)
    if not root.is_dir():
        raise QepValueError(f"counts directory '{root}' does not exist or is not a directory")
    key_pattern = re.compile(f"[01]{{{n}}}")
    out = {}
    for entry in manifest["sequences"]:
        f = confined(root, f"{entry['id']}.json", "counts file")
        if not f.is_file():
            raise QepValueError(f"counts file '{root / (entry['id'] + '.json')}' is missing (one per sequence id)")
        counts = load_json_file(f, "counts file", limits.MAX_COUNTS_BYTES)
        if not isinstance(counts, dict):
            raise QepValueError(f"counts file '{f}' must be a JSON object {{bitstring: count}}, not "
                                f"{type(counts).__name__}")
        shots = entry["shots"]
        total = 0
        for key, count in counts.items():
            if not key_pattern.fullmatch(key):
                problem = (f"has length {len(key)}, expected {n}" if len(key) != n and set(key) <= {"0", "1"}
                           else f"must be {n} characters '0'/'1'")
                raise QepValueError(f"counts file '{f}': bitstring {show(key)} {problem} (one per atom of this "
                                    "bundle)")
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= shots:
                raise QepValueError(f"counts file '{f}': count for {key!r} must be an integer in [0, {shots}], "
                                    f"not {show(count)}")
            total += count
        low = math.ceil(limits.SHOT_TOLERANCE * shots)
        if not low <= total <= shots:
            raise QepValueError(f"counts file '{f}': {total} shots in total, the manifest asks for {shots} "
                                f"(accepted: {low} to {shots})")
        try:
            out[entry["id"]] = counts_to_bits(counts, n)
        except QepValueError as exc:
            raise QepValueError(f"counts file '{f}': {exc} ({n} atoms in this bundle)") from None
    return out


def spec_from_manifest(manifest: dict) -> dict:
    return {"device": manifest["device"].get("spec", manifest["device"]["name"]),
            "device_object": manifest["_device_object"],
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
    products, coef = derivative_structure(h)  # no 2^N table: any register size
    by_sample: dict[int, dict] = {}
    for entry in manifest["sequences"]:
        by_sample.setdefault(entry["sample"], {})[entry["phase"]] = entry
    grads, variances, losses = [], [], []
    for k in sorted(by_sample):
        phases = by_sample[k]
        if set(phases) != set(PHASES):
            raise QepValueError(f"sample {k} lacks phases {sorted(set(PHASES) - set(phases))}")
        beta = phases["plus"]["beta"]
        m_plus, s_plus = estimate_products(bits[phases["plus"]["id"]], products, readout)
        m_minus, s_minus = estimate_products(bits[phases["minus"]["id"]], products, readout)
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
    if not model.device.dmm_channels:  # one global Δ = δ_i for all i: ∂L/∂Δ = Σ_i ∂L/∂δ_i
        grad_det = np.full_like(grad_det, grad_det.sum())
    det = model.detunings - learning_rate * grad_det
    pos = model.positions_um - (position_learning_rate * grad_pos if model.train_positions else 0.0)
    return model.project(positions_um=pos, detunings=det)


def update_bundle(bundle_dir: str | Path, counts_dir: str | Path, out_dir: str | Path | None = None, *,
                  expected_device: str | None = None, force: bool = False, drawings: bool = True,
                  readout: ReadoutError | None = None) -> dict:
    """``qep-analog update``: counts → gradient → new parameters → the next bundle (atomic).

    ``readout="device"`` mitigates with the SPAM rates of the bundle's device noise model."""
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        refuse_overlap(out, bundle=bundle_dir, **{"counts directory": counts_dir})
    manifest = read_bundle(bundle_dir, expected_device=expected_device)
    bits = read_counts(manifest, counts_dir)
    if readout == "device":
        nm = manifest["_device_object"].noise_model
        if nm is None or "SPAM" not in nm.noise_types:
            raise QepValueError(f"readout mitigation: device {manifest['device']['name']!r} has no SPAM noise model")
        readout = ReadoutError(p_false_pos=float(nm.p_false_pos), p_false_neg=float(nm.p_false_neg))
    result = gradient_from_bits(manifest, bits, readout)
    for key in ("gradient", "stderr"):
        bad = [name for name, v in zip(result["names"], result[key], strict=True) if not np.isfinite(v)]
        if bad:
            raise QepValueError(f"the {key} is not finite for {bad} (too few shots?); nothing written")
    spec = spec_from_manifest(manifest)
    model = model_from(spec)
    training = manifest["training"]
    new_model = apply_update(model, result["gradient"], learning_rate=training["learning_rate"],
                             position_learning_rate=training["position_learning_rate"])
    spec["model"] = dict(spec["model"], positions_um=new_model.positions_um.tolist(),
                         detunings=new_model.detunings.tolist())
    step = manifest["step"] + 1
    if out is None:
        out = Path(f"{Path(bundle_dir).resolve()}_step{step}")
        refuse_overlap(out, bundle=bundle_dir, **{"counts directory": counts_dir})
    report = {"from_bundle": str(Path(bundle_dir).resolve()), "from_step": manifest["step"],
              "names": result["names"], "gradient": result["gradient"].tolist(),
              "stderr": result["stderr"].tolist(), "loss": result["loss"],
              "readout_mitigation": None if readout is None else [readout.p_false_pos, readout.p_false_neg],
              "positions_um": new_model.positions_um.tolist(), "detunings": new_model.detunings.tolist(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # the next bundle's device is the verified device.json, never a name or path read from the manifest
    spec["device"] = spec.pop("device_object")
    spec["device_spec"] = manifest["device"].get("spec", manifest["device"]["name"])
    write_bundle(spec, out, step=step, force=force, drawings=drawings,
                 extra_files={"gradient.json": _dumps(report, indent=1)})
    return dict(report, out_dir=str(out))


# ---------------------------------------------------------------------------- emulated lab
def simulate_counts(bundle_dir: str | Path, counts_dir: str | Path, *, seed: int = 0, shots: int | None = None,
                    noise_model=None, n_trajectories: int | None = None, force: bool = False,
                    emulator: str | None = None, progress=None, executor=None) -> None:
    """Play the lab: run every bundle sequence (loaded from its JSON) in pulser-simulation and write
    counts sampled from the final state with a seeded Generator (atomic write). A noise model's SPAM
    readout flips (p_false_pos, p_false_neg) are applied to the sampled bits, as a detector would.

    ``shots`` (default: the manifest's) must lie where ``update`` accepts it: in
    [⌈SHOT_TOLERANCE·shots⌉, shots] of the manifest; the register may have at most MAX_EMULATED_ATOMS atoms.

    ``emulator``: "trajectories" (our quantum-jump trajectories, the default with a noise model and
    ``n_trajectories``; shots are spread evenly over the trajectories, each trajectory's shots drawn from its
    own state, as pulser's per-trajectory BitStrings are) or "pulser" (the default otherwise).
    ``progress(done, total)`` is called after each sequence (serially) or once at the end (with an
    ``executor``: one task per sequence, e.g. a :class:`~qep_analog.distributed.DaskExecutor`). Sequence k
    samples from ``default_rng([seed, k])``, so the counts do not depend on where it ran."""
    from qep_analog.measurement.sampling import ReadoutError

    check_number(seed, "seed", low=0, high=limits.MAX_SEED, integer=True)
    if shots is not None:
        check_number(shots, "shots", low=1, high=limits.MAX_SHOTS, integer=True)
    if n_trajectories is not None:
        check_number(n_trajectories, "trajectories", low=1, high=limits.MAX_TRAJECTORIES, integer=True)
    if emulator not in (None, "pulser", "trajectories"):
        raise QepValueError(f"'emulator' must be 'pulser' or 'trajectories', not {emulator!r}")
    readout = None
    if noise_model is not None and "SPAM" in noise_model.noise_types:
        readout = ReadoutError(p_false_pos=float(noise_model.p_false_pos), p_false_neg=float(noise_model.p_false_neg))

    refuse_overlap(counts_dir, bundle=bundle_dir)
    manifest = read_bundle(bundle_dir)
    n = len(manifest["register"]["qubit_ids"])
    if n > limits.MAX_EMULATED_ATOMS:
        raise QepValueError(f"lab-counts emulates the full state vector: at most {limits.MAX_EMULATED_ATOMS} atoms, "
                            f"this bundle has {n}")
    if shots is not None:
        for entry in manifest["sequences"]:
            low = math.ceil(limits.SHOT_TOLERANCE * entry["shots"])
            if not low <= shots <= entry["shots"]:
                raise QepValueError(f"'--shots' = {shots}: update accepts {low} to {entry['shots']} shots for "
                                    f"sequence {entry['id']!r} (the manifest's shots, less up to 10 % lost)")
    use_trajectories = emulator == "trajectories" or (emulator is None and noise_model is not None
                                                       and bool(n_trajectories))
    tasks = [_SequenceRun(text=read_verified(bundle_dir, manifest, entry["file"]).decode("utf-8"),
                          shots=int(shots or entry["shots"]), n_qubits=n, seed=(seed, k), noise_model=noise_model,
                          n_trajectories=n_trajectories, trajectories=use_trajectories, readout=readout)
             for k, entry in enumerate(manifest["sequences"])]
    executor = executor if executor is not None else _ProgressExecutor(progress)
    with atomic_directory(counts_dir, force=force) as tmp:
        results = executor.map(_emulate_counts, tasks)
        if not isinstance(executor, _ProgressExecutor) and progress is not None:
            progress(len(tasks), len(tasks))
        for entry, counts in zip(manifest["sequences"], results, strict=True):
            confined(tmp, f"{entry['id']}.json", "counts file").write_text(_dumps(counts), encoding="utf-8")


@dataclass(frozen=True, kw_only=True)
class _SequenceRun:
    """One bundle sequence to emulate and sample (a picklable task for an executor)."""

    text: str
    shots: int
    n_qubits: int
    seed: tuple[int, int]
    noise_model: object
    n_trajectories: int | None
    trajectories: bool
    readout: object


def _emulate_counts(task: _SequenceRun) -> dict:
    """Counts of one sequence: emulate it, sample ``shots`` bitstrings, apply the readout errors."""
    from qep_analog.equilibrium.adiabatic import emulate_pulser
    from qep_analog.measurement.sampling import bits_to_counts

    rng = np.random.default_rng(list(task.seed))
    seq = pulser.Sequence.from_abstract_repr(task.text)
    if task.trajectories:
        from qep_analog.equilibrium.emulators.trajectories import run_trajectories

        result = run_trajectories(seq, task.noise_model, n_trajectories=int(task.n_trajectories or 1),
                                  seed=task.seed[0])
        per = np.abs(result.states) ** 2
        split = np.full(per.shape[0], task.shots // per.shape[0])
        split[: task.shots % per.shape[0]] += 1
        hits = sum(rng.multinomial(int(m), p / p.sum()) for m, p in zip(split, per, strict=True))
    else:
        state = emulate_pulser(seq, noise_model=task.noise_model, n_trajectories=task.n_trajectories)
        probs = np.abs(state) ** 2 if state.ndim == 1 else np.clip(np.real(np.diag(state)), 0, None)
        hits = rng.multinomial(task.shots, probs / probs.sum())
    counts = {format(i, f"0{task.n_qubits}b"): int(c) for i, c in enumerate(hits) if c}
    if task.readout is not None:
        counts = bits_to_counts(task.readout.apply(counts_to_bits(counts, task.n_qubits), rng))
    return counts


class _ProgressExecutor:
    """The serial map, calling ``progress(done, total)`` after each sequence."""

    def __init__(self, progress):
        self.progress = progress

    def map(self, function, tasks):
        tasks, out = list(tasks), []
        for task in tasks:
            out.append(function(task))
            if self.progress is not None:
                self.progress(len(out), len(tasks))
        return out
