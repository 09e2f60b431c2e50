"""Per-atom controls of a pulser sequence, read from pulser's own sampler (no parallel description).

The Hamiltonian every emulator here integrates (ħ = 1, rad/µs, µm, µs), in OUR basis
|0⟩ = |g⟩, |1⟩ = |r⟩, n = (1 − Z)/2, qubit 0 = first atom of ``seq.register`` (leftmost):

    H(t) = Σ_i (Ω_i/2)(cos φ_i X_i + sin φ_i Y_i) − Σ_i δ_i(t) n_i + Σ_{i<j} C6/r_ij⁶ n_i n_j

Ω_i, δ_i (global channel plus the DMM part) and φ_i come from
``pulser.sampler.sample(seq).to_nested_dict(all_local=True)``; positions from ``seq.register`` and
C6 from ``seq.device.interaction_coeff``. Sample k is the value at t = k ns and, as in
pulser-simulation (``extend_duration(T + 1)``), every control is 0 at t = T. Between these knots
the quadratures a_i = Ω_i cos φ_i, b_i = Ω_i sin φ_i and δ_i are interpolated linearly.
pulser/QuTiP interpolates the same knots with a cubic spline, which rings by up to ~5 % of a jump
for a few ns around abrupt changes (e.g. the switch-off at T); on the reference sweep the two
models give final states 1 − F ≈ 1e-6 apart (3e-6 for a square pulse), measured against pulser at
atol 1e-12, rtol 1e-10. (Holding the last sample up to T instead gave 5e-6.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from qep_analog.errors import QepValueError

MAX_ATOMS = 24


@dataclass(frozen=True, kw_only=True)
class SampledSequence:
    """Controls of one pulser sequence on the ground-rydberg basis, per atom, at 1 ns.

    ``omega``, ``delta``, ``phase`` have shape (n_atoms, duration_ns) in rad/µs and rad;
    ``positions_um`` has shape (n_atoms, dim); ``c6`` is in rad/µs·µm⁶.
    """

    qubit_ids: tuple[str, ...]
    positions_um: np.ndarray
    c6: float
    duration_ns: int
    omega: np.ndarray
    delta: np.ndarray
    phase: np.ndarray

    @property
    def n_atoms(self) -> int:
        return len(self.qubit_ids)

    @property
    def duration_us(self) -> float:
        return self.duration_ns * 1e-3

    def interaction_matrix(self) -> np.ndarray:
        """U_ij = C6 / r_ij⁶ (rad/µs), zero diagonal."""
        return interaction_matrix(self.positions_um, self.c6)

    @cached_property
    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        knots = self.controls()
        return knots, _antiderivative_knots(knots)

    def controls(self) -> np.ndarray:
        """Knot values of the interpolated controls, shape (3, n_atoms, duration_ns + 1):
        a = Ω cos φ, b = Ω sin φ, δ; the extra knot at T is 0 (the sequence has ended)."""
        a = self.omega * np.cos(self.phase)
        b = self.omega * np.sin(self.phase)
        knots = np.stack([a, b, self.delta])
        return np.concatenate([knots, np.zeros_like(knots[:, :, -1:])], axis=2)

    def averages(self, t0_us: np.ndarray, t1_us: np.ndarray) -> np.ndarray:
        """Exact averages of the linearly interpolated (a, b, δ) over the intervals [t0, t1] (µs).

        Returns shape (len(t0), 3, n_atoms); an interval of zero length gives the point value.
        Outside [0, T] the controls are held constant at their end values.
        """
        t0 = np.atleast_1d(np.asarray(t0_us, dtype=float))
        t1 = np.atleast_1d(np.asarray(t1_us, dtype=float))
        knots, antider = self._knots  # (3, N, K)
        f0 = _antiderivative(knots, antider, t0 * 1e3)
        f1 = _antiderivative(knots, antider, t1 * 1e3)
        length = (t1 - t0) * 1e3
        out = np.empty_like(f0)
        tiny = np.abs(length) < 1e-12
        out[~tiny] = (f1[~tiny] - f0[~tiny]) / length[~tiny, None, None]
        if np.any(tiny):
            out[tiny] = _values(knots, t0[tiny] * 1e3)
        return out

    def values(self, t_us: np.ndarray) -> np.ndarray:
        """Interpolated (a, b, δ) at times t (µs): shape (len(t), 3, n_atoms)."""
        t = np.atleast_1d(np.asarray(t_us, dtype=float))
        return _values(self._knots[0], t * 1e3)

    def max_omega(self) -> float:
        return float(np.max(np.abs(self.omega))) if self.omega.size else 0.0


def hamiltonian_matrix(sampled: SampledSequence, t_us: float) -> np.ndarray:
    """Dense H(t) in OUR basis (for checks on a few atoms; 2^N × 2^N)."""
    n = sampled.n_atoms
    a, b, delta = sampled.values(np.array([t_us]))[0]
    idx = np.arange(2**n)
    occ = (idx[:, None] >> np.arange(n - 1, -1, -1)[None, :]) & 1
    u = sampled.interaction_matrix()
    diag = 0.5 * np.einsum("xi,ij,xj->x", occ, u, occ) - occ @ delta
    h = np.diag(diag).astype(complex)
    for i in range(n):
        bit = 1 << (n - 1 - i)
        ground = idx[(idx & bit) == 0]
        h[ground | bit, ground] += 0.5 * (a[i] + 1j * b[i])
        h[ground, ground | bit] += 0.5 * (a[i] - 1j * b[i])
    return h


def interaction_matrix(positions_um: np.ndarray, c6: float) -> np.ndarray:
    """U_ij = C6 / |r_i − r_j|⁶ in rad/µs (zero on the diagonal); coincident atoms raise."""
    pos = np.asarray(positions_um, dtype=float)
    diff = pos[:, None, :] - pos[None, :, :]
    dist = np.sqrt(np.sum(diff**2, axis=-1))
    np.fill_diagonal(dist, np.inf)
    if np.any(dist <= 0):
        i, j = np.argwhere(dist <= 0)[0]
        raise QepValueError(f"atoms {i} and {j} coincide: 'positions_um' must be distinct")
    return float(c6) / dist**6


def _antiderivative_knots(knots: np.ndarray) -> np.ndarray:
    """Cumulative integral (ns · value) of the piecewise-linear interpolant at each knot."""
    trap = 0.5 * (knots[..., 1:] + knots[..., :-1])
    return np.concatenate([np.zeros(knots.shape[:-1] + (1,)), np.cumsum(trap, axis=-1)], axis=-1)


def _antiderivative(knots: np.ndarray, antider: np.ndarray, t_ns: np.ndarray) -> np.ndarray:
    """∫_0^t f (ns · value) for the piecewise-linear interpolant held constant outside the knots.

    Returns shape (len(t), 3, N)."""
    last = knots.shape[-1] - 1
    tc = np.clip(t_ns, 0.0, float(last))
    k = np.minimum(np.floor(tc).astype(np.int64), last - 1)
    s = tc - k
    f_k = knots[..., k]  # (3, N, M)
    f_k1 = knots[..., k + 1]
    inside = antider[..., k] + f_k * s + 0.5 * (f_k1 - f_k) * s**2
    below = np.minimum(t_ns, 0.0) * knots[..., :1]
    above = np.maximum(t_ns - last, 0.0) * knots[..., -1:]
    return np.moveaxis(inside + below + above, -1, 0)


def _values(knots: np.ndarray, t_ns: np.ndarray) -> np.ndarray:
    last = knots.shape[-1] - 1
    tc = np.clip(t_ns, 0.0, float(last))
    k = np.minimum(np.floor(tc).astype(np.int64), last - 1)
    s = tc - k
    vals = knots[..., k] * (1 - s) + knots[..., k + 1] * s
    return np.moveaxis(vals, -1, 0)


def sample_sequence(sequence, *, with_modulation: bool = False) -> SampledSequence:
    """Read a pulser ``Sequence`` into a :class:`SampledSequence` (ground-rydberg basis only).

    Raises QepValueError for sequences that use the digital or XY basis, an empty sequence, or
    more than ``MAX_ATOMS`` atoms.
    """
    from pulser.sampler import sample

    register = sequence.register
    qubit_ids = tuple(str(q) for q in register.qubit_ids)
    n_atoms = len(qubit_ids)
    if n_atoms > MAX_ATOMS:
        raise QepValueError(f"emulation supports at most {MAX_ATOMS} atoms, not {n_atoms}")
    duration = int(sequence.get_duration())
    if duration < 1:
        raise QepValueError("the sequence has 'duration' 0 ns: nothing to emulate")
    samples = sample(sequence, modulation=with_modulation)
    nested = samples.to_nested_dict(all_local=True)
    local = nested.get("Local", {})
    other = [basis for basis, values in local.items() if values and basis != "ground-rydberg"]
    if other:
        raise QepValueError(
            f"emulators handle the 'ground-rydberg' basis only; this sequence also drives {other}"
        )
    per_atom = local.get("ground-rydberg", {})
    omega = np.zeros((n_atoms, duration))
    delta = np.zeros((n_atoms, duration))
    phase = np.zeros((n_atoms, duration))
    keys = {str(k): k for k in per_atom}
    for i, q in enumerate(qubit_ids):
        if q not in keys:
            continue
        entry = per_atom[keys[q]]
        for name, target in (("amp", omega), ("det", delta), ("phase", phase)):
            arr = np.asarray(entry[name], dtype=float)
            n = min(arr.shape[0], duration)
            target[i, :n] = arr[:n]
    coords = register.qubits
    positions = np.array([np.asarray(coords[k], dtype=float) for k in register.qubit_ids])
    return SampledSequence(
        qubit_ids=qubit_ids,
        positions_um=positions,
        c6=float(sequence.device.interaction_coeff),
        duration_ns=duration,
        omega=omega,
        delta=delta,
        phase=phase,
    )
