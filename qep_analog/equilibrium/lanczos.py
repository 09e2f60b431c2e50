"""Lowest eigenpairs of a sparse Hermitian matrix by a compiled Lanczos recurrence.

Why not ``scipy.sparse.linalg.eigsh``: for a complex Hermitian matrix it runs ARPACK's general
Arnoldi driver (znaupd) with implicit restarts, calling back into Python for every product. At
the phase sensor's size (1024 states, 16 non-zeros a row) that costs ~70 products and ~5 ms a
solve, most of it overhead. The recurrence here runs in numba, without restarts, and checks the
Ritz residuals with a tridiagonal eigensolver (LAPACK ``stemr`` via scipy) every few steps.

Method (Paige's analysis of Lanczos in finite precision):

* three-term recurrence with a local reorthogonalisation against the last two vectors, no full
  reorthogonalisation (it would cost more than the products);
* a Ritz pair (θ, y = V s) is converged when its residual ‖H y − θ y‖ = β_m |s_m| is at most
  ``tol·max(|θ|, ε^{2/3})`` (ARPACK's criterion for ``eigsh(tol=...)``);
* loss of orthogonality only ever produces *copies* of converged Ritz values ("ghosts"); their
  Ritz vectors are almost parallel to the converged one. A candidate second level whose Ritz
  vector overlaps the ground Ritz vector by more than ``ghost_overlap`` is skipped;
* the returned residual is recomputed explicitly from one more product, not taken from the bound.

If the recurrence does not converge within ``max_iter`` products the caller falls back to ARPACK.
A Krylov method sees one vector of an exactly degenerate level per start vector; degeneracy is
therefore detected only up to what the start vector contains, as with ARPACK.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.linalg as la


@numba.njit(cache=True, nogil=True)
def _csr_product(indptr, indices, data, sign, v, w):  # pragma: no cover - compiled
    for r in range(v.shape[0]):
        acc = 0.0 * v[0]
        for k in range(indptr[r], indptr[r + 1]):
            acc += data[k] * v[indices[k]]
        w[r] = sign * acc


@numba.njit(cache=True, nogil=True)
def _mask_product(masks, rows, sign, v, w):  # pragma: no cover - compiled
    # (H v)[i] = Σ_k rows[i, k] v[i ^ masks[k]]   (see MaskOperator)
    for i in range(v.shape[0]):
        acc = 0.0 * v[0]
        for k in range(masks.shape[0]):
            acc += rows[i, k] * v[i ^ masks[k]]
        w[i] = sign * acc


@numba.njit(cache=True, nogil=True)
def _lanczos_update(basis, alpha, beta, j, w):  # pragma: no cover - compiled
    """Given w = H v_j, finish step j; returns β_{j+1} (v_{j+1} written when β_{j+1} > 0)."""
    dim = basis.shape[1]
    v = basis[j]
    if j > 0:
        b = beta[j]
        prev = basis[j - 1]
        for r in range(dim):
            w[r] -= b * prev[r]
    a = 0.0
    for r in range(dim):
        a += (np.conj(v[r]) * w[r]).real
    alpha[j] = a
    for r in range(dim):
        w[r] -= a * v[r]
    # local reorthogonalisation against v_j and v_{j-1}
    c = 0.0 * v[0]
    for r in range(dim):
        c += np.conj(v[r]) * w[r]
    for r in range(dim):
        w[r] -= c * v[r]
    if j > 0:
        prev = basis[j - 1]
        c = 0.0 * v[0]
        for r in range(dim):
            c += np.conj(prev[r]) * w[r]
        for r in range(dim):
            w[r] -= c * prev[r]
    nrm = 0.0
    for r in range(dim):
        nrm += (np.conj(w[r]) * w[r]).real
    nrm = np.sqrt(nrm)
    beta[j + 1] = nrm
    if nrm >= 1e-14:
        for r in range(dim):
            basis[j + 1, r] = w[r] / nrm
    return nrm


@numba.njit(cache=True, nogil=True)
def _extend_csr(indptr, indices, data, sign, basis, alpha, beta, start, stop):  # pragma: no cover - compiled
    """Lanczos steps ``start .. stop-1``; returns the number of basis vectors completed."""
    w = np.empty(basis.shape[1], dtype=basis.dtype)
    for j in range(start, stop):
        _csr_product(indptr, indices, data, sign, basis[j], w)
        if _lanczos_update(basis, alpha, beta, j, w) < 1e-14:
            return j + 1
    return stop


@numba.njit(cache=True, nogil=True)
def _extend_mask(masks, rows, sign, basis, alpha, beta, start, stop):  # pragma: no cover - compiled
    w = np.empty(basis.shape[1], dtype=basis.dtype)
    for j in range(start, stop):
        _mask_product(masks, rows, sign, basis[j], w)
        if _lanczos_update(basis, alpha, beta, j, w) < 1e-14:
            return j + 1
    return stop


@dataclass(frozen=True)
class MaskOperator:
    """A Hermitian operator stored by bit-flip pattern: (H v)[i] = Σ_k rows[i, k] v[i ^ masks[k]].

    This is how a sum of Pauli strings acts (one column per distinct X/Y pattern); it needs no
    index arrays and is ~1.4× faster to apply than CSR for the sensor. Built by
    :meth:`qep_analog.models.hamiltonian.Hamiltonian.mask_operator`."""

    masks: np.ndarray   # (K,) int64
    rows: np.ndarray    # (dim, K), C-contiguous

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.shape[0], self.rows.shape[0])

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        v = np.ascontiguousarray(v, dtype=np.result_type(self.rows.dtype, v.dtype))
        out = np.empty_like(v)
        _mask_product(self.masks, self.rows.astype(v.dtype, copy=False), 1.0, v, out)
        return out


def _lowest_tridiagonal(diag: np.ndarray, off: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k lowest eigenpairs of a real symmetric tridiagonal matrix: LAPACK dstebz (bisection)
    and dstein (inverse iteration), what ``scipy.linalg.eigh_tridiagonal(select="i")`` runs,
    without its per-call validation (this is called every few Lanczos steps)."""
    m, w, iblock, isplit, info = _STEBZ(diag, off, 2, 0.0, 0.0, 1, k, 0.0, "B")
    if info != 0 or m != k:
        return la.eigh_tridiagonal(diag, off, select="i", select_range=(0, k - 1))
    vectors, info = _STEIN(diag, off, w[:m], iblock, isplit)
    if info != 0:
        return la.eigh_tridiagonal(diag, off, select="i", select_range=(0, k - 1))
    return w[:m], vectors[:, :m]


_STEBZ, _STEIN = la.get_lapack_funcs(("stebz", "stein"), dtype=np.float64)


@dataclass(frozen=True)
class LanczosResult:
    energies: np.ndarray      # the two lowest levels found, ascending (energies[1] = inf if none)
    vector: np.ndarray        # normalised ground Ritz vector
    iterations: int           # matrix-vector products used by the recurrence
    residual: float           # explicit ‖H y − θ y‖ of the returned vector
    converged: bool


def lowest_two(h, v0: np.ndarray, *, tol: float = 1e-10, sign: float = 1.0,
               max_iter: int = 400, check_every: int = 8, ghost_overlap: float = 1e-3) -> LanczosResult:
    """Two lowest eigenvalues of ``sign·h`` and the ground Ritz vector, from start vector ``v0``.

    ``h``: a scipy sparse matrix or a :class:`MaskOperator`."""
    if isinstance(h, MaskOperator):
        dim = h.shape[0]
        dtype = np.complex128 if (np.iscomplexobj(h.rows) or np.iscomplexobj(v0)) else np.float64
        masks, rows = h.masks, h.rows.astype(dtype, copy=False)

        def extend(basis, alpha, beta, start, stop):
            return _extend_mask(masks, rows, float(sign), basis, alpha, beta, start, stop)
    else:
        h = h.tocsr()
        dim = h.shape[0]
        dtype = np.complex128 if (np.iscomplexobj(h.data) or np.iscomplexobj(v0)) else np.float64
        data = h.data.astype(dtype, copy=False)
        indptr = h.indptr.astype(np.int64, copy=False)
        indices = h.indices.astype(np.int64, copy=False)

        def extend(basis, alpha, beta, start, stop):
            return _extend_csr(indptr, indices, data, float(sign), basis, alpha, beta, start, stop)
    max_iter = int(min(max_iter, dim))
    basis = np.empty((max_iter + 1, dim), dtype=dtype)
    alpha = np.zeros(max_iter)
    beta = np.zeros(max_iter + 1)
    start = np.asarray(v0, dtype=dtype)
    basis[0] = start / np.linalg.norm(start)
    floor = np.finfo(float).eps ** (2 / 3)
    m, converged = 0, False
    energies, y = np.array([np.inf, np.inf]), None
    while m < max_iter:
        stop = min(max_iter, m + (check_every if m >= 2 * check_every else 2 * check_every))
        m_new = extend(basis, alpha, beta, m, stop)
        exhausted = m_new < stop or m_new == dim
        m = m_new
        if m < 2:
            energies, y = np.array([alpha[0], np.inf]), basis[0].copy()
            converged = exhausted
            if exhausted:
                break
            continue
        k = min(m, 4)
        theta, s = _lowest_tridiagonal(alpha[:m], beta[1:m], k)
        bound = np.abs(beta[m] * s[-1, :])
        ok = np.ones(k, dtype=bool) if exhausted else bound <= tol * np.maximum(np.abs(theta), floor)
        if not ok[0]:
            continue
        y0 = s[:, 0] @ basis[:m]
        n0 = np.linalg.norm(y0)
        second = None
        for i in range(1, k):
            if not ok[i]:
                break
            yi = s[:, i] @ basis[:m]
            if abs(np.vdot(y0, yi)) / (n0 * np.linalg.norm(yi)) <= ghost_overlap:
                second = i
                break
        if second is not None or exhausted:
            energies = np.array([theta[0], theta[second] if second is not None else np.inf])
            y = y0
            converged = True
            break
    if not converged:
        return LanczosResult(energies=energies, vector=basis[0], iterations=m, residual=np.inf, converged=False)
    y = y / np.linalg.norm(y)
    residual = float(np.linalg.norm(sign * (h @ y) - energies[0] * y))
    return LanczosResult(energies=energies, vector=y, iterations=m, residual=residual, converged=True)
