"""The first excited state by quimb's two-site DMRG with a ground-state penalty (for the ``mps`` backend's gap).

    H' = H + w |ψ₀⟩⟨ψ₀|,   w > E₁ − E₀  ⇒  the ground state of H' is |ψ₁⟩ (E₁ ≥ E₀, ⟨ψ₀|ψ₁⟩ = 0 at convergence)

quimb's DMRG has no excited-state target, and the projector as an MPO would multiply the MPO bond by χ₀².
Instead the penalty enters where DMRG2 solves its local problem: with the MPS in mixed canonical form around
the two sites being optimised, the overlap ⟨ψ₀|ψ⟩ is linear in the local two-site tensor v,
⟨ψ₀|ψ⟩ = Σ E v with E the overlap network of ⟨ψ₀| and the other sites of |ψ⟩, so that ⟨ψ|H'|ψ⟩ = v†(H_eff +
w u u†)v with u = E*. The environments of E move with the sweep like the energy environments (quimb's
:class:`~quimb.tensor.tn1d.dmrg.MovingEnvironment`); everything else — sweeps, truncation, convergence — is
quimb's ``DMRG2``. The energies it reports are ⟨H⟩ (the penalty is not in the energy network).
"""

from __future__ import annotations

import numpy as np


def _excited_class():
    import quimb.tensor as qtn
    from quimb.tensor.tn1d.dmrg import MovingEnvironment
    from scipy.sparse.linalg import LinearOperator

    class PenaltyDMRG2(qtn.DMRG2):
        """``quimb.tensor.DMRG2`` on H + w|ψ₀⟩⟨ψ₀| (the penalty added to each local effective Hamiltonian)."""

        def __init__(self, ham, ground, weight: float, **options):
            super().__init__(ham, **options)
            bra = ground.H.copy()
            bra.mangle_inner_()  # its bonds must not collide with the ket's
            bra.add_tag("_GROUND")
            self.weight = float(weight)
            self.TN_overlap = bra | self._k
            self._overlap_for = None

        def _update_local_state(self, i, **update_opts):
            if self._overlap_for is not self.ME_eff_ham:  # a new sweep: new moving overlap environment
                self.ME_overlap = MovingEnvironment(self.TN_overlap, begin=self.ME_eff_ham.begin, bsz=self.bsz)
                self._overlap_for = self.ME_eff_ham
            self.ME_overlap.move_to(i)
            self._site = i
            return super()._update_local_state(i, **update_opts)

        def form_local_ops(self, i, dims, lix, uix):
            heff, neff = super().form_local_ops(i, dims, lix, uix)
            sites = {id(self._k[j]) for j in range(i, i + self.bsz)}
            rest = [t for t in self.ME_overlap().tensors if id(t) not in sites]
            overlap = qtn.tensor_contract(*rest, output_inds=uix, optimize="greedy")
            u = np.conj(np.asarray(overlap.data)).reshape(-1)
            w = self.weight
            if isinstance(heff, np.ndarray):
                return heff + w * np.outer(u, u.conj()), neff
            dtype = np.result_type(heff.dtype, u.dtype)
            penalty = LinearOperator(heff.shape, dtype=dtype, matvec=lambda v: w * u * (u.conj() @ v),
                                     rmatvec=lambda v: w * u * (u.conj() @ v))
            return heff + penalty, neff

    return PenaltyDMRG2


def excited_dmrg(mpo, ground, *, weight: float, bond_dims, cutoffs: float, p0, local_eig_tol: float | None,
                 local_eig_ncv: int | None = None):
    """A quimb DMRG2 solver for the first excited state of ``mpo`` above the MPS ``ground`` (see module)."""
    solver = _excited_class()(mpo, ground, weight, bond_dims=bond_dims, cutoffs=cutoffs, p0=p0)
    if local_eig_tol is not None:
        solver.opts["local_eig_tol"] = local_eig_tol
    if local_eig_ncv is not None:
        solver.opts["local_eig_ncv"] = local_eig_ncv
    return solver
