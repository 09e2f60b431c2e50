"""Bitstrings from a prepared state: basis rotation, shots and readout errors.

States sample themselves through the state interface (:meth:`EquilibriumState.sample`); this
module adds readout errors and the counts ↔ bits conversions. ``rotate_to_basis`` and
``basis_probabilities`` are the dense primitives of :mod:`qep_analog.equilibrium.dense`.

Bitstring convention: character q is qubit q, '1' = outcome −1 of the measured Pauli (for Z:
the Rydberg state |r⟩ = |1⟩). A measurement in basis X applies H before reading Z; basis Y
applies H S† (so that H S† Y S H = Z).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from qep_analog.equilibrium.base import EquilibriumState
from qep_analog.equilibrium.dense import (
    basis_probabilities,
    check_basis,
    check_shots,
    rotate_to_basis,
    sample_dense,
)
from qep_analog.errors import QepValueError

__all__ = ["ReadoutError", "basis_probabilities", "bits_to_counts", "counts_to_bits", "rotate_to_basis",
           "sample_bitstrings"]


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


def sample_bitstrings(state: EquilibriumState | np.ndarray, basis: str, shots: int, rng: np.random.Generator,
                      readout: ReadoutError | None = None) -> np.ndarray:
    """``shots`` bitstrings (uint8 array, shots × n_qubits) measured in ``basis``, then passed through
    ``readout`` errors. ``state`` is any :class:`EquilibriumState` (it samples itself through the state
    interface) or, for dense callers, a 2^N vector or density matrix."""
    check_shots(shots)
    if isinstance(state, EquilibriumState):
        check_basis(basis, state.n_qubits)
        bits = state.sample(basis, int(shots), rng)
    else:
        bits = sample_dense(np.asarray(state), basis, int(shots), rng)
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
