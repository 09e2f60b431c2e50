"""The backend interface and the registry of backends by name."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliProduct, PauliSum

StateKind = Literal["eigenstate", "gibbs", "steady-state", "pure-prepared"]


class EquilibriumState(ABC):
    """A prepared state and what we know about how it was reached: the interface every backend returns.

    Basis convention (the package's): qubit 0 is the leftmost bitstring character, |1⟩ = |r⟩ = Z
    eigenvalue −1. Every implementation carries ``kind``, ``energy`` (⟨H⟩ of the Hamiltonian that
    was prepared, nudge included), ``gap`` (E₁ − E₀, or the local gap to the followed level, when
    known, else ``nan``) and ``info`` (how it was reached: method, tolerances, truncation, flags).

    The measurement layer and the estimators use only :meth:`expect`, :meth:`sample`,
    :meth:`overlap`, :meth:`expect_sums`, ``is_pure``, ``flagged`` and these attributes. Dense
    implementations (:class:`~qep_analog.equilibrium.dense.StateVector`,
    :class:`~qep_analog.equilibrium.dense.DensityMatrix`) also expose ``state`` (the 2^N array);
    a matrix-product state (:mod:`qep_analog.equilibrium.mps`) does not.

    Calling ``EquilibriumState(state=array, kind=..., ...)`` still builds the dense implementation
    that fits the array (a vector or a density matrix), for backends written before the interface.
    """

    kind: StateKind
    energy: float
    gap: float
    info: dict

    def __new__(cls, *args, **kwargs):
        if cls is EquilibriumState:  # transitional: the dense constructor of the old dataclass
            from qep_analog.equilibrium.dense import dense_state

            return dense_state(*args, **kwargs)
        return super().__new__(cls)

    @property
    @abstractmethod
    def n_qubits(self) -> int:
        """Number of qubits."""

    @property
    @abstractmethod
    def is_pure(self) -> bool:
        """True for a state vector (or a pure MPS), False for a density matrix."""

    @abstractmethod
    def expect(self, products: Sequence[PauliProduct]) -> np.ndarray:
        """Real expectation values ⟨P_k⟩ of Pauli/occupation products (Hermitian products only)."""

    @abstractmethod
    def sample(self, basis: str, shots: int, rng: np.random.Generator) -> np.ndarray:
        """``shots`` ideal bitstrings (uint8, shots × n_qubits) measured qubit-wise in ``basis``
        (one letter X, Y or Z per qubit; '1' = outcome −1). Readout errors belong to the
        measurement layer (:func:`qep_analog.measurement.sample_bitstrings`)."""

    @abstractmethod
    def overlap(self, other: EquilibriumState) -> float:
        """|⟨a|b⟩| for pure states (what the crossing policy compares with its threshold)."""

    @property
    def flagged(self) -> bool:
        """True when the backend could not certify the state (``info["flags"]`` says why); the
        crossing policy treats a flagged nudged phase like a crossing."""
        return bool(self.info.get("flags"))

    def expect_sums(self, observables: Sequence[PauliSum]) -> np.ndarray:
        """⟨O_ℓ⟩ = c₀ + Σ_j c_j ⟨P_j⟩ for each Pauli sum, sharing one :meth:`expect` call."""
        products = tuple(dict.fromkeys(p for o in observables for p in o.products))
        values = self.expect(products) if products else np.zeros(0)
        index = {p: i for i, p in enumerate(products)}
        return np.array([o.constant + sum(c * values[index[p]] for c, p in o.terms) for o in observables],
                        dtype=float)


class EquilibriumBackend(Protocol):
    """What every backend does: prepare the equilibrium of H(θ, x) + nudge.

    ``nudge`` is the Pauli sum added to H, already multiplied by β (β Ĉ, or Σ_ℓ ν_ℓ O_ℓ for
    error-signal nudging), or ``None`` for the free phase. Backends that need a matrix lower it
    with ``nudge.matrix(n_qubits)``; hardware backends read its structure (e.g. a diagonal
    Σ c_ℓ n_ℓ becomes local detunings δ_ℓ → δ_ℓ − c_ℓ).
    ``reference`` is the free-phase state of the same sample: backends use it to warm-start and
    to follow the continuously connected eigenstate (the continuation policy).
    """

    name: str

    def prepare(
        self,
        hamiltonian: Hamiltonian,
        theta: np.ndarray,
        x: np.ndarray,
        nudge: PauliSum | None = None,
        reference: EquilibriumState | None = None,
    ) -> EquilibriumState: ...


_REGISTRY: dict[str, Callable[..., EquilibriumBackend]] = {}
# Backends living in modules that import heavy optional dependencies are registered lazily.
_LAZY = {
    "exact": "qep_analog.equilibrium.exact",
    "exact-lobpcg": "qep_analog.equilibrium.preconditioned",
    "gibbs": "qep_analog.equilibrium.exact",
    "cooling": "qep_analog.equilibrium.cooling",
    "adiabatic": "qep_analog.equilibrium.adiabatic",
    "mps": "qep_analog.equilibrium.mps",
}


def register_backend(name: str, factory: Callable[..., EquilibriumBackend]) -> None:
    _REGISTRY[name] = factory


def available_backends() -> list[str]:
    return sorted(set(_REGISTRY) | set(_LAZY))


def get_backend(name: str, **options) -> EquilibriumBackend:
    """Instantiate a backend by name; unknown names and unknown options raise."""
    if name not in _REGISTRY and name in _LAZY:
        importlib.import_module(_LAZY[name])
    if name not in _REGISTRY:
        raise QepValueError(f"unknown equilibrium backend {name!r}; available: {available_backends()}")
    try:
        return _REGISTRY[name](**options)
    except TypeError as exc:
        raise QepValueError(f"backend {name!r}: {exc}") from None
