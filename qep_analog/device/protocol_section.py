"""The ``[device]`` protocol section (a Rydberg model on a pulser device), validated without pulser.

Keys: ``name`` (pulser device name or JSON path), ``positions_um`` (N × 2), ``omega`` (rad/µs),
``phase`` (rad), ``detunings`` (N values, rad/µs), ``input_atoms``, ``output_atoms``, ``input_mode``
("local" | "global"), ``train_positions``, ``duration_ns``, ``start_detuning`` (rad/µs), ``shape``
("cosine" | "linear"), ``layout`` (use a trap layout; default: when the device requires one),
``position_learning_rate`` (µm per unit gradient).
"""

from __future__ import annotations

from collections.abc import Mapping

from qep_analog.errors import QepValueError

_NUM = (int, float)
DEVICE_KEYS: dict[str, tuple] = {
    "name": (str,), "positions_um": (list,), "omega": _NUM, "phase": _NUM, "detunings": (list,),
    "input_atoms": (list,), "output_atoms": (list,), "input_mode": (str,), "train_positions": (bool,),
    "duration_ns": (int,), "start_detuning": _NUM, "shape": (str,), "layout": (bool,),
    "position_learning_rate": _NUM,
}


def validate_device_section(section) -> None:
    if not isinstance(section, Mapping):
        raise QepValueError("[device] must be a table")
    for key, value in section.items():
        if key not in DEVICE_KEYS:
            raise QepValueError(f"unknown key 'device.{key}'; allowed: {sorted(DEVICE_KEYS)}")
        allowed = DEVICE_KEYS[key]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise QepValueError(f"'device.{key}' has the wrong type: {value!r}")


def register_protocol_section() -> None:
    from qep_analog.protocol import register_section

    register_section("device", validate_device_section)
