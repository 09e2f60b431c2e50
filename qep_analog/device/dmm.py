"""Local detunings → a global detuning plus one DMM detuning map, with every device constraint.

Pulser's local detuning (PHYSICS.md §3): δ_i(t) = δ_global(t) + w_i Δ(t), weights w_i ∈ [0, 1],
Δ(t) ≤ 0. For final targets d_i and a common ramp shape s(t) from a start δ₀:

    δ_global(t) = δ₀ + s(t)(δ_ref − δ₀),   Δ(t) = s(t)(min d − δ_ref),   w_i = (δ_ref − d_i)/(δ_ref − min d)

with a reference δ_ref ≥ max d. The constraints the formula hides, all checked here:

* ``min_avg_abs_detuning`` m (WeightedAnalogDevice: 2π·0.1 rad/µs): pulser refuses a DMM pulse unless
  w_min · mean_t|Δ(t)| ≥ m for the smallest *nonzero* weight. With mean_t s = a this means every atom
  whose target differs from δ_ref must differ by ≥ m/a. Small offsets (e.g. a small nudge on one
  atom) break it when δ_ref = max d; we then raise δ_ref to max d + m/a, which gives every atom
  a weight ≥ that bound, if the limits below allow it; otherwise we say why it cannot be realised;
* ``bottom_detuning`` (|Δ| · max w) and ``total_bottom_detuning`` (|Δ| · Σ w);
* all-zero maps are refused by pulser: uniform targets use no DMM at all;
* one map per DMM per sequence (a step nudge needs a second map, see ``sequences``);
* the global channel's ``max_abs_detuning`` bounds δ_ref and δ₀;
* weights are rounded to 1e-6 (the realised detunings are reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pulser.devices._device_datacls import BaseDevice

from qep_analog.device.devices import global_channel
from qep_analog.errors import QepRuntimeError, QepValueError

WEIGHT_DECIMALS = 6
_MARGIN = 1.0 + 1e-3


@dataclass(frozen=True, kw_only=True)
class DetuningPlan:
    """How final local detunings ``targets`` are realised on a device (rad/µs).

    ``weights`` is ``None`` when the targets are uniform (no DMM needed); ``realised`` is
    δ_ref + w Δ after weight rounding; ``reason`` says how the reference was chosen.
    """

    targets: np.ndarray
    delta_reference: float
    dmm_amplitude: float
    weights: np.ndarray | None
    dmm_id: str | None
    realised: np.ndarray
    reason: str

    @property
    def uses_dmm(self) -> bool:
        return self.weights is not None


def _dmm(device: BaseDevice, needed_for: str):
    if not device.dmm_channels:
        raise QepValueError(
            f"device {device.name!r} has no DMM, but {needed_for} needs local detunings; use a device with a "
            f"DMM (WeightedAnalogDevice, DigitalAnalogDevice, MockDevice, devices/qep_lab_device.json)"
        )
    dmm_id = sorted(device.dmm_channels)[0]
    return dmm_id, device.dmm_channels[dmm_id]


def plan_detunings(
    targets,
    device: BaseDevice,
    *,
    shape_mean: float = 0.5,
    start_detuning: float | None = None,
    atol: float = 1e-9,
    what: str = "the local detunings",
) -> DetuningPlan:
    """Decompose final local detunings ``targets`` (rad/µs) into a global reference and a DMM map.

    ``shape_mean`` is the time average of the DMM ramp shape over its pulse (½ for a cosine ramp
    over the whole pulse); it enters pulser's ``min_avg_abs_detuning`` check.
    """
    d = np.asarray(targets, dtype=float).reshape(-1)
    if d.size == 0 or not np.all(np.isfinite(d)):
        raise QepValueError(f"{what} must be finite values in rad/µs, not {d.tolist()}")
    _, channel = global_channel(device)
    max_abs = channel.max_abs_detuning
    if start_detuning is not None and max_abs is not None and abs(start_detuning) > max_abs:
        raise QepValueError(
            f"'start_detuning' = {start_detuning:.4g} rad/µs exceeds the global channel's "
            f"max_abs_detuning = {max_abs:.4g} rad/µs of {device.name}"
        )
    top, bottom = float(d.max()), float(d.min())
    if top - bottom <= atol:
        ref = float(d.mean())
        _check_global(ref, max_abs, device, what)
        return DetuningPlan(
            targets=d,
            delta_reference=ref,
            dmm_amplitude=0.0,
            weights=None,
            dmm_id=None,
            realised=np.full_like(d, ref),
            reason="uniform targets: global detuning only",
        )
    dmm_id, dmm = _dmm(device, what)
    m = float(dmm.min_avg_abs_detuning or 0.0)
    if not 0 < shape_mean <= 1:
        raise QepValueError(f"'shape_mean' must be in (0, 1], not {shape_mean}")
    min_offset = m / shape_mean
    offsets = top - d
    small = np.flatnonzero((offsets > atol) & (offsets < min_offset * _MARGIN))
    ref, reason = top, "reference = max target (atoms at it get weight 0)"
    if small.size:
        ref = top + min_offset * _MARGIN
        reason = (
            f"atoms {[f'q{i}' for i in small]} sit {offsets[small].round(4).tolist()} rad/µs below the "
            f"top target, less than min_avg_abs_detuning/shape_mean = {min_offset:.4g} rad/µs, so the "
            f"reference is raised to max target + {min_offset:.4g} rad/µs"
        )
        problems = _limit_problems(d, ref, dmm, max_abs)
        if problems:
            raise QepRuntimeError(
                f"cannot realise {what} on {device.name}: atoms {[f'q{i}' for i in small]} differ from the "
                f"top target by {offsets[small].round(4).tolist()} rad/µs, below min_avg_abs_detuning/shape_mean"
                f" = {min_offset:.4g} rad/µs; raising the reference to {ref:.4g} rad/µs would break "
                + "; ".join(problems)
                + ". Use a larger nudge (β), a reference detuning with more room, or "
                "a device with a smaller min_avg_abs_detuning"
            )
    problems = _limit_problems(d, ref, dmm, max_abs)
    if problems:
        raise QepValueError(
            f"cannot realise {what} {d.round(4).tolist()} rad/µs on {device.name}: "
            + "; ".join(problems)
        )
    amplitude = bottom - ref
    weights = np.round((ref - d) / (ref - bottom), WEIGHT_DECIMALS)
    return DetuningPlan(
        targets=d,
        delta_reference=float(ref),
        dmm_amplitude=float(amplitude),
        weights=weights,
        dmm_id=dmm_id,
        realised=ref + weights * amplitude,
        reason=reason,
    )


def _check_global(ref: float, max_abs: float | None, device: BaseDevice, what: str) -> None:
    if max_abs is not None and abs(ref) > max_abs:
        raise QepValueError(
            f"cannot realise {what} on {device.name}: the global detuning {ref:.4g} rad/µs exceeds "
            f"max_abs_detuning = {max_abs:.4g} rad/µs"
        )


def _limit_problems(d: np.ndarray, ref: float, dmm, max_abs: float | None) -> list[str]:
    out = []
    amplitude = float(d.min()) - ref
    weights = (ref - d) / (ref - d.min())
    if max_abs is not None and abs(ref) > max_abs:
        out.append(
            f"the global channel's max_abs_detuning = {max_abs:.4g} rad/µs (reference {ref:.4g})"
        )
    if dmm.bottom_detuning is not None and amplitude < dmm.bottom_detuning:
        out.append(
            f"the DMM bottom_detuning = {dmm.bottom_detuning:.4g} rad/µs (Δ = {amplitude:.4g})"
        )
    if (
        dmm.total_bottom_detuning is not None
        and weights.sum() * amplitude < dmm.total_bottom_detuning
    ):
        out.append(
            f"the DMM total_bottom_detuning = {dmm.total_bottom_detuning:.4g} rad/µs "
            f"(Σw·Δ = {weights.sum() * amplitude:.4g})"
        )
    return out


def step_map(
    changes, device: BaseDevice, *, active_fraction: float, what: str = "the step nudge"
) -> DetuningPlan:
    """A second detuning map for a nudge switched on as a step (changes e_i, rad/µs):
    global step max e plus a DMM map (weights (max e − e_i)/(max e − min e)), held for
    ``active_fraction`` of the pulse (enters the min_avg_abs_detuning check)."""
    return plan_detunings(changes, device, shape_mean=active_fraction, what=what)
