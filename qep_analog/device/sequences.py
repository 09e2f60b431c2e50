"""Adiabatic preparation sequences: smooth ramps from |g…g⟩ to the target Hamiltonian, in pulser.

All atoms start in |g…g⟩, the ground state at Ω = 0 and δ₀ < 0. Over ``duration_ns`` every control
follows one shape s(t) from 0 to 1 (cosine ½(1 − cos πx) by default, x = t/T):

    Ω(t) = s(t) Ω,   δ_i(t) = δ₀ + s(t)(d_i − δ₀)

where d_i are the final local detunings. The shape may also be any monotone profile from 0 to 1
given as samples (e.g. the gap-aware "local-adiabatic" schedule of
:mod:`qep_analog.equilibrium.schedules`). How a nudge c_i (per-atom detuning change) enters:

* ``nudge = "simultaneous"`` (default): with the same shape, d_i → d_i + c_i (PHYSICS.md §3); or, for
  comparison, switched on as a step at t_s = ``nudge_switch``·T;
* ``nudge = "after-preparation"`` ("cached" QEP): the controls reach the free target after
  T_p = T − ``nudge_ramp_ns`` − ``hold_ns``, then the nudge ramps on as
  δ_i(t) = d_i + r(t) c_i, r = ½(1 − cos π(t − T_p)/T_r) over T_r = ``nudge_ramp_ns``, and is held for
  ``hold_ns``. The free sequence (no nudge) has the same T_p and total T, so the free and ±β sequences
  share the preparation and differ only in the nudge (see docs/adiabatic_qep.md).

A step or after-preparation nudge needs a second detuning map next to the free one: a device with
two DMMs or reusable channels (MockDevice); qep_lab_device has one DMM and refuses it.
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
NUDGE_MODES = ("simultaneous", "after-preparation")


@dataclass(frozen=True, kw_only=True)
class RampSpec:
    """Ramp settings: total duration (ns, a multiple of the 4 ns clock), start detuning δ₀ (rad/µs, < 0),
    shape, and how the nudge enters: ``nudge`` "simultaneous" (with ``nudge_switch`` "ramped" = with the
    same shape, or a step at a fraction) or "after-preparation" (cosine ramp of ``nudge_ramp_ns`` after
    the preparation, then ``hold_ns``; see the module docstring)."""

    duration_ns: int = 3000
    start_detuning: float = -20.0
    shape: Literal["cosine", "linear"] = "cosine"
    nudge_switch: Literal["ramped"] | float = "ramped"
    measure: bool = True
    nudge: Literal["simultaneous", "after-preparation"] = "simultaneous"
    nudge_ramp_ns: int = 1000
    hold_ns: int = 0
    nudge_delay_ns: int = 0

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
        if self.nudge not in NUDGE_MODES:
            raise QepValueError(f"'nudge' must be one of {NUDGE_MODES}, not {self.nudge!r}")
        for key in ("nudge_ramp_ns", "hold_ns", "nudge_delay_ns"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise QepValueError(f"'{key}' must be an integer ≥ 0 ns, not {value!r}")
        if self.nudge == "after-preparation":
            if self.nudge_switch != "ramped":
                raise QepValueError("'nudge_switch' is a simultaneous-nudge option; with nudge = "
                                    f"'after-preparation' leave it 'ramped', not {self.nudge_switch!r}")
            if self.nudge_delay_ns > self.hold_ns:
                raise QepValueError(f"'nudge_delay_ns' = {self.nudge_delay_ns} must not exceed 'hold_ns' = "
                                    f"{self.hold_ns} (the delay is taken from the hold)")
            if self.nudge_ramp_ns < 16:
                raise QepValueError(f"'nudge_ramp_ns' must be ≥ 16 ns, not {self.nudge_ramp_ns}")
            if self.preparation_ns < 16:
                raise QepValueError(
                    f"'duration_ns' = {self.duration_ns} leaves {self.preparation_ns} ns for the preparation "
                    f"after 'nudge_ramp_ns' = {self.nudge_ramp_ns} and 'hold_ns' = {self.hold_ns}; need ≥ 16"
                )

    @property
    def preparation_ns(self) -> int:
        """Length of the preparation ramp T_p (the whole duration for a simultaneous nudge)."""
        if self.nudge == "after-preparation":
            return int(self.duration_ns) - int(self.nudge_ramp_ns) - int(self.hold_ns)
        return int(self.duration_ns)

    def preparation_samples(self) -> np.ndarray:
        """s at every ns sample of the preparation, from exactly 0 to exactly 1 (this spec's shape)."""
        x = np.linspace(0.0, 1.0, self.preparation_ns)
        return 0.5 * (1.0 - np.cos(np.pi * x)) if self.shape == "cosine" else x

    def shape_samples(self, profile: np.ndarray | None = None) -> np.ndarray:
        """s at every ns sample of the whole sequence: the preparation ``profile`` (default: this
        spec's shape) followed by ones while the nudge ramps and holds."""
        prep = self.preparation_samples() if profile is None else np.asarray(profile, dtype=float)
        if prep.shape != (self.preparation_ns,):
            raise QepValueError(f"the preparation profile must have {self.preparation_ns} samples (1 ns each), "
                                f"not {prep.shape}")
        return np.concatenate([prep, np.ones(int(self.duration_ns) - self.preparation_ns)])

    def nudge_samples(self) -> np.ndarray:
        """r at every ns sample of the whole sequence for an after-preparation nudge: 0 during the
        preparation and ``nudge_delay_ns``, ½(1 − cos) over the nudge ramp, 1 for the rest of the hold."""
        x = np.linspace(0.0, 1.0, int(self.nudge_ramp_ns))
        delay = int(self.nudge_delay_ns)
        return np.concatenate([np.zeros(self.preparation_ns + delay), 0.5 * (1.0 - np.cos(np.pi * x)),
                               np.ones(int(self.hold_ns) - delay)])


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
    after_nudge=None,
    profile=None,
    what: str = "the local detunings",
) -> tuple[pulser.Sequence, DetuningPlan]:
    """The pulser Sequence ramping to Ω, φ and final local detunings ``detunings`` (rad/µs).

    ``step_nudge`` (per-atom detuning changes) is applied as a step at ``ramp.nudge_switch``;
    ``after_nudge`` is ramped on after the preparation (``ramp.nudge == "after-preparation"``).
    ``profile``: preparation samples s(t) (1 ns each) replacing ``ramp.shape``.
    Returns the sequence and the detuning plan; device violations raise QepValueError naming the
    channel and the limit.
    """
    check_duration(device, int(ramp.duration_ns))
    s = ramp.shape_samples(profile)
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
    elif after_nudge is not None:
        if ramp.nudge != "after-preparation":
            raise QepValueError("'after_nudge' needs ramp.nudge = 'after-preparation'")
        on = ramp.nudge_samples()
        step = step_map(after_nudge, device, active_fraction=float(on.mean()), what="the after-preparation nudge")
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
            f"a step or after-preparation nudge needs a second detuning map, but {device.name} has one DMM "
            f"that takes one map per sequence; use a device with two DMMs or reusable channels (MockDevice)"
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


def model_sequence(model, controls: dict, ramp: RampSpec, *, nudge_detunings=None, register=None, profile=None):
    """Sequence for a :class:`RydbergModel`'s controls (from ``model.controls``); ``nudge_detunings``
    are per-atom changes of the final detunings, ramped, stepped or ramped after the preparation
    according to ``ramp``; ``profile`` optionally replaces the preparation shape (samples at 1 ns)."""
    det = np.asarray(controls["detunings"], dtype=float)
    step = after = None
    what = "the local detunings"
    if nudge_detunings is not None and np.any(nudge_detunings):
        what = f"the nudged local detunings (nudge {np.round(nudge_detunings, 4).tolist()} rad/µs)"
    if nudge_detunings is not None and np.any(nudge_detunings):
        if ramp.nudge == "after-preparation":
            after = np.asarray(nudge_detunings, float)
        elif ramp.nudge_switch == "ramped":
            det = det + np.asarray(nudge_detunings, float)
        else:
            step = np.asarray(nudge_detunings, float)
    final = det if after is None else det + after
    problems = model.violations(controls["positions_um"], final, controls["omega"])
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
        after_nudge=after,
        profile=profile,
        what=what,
    )
