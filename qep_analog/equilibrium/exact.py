"""Exact equilibrium backends: eigenstates by diagonalisation, and Gibbs states.

Eigenstate policy (the same in every backend, see ``shared/PHYSICS.md`` §1):

* ``eigenstate="ground"`` — dense ``eigh`` up to ``dense_max_dim``, otherwise Lanczos for the
  two lowest levels to Ritz residual ``tol·|E|``, warm-started from the free state of the same
  sample when one is given: ``solver="lanczos"`` (default) is the compiled recurrence of
  :mod:`qep_analog.equilibrium.lanczos`, falling back to ARPACK if it does not converge;
  ``solver="arpack"`` is ``scipy.sparse.linalg.eigsh`` (the baseline). ``info["method"]`` says
  which one produced the state.
* ``eigenstate="highest"`` — the same for the top of the spectrum (what an adiabatic ramp from
  |g…g⟩ with δ ≫ interactions prepares).
* ``eigenstate=k`` (an integer level index of the free Hamiltonian) — dense ``eigh`` only, and the
  nudged state is *followed by overlap* along H + s·nudge, s: 0 → 1, in steps no larger than
  ``continuation_fraction`` times the local gap; each step picks the level of largest overlap
  with the previous one.

Whatever the method, the gap to the nearest other level (E₁ − E₀ for the ground state) is
reported, and ``info["degenerate"]`` is set when it is below ``degeneracy_tol``; the overlap with
the free state is judged by the estimator's crossing policy (``qep_analog.learning``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as la
import scipy.sparse.linalg as sla

from qep_analog.equilibrium.base import EquilibriumState, register_backend
from qep_analog.equilibrium.dense import DensityMatrix, StateVector
from qep_analog.equilibrium.lanczos import lowest_two
from qep_analog.errors import ConvergenceError, QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliSum


@dataclass(frozen=True, kw_only=True)
class ExactBackend:
    """Exact eigenstate of H(θ, x) + nudge (see the module docstring for the policy)."""

    eigenstate: str | int = "ground"
    dense_max_dim: int = 256
    tol: float = 1e-10
    degeneracy_tol: float = 1e-8
    continuation_fraction: float = 0.2
    warm_start: bool = True
    solver: str = "lanczos"
    name: str = "exact"

    def __post_init__(self) -> None:
        if not (self.eigenstate in ("ground", "highest") or isinstance(self.eigenstate, int)):
            raise QepValueError(f"'eigenstate' must be 'ground', 'highest' or a level index, not {self.eigenstate!r}")
        if self.solver not in ("lanczos", "arpack"):
            raise QepValueError(f"'solver' must be 'lanczos' or 'arpack', not {self.solver!r}")
        if self.tol <= 0:
            raise QepValueError(f"'tol' must be > 0, not {self.tol}")

    def prepare(self, hamiltonian: Hamiltonian, theta, x, nudge: PauliSum | None = None,
                reference: EquilibriumState | None = None) -> EquilibriumState:
        if isinstance(self.eigenstate, int):
            return self._follow_level(hamiltonian, theta, x, nudge, reference)
        top = self.eigenstate == "highest"
        diagonal = None if nudge is None or not nudge.is_diagonal else nudge.diagonal(hamiltonian.n_qubits)

        def sparse():
            if nudge is None or diagonal is not None:
                return hamiltonian.matrix(theta, x, extra_diagonal=diagonal)
            return (hamiltonian.matrix(theta, x) + nudge.matrix(hamiltonian.n_qubits)).tocsr()

        if hamiltonian.dim <= self.dense_max_dim:
            energies, vectors = la.eigh(sparse().toarray())
            if top:
                energies, vectors = -energies[::-1], vectors[:, ::-1]
            e0, e1, psi = energies[0], energies[1], vectors[:, 0]
            method = "dense"
            extra = {}
        else:
            if isinstance(reference, StateVector) and self.warm_start and reference.state.shape == (hamiltonian.dim,):
                v0 = reference.state
            else:
                # ARPACK's own start vector depends on the process's call history; a fixed start keeps
                # results bitwise reproducible (e.g. a resumed training run equals an uninterrupted one)
                v0 = _default_start(hamiltonian.dim)
            result = None
            if self.solver == "lanczos":
                op = (hamiltonian.mask_operator(theta, x, extra_diagonal=diagonal)
                      if nudge is None or diagonal is not None else sparse())
                result = lowest_two(op, v0, tol=self.tol, sign=-1.0 if top else 1.0)
            if result is not None and result.converged:
                (e0, e1), psi, method = result.energies, result.vector, "lanczos"
                extra = dict(iterations=result.iterations, residual=result.residual)
            else:
                h = sparse()
                try:
                    energies, vectors = sla.eigsh(-h if top else h, k=2, which="SA", v0=v0, tol=self.tol)
                except sla.ArpackNoConvergence as exc:
                    raise ConvergenceError(f"Lanczos did not converge to tol={self.tol}: {exc}") from None
                order = np.argsort(energies)
                e0, e1 = energies[order]
                psi = vectors[:, order[0]]
                method, extra = "arpack", {}
        psi = _fix_phase(psi)
        energy = float(-e0 if top else e0)
        gap = float(e1 - e0)
        return StateVector(
            state=psi, kind="eigenstate", energy=energy, gap=gap,
            info=dict(method=method, level=self.eigenstate, degenerate=bool(gap < self.degeneracy_tol),
                      tol=0.0 if method == "dense" else self.tol, **extra),
        )

    def _follow_level(self, hamiltonian, theta, x, nudge, reference) -> EquilibriumState:
        level = int(self.eigenstate)
        h0 = hamiltonian.dense(theta, x)
        if not 0 <= level < h0.shape[0]:
            raise QepValueError(f"'eigenstate' level {level} is out of range 0..{h0.shape[0] - 1}")
        energies, vectors = la.eigh(h0)
        psi, e = vectors[:, level], energies[level]
        gap = _local_gap(energies, level)
        steps = 0
        if nudge is not None:
            v = nudge.matrix(hamiltonian.n_qubits).toarray()
            norm = np.linalg.norm(v, 2)
            s = 0.0
            while s < 1.0:
                ds = min(1.0 - s, max(self.continuation_fraction * max(gap, 1e-12) / max(norm, 1e-300), 1e-4))
                s += ds
                steps += 1
                energies, vectors = la.eigh(h0 + s * v)
                overlaps = np.abs(vectors.conj().T @ psi)
                index = int(np.argmax(overlaps))
                psi, e = vectors[:, index], energies[index]
                gap = _local_gap(energies, index)
        return StateVector(
            state=_fix_phase(psi), kind="eigenstate", energy=float(e), gap=float(gap),
            info=dict(method="dense-continuation", level=level, steps=steps,
                      degenerate=bool(gap < self.degeneracy_tol), tol=0.0),
        )


def _default_start(dim: int) -> np.ndarray:
    v0 = np.random.default_rng(dim).standard_normal(dim)
    return v0 / np.linalg.norm(v0)


def _local_gap(energies: np.ndarray, index: int) -> float:
    others = np.delete(energies, index)
    return float(np.min(np.abs(others - energies[index]))) if others.size else float("inf")


def _fix_phase(psi: np.ndarray) -> np.ndarray:
    """Make the largest component real positive (a reproducible global phase)."""
    k = int(np.argmax(np.abs(psi)))
    return psi * (abs(psi[k]) / psi[k])


@dataclass(frozen=True, kw_only=True)
class GibbsBackend:
    """Gibbs state ρ = e^{−(H + nudge)/T}/Z by dense diagonalisation (small systems)."""

    temperature: float
    max_dim: int = 4096
    name: str = "gibbs"

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise QepValueError(f"'temperature' must be > 0, not {self.temperature}")

    def prepare(self, hamiltonian: Hamiltonian, theta, x, nudge: PauliSum | None = None,
                reference: EquilibriumState | None = None) -> EquilibriumState:
        if hamiltonian.dim > self.max_dim:
            raise QepValueError(f"Gibbs backend: dimension {hamiltonian.dim} exceeds 'max_dim' {self.max_dim}")
        h = hamiltonian.dense(theta, x)
        if nudge is not None:
            h = h + nudge.matrix(hamiltonian.n_qubits).toarray()
        rho, energies = gibbs_state(h, self.temperature)
        return DensityMatrix(
            state=rho, kind="gibbs", energy=float(np.real(np.trace(rho @ h))),
            gap=float(energies[1] - energies[0]), info=dict(temperature=self.temperature),
        )


def gibbs_state(h: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(ρ, energies) with ρ = e^{−H/T}/Tr e^{−H/T} for a dense Hermitian H."""
    energies, vectors = la.eigh(h)
    weights = np.exp(-(energies - energies[0]) / temperature)
    weights /= weights.sum()
    return (vectors * weights) @ vectors.conj().T, energies


register_backend("exact", ExactBackend)
register_backend("gibbs", GibbsBackend)
