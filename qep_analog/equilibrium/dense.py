"""Dense implementations of the state interface: a state vector and a density matrix (2^N arrays).

Basis: index = int(bitstring, 2), qubit 0 leftmost (most significant), |1⟩ = |r⟩ = Z eigenvalue −1.
A measurement in basis X applies H before reading Z; basis Y applies H S† (so that H S† Y S H = Z).
These are the only classes (with the dense backends that build them) that hold a 2^N array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from qep_analog.equilibrium.base import EquilibriumState, StateKind
from qep_analog.errors import QepValueError
from qep_analog.models.pauli import PauliProduct, ProductTable

_HADAMARD = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
BASIS_ROTATIONS = {"Z": np.eye(2), "X": _HADAMARD, "Y": _HADAMARD @ np.diag([1, -1j])}


def check_basis(basis: str, n_qubits: int) -> None:
    if not isinstance(basis, str) or len(basis) != n_qubits or any(c not in "XYZ" for c in basis):
        raise QepValueError(f"'basis' must be {n_qubits} letters from X, Y, Z, not {basis!r}")


def check_shots(shots: object) -> int:
    if not isinstance(shots, (int, np.integer)) or isinstance(shots, bool) or shots < 1:
        raise QepValueError(f"'shots' must be a positive integer, not {shots!r}")
    return int(shots)


def rotate_to_basis(state: np.ndarray, basis: str) -> np.ndarray:
    """Apply the single-qubit rotations that map measuring ``basis`` onto measuring Z."""
    n = len(basis)
    pure = state.ndim == 1
    psi = state.reshape((2,) * n if pure else (2,) * (2 * n))
    for q, letter in enumerate(basis):
        if letter == "Z":
            continue
        u = BASIS_ROTATIONS[letter]
        psi = np.moveaxis(np.tensordot(u, psi, axes=([1], [q])), 0, q)
        if not pure:
            psi = np.moveaxis(np.tensordot(u.conj(), psi, axes=([1], [n + q])), 0, n + q)
    return psi.reshape(state.shape)


def basis_probabilities(state: np.ndarray, basis: str) -> np.ndarray:
    """Outcome probabilities of measuring every qubit in ``basis`` (index = int(bitstring, 2))."""
    n = int(np.log2(state.shape[0]))
    check_basis(basis, n)
    rotated = rotate_to_basis(state, basis)
    probs = np.abs(rotated) ** 2 if rotated.ndim == 1 else np.real(np.diag(rotated))
    probs = np.clip(probs, 0.0, None)
    return probs / probs.sum()


def sample_dense(state: np.ndarray, basis: str, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Ideal bitstrings (shots × n uint8) from a dense vector or density matrix."""
    shots = check_shots(shots)
    probs = basis_probabilities(state, basis)
    n = len(basis)
    indices = rng.choice(probs.size, size=shots, p=probs)
    return ((indices[:, None] >> (n - 1 - np.arange(n))) & 1).astype(np.uint8)


@lru_cache(maxsize=256)
def _table(products: tuple[PauliProduct, ...], n_qubits: int) -> ProductTable:
    return ProductTable(products, n_qubits)


class _Dense(EquilibriumState):
    """Shared behaviour of the two dense implementations (``state`` is the 2^N array)."""

    state: np.ndarray

    @property
    def n_qubits(self) -> int:
        return int(round(np.log2(self.state.shape[0])))

    def probabilities(self) -> np.ndarray:
        """Z-basis outcome probabilities (a 2^N vector: dense states only)."""
        if self.is_pure:
            return np.abs(self.state) ** 2
        return np.clip(np.real(np.diag(self.state)), 0.0, None)

    def expect(self, products: Sequence[PauliProduct]) -> np.ndarray:
        products = tuple(products)
        if not products:
            return np.zeros(0)
        return _table(products, self.n_qubits).expect(self.state)

    def sample(self, basis: str, shots: int, rng: np.random.Generator) -> np.ndarray:
        return sample_dense(self.state, basis, shots, rng)

    def overlap(self, other: EquilibriumState) -> float:
        """|⟨a|b⟩| for pure states; the fidelity √F = Tr|√ρ √σ| is not needed for our policy,
        so for mixed states this returns Tr(ρσ)/sqrt(Tr ρ² Tr σ²) (1 for equal states)."""
        b = getattr(other, "state", None)
        if not isinstance(b, np.ndarray):
            raise QepValueError(f"cannot compare a dense state with a {type(other).__name__}")
        a = self.state
        if a.ndim == 1 and b.ndim == 1:
            return float(abs(np.vdot(a, b)))
        ra = a if a.ndim == 2 else np.outer(a, a.conj())
        rb = b if b.ndim == 2 else np.outer(b, b.conj())
        num = np.real(np.vdot(ra, rb))
        return float(num / np.sqrt(np.real(np.vdot(ra, ra)) * np.real(np.vdot(rb, rb))))


@dataclass(frozen=True, kw_only=True)
class StateVector(_Dense):
    """A normalised pure state ψ (length 2^N) in the package basis."""

    state: np.ndarray
    kind: StateKind = "eigenstate"
    energy: float = float("nan")
    gap: float = float("nan")
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.state.ndim != 1:
            raise QepValueError(f"a StateVector needs a 1-d array, not shape {self.state.shape}")

    @property
    def is_pure(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class DensityMatrix(_Dense):
    """A density matrix ρ (2^N × 2^N, unit trace) in the package basis."""

    state: np.ndarray
    kind: StateKind = "gibbs"
    energy: float = float("nan")
    gap: float = float("nan")
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.state.ndim != 2 or self.state.shape[0] != self.state.shape[1]:
            raise QepValueError(f"a DensityMatrix needs a square 2-d array, not shape {self.state.shape}")

    @property
    def is_pure(self) -> bool:
        return False


def dense_state(*, state: np.ndarray, kind: StateKind, energy: float = float("nan"), gap: float = float("nan"),
                info: dict | None = None) -> StateVector | DensityMatrix:
    """The dense implementation that fits ``state``: a vector → :class:`StateVector`, a matrix →
    :class:`DensityMatrix`."""
    state = np.asarray(state)
    cls = StateVector if state.ndim == 1 else DensityMatrix
    return cls(state=state, kind=kind, energy=energy, gap=gap, info={} if info is None else info)
