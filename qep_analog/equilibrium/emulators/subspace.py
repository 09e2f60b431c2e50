"""Blockade-subspace propagator ("subspace"): a physical approximation, with its error estimated.

Kept configurations P: no two Rydberg atoms closer than ``radius_um``. In P the Hamiltonian of
``sampled`` (H = Σ (Ω_i/2)(cos φ_i X_i + sin φ_i Y_i) − Σ δ_i n_i + Σ U_ij n_i n_j, our basis)
is kept exactly. The dropped configurations Q matter through virtual excitations: exciting atom
i next to an excited atom j (b = a + i ∈ Q, gap Δ_ab = E_b − E_a = Σ_{k∈a} U_ik − δ_i) shifts
and couples the kept levels at second order. The Schrieffer–Wolff correction adds

    H_SW(a, a') = −(1/8) Σ_b conj(z_i) z_k (1/Δ_ab + 1/Δ_a'b),   z = Ω e^{iφ},
    b = a + i = a' + k ∈ Q,

(a' = a gives the familiar −Ω²/(4U) shift per blockaded neighbour; a' ≠ a a hop i ↔ k), with
the gaps evaluated at the current δ_i(t). With the correction the returned state also carries
the first-order dressing ψ_b = −Σ (z_i/2) ψ_a / Δ_ab on Q, with the controls of the last sample.

Error estimate (``error_estimate``, an infidelity 1 − |⟨ψ_full|ψ⟩|² against the exact full-space
evolution; a perturbative estimate, not a rigorous bound):
  d_SW  = phase-insensitive distance between the corrected and uncorrected evolutions (the
          size of the second-order effect, i.e. the error of the uncorrected path);
  d_res = κ·d_SW with κ = RESIDUAL_FACTOR·Ω_max/Δ_min, the relative size of the neglected
          third-order terms (∝ Ω³/Δ², e.g. V_PQ V_QQ V_QP/Δ²) with an EMPIRICAL safety factor:
          on the reference sweep (8 atoms) the measured ratio was 0.22 at Ω/Δ = 0.062, i.e.
          3.6·Ω/Δ, and 0.05 at half the Rabi frequency; RESIDUAL_FACTOR = 5;
  d_int = time-integration error from step doubling (see ``propagate``);
  uncorrected: (d_SW + d_res + d_int)²,   corrected: (d_res + d_int)².
A resonant cut (some dropped gap ≤ 0) is refused with the correction; without it the run
returns error_estimate = 1 (no perturbative estimate exists).
Time integration: fourth-order commutator-free Magnus steps (two Gauss points) with Lanczos
exponentials (``_lanczos``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numba
import numpy as np

from qep_analog.equilibrium.emulators._lanczos import expm_lanczos
from qep_analog.equilibrium.emulators.sampled import SampledSequence, interaction_matrix
from qep_analog.errors import ConvergenceError, QepValueError

# Warn when the smallest dropped gap is below this multiple of the largest Rabi frequency.
WARN_RATIO = 10.0
RESIDUAL_FACTOR = 5.0
MAX_STEPS = 200_000
_SQ3 = np.sqrt(3.0)
_A1 = 0.25 - _SQ3 / 6.0
_A2 = 0.25 + _SQ3 / 6.0


def default_radius_um(c6: float, omega_max: float) -> float:
    """The blockade radius R_b = (C6/Ω_max)^(1/6) (µm)."""
    return float((c6 / max(omega_max, 1e-9)) ** (1.0 / 6.0))


def enumerate_states(blocked: np.ndarray) -> np.ndarray:
    """All configurations with no excited pair (i, j) where ``blocked[i, j]``; sorted indices
    in our basis (qubit 0 = most significant bit)."""
    n = blocked.shape[0]
    states = np.array([0], dtype=np.int64)
    for i in range(n):
        bit = np.int64(1) << (n - 1 - i)
        conflict = np.int64(0)
        for j in range(i):
            if blocked[i, j]:
                conflict |= np.int64(1) << (n - 1 - j)
        ok = (states & conflict) == 0
        states = np.concatenate([states, states[ok] | bit])
    return np.sort(states)


def _occ(states: np.ndarray, n: int) -> np.ndarray:
    shifts = np.arange(n - 1, -1, -1, dtype=np.int64)
    return ((states[:, None] >> shifts[None, :]) & 1).astype(float)


@dataclass(frozen=True, kw_only=True)
class BlockadeSubspace:
    """Index structures of the kept subspace P and of its one-flip boundary in Q."""

    n_atoms: int
    radius_um: float
    states: np.ndarray  # (M,) kept configurations (our basis indices)
    occ: np.ndarray  # (M, N)
    e_int: np.ndarray  # (M,) Σ U_ij n_i n_j
    drive_row: np.ndarray  # raising entries ⟨a+i|·|a⟩
    drive_col: np.ndarray
    drive_atom: np.ndarray
    link_a: np.ndarray  # virtual links a → b = a + i ∈ Q
    link_atom: np.ndarray
    link_b: np.ndarray  # index into ``virtual``
    link_gap: np.ndarray  # static part of Δ_ab: Σ_{k∈a} U_ik
    virtual: np.ndarray  # (Q1,) dropped configurations one flip away from P
    pair_l1: np.ndarray  # pairs of links into the same b
    pair_l2: np.ndarray
    min_dropped_u: float  # smallest interaction of a dropped pair (rad/µs)

    @property
    def dimension(self) -> int:
        return int(self.states.shape[0])


def build_subspace(positions_um: np.ndarray, c6: float, radius_um: float) -> BlockadeSubspace:
    """Enumerate P (no excited pair closer than ``radius_um``) and its Q boundary."""
    u = interaction_matrix(positions_um, c6)
    n = u.shape[0]
    dist = (c6 / np.where(u > 0, u, np.inf)) ** (1.0 / 6.0)
    blocked = dist < radius_um
    np.fill_diagonal(blocked, False)
    states = enumerate_states(blocked)
    occ = _occ(states, n)
    e_int = 0.5 * np.einsum("xi,ij,xj->x", occ, u, occ)
    lookup = {int(s): k for k, s in enumerate(states)}
    rows, cols, atoms = [], [], []
    l_a, l_atom, l_bstate, l_gap = [], [], [], []
    for k, s in enumerate(states.tolist()):
        for i in range(n):
            bit = 1 << (n - 1 - i)
            if s & bit:
                continue
            t = s | bit
            if t in lookup:
                rows.append(lookup[t])
                cols.append(k)
                atoms.append(i)
            else:
                l_a.append(k)
                l_atom.append(i)
                l_bstate.append(t)
                l_gap.append(float(occ[k] @ u[i]))
    virtual, link_b = np.unique(np.array(l_bstate, dtype=np.int64), return_inverse=True)
    link_b = link_b.astype(np.int64)
    order = np.argsort(link_b, kind="stable")
    p1, p2 = [], []
    bounds = np.searchsorted(link_b[order], np.arange(len(virtual) + 1))
    for q in range(len(virtual)):
        members = order[bounds[q] : bounds[q + 1]]
        for x in members:
            for y in members:
                p1.append(x)
                p2.append(y)
    dropped = u[np.triu(blocked, 1)]
    return BlockadeSubspace(
        n_atoms=n,
        radius_um=float(radius_um),
        states=states,
        occ=occ,
        e_int=e_int,
        drive_row=np.array(rows, dtype=np.int64),
        drive_col=np.array(cols, dtype=np.int64),
        drive_atom=np.array(atoms, dtype=np.int64),
        link_a=np.array(l_a, dtype=np.int64),
        link_atom=np.array(l_atom, dtype=np.int64),
        link_b=link_b,
        link_gap=np.array(l_gap),
        virtual=virtual,
        pair_l1=np.array(p1, dtype=np.int64),
        pair_l2=np.array(p2, dtype=np.int64),
        min_dropped_u=float(dropped.min()) if dropped.size else float("inf"),
    )


class SubspaceOperator:
    """H_P(t) (+ H_SW(t)) on a fixed CSR pattern, from per-atom controls (a, b, δ)."""

    def __init__(self, sub: BlockadeSubspace, correction: bool) -> None:
        self.sub = sub
        self.correction = correction
        m = sub.dimension
        rows = [sub.drive_row, sub.drive_col]
        cols = [sub.drive_col, sub.drive_row]
        if correction and sub.pair_l1.size:
            r_sw = sub.link_a[sub.pair_l1]
            c_sw = sub.link_a[sub.pair_l2]
            off = r_sw != c_sw
            rows.append(r_sw[off])
            cols.append(c_sw[off])
            self._pos_sw = np.full(sub.pair_l1.size, -1, dtype=np.int64)
        else:
            off = np.zeros(0, dtype=bool)
            self._pos_sw = np.zeros(0, dtype=np.int64)
        keys = np.concatenate(rows) * m + np.concatenate(cols)
        uniq, inverse = np.unique(keys, return_inverse=True)
        n_drive = sub.drive_row.size
        self._pos_up = inverse[:n_drive].astype(np.int64)
        self._pos_down = inverse[n_drive : 2 * n_drive].astype(np.int64)
        if off.size:
            self._pos_sw[off] = inverse[2 * n_drive :]
        self._nnz = uniq.size
        self.indices = (uniq % m).astype(np.int64)
        self.indptr = np.searchsorted(uniq // m, np.arange(m + 1)).astype(np.int64)

    def evaluate(self, controls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(CSR data, real diagonal) of H at one time; ``controls`` = (a, b, δ) per atom."""
        return self.combine(controls, controls, 1.0, 0.0)

    def combine(self, c1: np.ndarray, c2: np.ndarray, w1: float, w2: float):
        """(CSR data, diagonal) of w1·H(c1) + w2·H(c2) (compiled)."""
        sub = self.sub
        data = np.zeros(self._nnz, dtype=np.complex128)
        diag = np.zeros(sub.dimension)
        for controls, weight in ((c1, w1), (c2, w2)):
            if weight == 0.0:
                continue
            _assemble(
                np.ascontiguousarray(controls), weight, data, diag, sub.e_int, sub.occ,
                sub.drive_atom, self._pos_up, self._pos_down, sub.link_a, sub.link_atom,
                sub.link_gap, sub.pair_l1, sub.pair_l2, self._pos_sw, self.correction,
            )
        return data, diag

    def dressing(self, psi_p: np.ndarray, controls: np.ndarray) -> np.ndarray:
        """First-order amplitudes on the Q boundary: ψ_b = −Σ (z_i/2) ψ_a / Δ_ab."""
        sub = self.sub
        a, b, delta = controls
        z = a + 1j * b
        gap = sub.link_gap - delta[sub.link_atom]
        amp = -0.5 * z[sub.link_atom] * psi_p[sub.link_a] / gap
        re = np.bincount(sub.link_b, weights=amp.real, minlength=sub.virtual.size)
        im = np.bincount(sub.link_b, weights=amp.imag, minlength=sub.virtual.size)
        return re + 1j * im


@numba.njit(cache=True, nogil=True)
def _assemble(
    controls, weight, data, diag, e_int, occ, drive_atom, pos_up, pos_down, link_a, link_atom,
    link_gap, pair_l1, pair_l2, pos_sw, correction,
):  # pragma: no cover - compiled
    a = controls[0]
    b = controls[1]
    delta = controls[2]
    n = a.shape[0]
    z = a + 1j * b
    for k in range(drive_atom.shape[0]):
        up = 0.5 * weight * z[drive_atom[k]]
        data[pos_up[k]] += up
        data[pos_down[k]] += np.conj(up)
    for x in range(e_int.shape[0]):
        acc = e_int[x]
        for i in range(n):
            acc -= occ[x, i] * delta[i]
        diag[x] += weight * acc
    if correction:
        for p in range(pair_l1.shape[0]):
            l1 = pair_l1[p]
            l2 = pair_l2[p]
            g1 = link_gap[l1] - delta[link_atom[l1]]
            g2 = link_gap[l2] - delta[link_atom[l2]]
            val = -0.125 * weight * np.conj(z[link_atom[l1]]) * z[link_atom[l2]] * (
                1.0 / g1 + 1.0 / g2
            )
            if pos_sw[p] < 0:
                diag[link_a[l1]] += val.real
            else:
                data[pos_sw[p]] += val


def check_cut(sub: BlockadeSubspace, sampled: SampledSequence) -> float:
    """Smallest dropped gap Δ_min = U_cut − max δ (rad/µs); warns when Δ_min < WARN_RATIO·Ω_max."""
    omega_max = sampled.max_omega()
    delta_max = max(0.0, float(np.max(sampled.delta)))
    gap = sub.min_dropped_u - delta_max
    if np.isfinite(gap) and omega_max > 0 and gap < WARN_RATIO * omega_max:
        warnings.warn(
            f"blockade subspace at radius {sub.radius_um:.2f} µm: the smallest dropped "
            f"interaction minus the largest detuning is {gap:.3g} rad/µs, not ≫ Ω_max = "
            f"{omega_max:.3g} rad/µs (ratio {gap / omega_max:.2g} < {WARN_RATIO:g}); the "
            f"perturbative error estimate is unreliable",
            stacklevel=4,
        )
    return gap


def _run_fixed(op: SubspaceOperator, sampled, psi, n_steps, lanczos_tol, m_max=40):
    h = sampled.duration_us / n_steps
    starts = np.arange(n_steps) * h
    t1 = starts + (0.5 - _SQ3 / 6.0) * h
    t2 = starts + (0.5 + _SQ3 / 6.0) * h
    c1 = sampled.values(t1)
    c2 = sampled.values(t2)
    psi = np.array(psi, dtype=complex)
    lanczos_err = 0.0
    for k in range(n_steps):
        # right factor (applied first) leans on the earlier Gauss point
        data, diag = op.combine(c1[k], c2[k], _A2, _A1)
        psi, e1 = expm_lanczos(op.indptr, op.indices, data, diag, psi, h, m_max, lanczos_tol)
        data, diag = op.combine(c1[k], c2[k], _A1, _A2)
        psi, e2 = expm_lanczos(op.indptr, op.indices, data, diag, psi, h, m_max, lanczos_tol)
        lanczos_err += e1 + e2
    return psi, lanczos_err


def _norm(x: np.ndarray) -> float:
    return float(np.sqrt(np.sum(x.real**2 + x.imag**2)))


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = _norm(a), _norm(b)
    return float(np.sqrt(max(0.0, 2.0 - 2.0 * abs(np.vdot(a, b)) / (na * nb))))


def initial_steps(sub: BlockadeSubspace, sampled: SampledSequence) -> int:
    """~25 ns steps scaled down for stiff controls: ‖H_P‖h of a few radians per step."""
    delta_max = float(np.max(np.abs(sampled.delta))) if sampled.delta.size else 0.0
    scale = max(1.0, sampled.max_omega() + delta_max)
    h = min(0.025, 1.5 / scale)
    return max(2, int(np.ceil(sampled.duration_us / h)))


def propagate(
    sampled: SampledSequence,
    psi0_full: np.ndarray,
    *,
    radius_um: float,
    correction: bool,
    tolerance: float,
) -> tuple[np.ndarray, float, dict]:
    """Evolve in the blockade subspace; return (full-space ψ, error estimate, info)."""
    sub = build_subspace(sampled.positions_um, sampled.c6, radius_um)
    gap_min = check_cut(sub, sampled)
    if correction and np.isfinite(gap_min) and gap_min <= 0 and sampled.max_omega() > 0:
        raise QepValueError(
            f"blockade subspace at radius {radius_um:.2f} µm: a dropped configuration is "
            f"resonant (gap {gap_min:.3g} rad/µs ≤ 0, facilitation); the Schrieffer–Wolff "
            f"correction does not apply: lower 'blockade_radius_um' or use method='krylov'"
        )
    psi0 = np.asarray(psi0_full, dtype=complex)
    outside = 1.0 - float(np.sum(np.abs(psi0[sub.states]) ** 2))
    if outside > 1e-12:
        raise QepValueError(
            f"'initial_state' has weight {outside:.2e} outside the blockade subspace of radius "
            f"{radius_um:.2f} µm"
        )
    psi0_p = psi0[sub.states]
    main = SubspaceOperator(sub, correction)
    other = SubspaceOperator(sub, not correction)
    steps = initial_steps(sub, sampled)
    int_tol = max(tolerance, 1e-14)
    lanczos_tol = 1e-3 * np.sqrt(int_tol) / steps
    coarse, _ = _run_fixed(main, sampled, psi0_p, max(1, steps // 2), lanczos_tol)
    refinements = 0
    while True:
        fine, lanczos_err = _run_fixed(main, sampled, psi0_p, steps, lanczos_tol)
        d_int = _distance(fine, coarse) + lanczos_err
        if d_int**2 <= int_tol:
            break
        if 2 * steps > MAX_STEPS:
            raise ConvergenceError(
                f"subspace propagation did not reach 'tolerance' {tolerance:.1e} in "
                f"{MAX_STEPS} steps"
            )
        coarse, steps, refinements = fine, 2 * steps, refinements + 1
    # Dressing with the controls of the last sample: the switch-off in the final ns is nearly
    # sudden on the scale 1/U (U·1 ns ≈ 0.16 rad at 5.7 µm), so the dressing survives it.
    final_controls = sampled.values(np.array([max(sampled.duration_us - 1e-3, 0.0)]))[0]
    omega_max = sampled.max_omega()
    resonant = np.isfinite(gap_min) and gap_min <= 0 and omega_max > 0
    if resonant:  # only reachable without correction: no perturbative estimate exists
        state, estimate, d_sw, kappa = _embed(sub, fine, None), 1.0, float("nan"), float("nan")
        dressed = np.zeros(0)
    else:
        alt, _ = _run_fixed(other, sampled, psi0_p, steps, lanczos_tol)
        corrected_p, plain_p = (fine, alt) if correction else (alt, fine)
        dressed = main.dressing(corrected_p, final_controls)
        full_corr = _embed(sub, corrected_p, dressed)
        full_plain = _embed(sub, plain_p, None)
        d_sw = _distance(full_corr, full_plain)
        kappa = 0.0 if not np.isfinite(gap_min) else min(1.0, RESIDUAL_FACTOR * omega_max / gap_min)
        d_res = kappa * d_sw
        if correction:
            state, estimate = full_corr, (d_res + d_int) ** 2
        else:
            state, estimate = full_plain, (d_sw + d_res + d_int) ** 2
    state = state / _norm(state)
    info = {
        "n_steps": steps,
        "step_ns": sampled.duration_ns / steps,
        "refinements": refinements,
        "integration_error_estimate": d_int,
        "second_order_distance": d_sw,
        "residual_ratio": kappa,
        "min_dropped_gap": gap_min,
        "leaked_norm_estimate": float(np.sum(np.abs(dressed) ** 2)),
        "n_virtual_states": int(sub.virtual.size),
    }
    return state, float(min(estimate, 1.0)), info | {"dimension": sub.dimension}


def _embed(sub: BlockadeSubspace, psi_p: np.ndarray, dressed: np.ndarray | None) -> np.ndarray:
    full = np.zeros(2**sub.n_atoms, dtype=complex)
    full[sub.states] = psi_p
    if dressed is not None:
        full[sub.virtual] = dressed
    return full / _norm(full)


@dataclass(frozen=True, kw_only=True)
class SubspaceGroundState:
    """Ground state of a static Rydberg Hamiltonian found in the blockade subspace.

    ``state`` is the full-space vector in our basis (with first-order dressing when corrected),
    ``energy`` the lowest eigenvalue of the (corrected) subspace Hamiltonian (rad/µs), ``gap``
    E₁ − E₀ there, ``error_estimate`` an estimate of 1 − |⟨ψ_exact|ψ⟩|² built as in
    :func:`propagate` (d_SW = distance between corrected and uncorrected ground states).
    """

    state: np.ndarray
    energy: float
    gap: float
    error_estimate: float
    dimension: int
    radius_um: float
    info: dict


def subspace_ground_state(
    positions_um: np.ndarray,
    c6: float,
    omega: float,
    delta_per_atom: np.ndarray,
    *,
    radius_um: float | None = None,
    phase: float = 0.0,
    correction: bool = True,
) -> SubspaceGroundState:
    """Lowest eigenstate of H = Σ (Ω/2)(cos φ X_i + sin φ Y_i) − Σ δ_i n_i + Σ C6/r⁶ n_i n_j
    (our basis, rad/µs, µm) restricted to the blockade subspace, optionally SW-corrected.

    Example: ``subspace_ground_state(np.c_[np.arange(10) * 5.7, np.zeros(10)], 5420158.53,
    9.18, np.full(10, 9.18))``.
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    pos = np.asarray(positions_um, dtype=float)
    n = pos.shape[0]
    delta = np.broadcast_to(np.asarray(delta_per_atom, dtype=float), (n,)).copy()
    if radius_um is None:
        radius_um = default_radius_um(c6, abs(omega)) if omega != 0 else 0.0
    sub = build_subspace(pos, c6, radius_um)
    controls = np.stack(
        [np.full(n, omega * np.cos(phase)), np.full(n, omega * np.sin(phase)), delta]
    )
    gap_min = sub.min_dropped_u - max(0.0, float(delta.max()))
    if np.isfinite(gap_min) and omega != 0 and gap_min < WARN_RATIO * abs(omega):
        warnings.warn(
            f"blockade subspace at radius {radius_um:.2f} µm: dropped gap {gap_min:.3g} rad/µs "
            f"is not ≫ Ω = {abs(omega):.3g} rad/µs; the error estimate is unreliable",
            stacklevel=2,
        )
    if np.isfinite(gap_min) and gap_min <= 0 and omega != 0:
        raise QepValueError(
            f"blockade subspace at radius {radius_um:.2f} µm: a dropped configuration is "
            f"resonant (gap {gap_min:.3g} rad/µs ≤ 0); use the exact backend"
        )
    results = {}
    for corr in (True, False):
        op = SubspaceOperator(sub, corr)
        data, diag = op.evaluate(controls)
        mat = sp.csr_matrix((data, op.indices, op.indptr), shape=(sub.dimension,) * 2)
        mat = mat + sp.diags(diag)
        if sub.dimension <= 2000:
            evals, evecs = np.linalg.eigh(mat.toarray())
        else:
            evals, evecs = spla.eigsh(mat, k=2, which="SA", tol=1e-12)
            order = np.argsort(evals)
            evals, evecs = evals[order], evecs[:, order]
        dressed = op.dressing(evecs[:, 0], controls) if corr else None
        gap = float(evals[1] - evals[0]) if evals.size > 1 else float("inf")
        results[corr] = (_embed(sub, evecs[:, 0], dressed), float(evals[0]), gap)
    d_sw = _distance(results[True][0], results[False][0])
    kappa = 0.0 if not np.isfinite(gap_min) else (
        1.0 if gap_min <= 0 else min(1.0, RESIDUAL_FACTOR * abs(omega) / gap_min)
    )
    estimate = (kappa * d_sw) ** 2 if correction else ((1 + kappa) * d_sw) ** 2
    state, energy, gap = results[correction]
    return SubspaceGroundState(
        state=state,
        energy=energy,
        gap=gap,
        error_estimate=float(min(estimate, 1.0)),
        dimension=sub.dimension,
        radius_um=float(radius_um),
        info={"second_order_distance": d_sw, "residual_ratio": kappa, "min_dropped_gap": gap_min},
    )
