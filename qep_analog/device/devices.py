"""Pulser devices by name or by JSON path, and their key limits.

``load_device("WeightedAnalogDevice")`` returns pulser's own object; ``load_device("qep_lab_device")``
or ``load_device("devices/qep_lab_device.json")`` reads a pulser abstract-repr device spec from
``devices/``. Limits are in pulser's units: µm, rad/µs, ns, and C6 in rad/µs·µm⁶.
"""

from __future__ import annotations

import json
from pathlib import Path

import pulser.devices as pulser_devices
from pulser.devices._device_datacls import BaseDevice
from pulser.json.abstract_repr.deserializer import deserialize_device

from qep_analog.errors import QepValueError

DEVICES_DIR = Path(__file__).resolve().parents[2] / "devices"
PULSER_DEVICES = ("AnalogDevice", "DigitalAnalogDevice", "WeightedAnalogDevice", "MockDevice")


def _from_json_text(text: str, origin: str) -> BaseDevice:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise QepValueError(f"device file {origin}: not valid JSON ({exc})") from None
    try:
        return deserialize_device(text)
    except Exception as exc:  # pulser raises jsonschema / ValueError / TypeError variants
        raise QepValueError(
            f"device file {origin}: not a valid pulser device spec ({exc})"
        ) from None


def load_device(spec: str | Path | BaseDevice) -> BaseDevice:
    """A pulser device from a pulser name, a stem of a file in ``devices/``, or a JSON path."""
    if isinstance(spec, BaseDevice):
        return spec
    text = str(spec)
    if text in PULSER_DEVICES:
        return getattr(pulser_devices, text)
    path = Path(text)
    candidates = [path] if path.suffix == ".json" else [DEVICES_DIR / f"{text}.json"]
    for candidate in candidates:
        if candidate.is_file():
            return _from_json_text(candidate.read_text(), str(candidate))
    known = list(PULSER_DEVICES) + sorted(p.stem for p in DEVICES_DIR.glob("*.json"))
    raise QepValueError(
        f"unknown device {text!r}: give a pulser name or a JSON path; known: {known}"
    )


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


def list_devices() -> list[dict]:
    """Limits of pulser's devices and of every spec in ``devices/`` (pulser names first)."""
    out = []
    seen = set()
    for name in PULSER_DEVICES:
        out.append(dict(device_limits(load_device(name)), source="pulser"))
        seen.add(name)
    for path in sorted(DEVICES_DIR.glob("*.json")):
        device = _from_json_text(path.read_text(), str(path))
        if device.name in seen and device == load_device(device.name):
            continue
        out.append(dict(device_limits(device), source=str(path.relative_to(DEVICES_DIR.parent))))
    return out
