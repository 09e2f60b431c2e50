"""Pulser devices by name or by JSON path, and their key limits.

``load_device("WeightedAnalogDevice")`` returns pulser's own object; ``load_device("qep_lab_device")``
or ``load_device("devices/qep_lab_device.json")`` reads a pulser abstract-repr device spec.
Limits are in pulser's units: µm, rad/µs, ns, and C6 in rad/µs·µm⁶.

Device names are looked up, first match wins, in: the directories of ``$QEP_ANALOG_DEVICES``
(``os.pathsep``-separated), the top-level ``devices/`` of a source checkout, and the copy of those
files shipped inside the package (``qep_analog/devices_data/``, package data, so that a plain
``pip install .`` knows ``qep_lab_device``). ``tests/device/test_device_data.py`` keeps the copy
identical to ``devices/``. A device may carry lab metadata (shot rate, price, runs per job) in a sidecar
``<stem>.lab.json`` that pulser never reads (:mod:`qep_analog.device.lab`); it is not a device spec.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pulser.devices as pulser_devices
from pulser.devices._device_datacls import BaseDevice
from pulser.json.abstract_repr.deserializer import deserialize_device

from qep_analog.errors import QepValueError

PACKAGE_DEVICES_DIR = Path(__file__).resolve().parents[1] / "devices_data"
_CHECKOUT = Path(__file__).resolve().parents[2]
# the source checkout's devices/ when there is one (editable install), else the packaged copy
DEVICES_DIR = (_CHECKOUT / "devices" if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "devices").is_dir()
               else PACKAGE_DEVICES_DIR)
PULSER_DEVICES = ("AnalogDevice", "DigitalAnalogDevice", "WeightedAnalogDevice", "MockDevice")
MAX_DEVICE_FILE_BYTES = 4_000_000  # a pulser device spec is a few kB; refuse anything absurd before reading


def device_dirs() -> list[Path]:
    """Directories searched for ``<name>.json``, in order (see the module docstring)."""
    env = [Path(p) for p in os.environ.get("QEP_ANALOG_DEVICES", "").split(os.pathsep) if p]
    return list(dict.fromkeys([*env, DEVICES_DIR, PACKAGE_DEVICES_DIR]))


def _one_line(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_error(exc: BaseException) -> str:
    """A one-line description of a (pulser / jsonschema) error: the innermost schema failure and its
    JSON path when there is one, otherwise the message or, if empty, the exception's class name."""
    import jsonschema

    chain, cause = [], exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for cause in chain:
        if isinstance(cause, jsonschema.ValidationError):
            error = cause
            while error.context:
                # anyOf/oneOf: follow the branch with the fewest failures (the one the file nearly matches)
                branches: dict = {}
                for sub in error.context:
                    branches.setdefault(sub.schema_path[0] if sub.schema_path else 0, []).append(sub)
                error = jsonschema.exceptions.best_match(min(branches.values(), key=len))
            where = "/".join(map(str, error.absolute_path)) or "<root>"
            return _one_line(f"field '{where}': {error.message}")
    for cause in reversed(chain):  # the innermost message is the specific one
        if str(cause).strip():
            return _one_line(f"{type(cause).__name__}: {cause}")
    return type(exc).__name__


def read_device_file(path: Path) -> BaseDevice:
    """A pulser device from a JSON file; every failure is a QepValueError naming the file."""
    try:
        size = path.stat().st_size
        if size > MAX_DEVICE_FILE_BYTES:
            raise QepValueError(f"device file {path}: {size} bytes, more than the {MAX_DEVICE_FILE_BYTES} "
                                "a device spec may have")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QepValueError(f"device file {path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise QepValueError(f"device file {path}: cannot be read ({exc.strerror or exc})") from None
    return _from_json_text(text, str(path))


def _from_json_text(text: str, origin: str) -> BaseDevice:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise QepValueError(f"device file {origin}: not valid JSON ({exc})") from None
    except RecursionError:
        raise QepValueError(f"device file {origin}: JSON nested too deeply") from None
    except ValueError:  # Python refuses integer literals of more than 4,300 digits
        raise QepValueError(f"device file {origin}: not usable JSON (an integer with more than 4,300 digits)") from None
    if not isinstance(data, dict):
        raise QepValueError(f"device file {origin}: must hold a JSON object (a pulser device), not "
                            f"{type(data).__name__}")
    try:
        return deserialize_device(text)
    except Exception as exc:  # pulser raises jsonschema / ValueError / TypeError variants
        raise QepValueError(f"device file {origin}: not a valid pulser device spec: {describe_error(exc)}") from None


def load_device(spec: str | Path | BaseDevice) -> BaseDevice:
    """A pulser device from a pulser name, a stem of a file in ``devices/``, or a JSON path."""
    if isinstance(spec, BaseDevice):
        return spec
    text = str(spec)
    if text in PULSER_DEVICES:
        return getattr(pulser_devices, text)
    path = Path(text)
    if path.suffix == ".json":
        candidates = [path]
    elif "/" in text or "\\" in text or text.startswith(".") or not text or text.endswith(".lab"):
        candidates = []  # a name is a file stem, never a path, and never a lab sidecar's stem
    else:
        candidates = [folder / f"{text}.json" for folder in device_dirs()]
    for candidate in candidates:
        if candidate.is_file():
            return read_device_file(candidate)
    known = list(dict.fromkeys([*PULSER_DEVICES, *sorted(p.stem for d in device_dirs() for p in _json_files(d))]))
    raise QepValueError(
        f"unknown device {text!r}: give a pulser name or a JSON path; known: {known}"
    )


def _json_files(folder: Path) -> list[Path]:
    """Device specs in ``folder``: ``*.json`` but not the lab sidecars ``*.lab.json`` (see device/lab.py)."""
    try:
        return sorted(p for p in folder.glob("*.json") if p.is_file() and not p.name.endswith(".lab.json"))
    except OSError:
        return []


def device_json(device: BaseDevice) -> str:
    """The device's pulser abstract representation (JSON text)."""
    return device.to_abstract_repr()


def global_channel(device: BaseDevice):
    """The global Rydberg channel (id, object); raise if the device has none."""
    for ch_id, ch in device.channels.items():
        if ch.basis == "ground-rydberg" and ch.addressing == "Global":
            return ch_id, ch
    raise QepValueError(f"device {device.name!r} has no global 'rydberg' channel")


def has_local_drive(device: BaseDevice) -> bool:
    return any(
        ch.basis == "ground-rydberg" and ch.addressing == "Local" for ch in device.channels.values()
    )


def device_limits(device: BaseDevice) -> dict:
    """Key limits of a device as a plain dict (None = unconstrained)."""
    _, ch = global_channel(device)
    dmms = list(device.dmm_channels.items())
    dmm = dmms[0][1] if dmms else None
    return {
        "name": device.name,
        "C6_rad_per_us_um6": float(device.interaction_coeff),
        "rydberg_level": int(device.rydberg_level),
        "min_distance_um": float(device.min_atom_distance),
        "max_atoms": device.max_atom_num,
        "max_radial_distance_um": device.max_radial_distance,
        "max_omega_rad_per_us": ch.max_amp,
        "max_abs_delta_rad_per_us": ch.max_abs_detuning,
        "min_avg_omega_rad_per_us": ch.min_avg_amp,
        "clock_period_ns": ch.clock_period,
        "max_sequence_duration_ns": device.max_sequence_duration,
        "requires_layout": bool(device.requires_layout),
        "local_drive": has_local_drive(device),
        "dmm": None
        if dmm is None
        else {
            "id": dmms[0][0],
            "count": len(dmms),
            "bottom_detuning_rad_per_us": dmm.bottom_detuning,
            "total_bottom_detuning_rad_per_us": dmm.total_bottom_detuning,
            "min_avg_abs_detuning_rad_per_us": dmm.min_avg_abs_detuning,
        },
        "reusable_channels": bool(device.reusable_channels),
    }


def list_devices(problems: list[str] | None = None) -> list[dict]:
    """Limits of pulser's devices and of every spec in :func:`device_dirs` (pulser names first).

    A file that cannot be read as a device is skipped; its one-line error is appended to
    ``problems`` when given, else raised (:class:`QepValueError`)."""
    out = []
    seen_names, seen_stems = set(), set()
    for name in PULSER_DEVICES:
        out.append(dict(device_limits(load_device(name)), source="pulser"))
        seen_names.add(name)
    for folder in device_dirs():
        for path in _json_files(folder):
            if path.stem in seen_stems:  # shadowed by an earlier directory, as in load_device
                continue
            seen_stems.add(path.stem)
            try:
                device = read_device_file(path)
                limits = device_limits(device)
            except QepValueError as exc:
                if problems is None:
                    raise
                problems.append(str(exc))
                continue
            if device.name in seen_names and device == load_device(device.name):
                continue
            source = path.relative_to(folder.parent) if folder.parent in path.parents else path
            out.append(dict(limits, source=str(source)))
    return out
