"""Compiled sparse matrix exponential action exp(−iτH)v by Lanczos, for the subspace emulator.

H is Hermitian, given as a real diagonal plus a complex CSR off-diagonal part. The a-posteriori
error estimate of the Lanczos approximation is β_{m+1}·|[exp(−iτT_m)e₁]_m|·‖v‖ (Saad 1992);
when it does not fall below ``tol`` within ``m_max`` vectors the step is split in halves.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _matvec(indptr, indices, data, diag, x, out):  # pragma: no cover - compiled
    for r in range(x.shape[0]):
        acc = diag[r] * x[r]
        for k in range(indptr[r], indptr[r + 1]):
            acc += data[k] * x[indices[k]]
        out[r] = acc


@numba.njit(cache=True, nogil=True)
def _expm_once(indptr, indices, data, diag, v, tau, m_max, tol):  # pragma: no cover
    dim = v.shape[0]
    beta0 = np.sqrt(np.sum(np.abs(v) ** 2))
    if beta0 == 0.0:
        return v.copy(), 0.0, True
    basis = np.empty((m_max + 1, dim), dtype=np.complex128)
    alpha = np.zeros(m_max)
    beta = np.zeros(m_max + 1)
    basis[0] = v / beta0
    w = np.empty(dim, dtype=np.complex128)
    coef = np.zeros(1, dtype=np.complex128)
    err = np.inf
    m_used = 0
    for j in range(m_max):
        _matvec(indptr, indices, data, diag, basis[j], w)
        a = 0.0
        for x in range(dim):
            a += (np.conj(basis[j, x]) * w[x]).real
        alpha[j] = a
        for x in range(dim):
            w[x] -= a * basis[j, x]
            if j > 0:
                w[x] -= beta[j] * basis[j - 1, x]
        # one local reorthogonalisation against the last vector (enough for the short
        # recurrences used here; the a-posteriori estimate checks the result)
        ov = np.vdot(basis[j], w)
        for x in range(dim):
            w[x] -= ov * basis[j, x]
        b = 0.0
        for x in range(dim):
            b += w[x].real ** 2 + w[x].imag ** 2
        b = np.sqrt(b)
        beta[j + 1] = b
        m = j + 1
        if m < 4 and b > 1e-14 and m < m_max:
            for x in range(dim):
                basis[j + 1, x] = w[x] / b
            continue
        tri = np.zeros((m, m))
        for k in range(m):
            tri[k, k] = alpha[k]
            if k + 1 < m:
                tri[k, k + 1] = beta[k + 1]
                tri[k + 1, k] = beta[k + 1]
        evals, evecs = np.linalg.eigh(tri)
        phases = np.exp(-1j * tau * evals)
        coef = (evecs.astype(np.complex128) * phases) @ evecs[0, :].astype(np.complex128)
        err = b * np.abs(coef[m - 1]) * beta0
        m_used = m
        if err < tol or b < 1e-14:
            break
        for x in range(dim):
            basis[j + 1, x] = w[x] / b
    out = np.zeros(dim, dtype=np.complex128)
    for k in range(m_used):
        for x in range(dim):
            out[x] += coef[k] * basis[k, x]
    return out * beta0, err, err < tol or beta[m_used] < 1e-14


@numba.njit(cache=True, nogil=True)
def expm_lanczos(indptr, indices, data, diag, v, tau, m_max, tol):  # pragma: no cover
    """exp(−iτH)v, splitting τ until each piece converges; returns (w, summed error estimate)."""
    remaining = tau
    piece = tau
    total_err = 0.0
    w = v.copy()
    while abs(remaining) > 1e-15:
        if abs(piece) > abs(remaining):
            piece = remaining
        out, err, ok = _expm_once(indptr, indices, data, diag, w, piece, m_max, tol)
        if ok:
            w = out
            total_err += err
            remaining -= piece
        else:
            piece = piece / 2.0
            if abs(piece) < 1e-12:
                w = out
                total_err += err
                remaining -= piece
    return w, total_err


def warm_up() -> None:
    """Compile once (cached on disk by numba)."""
    indptr = np.array([0, 1, 2], dtype=np.int64)
    indices = np.array([1, 0], dtype=np.int64)
    data = np.array([1.0 + 0j, 1.0 + 0j])
    expm_lanczos(indptr, indices, data, np.zeros(2), np.array([1.0 + 0j, 0j]), 0.1, 8, 1e-12)
