"""Equilibrium backends: reach an eigenstate (or a Gibbs / steady state) of H(θ, x) + nudge.

Backends are picked by name from a registry: ``get_backend("exact")``. Each returns an
:class:`EquilibriumState`.
"""

from qep_analog.equilibrium.base import (
    EquilibriumBackend,
    EquilibriumState,
    available_backends,
    get_backend,
    register_backend,
)
from qep_analog.equilibrium.dense import DensityMatrix, StateVector, dense_state

__all__ = [
    "DensityMatrix",
    "EquilibriumBackend",
    "EquilibriumState",
    "StateVector",
    "available_backends",
    "get_backend",
    "dense_state",
    "register_backend",
]
