"""Bitstrings from a prepared state: basis rotation, shots and readout errors.

Bitstring convention: character q is qubit q, '1' = outcome −1 of the measured Pauli (for Z:
the Rydberg state |r⟩ = |1⟩). A measurement in basis X applies H before reading Z; basis Y
applies H S† (so that H S† Y S H = Z).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from qep_analog.errors import QepValueError

_HADAMARD = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
_ROTATION = {"X": _HADAMARD, "Y": _HADAMARD @ np.diag([1, -1j])}


def _check_basis(basis: str, n_qubits: int) -> None:
    if len(basis) != n_qubits or any(c not in "XYZ" for c in basis):
        raise QepValueError(f"'basis' must be {n_qubits} letters from X, Y, Z, not {basis!r}")


def rotate_to_basis(state: np.ndarray, basis: str) -> np.ndarray:
    """Apply the single-qubit rotations that map measuring ``basis`` onto measuring Z."""
    n = len(basis)
    pure = state.ndim == 1
    psi = state.reshape((2,) * n if pure else (2,) * (2 * n))
    for q, letter in enumerate(basis):
        if letter == "Z":
            continue
        u = _ROTATION[letter]
        psi = np.moveaxis(np.tensordot(u, psi, axes=([1], [q])), 0, q)
        if not pure:
            psi = np.moveaxis(np.tensordot(u.conj(), psi, axes=([1], [n + q])), 0, n + q)
    return psi.reshape(state.shape)


def basis_probabilities(state: np.ndarray, basis: str) -> np.ndarray:
    """Outcome probabilities of measuring every qubit in ``basis`` (index = int(bitstring, 2))."""
    n = int(np.log2(state.shape[0]))
    _check_basis(basis, n)
    rotated = rotate_to_basis(state, basis)
    probs = np.abs(rotated) ** 2 if rotated.ndim == 1 else np.real(np.diag(rotated))
    probs = np.clip(probs, 0.0, None)
    return probs / probs.sum()


@dataclass(frozen=True, kw_only=True)
class ReadoutError:
    """Independent per-qubit readout flips.

    ``p_false_pos[q]`` = P(read 1 | true 0) (an atom in |g⟩ detected as Rydberg, pulser's
    ``p_false_pos``) and ``p_false_neg[q]`` = P(read 0 | true 1). Scalars apply to every qubit.
    """

    p_false_pos: float | tuple[float, ...] = 0.0
    p_false_neg: float | tuple[float, ...] = 0.0

    def __post_init__(self) -> None:
        for field in ("p_false_pos", "p_false_neg"):
            values = np.atleast_1d(np.asarray(getattr(self, field), dtype=float))
            if np.any(~np.isfinite(values)) or np.any(values < 0) or np.any(values >= 0.5):
                raise QepValueError(f"'{field}' must lie in [0, 0.5), not {getattr(self, field)}")

    def rates(self, n_qubits: int) -> tuple[np.ndarray, np.ndarray]:
        out = []
        for field in ("p_false_pos", "p_false_neg"):
            values = np.asarray(getattr(self, field), dtype=float)
            values = np.full(n_qubits, float(values)) if values.ndim == 0 else values
            if values.shape != (n_qubits,):
                raise QepValueError(f"'{field}' has {values.size} rates for {n_qubits} qubits")
            out.append(values)
        return out[0], out[1]

    def apply(self, bits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        eps0, eps1 = self.rates(bits.shape[1])
        u = rng.random(bits.shape)
        flip = np.where(bits == 0, u < eps0, u < eps1)
        return (bits ^ flip).astype(np.uint8)

    def mitigated_signs(self, bits: np.ndarray) -> np.ndarray:
        """Per-shot values g_q(b) with E[g_q(b_read)] = z_true (inverse of the confusion matrix).

        Solving (1−ε₀)g(0) + ε₀ g(1) = 1 and ε₁ g(0) + (1−ε₁) g(1) = −1 per qubit; products of
        them over distinct qubits are unbiased for products of Z (readout errors independent).
        """
        eps0, eps1 = self.rates(bits.shape[1])
        det = 1.0 - eps0 - eps1
        g0 = (1.0 - eps1 + eps0) / det
        g1 = -(1.0 - eps0 + eps1) / det
        return np.where(bits == 0, g0, g1)


def sample_bitstrings(state: np.ndarray, basis: str, shots: int, rng: np.random.Generator,
                      readout: ReadoutError | None = None) -> np.ndarray:
    """``shots`` bitstrings (uint8 array, shots × n_qubits) measured in ``basis``."""
    if not isinstance(shots, (int, np.integer)) or shots < 1:
        raise QepValueError(f"'shots' must be a positive integer, not {shots!r}")
    probs = basis_probabilities(state, basis)
    n = len(basis)
    indices = rng.choice(probs.size, size=int(shots), p=probs)
    bits = ((indices[:, None] >> (n - 1 - np.arange(n))) & 1).astype(np.uint8)
    if readout is not None:
        bits = readout.apply(bits, rng)
    return bits


def bits_to_counts(bits: np.ndarray) -> dict[str, int]:
    strings, counts = np.unique(["".join(map(str, row)) for row in bits], return_counts=True)
    return {str(s): int(c) for s, c in zip(strings, counts, strict=True)}


def counts_to_bits(counts: Mapping[str, int], n_qubits: int | None = None) -> np.ndarray:
    """Inverse of :func:`bits_to_counts`; checks bitstring length and characters."""
    rows = []
    for key, count in counts.items():
        if not isinstance(key, str) or any(c not in "01" for c in key):
            raise QepValueError(f"bitstring {key!r} must contain only '0' and '1'")
        if n_qubits is not None and len(key) != n_qubits:
            raise QepValueError(f"bitstring {key!r} has length {len(key)}, expected {n_qubits}")
        if not isinstance(count, (int, np.integer)) or count < 0:
            raise QepValueError(f"count for {key!r} must be a non-negative integer, not {count!r}")
        rows.extend([[int(c) for c in key]] * int(count))
    if not rows:
        raise QepValueError("the counts contain no shots")
    return np.asarray(rows, dtype=np.uint8)
