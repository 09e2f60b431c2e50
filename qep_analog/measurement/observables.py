"""The observables a QEP step reads, as product lists: ∂H/∂θ_k and the outputs O_ℓ, through the state interface.

    ⟨∂H/∂θ_k⟩ = Σ_j M_kj ⟨P_j⟩,   ⟨O_ℓ⟩ = c_ℓ + Σ_j W_ℓj ⟨P_j⟩

The products P_j and coefficient matrices are read from the model's terms (no 2^N table), so the
same code serves a dense state and a matrix-product state of 50–100 qubits.
"""

from __future__ import annotations

import numpy as np

from qep_analog.equilibrium.base import EquilibriumState
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliProduct


def derivative_structure(hamiltonian: Hamiltonian) -> tuple[tuple[PauliProduct, ...], np.ndarray]:
    """(distinct trainable products P_j, K × P matrix M) with ∂H/∂θ_k = Σ_j M_kj P_j (cached on the model).

    The product order is that of ``hamiltonian.derivative_map`` (first appearance among the terms).
    """
    cache = hamiltonian._cache
    if "derivative_structure" not in cache:
        products = tuple(dict.fromkeys(t.operator for t in hamiltonian.terms if t.role == "trainable"))
        index = {p: i for i, p in enumerate(products)}
        pidx = {name: i for i, name in enumerate(hamiltonian.parameter_names)}
        m = np.zeros((len(pidx), len(products)))
        for t in hamiltonian.terms:
            if t.role == "trainable":
                m[pidx[t.parameter], index[t.operator]] += t.coefficient
        cache["derivative_structure"] = (products, m)
    return cache["derivative_structure"]


def output_structure(hamiltonian: Hamiltonian) -> tuple[tuple[PauliProduct, ...], np.ndarray, np.ndarray]:
    """(distinct output products P_j, L × P matrix W, constants c) with O_ℓ = c_ℓ + Σ_j W_ℓj P_j (cached)."""
    cache = hamiltonian._cache
    if "output_structure" not in cache:
        products = tuple(dict.fromkeys(p for o in hamiltonian.outputs for p in o.observable.products))
        index = {p: i for i, p in enumerate(products)}
        w = np.zeros((len(hamiltonian.outputs), len(products)))
        const = np.array([o.observable.constant for o in hamiltonian.outputs], dtype=float)
        for ell, o in enumerate(hamiltonian.outputs):
            for c, p in o.observable.terms:
                w[ell, index[p]] += c
        cache["output_structure"] = (products, w, const)
    return cache["output_structure"]


def derivative_expectations(hamiltonian: Hamiltonian, state: EquilibriumState) -> np.ndarray:
    """⟨∂H/∂θ_k⟩ for every trainable parameter, in the state (any implementation of the interface)."""
    products, m = derivative_structure(hamiltonian)
    return m @ state.expect(products) if products else np.zeros(m.shape[0])


def output_expectations(hamiltonian: Hamiltonian, state: EquilibriumState) -> np.ndarray:
    """⟨O_ℓ⟩ for every output, in the state (any implementation of the interface)."""
    products, w, const = output_structure(hamiltonian)
    return (w @ state.expect(products) if products else np.zeros(len(const))) + const
