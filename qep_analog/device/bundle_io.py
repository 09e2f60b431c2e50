"""The bundle's file format: manifest schema, strict JSON, confined paths, checksums, atomic writes, reading.

A bundle comes back from a lab and is untrusted input. The manifest's checksum is an unkeyed SHA-256:
it catches accidental edits and truncation, not deliberate ones (anyone can recompute it). So
:func:`read_bundle` also checks every field on its own: sequence ids match ``ID_PATTERN``, every path
is relative, resolved and confined to the bundle, every file read is one of the hashed files and is
hashed again when read, every number is finite and within :mod:`qep_analog.device.limits` and the
device's limits, and the parameters, sequences and data agree with each other. Counts files must be
JSON objects {bitstring: integer count} whose total lies in [⌈0.9·shots⌉, shots] of the manifest.
Output directories are created like ``mkdir`` does (mode 0777 minus the umask), as ``train`` does.
Writing a bundle is :mod:`qep_analog.device.bundle`; the lab loop (counts → update) is
:mod:`qep_analog.device.bundle_lab`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import numpy as np

from qep_analog.device import limits
from qep_analog.device.devices import device_json, load_device
from qep_analog.device.limits import check_number, show
from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium.schedules import SCHEDULES
from qep_analog.errors import QepValueError
from qep_analog.measurement.sampling import counts_to_bits

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


def model_from(spec: dict) -> RydbergModel:
    m = spec["model"]
    return RydbergModel(positions_um=m["positions_um"], device=spec["device_object"], omega=m["omega"],
                        phase=m["phase"], detunings=m["detunings"], input_atoms=tuple(m["input_atoms"]),
                        output_atoms=tuple(m["output_atoms"]), input_mode=m["input_mode"],
                        train_positions=m["train_positions"])


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
