"""Adiabatic preparation sequences: smooth ramps from |g…g⟩ to the target Hamiltonian, in pulser.

All atoms start in |g…g⟩, the ground state at Ω = 0 and δ₀ < 0. Over ``duration_ns`` every control
follows one shape s(t) from 0 to 1 (cosine ½(1 − cos πx) by default, x = t/T):

    Ω(t) = s(t) Ω,   δ_i(t) = δ₀ + s(t)(d_i − δ₀)

where d_i are the final local detunings, nudge included: a nudge ramps on with the same shape
(PHYSICS.md §3). For comparison a nudge can instead be switched on as a step at t_s = ``nudge_switch``·T
(it needs a second detuning map: a device with two DMMs or reusable channels, e.g. MockDevice).
Waveforms are pulser ``CustomWaveform`` samples at 1 ns, so the JSON export is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pulser
from pulser import Pulse
from pulser.waveforms import CustomWaveform

from qep_analog.device.devices import global_channel
from qep_analog.device.dmm import DetuningPlan, plan_detunings, step_map
from qep_analog.errors import QepValueError

SHAPES = ("cosine", "linear")


@dataclass(frozen=True, kw_only=True)
class RampSpec:
    """Ramp settings: duration (ns, a multiple of the 4 ns clock), start detuning δ₀ (rad/µs, < 0),
    shape, and when the nudge switches on ("ramped" = with the same shape, or a step at a fraction)."""

    duration_ns: int = 3000
    start_detuning: float = -20.0
    shape: Literal["cosine", "linear"] = "cosine"
    nudge_switch: Literal["ramped"] | float = "ramped"
    measure: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.duration_ns, (int, np.integer)) or self.duration_ns < 16:
            raise QepValueError(
                f"'duration_ns' must be an integer ≥ 16 ns, not {self.duration_ns!r}"
            )
        if self.shape not in SHAPES:
            raise QepValueError(f"'shape' must be one of {SHAPES}, not {self.shape!r}")
        if not np.isfinite(self.start_detuning) or self.start_detuning >= 0:
            raise QepValueError(
                f"'start_detuning' must be < 0 rad/µs (|g…g⟩ is then the ground state), "
                f"not {self.start_detuning}"
            )
        if self.nudge_switch != "ramped":
            if not isinstance(self.nudge_switch, (int, float)) or not 0 <= self.nudge_switch < 1:
                raise QepValueError(
                    f"'nudge_switch' must be 'ramped' or a fraction in [0, 1), "
                    f"not {self.nudge_switch!r}"
                )

    def shape_samples(self) -> np.ndarray:
        """s at every ns sample, from exactly 0 to exactly 1."""
        x = np.linspace(0.0, 1.0, int(self.duration_ns))
        return 0.5 * (1.0 - np.cos(np.pi * x)) if self.shape == "cosine" else x


def check_duration(device, duration_ns: int) -> None:
    _, ch = global_channel(device)
    clocks = [ch.clock_period] + [d.clock_period for d in device.dmm_channels.values()]
    for clock in clocks:
        if duration_ns % clock:
            raise QepValueError(
                f"'duration_ns' = {duration_ns} must be a multiple of the {clock} ns clock "
                f"of {device.name}"
            )
    if ch.min_duration and duration_ns < ch.min_duration:
        raise QepValueError(
            f"'duration_ns' = {duration_ns} is below the channel min_duration {ch.min_duration} ns"
        )
    limit = device.max_sequence_duration
    if limit is not None and duration_ns > limit:
        raise QepValueError(
            f"'duration_ns' = {duration_ns} exceeds max_sequence_duration = {limit} ns of "
            f"{device.name}"
        )


def build_sequence(
    register: pulser.Register,
    device,
    *,
    omega: float,
    phase: float,
    detunings,
    ramp: RampSpec,
    step_nudge=None,
    what: str = "the local detunings",
) -> tuple[pulser.Sequence, DetuningPlan]:
    """The pulser Sequence ramping to Ω, φ and final local detunings ``detunings`` (rad/µs).

    ``step_nudge`` (per-atom detuning changes) is applied as a step at ``ramp.nudge_switch``.
    Returns the sequence and the detuning plan; device violations raise QepValueError naming the
    channel and the limit.
    """
    check_duration(device, int(ramp.duration_ns))
    s = ramp.shape_samples()
    plan = plan_detunings(
        detunings, device, shape_mean=float(s.mean()), start_detuning=ramp.start_detuning, what=what
    )
    delta0 = ramp.start_detuning
    global_detuning = delta0 + s * (plan.delta_reference - delta0)
    ch_id, _ = global_channel(device)
    seq = pulser.Sequence(register, device)
    seq.declare_channel("rydberg_global", ch_id)
    ids = list(register.qubit_ids)
    step = None
    if step_nudge is not None:
        if ramp.nudge_switch == "ramped":
            raise QepValueError(
                "'step_nudge' needs ramp.nudge_switch set to a fraction of the duration"
            )
        on = (np.arange(int(ramp.duration_ns)) >= ramp.nudge_switch * ramp.duration_ns).astype(
            float
        )
        step = step_map(step_nudge, device, active_fraction=float(on.mean()))
        global_detuning = global_detuning + on * step.delta_reference
    try:
        seq.add(
            Pulse(CustomWaveform(omega * s), CustomWaveform(global_detuning), phase),
            "rydberg_global",
        )
    except ValueError as exc:
        raise QepValueError(
            f"global channel 'rydberg_global' of {device.name} refuses the ramp: {exc}"
        ) from None
    maps = []
    if plan.uses_dmm:
        maps.append((plan, s))
    if step is not None and step.uses_dmm:
        maps.append((step, on))
    if len(maps) == 2 and len(device.dmm_channels) < 2 and not device.reusable_channels:
        raise QepValueError(
            f"a step nudge needs a second detuning map, but {device.name} has one DMM that "
            f"takes one map per sequence; use a device with reusable channels (MockDevice)"
        )
    dmm_ids = sorted(device.dmm_channels)
    for k, (p, shape) in enumerate(maps):
        dmm_id = dmm_ids[k] if k < len(dmm_ids) else dmm_ids[0]
        dmap = register.define_detuning_map(dict(zip(ids, p.weights, strict=True)))
        before = set(seq.declared_channels)
        try:
            seq.config_detuning_map(dmap, dmm_id)
            (name,) = set(seq.declared_channels) - before
            seq.add_dmm_detuning(CustomWaveform(p.dmm_amplitude * shape), name)
        except ValueError as exc:
            raise QepValueError(
                f"DMM {dmm_id!r} of {device.name} refuses the detuning map: {exc}"
            ) from None
    if ramp.measure:
        seq.measure("ground-rydberg")
    return seq, plan


def model_sequence(model, controls: dict, ramp: RampSpec, *, nudge_detunings=None, register=None):
    """Sequence for a :class:`RydbergModel`'s controls (from ``model.controls``); ``nudge_detunings``
    are per-atom changes of the final detunings, ramped or stepped according to ``ramp``."""
    det = np.asarray(controls["detunings"], dtype=float)
    step = None
    what = "the local detunings"
    if nudge_detunings is not None and np.any(nudge_detunings):
        what = f"the nudged local detunings (nudge {np.round(nudge_detunings, 4).tolist()} rad/µs)"
    if nudge_detunings is not None and np.any(nudge_detunings):
        if ramp.nudge_switch == "ramped":
            det = det + np.asarray(nudge_detunings, float)
        else:
            step = np.asarray(nudge_detunings, float)
    problems = model.violations(controls["positions_um"], det, controls["omega"])
    if problems:
        raise QepValueError("; ".join(problems))
    reg = register if register is not None else model.register()
    return build_sequence(
        reg,
        model.device,
        omega=controls["omega"],
        phase=controls["phase"],
        detunings=det,
        ramp=ramp,
        step_nudge=step,
        what=what,
    )
