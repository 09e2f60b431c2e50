"""The backend interface and the registry of backends by name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliSum

StateKind = Literal["eigenstate", "gibbs", "steady-state", "pure-prepared"]


@dataclass(frozen=True, kw_only=True)
class EquilibriumState:
    """A prepared state and what we know about how it was reached.

    ``state`` is a normalised vector (pure) or a density matrix (mixed), in the package basis
    (index = int(bitstring, 2), qubit 0 leftmost, 1 = |r⟩ = Z eigenvalue −1).
    ``energy`` is ⟨H⟩ of the Hamiltonian that was prepared (nudge included); ``gap`` is
    E₁ − E₀ (or the local gap to the followed level) when known, else ``nan``.
    """

    state: np.ndarray
    kind: StateKind
    energy: float = float("nan")
    gap: float = float("nan")
    info: dict = field(default_factory=dict)

    @property
    def is_pure(self) -> bool:
        return self.state.ndim == 1

    def probabilities(self) -> np.ndarray:
        """Z-basis outcome probabilities."""
        if self.is_pure:
            return np.abs(self.state) ** 2
        return np.clip(np.real(np.diag(self.state)), 0.0, None)

    def overlap(self, other: EquilibriumState) -> float:
        """|⟨a|b⟩| for pure states; the fidelity √F = Tr|√ρ √σ| is not needed for our policy,
        so for mixed states this returns Tr(ρσ)/sqrt(Tr ρ² Tr σ²) (1 for equal states)."""
        a, b = self.state, other.state
        if a.ndim == 1 and b.ndim == 1:
            return float(abs(np.vdot(a, b)))
        ra = a if a.ndim == 2 else np.outer(a, a.conj())
        rb = b if b.ndim == 2 else np.outer(b, b.conj())
        num = np.real(np.vdot(ra, rb))
        return float(num / np.sqrt(np.real(np.vdot(ra, ra)) * np.real(np.vdot(rb, rb))))


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
    "gibbs": "qep_analog.equilibrium.exact",
    "cooling": "qep_analog.equilibrium.cooling",
    "adiabatic": "qep_analog.equilibrium.adiabatic",
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
