"""Ramp schedules s(t) for adiabatic preparation: the cosine ramp and a gap-aware "local-adiabatic" one.

The preparation path is one-parameter (PHYSICS.md §3, :mod:`qep_analog.device.sequences`):

    H(s) = s (Ω/2) Σ_i (cos φ X_i + sin φ Y_i) − Σ_i [δ₀ + s (d_i − δ₀)] n_i + Σ_{i<j} J_ij n_i n_j,

s ∈ [0, 1], from |g…g⟩ (s = 0, δ₀ < 0) to the target (s = 1). A schedule is the map t ↦ s(t).

* ``cosine``: s = ½(1 − cos πt/T) (infidelity ∝ T⁻⁴ once adiabatic).
* ``local-adiabatic`` (Roland–Cerf, PRA 65, 042308 (2002), generalised to many levels): spend time
  where the path is hard. First-order adiabatic perturbation theory gives the excited amplitudes
  a_n ≈ i ṡ ⟨n|∂_sH|0⟩/(E_n − E₀)²; keeping Σ|a_n|² constant along the path means

      dt/ds ∝ m(s),   m(s) = [Σ_{n>0} |⟨n(s)|∂_sH|0(s)⟩|² / (E_n(s) − E₀(s))⁴]^{1/2}   (µs, for ṡ in 1/µs)

  (for one dominant level m = |V₁₀|/g², Roland–Cerf's ds/dt ∝ g²). m is computed by dense
  diagonalisation on a coarse grid of s (``points``; N ≤ 10 atoms) and interpolated. A pure
  local-adiabatic map starts and stops with ṡ ≠ 0, which is a sudden switch (infidelity ∝ T⁻²);
  we therefore mix a fraction ``boundary`` of the cosine ramp's time density into the density of t
  over s:

      dt/ds = T [(1 − λ) m(s)/∫m + λ / (π √(s(1 − s)))],   λ = ``boundary``,

  whose second term is exactly the cosine ramp's density (t = (T/π) arccos(1 − 2s)), so ṡ = 0 at
  both ends for any λ > 0. λ = 1 is the cosine ramp.

* ``arc-cosine``: the cosine ramp in the adiabatic arc length L(s) = ∫₀^s m / ∫₀^1 m instead of in s:
  L(t) = ½(1 − cos πt/T). No mixing parameter; ṡ = 0 at both ends, and the time the cosine ramp
  spends near its ends goes to the first and last stretches of adiabatic length (where m is large
  near a small end-point gap, close to the end in s).

All schedules are monotone from exactly 0 to exactly 1, so every control stays between its start
and its target: the device's amplitude and detuning limits of the cosine ramp hold unchanged.
Samples are at 1 ns (pulser ``CustomWaveform``); the duration's 4 ns clock is checked by the
sequence builder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.interpolate
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from qep_analog.equilibrium.emulators.krylov import interaction_diagonal, occupations
from qep_analog.errors import QepValueError

SCHEDULES = ("cosine", "linear", "local-adiabatic", "arc-cosine")
GAP_AWARE = ("local-adiabatic", "arc-cosine")  # computed per sample from the free path's spectrum
DEFAULT_BOUNDARY = 0.3  # λ of the local-adiabatic schedule (the adiabatic backend's ``schedule_boundary``)
DEFAULT_POINTS = 41  # s grid of the path spectrum (the adiabatic backend's ``schedule_points``)
MAX_DENSE_ATOMS = 8  # above: Lanczos on the LANCZOS_LEVELS lowest levels
LANCZOS_LEVELS = 12
MAX_ATOMS = 16


@dataclass(frozen=True, kw_only=True)
class PathSpectrum:
    """Spectrum of H(s) on a grid: ``s``, ``gap`` E₁ − E₀ (rad/µs, any symmetry), ``coupled_gap``
    (the smallest E_n − E₀ with |⟨n|∂_sH|0⟩| > 1e-8·max, the gap the ramp can excite), and ``metric``
    m(s) (µs, see the module)."""

    s: np.ndarray
    gap: np.ndarray
    coupled_gap: np.ndarray
    metric: np.ndarray

    @property
    def min_gap(self) -> float:
        return float(np.min(self.gap))

    @property
    def min_coupled_gap(self) -> float:
        return float(np.min(self.coupled_gap))


def _drive_matrix(n_atoms: int, phase: float) -> sp.csr_matrix:
    """Σ_i (1/2)(cos φ X_i + sin φ Y_i) in our basis (|0⟩ = g, |1⟩ = r, qubit 0 most significant)."""
    dim = 2**n_atoms
    idx = np.arange(dim)
    rows, cols, vals = [], [], []
    for q in range(n_atoms):
        bit = 1 << (n_atoms - 1 - q)
        raising = (idx & bit) == 0  # ⟨r|(cos φ X + sin φ Y)|g⟩ = e^{iφ}
        rows.append(idx ^ bit)
        cols.append(idx)
        vals.append(np.where(raising, 0.5 * np.exp(1j * phase), 0.5 * np.exp(-1j * phase)))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(dim, dim))


def _lowest(hs, dense: bool, levels: int) -> tuple[np.ndarray, np.ndarray]:
    if dense:
        return scipy.linalg.eigh(hs.toarray())
    if hs.nnz == np.count_nonzero(hs.diagonal()) or hs.nnz == 0:  # diagonal (s = 0): exact
        diag = np.real(hs.diagonal())
        order = np.argsort(diag, kind="stable")[:levels]
        v = np.zeros((hs.shape[0], levels))
        v[order, np.arange(levels)] = 1.0
        return diag[order], v
    w, v = scipy.sparse.linalg.eigsh(hs, k=levels, which="SA", tol=1e-9, ncv=max(4 * levels, 48),
                                     maxiter=100_000)
    order = np.argsort(w)
    return w[order], v[:, order]


def path_spectrum(couplings: np.ndarray, omega: float, phase: float, detunings, start_detuning: float,
                  *, points: int = 41) -> PathSpectrum:
    """Gap and local-adiabatic metric of H(s) (module docstring) on ``points`` equally spaced s.

    ``couplings`` is the (N, N) matrix J_ij = C6/r_ij⁶ (rad/µs), ``detunings`` the final d_i (rad/µs).
    Dense diagonalisation up to N = 8 atoms; above, Lanczos on the 12 lowest levels (the metric then sums
    over those; higher levels, suppressed as 1/ΔE⁴, are left out). At most 16 atoms.
    """
    u = np.asarray(couplings, dtype=float)
    n = u.shape[0]
    if n > MAX_ATOMS:
        raise QepValueError(f"path_spectrum diagonalises the full space: at most {MAX_ATOMS} atoms, not {n}")
    if points < 3:
        raise QepValueError(f"'points' must be ≥ 3, not {points}")
    d = np.asarray(detunings, dtype=float).reshape(n)
    occ = occupations(n)
    diag_int = interaction_diagonal(u)
    drive = float(omega) * _drive_matrix(n, float(phase))
    diag_slope = -(occ @ (d - start_detuning))  # ∂_s of −Σ δ_i(s) n_i
    dh = (drive + sp.diags(diag_slope)).tocsr()
    dense = n <= MAX_DENSE_ATOMS
    levels = min(LANCZOS_LEVELS, 2**n - 2)
    grid = np.linspace(0.0, 1.0, int(points))
    gaps, coupled, metric = np.empty(points), np.empty(points), np.empty(points)
    diagonals = diag_int[None, :] - (start_detuning + grid[:, None] * (d - start_detuning)[None, :]) @ occ.T
    if dense:  # one batched eigh over the whole grid; real arithmetic when the drive phase is 0 or π
        real = abs(np.sin(float(phase))) < 1e-15
        drive_dense = drive.toarray().real if real else drive.toarray()
        dh_dense = dh.toarray().real if real else dh.toarray()
        stack = grid[:, None, None] * drive_dense[None, :, :]
        stack[:, np.arange(2**n), np.arange(2**n)] += diagonals
        w_all, v_all = np.linalg.eigh(stack)
    for k, s in enumerate(grid):
        if dense:
            w, v = w_all[k], v_all[k]
            elements = np.abs(v[:, 1:].conj().T @ (dh_dense @ v[:, 0]))
        else:
            w, v = _lowest((s * drive + sp.diags(diagonals[k])).tocsr(), False, levels)
            elements = np.abs(v[:, 1:].conj().T @ (dh @ v[:, 0]))
        de = np.maximum(w[1:] - w[0], 1e-12)
        gaps[k] = de[0]
        live = elements > 1e-8 * max(float(elements.max()), 1e-300)
        coupled[k] = float(de[live].min()) if live.any() else np.inf
        metric[k] = float(np.sqrt(np.sum(elements**2 / de**4)))
    return PathSpectrum(s=grid, gap=gaps, coupled_gap=coupled, metric=metric)


def cosine_samples(n_samples: int) -> np.ndarray:
    """½(1 − cos πx) at ``n_samples`` equally spaced x in [0, 1]."""
    x = np.linspace(0.0, 1.0, int(n_samples))
    return 0.5 * (1.0 - np.cos(np.pi * x))


def local_adiabatic_samples(spectrum: PathSpectrum, n_samples: int, *, boundary: float = 0.3,
                            arc: bool = False) -> np.ndarray:
    """s(t) at ``n_samples`` equally spaced times for the density of the module docstring
    (``arc``: the "arc-cosine" schedule, cosine in the adiabatic arc length; ``boundary`` unused).

    The metric is interpolated in log (PCHIP, monotone, no overshoot) on a fine s grid; t(s) is its
    cumulative integral plus the cosine part, and s(t) is its inverse by interpolation.
    """
    if not 0.0 < boundary <= 1.0:
        raise QepValueError(f"'boundary' must be in (0, 1], not {boundary}")
    metric = np.asarray(spectrum.metric, dtype=float)
    if not np.all(np.isfinite(metric)) or np.any(metric <= 0):
        raise QepValueError("the local-adiabatic metric must be positive and finite along the path "
                            f"(min {metric.min():.3g}); is the ground state degenerate somewhere?")
    # a grid uniform in the cosine ramp's own time u (s = ½(1 − cos πu)) resolves ṡ → 0 at both ends
    u = np.linspace(0.0, 1.0, 8001)
    fine = 0.5 * (1.0 - np.cos(np.pi * u))
    log_m = scipy.interpolate.PchipInterpolator(spectrum.s, np.log(metric))(fine)
    density = np.exp(log_m)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(fine))])
    cum /= cum[-1]
    if arc:
        t_of_u = np.arccos(np.clip(1.0 - 2.0 * cum, -1.0, 1.0)) / np.pi
    else:
        t_of_u = (1.0 - boundary) * cum + boundary * u
    t = np.linspace(0.0, 1.0, int(n_samples))
    s = 0.5 * (1.0 - np.cos(np.pi * np.interp(t, t_of_u, u)))
    s[0], s[-1] = 0.0, 1.0
    return s


def schedule_samples(name: str, n_samples: int, *, spectrum: PathSpectrum | None = None,
                     boundary: float = 0.3) -> np.ndarray:
    """s(t) samples of schedule ``name`` (see :data:`SCHEDULES`); "local-adiabatic" and "arc-cosine" need
    ``spectrum``."""
    if name == "cosine":
        return cosine_samples(n_samples)
    if name == "linear":
        return np.linspace(0.0, 1.0, int(n_samples))
    if name in ("local-adiabatic", "arc-cosine"):
        if spectrum is None:
            raise QepValueError(f"schedule {name!r} needs the path spectrum (path_spectrum)")
        return local_adiabatic_samples(spectrum, n_samples, boundary=boundary, arc=name == "arc-cosine")
    raise QepValueError(f"'schedule' must be one of {SCHEDULES}, not {name!r}")


__all__ = ["DEFAULT_BOUNDARY", "DEFAULT_POINTS", "GAP_AWARE", "PathSpectrum", "SCHEDULES", "cosine_samples",
           "local_adiabatic_samples", "path_spectrum", "schedule_samples"]
