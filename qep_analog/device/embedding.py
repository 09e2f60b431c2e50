"""Embed an antiferromagnetic spin model into atom positions on a pulser device.

Target spin model (rad/µs):  H = Σ_{i<j} K_ij Z_i Z_j + Σ_i h_i Z_i + g Σ_i X_i,  K_ij ≥ 0.
Rydberg realisation:          H = Σ_{i<j} V_ij n_i n_j − Σ_i δ_i n_i + (Ω/2) Σ_i X_i,  V_ij = C6/r_ij⁶.
With n_i n_j = (1 − Z_i − Z_j + Z_i Z_j)/4 and n = (1 − Z)/2, up to a constant:

    V_ij = 4 K_ij,   δ_i = 2 h_i + ½ Σ_j V_ij   (compensates the induced fields −V_ij/4 Z_i),   Ω = 2|g|

(phase π for g < 0). Pairs with K_ij = 0 still get the 1/r⁶ tail V_ij > 0; the residual per pair
reports it. Positions come from least squares on log(V_ij/4K_ij) (plus the tails, weighted by
``tail_weight``) with the device's minimum distance and radius as bounds, from several starts.
Ferromagnetic couplings (K_ij < 0) and non-uniform transverse fields on a global-drive device are
refused: a Rydberg pair only repels, and the drive is global.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize

from qep_analog.device.devices import has_local_drive, load_device
from qep_analog.device.rydberg import RydbergModel, pair_couplings
from qep_analog.errors import QepValueError


@dataclass(frozen=True, kw_only=True)
class Embedding:
    """Result of :func:`embed_couplings`: positions, realised couplings and residuals (rad/µs)."""

    positions_um: np.ndarray
    target_zz: np.ndarray
    realised_zz: np.ndarray
    residual_per_pair: dict
    tails: dict
    detunings: np.ndarray
    omega: float
    phase: float
    cost: float

    @property
    def max_relative_error(self) -> float:
        mask = np.triu(self.target_zz, 1) > 0
        return float(np.max(np.abs(self.realised_zz[mask] / self.target_zz[mask] - 1))) if mask.any() else 0.0

    def model(self, device, **kw) -> RydbergModel:
        return RydbergModel(positions_um=self.positions_um, device=device, omega=self.omega, phase=self.phase,
                            detunings=self.detunings, **kw)


def _check_inputs(k: np.ndarray, device, fields, transverse):
    n = k.shape[0]
    if k.ndim != 2 or k.shape != (n, n) or not np.all(np.isfinite(k)):
        raise QepValueError(f"'couplings' must be a finite square matrix, not shape {k.shape}")
    if not np.allclose(k, k.T):
        raise QepValueError("'couplings' must be symmetric (K_ij = K_ji)")
    ferro = [(i, j) for i in range(n) for j in range(i + 1, n) if k[i, j] < 0]
    if ferro:
        raise QepValueError(
            f"ferromagnetic couplings cannot be embedded (Rydberg pairs only repel: C6/r⁶ > 0); "
            f"negative K on pairs {[f'q{i}-q{j}' for i, j in ferro]}")
    h = np.zeros(n) if fields is None else np.asarray(fields, dtype=float).reshape(-1)
    if h.shape != (n,):
        raise QepValueError(f"'longitudinal_fields' must have {n} values, not {h.size}")
    g = np.asarray(0.0 if transverse is None else transverse, dtype=float).reshape(-1)
    if g.size not in (1, n):
        raise QepValueError(f"'transverse_field' must be one value or {n} values, not {g.size}")
    if g.size == n and not np.allclose(g, g[0]):
        if not has_local_drive(device):
            raise QepValueError(f"local transverse fields {g.tolist()} need local drive, but {device.name} "
                                f"has only a global Rydberg channel (Ω is common to all atoms)")
        raise QepValueError("local transverse fields are not supported by this embedding (global drive only)")
    return h, float(g[0])


def embed_couplings(couplings, device, *, longitudinal_fields=None, transverse_field=None,
                    tail_weight: float = 1.0, restarts: int = 8, seed: int = 0, dim: int = 2) -> Embedding:
    """Positions whose C6/r⁶ best realise ``couplings`` K (ZZ coefficients, rad/µs); see module."""
    device = load_device(device)
    k = np.asarray(couplings, dtype=float)
    h, g = _check_inputs(k, device, longitudinal_fields, transverse_field)
    n = k.shape[0]
    c6 = float(device.interaction_coeff)
    iu = np.triu_indices(n, 1)
    target = 4 * k[iu]
    on = target > 0
    if not on.any():
        raise QepValueError("'couplings' has no positive entry to embed")
    scale = float(np.mean(target[on]))
    dmin = float(device.min_atom_distance or 0.0)
    rmax = device.max_radial_distance
    rng = np.random.default_rng(seed)

    def residuals(flat):
        pos = flat.reshape(n, dim)
        r2 = np.sum((pos[iu[0]] - pos[iu[1]]) ** 2, axis=1)
        v = c6 / np.maximum(r2, 1e-12) ** 3
        res = np.where(on, np.log(np.maximum(v, 1e-300) / np.where(on, target, 1.0)), tail_weight * v / scale)
        penalty = [10.0 * np.maximum(0.0, dmin - np.sqrt(r2))]
        if rmax is not None:
            penalty.append(10.0 * np.maximum(0.0, np.linalg.norm(pos, axis=1) - rmax))
        return np.concatenate([res, *penalty])

    dist = np.zeros((n, n))
    ideal = (c6 / np.where(on, target, scale)) ** (1 / 6)
    far = 1.6 * ideal[on].max()
    dist[iu] = np.where(on, ideal, far)
    dist = dist + dist.T
    start = _mds(dist, dim)
    best = None
    for attempt in range(max(1, restarts)):
        x0 = start + (0 if attempt == 0 else rng.normal(scale=0.3 * ideal[on].mean(), size=start.shape))
        fit = scipy.optimize.least_squares(residuals, x0.ravel(), method="trf", x_scale="jac", max_nfev=2000)
        if best is None or fit.cost < best.cost:
            best = fit
    pos = best.x.reshape(n, dim)
    pos = pos - pos.mean(axis=0)
    pos = RydbergModel(positions_um=pos, device=device, omega=0.0, detunings=np.zeros(n)).project().positions_um
    v = pair_couplings(pos, c6)
    realised_zz = v / 4
    residual = {f"q{i}-q{j}": float(realised_zz[i, j] - k[i, j]) for i, j in zip(*iu, strict=True)}
    tails = {f"q{i}-q{j}": float(realised_zz[i, j]) for i, j in zip(*iu, strict=True) if k[i, j] == 0}
    detunings = 2 * h + 0.5 * v.sum(axis=1)
    return Embedding(positions_um=pos, target_zz=k, realised_zz=realised_zz, residual_per_pair=residual,
                     tails=tails, detunings=detunings, omega=2 * abs(g), phase=0.0 if g >= 0 else np.pi,
                     cost=float(best.cost))


def _mds(dist: np.ndarray, dim: int) -> np.ndarray:
    """Classical multidimensional scaling of a distance matrix into ``dim`` dimensions."""
    n = dist.shape[0]
    j = np.eye(n) - 1.0 / n
    b = -0.5 * j @ (dist**2) @ j
    w, v = np.linalg.eigh(b)
    order = np.argsort(w)[::-1][:dim]
    return v[:, order] * np.sqrt(np.maximum(w[order], 1e-9))
