"""What a sequence asks of the hardware: amplitude, detuning, slew and clock, per channel, from pulser's samples.

pulser checks amplitude and detuning limits when a pulse is added, and the 4 ns clock of every duration.
It has no slew-rate limit: how fast a control may change is set by the channel's modulation bandwidth
(an AOM/EOM follows its input through a low-pass filter of rise time t_r, ``channel.rise_time``). We
therefore state the slew of each waveform, max |dΩ/dt| and max |dδ/dt| in rad/µs² (from the 1 ns
samples), against the channel's full-scale change per rise time,

    S_max = (full scale) / t_r,   full scale = max_amp for Ω, max_abs_detuning (|bottom_detuning| for a DMM) for δ,

and measure what the filter does to the waveform itself: the lag max_t |M[x](t) − x(t)| of pulser's
``channel.modulate(x, keep_ends=True)`` (the ends held, so the unavoidable switch-off after the last
sample, common to every ramp, is not counted). A ramp with slew ≪ S_max and a lag of a few per cent of its
range is what a lab's hardware plays as written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qep_analog.errors import QepValueError


@dataclass(frozen=True, kw_only=True)
class ChannelLoad:
    """One channel's demands (rad/µs, rad/µs², ns) next to its limits (None: the device sets none)."""

    channel: str
    kind: str  # "global" or "dmm"
    duration_ns: int
    clock_ns: int
    max_amp: float
    amp_limit: float | None
    max_abs_detuning: float
    detuning_limit: float | None
    amp_slew: float
    detuning_slew: float
    amp_slew_limit: float | None
    detuning_slew_limit: float | None
    amp_lag: float
    detuning_lag: float

    def violations(self, *, lag_fraction: float | None = None) -> list[str]:
        """Every limit exceeded, as sentences naming the channel, the quantity and both values.

        ``lag_fraction``: also refuse a modulation lag above this fraction of the waveform's range."""
        out = []
        if self.duration_ns % self.clock_ns:
            out.append(f"{self.channel}: duration {self.duration_ns} ns is not a multiple of the "
                       f"{self.clock_ns} ns clock")
        checks = [("amplitude", self.max_amp, self.amp_limit, "rad/µs"),
                  ("|detuning|", self.max_abs_detuning, self.detuning_limit, "rad/µs"),
                  ("amplitude slew", self.amp_slew, self.amp_slew_limit, "rad/µs²"),
                  ("detuning slew", self.detuning_slew, self.detuning_slew_limit, "rad/µs²")]
        for what, value, limit, unit in checks:
            if limit is not None and value > limit * (1 + 1e-9):
                out.append(f"{self.channel}: {what} {value:.4g} {unit} exceeds {limit:.4g} {unit}")
        if lag_fraction is not None:
            for what, lag, scale in (("amplitude", self.amp_lag, self.max_amp),
                                     ("detuning", self.detuning_lag, self.max_abs_detuning)):
                if scale > 0 and lag > lag_fraction * scale:
                    out.append(f"{self.channel}: modulation lag of the {what} {lag:.3g} rad/µs exceeds "
                               f"{lag_fraction:g} × its range {scale:.3g} rad/µs")
        return out

    @property
    def slew_fraction(self) -> float:
        """The largest slew as a fraction of its limit (0 where the device sets none)."""
        pairs = ((self.amp_slew, self.amp_slew_limit), (self.detuning_slew, self.detuning_slew_limit))
        return max([value / limit for value, limit in pairs if limit], default=0.0)

    @property
    def lag_fraction(self) -> float:
        """The largest modulation lag as a fraction of its waveform's range (max |x|)."""
        pairs = ((self.amp_lag, self.max_amp), (self.detuning_lag, self.max_abs_detuning))
        return max([lag / scale for lag, scale in pairs if scale > 0], default=0.0)

    def as_dict(self) -> dict:
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in self.__dict__.items()}


def _slew(samples: np.ndarray) -> float:
    """max |dx/dt| in rad/µs² for samples at 1 ns (rad/µs per ns × 1000)."""
    return float(np.max(np.abs(np.diff(samples))) * 1000.0) if samples.size > 1 else 0.0


def _lag(channel, samples: np.ndarray) -> float:
    if not channel.mod_bandwidth or samples.size < 2:
        return 0.0
    padding = channel._modulation_padding  # pulser pads by this much on each side (keep_ends=True)
    modulated = np.asarray(channel.modulate(samples, keep_ends=True), dtype=float)
    return float(np.max(np.abs(modulated[padding:padding + samples.size] - samples)))


def channel_loads(sequence) -> list[ChannelLoad]:
    """The demands of every declared channel of a pulser ``sequence`` (pulse samples at 1 ns, unmodulated)."""
    from pulser.sampler import sample

    samples = sample(sequence)
    out = []
    for name, channel in sequence.declared_channels.items():
        ch = samples.channel_samples[name]
        amp, det = np.asarray(ch.amp, dtype=float), np.asarray(ch.det, dtype=float)
        dmm = type(channel).__name__ == "DMM"
        rise = channel.rise_time or None
        if dmm:
            det_limit = abs(channel.bottom_detuning) if channel.bottom_detuning is not None else None
            amp_limit = 0.0
        else:
            det_limit, amp_limit = channel.max_abs_detuning, channel.max_amp
        out.append(ChannelLoad(
            channel=name, kind="dmm" if dmm else "global", duration_ns=int(amp.size),
            clock_ns=int(channel.clock_period),
            max_amp=float(np.max(np.abs(amp), initial=0.0)), amp_limit=amp_limit,
            max_abs_detuning=float(np.max(np.abs(det), initial=0.0)), detuning_limit=det_limit,
            amp_slew=_slew(amp), detuning_slew=_slew(det),
            amp_slew_limit=None if rise is None or not amp_limit else 1000.0 * amp_limit / rise,
            detuning_slew_limit=None if rise is None or det_limit is None else 1000.0 * det_limit / rise,
            amp_lag=_lag(channel, amp), detuning_lag=_lag(channel, det)))
    return out


def check_pulse_limits(sequence, *, lag_fraction: float | None = None, what: str = "the sequence") -> list[ChannelLoad]:
    """:func:`channel_loads`, raising :class:`QepValueError` listing every exceeded limit."""
    loads = channel_loads(sequence)
    problems = [p for load in loads for p in load.violations(lag_fraction=lag_fraction)]
    if problems:
        raise QepValueError(f"{what} exceeds the device's limits: " + "; ".join(problems))
    return loads


__all__ = ["ChannelLoad", "channel_loads", "check_pulse_limits"]
