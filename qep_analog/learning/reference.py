"""Exact references: the β → 0 linear-response gradient of an eigenstate.

For an eigenstate |ψ⟩ of H with energy E₀ and a nudge direction D,

    d/dβ ⟨A_k⟩_β |₀ = 2 Re ⟨ψ| A_k (E₀ − H)⁺ (D − ⟨D⟩) |ψ⟩,

with (E₀ − H)⁺ the pseudo-inverse on the complement of |ψ⟩ (PHYSICS.md §1). We solve
(H − E₀ + λ|ψ⟩⟨ψ|) φ = −(D − ⟨D⟩)ψ, whose solution is orthogonal to ψ, densely for small
dimensions and with MINRES otherwise. It is ill-defined for a degenerate level.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as la
import scipy.sparse.linalg as sla

from qep_analog.equilibrium.base import EquilibriumState
from qep_analog.errors import ConvergenceError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliSum

DENSE_MAX_DIM = 1024


def derivative_matrices(hamiltonian: Hamiltonian) -> list:
    cache = hamiltonian._cache
    if "derivative_matrices" not in cache:
        cache["derivative_matrices"] = [hamiltonian.derivative(k).matrix(hamiltonian.n_qubits)
                                        for k in hamiltonian.parameter_names]
    return cache["derivative_matrices"]


def linear_response_gradient(hamiltonian: Hamiltonian, theta, x, state: EquilibriumState,
                             direction: PauliSum, rtol: float = 1e-12) -> np.ndarray:
    """d⟨∂H/∂θ_k⟩/dβ at β = 0 for the eigenstate ``state`` of H(θ, x) and nudge ``direction``."""
    h = hamiltonian.matrix(theta, x)
    psi = state.state
    e0 = float(np.real(np.vdot(psi, h @ psi)))
    d = direction.matrix(hamiltonian.n_qubits)
    rhs = d @ psi
    rhs = rhs - np.vdot(psi, rhs) * psi
    if h.shape[0] <= DENSE_MAX_DIM:
        a = h.toarray() - e0 * np.eye(h.shape[0]) + np.outer(psi, psi.conj())
        phi = la.solve(a, -rhs, assume_a="her")
    else:
        def matvec(v):
            return h @ v - e0 * v + psi * np.vdot(psi, v)

        op = sla.LinearOperator(h.shape, matvec=matvec, dtype=np.result_type(h.dtype, psi.dtype))
        phi, info = sla.minres(op, -rhs, rtol=rtol, maxiter=20 * h.shape[0])
        if info != 0:
            raise ConvergenceError(f"MINRES did not converge for the linear-response gradient (info={info})")
    phi = phi - np.vdot(psi, phi) * psi
    return np.array([2.0 * np.real(np.vdot(a @ psi, phi)) for a in derivative_matrices(hamiltonian)])
