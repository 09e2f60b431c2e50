"""The ``[device]`` protocol section (a Rydberg model on a pulser device), validated without pulser.

Keys: ``name`` (pulser device name or JSON path), ``positions_um`` (N × 2), ``omega`` (rad/µs),
``phase`` (rad), ``detunings`` (N values, rad/µs), ``input_atoms``, ``output_atoms``, ``input_mode``
("local" | "global"), ``train_positions``, ``duration_ns``, ``start_detuning`` (rad/µs), ``shape``
(the ramp schedule: "cosine" | "linear" | "local-adiabatic" | "arc-cosine", see
:mod:`qep_analog.equilibrium.schedules`; training and the exported bundle use the same one),
``schedule_boundary`` (λ of "local-adiabatic", in (0, 1]) and ``schedule_points`` (grid of the path
spectrum, 3–1001), ``layout`` (use a trap layout; default: when the device requires one),
``position_learning_rate`` (µm per unit gradient).

Numbers are checked here, before anything is built: finite, and within the project-wide bounds of
:mod:`qep_analog.device.limits` (e.g. ``duration_ns`` ≤ 20,000 ns, |Ω|, |δ| ≤ 1,000 rad/µs). The
device's own, tighter limits are checked when the model meets its pulser device.
"""

from __future__ import annotations

from collections.abc import Mapping

from qep_analog.device import limits
from qep_analog.device.limits import check_number, show
from qep_analog.errors import QepValueError

_NUM = (int, float)
DEVICE_KEYS: dict[str, tuple] = {
    "name": (str,), "positions_um": (list,), "omega": _NUM, "phase": _NUM, "detunings": (list,),
    "input_atoms": (list,), "output_atoms": (list,), "input_mode": (str,), "train_positions": (bool,),
    "duration_ns": (int,), "start_detuning": _NUM, "shape": (str,), "layout": (bool,),
    "position_learning_rate": _NUM, "schedule_boundary": _NUM, "schedule_points": (int,),
}
# the adiabatic backend's schedules (qep_analog.equilibrium.schedules.SCHEDULES; a test keeps them equal),
# spelled here so that a protocol is checked without importing the numerical layers
SHAPES = ("cosine", "linear", "local-adiabatic", "arc-cosine")


def validate_device_section(section) -> None:
    if not isinstance(section, Mapping):
        raise QepValueError("[device] must be a table")
    for key, value in section.items():
        if key not in DEVICE_KEYS:
            raise QepValueError(f"unknown key 'device.{key}'; allowed: {sorted(DEVICE_KEYS)}")
        allowed = DEVICE_KEYS[key]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise QepValueError(f"'device.{key}' has the wrong type: {show(value)}")
    if "shape" in section and section["shape"] not in SHAPES:
        raise QepValueError(f"'device.shape' must be one of {SHAPES}, not {show(section['shape'])}")
    _check_numbers(section)


def _numbers(value, key: str, *, low: float, high: float, integer: bool = False, width: int | None = None) -> None:
    if not isinstance(value, list):
        raise QepValueError(f"'{key}' must be a list, not {show(value)}")
    if len(value) > limits.MAX_ATOMS:
        raise QepValueError(f"'{key}' has {len(value)} entries, more than {limits.MAX_ATOMS} atoms")
    for i, item in enumerate(value):
        if width is not None:
            if not isinstance(item, list) or len(item) != width:
                raise QepValueError(f"'{key}[{i}]' must be a list of {width} numbers, not {show(item)}")
            _numbers(item, f"{key}[{i}]", low=low, high=high, integer=integer)
        else:
            check_number(item, f"{key}[{i}]", low=low, high=high, integer=integer)


def _check_numbers(section: Mapping) -> None:
    rate, pos = limits.MAX_RATE_RAD_PER_US, limits.MAX_POSITION_UM
    scalar = {"omega": (-rate, rate), "phase": (-limits.MAX_PHASE_RAD, limits.MAX_PHASE_RAD),
              "start_detuning": (-rate, rate), "position_learning_rate": (0.0, limits.MAX_LEARNING_RATE)}
    for key, (low, high) in scalar.items():
        if key in section:
            check_number(section[key], f"device.{key}", low=low, high=high)
    if "schedule_boundary" in section:
        check_number(section["schedule_boundary"], "device.schedule_boundary", low=1e-9, high=1.0)
    if "schedule_points" in section:
        check_number(section["schedule_points"], "device.schedule_points", low=3, high=1001, integer=True)
    if "duration_ns" in section:
        check_number(section["duration_ns"], "device.duration_ns", low=1, high=limits.MAX_DURATION_NS, integer=True)
    if "positions_um" in section:
        _numbers(section["positions_um"], "device.positions_um", low=-pos, high=pos, width=2)
    if "detunings" in section:
        _numbers(section["detunings"], "device.detunings", low=-rate, high=rate)
    for key in ("input_atoms", "output_atoms"):
        if key in section:
            _numbers(section[key], f"device.{key}", low=0, high=limits.MAX_ATOMS - 1, integer=True)


def register_protocol_section() -> None:
    from qep_analog.protocol import register_section

    register_section("device", validate_device_section)
