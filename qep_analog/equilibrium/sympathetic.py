"""Sympathetic cooling of a Rydberg array by optically pumped ancilla atoms (qutip Lindblad).

After Raghunandan et al., Sci. Adv. 6, eaaw9268 (2020). The system is any model H_S on N qubits
(|0⟩ = |g⟩, |1⟩ = |r⟩, n = |r⟩⟨r|), e.g. a Rydberg chain. Each ancilla a has three levels
|g⟩, |r⟩, |e⟩ (ancilla basis order g, r, e):

    H = H_S ⊗ 1 + Σ_a [ (Ω_a/2)(|g⟩⟨r| + h.c.) − Δ_a |r⟩⟨r| + (Ω_p/2)(|r⟩⟨e| + h.c.) ]_a
        + Σ_{i,a} V_ia n_i ⊗ |r⟩⟨r|_a  (+ V_ab between ancillas),
    collapse operators √Γ |g⟩⟨e|_a  (optical pumping of the short-lived |e⟩ back to |g⟩).

V_ia = C6/r_ia⁶ is the van der Waals interaction between system atom i and ancilla a. A system
transition that releases energy ω is resonant with exciting the ancilla when −Δ_a ≈ ω; the
pump (r → e, Γ: e → g) then resets the ancilla, so energy flows one way. The reduced steady
state of the system is a *non-equilibrium* steady state: not a Gibbs state in general, and QEP's
reciprocity (Onsager) is not guaranteed there — measure the bias (``bench`` and tests).

Hilbert space: system ⊗ ancilla_1 ⊗ … (system index = int(bitstring, 2)), dimension 2^N 3^M; the
Liouvillian has (2^N 3^M)² entries per side, so direct LU (``qutip.steadystate``) fills in badly
already at 4 + 2 atoms (20736²); ``method="mesolve"`` (integrate to convergence) is the default
for this scheme in practice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import qutip
import scipy.sparse as sp
from scipy.optimize import brentq

from qep_analog.equilibrium.base import EquilibriumState
from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian

ANCILLA_LEVELS = 3  # g, r, e


@dataclass(frozen=True, kw_only=True)
class SympatheticConfig:
    """Ancillas and their drives (rad/µs). ``couplings[i][a]`` = V_ia between system atom i and
    ancilla a; ``ancilla_interaction`` = V_ab between ancillas (all pairs)."""

    couplings: tuple[tuple[float, ...], ...]
    omega_ancilla: float = 0.5
    delta_ancilla: float = -1.0
    omega_pump: float = 3.0
    decay_rate: float = 20.0
    ancilla_interaction: float = 0.0

    def __post_init__(self) -> None:
        v = np.asarray(self.couplings, dtype=float)
        if v.ndim != 2 or v.shape[1] < 1 or not np.all(np.isfinite(v)):
            raise QepValueError(f"'couplings' must be a finite N×M table (system × ancilla), not shape {v.shape}")
        object.__setattr__(self, "couplings", tuple(tuple(float(c) for c in row) for row in v))
        for name in ("omega_ancilla", "delta_ancilla", "omega_pump", "decay_rate", "ancilla_interaction"):
            if not np.isfinite(getattr(self, name)):
                raise QepValueError(f"'{name}' must be finite, not {getattr(self, name)}")
        if self.decay_rate <= 0:
            raise QepValueError(f"'decay_rate' must be > 0, not {self.decay_rate}")

    @property
    def n_system(self) -> int:
        return len(self.couplings)

    @property
    def n_ancillas(self) -> int:
        return len(self.couplings[0])


def _unit(i: int, j: int) -> sp.csr_matrix:
    return sp.csr_matrix(([1.0], ([i], [j])), shape=(ANCILLA_LEVELS, ANCILLA_LEVELS))


def _on_ancilla(op: sp.spmatrix, k: int, dim_s: int, m: int, system: sp.spmatrix | None = None):
    out = system if system is not None else sp.identity(dim_s, format="csr")
    for a in range(m):
        out = sp.kron(out, op if a == k else sp.identity(ANCILLA_LEVELS, format="csr"), format="csr")
    return out


def sympathetic_operators(h_system: np.ndarray, config: SympatheticConfig):
    """(H total, collapse operators) as sparse matrices on system ⊗ ancillas."""
    dim_s = h_system.shape[0]
    n = int(round(np.log2(dim_s)))
    if n != config.n_system:
        raise QepValueError(f"'couplings' has {config.n_system} rows but the system has {n} qubits")
    m = config.n_ancillas
    v = np.asarray(config.couplings)
    idx = np.arange(dim_s)
    occupations = np.array([(idx >> (n - 1 - i)) & 1 for i in range(n)], dtype=float)
    rr = _unit(1, 1)
    h_anc = (
        config.omega_ancilla / 2 * (_unit(0, 1) + _unit(1, 0))
        - config.delta_ancilla * rr
        + config.omega_pump / 2 * (_unit(1, 2) + _unit(2, 1))
    )
    h = sp.kron(sp.csr_matrix(h_system), sp.identity(ANCILLA_LEVELS**m), format="csr")
    c_ops = []
    for k in range(m):
        h = h + _on_ancilla(h_anc, k, dim_s, m)
        h = h + _on_ancilla(rr, k, dim_s, m, sp.diags(v[:, k] @ occupations))
        c_ops.append(np.sqrt(config.decay_rate) * _on_ancilla(_unit(0, 2), k, dim_s, m))
    if config.ancilla_interaction and m > 1:
        for a in range(m):
            for b in range(a + 1, m):
                both = sp.identity(dim_s, format="csr")
                for k in range(m):
                    both = sp.kron(both, rr if k in (a, b) else sp.identity(ANCILLA_LEVELS), format="csr")
                h = h + config.ancilla_interaction * both
    return h.tocsr(), c_ops


def reduce_to_system(rho_full: np.ndarray, dim_s: int) -> np.ndarray:
    """Partial trace over the ancillas (system is the leading tensor factor)."""
    dim_a = rho_full.shape[0] // dim_s
    return np.einsum("ajbj->ab", rho_full.reshape(dim_s, dim_a, dim_s, dim_a))


def effective_temperature(energies: np.ndarray, energy: float) -> float:
    """T with ⟨H⟩_Gibbs(T) = ``energy`` (0 at/below the ground energy, inf above the mean)."""
    e = energies - energies[0]
    target = energy - energies[0]
    if target <= 1e-14:
        return 0.0
    if target >= e.mean():
        return float("inf")

    def mismatch(log_t):
        w = np.exp(-e / np.exp(log_t))
        return float(w @ e / w.sum()) - target

    return float(np.exp(brentq(mismatch, np.log(1e-4 * max(e[1], 1e-12)), np.log(1e4 * e[-1]))))


def permutation_symmetries(
    h_system: np.ndarray, config: SympatheticConfig, tol: float = 1e-9, max_atoms: int = 7
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Non-trivial (system, ancilla) atom permutations leaving the whole Lindbladian invariant.

    Such a symmetry (e.g. a mirror-symmetric chain with mirror-symmetric ancillas) is shared by
    H and the dissipators, so the steady state is not unique: different initial states relax
    to different states. All system permutations are tried up to ``max_atoms`` atoms, only the
    reflection beyond.
    """
    from itertools import permutations

    n, m = config.n_system, config.n_ancillas
    v = np.asarray(config.couplings)
    idx = np.arange(2**n)
    bits = (idx[:, None] >> (n - 1 - np.arange(n))) & 1
    candidates = permutations(range(n)) if n <= max_atoms else [tuple(range(n)), tuple(range(n))[::-1]]
    found = []
    for perm in candidates:
        if list(perm) == list(range(n)):
            continue
        for sigma in permutations(range(m)):
            if not np.allclose(v[list(perm)][:, list(sigma)], v, atol=tol):
                continue
            # basis index after moving qubit q to perm[q]
            new_bits = np.empty_like(bits)
            new_bits[:, list(perm)] = bits
            image = new_bits @ (1 << (n - 1 - np.arange(n)))
            if np.allclose(h_system[np.ix_(image, image)], h_system, atol=tol):
                found.append((tuple(perm), tuple(sigma)))
    return found


def prepare_sympathetic(backend, h_system: np.ndarray, reference: EquilibriumState | None) -> EquilibriumState:
    """Steady state of the sympathetic-cooling Lindbladian, reduced to the system."""
    from qep_analog.equilibrium.cooling import relax_with_mesolve, state_metrics, trace_distance

    config: SympatheticConfig = backend.sympathetic
    dim_s = h_system.shape[0]
    h, c_ops = sympathetic_operators(h_system, config)
    dim = h.shape[0]
    dims = [[dim], [dim]]
    liouvillian = qutip.liouvillian(qutip.Qobj(h, dims=dims), [qutip.Qobj(c, dims=dims) for c in c_ops])
    l_sparse = liouvillian.data.as_scipy()
    symmetries = permutation_symmetries(h_system, config) if backend.check_symmetry else []
    if symmetries:
        import warnings

        from qep_analog.equilibrium.cooling import SymmetryWarning

        warnings.warn(
            f"sympathetic cooling: the atom permutation {symmetries[0][0]} (ancillas "
            f"{symmetries[0][1]}) is a symmetry of H and of the ancilla couplings; the steady state "
            f"is not unique. Place the ancillas asymmetrically.",
            SymmetryWarning,
            stacklevel=4,
        )
    energies, vectors = np.linalg.eigh(h_system)
    ground = vectors[:, 0]
    target = np.outer(ground, ground.conj())

    def residual(r):
        return float(np.linalg.norm(l_sparse @ r.ravel(order="F")))

    def measure(r):
        rs = reduce_to_system(r, dim_s)
        tr, purity, lam = state_metrics(rs)
        return (
            float(np.real(np.vdot(h_system, rs))) - energies[0],
            purity,
            trace_distance(rs, target),
            tr,
            lam,
            residual(r),
            float(np.real(ground.conj() @ rs @ ground)),
        )

    trajectory = None
    if backend.method == "steadystate":
        rho_full = qutip.steadystate(liouvillian).full()
    else:
        rho0 = _initial_full_state(backend.initial, reference, dim_s, dim // dim_s)
        rho_full, trajectory = relax_with_mesolve(
            liouvillian, rho0, backend.checkpoint_times(), measure, backend.tolerance, backend.solver_options
        )
    rho_full = (rho_full + rho_full.conj().T) / 2
    rho_full /= np.real(np.trace(rho_full))
    rho = reduce_to_system(rho_full, dim_s)
    energy = float(np.real(np.vdot(h_system, rho)))
    t_eff = effective_temperature(energies, energy)
    if 0 < t_eff < np.inf:
        w = np.exp(-(energies - energies[0]) / t_eff)
        gibbs_eff = (vectors * (w / w.sum())) @ vectors.conj().T
    else:
        gibbs_eff = target if t_eff == 0 else np.eye(dim_s) / dim_s
    info = dict(
        scheme="sympathetic",
        method=backend.method,
        unique=None if not symmetries else False,  # None: no shared permutation symmetry found
        symmetries=symmetries,
        fidelity=float(np.real(ground.conj() @ rho @ ground)),
        energy_above_ground=energy - float(energies[0]),
        trace_distance_to_ground=trace_distance(rho, target),
        effective_temperature=t_eff,
        trace_distance_to_effective_gibbs=trace_distance(rho, gibbs_eff),
        purity=float(np.real(np.vdot(rho, rho))),
        residual=residual(rho_full),
        ground_energy=float(energies[0]),
        full_state=rho_full,
        trajectory=trajectory,
    )
    return EquilibriumState(
        state=rho, kind="steady-state", energy=energy, gap=float(energies[1] - energies[0]), info=info
    )


def _initial_full_state(initial: str, reference: EquilibriumState | None, dim_s: int, dim_a: int) -> np.ndarray:
    ancillas = np.zeros((dim_a, dim_a), dtype=complex)
    ancillas[0, 0] = 1.0  # every ancilla in |g⟩
    if initial == "reference" and reference is not None:
        full = reference.info.get("full_state")
        if full is not None and full.shape == (dim_s * dim_a,) * 2:
            return np.array(full, dtype=complex)  # keep the system–ancilla correlations
        s = reference.state
        return np.kron(np.outer(s, s.conj()) if s.ndim == 1 else s, ancillas)
    if initial == "mixed":
        return np.kron(np.eye(dim_s) / dim_s, ancillas)
    system = np.zeros((dim_s, dim_s), dtype=complex)
    system[0, 0] = 1.0  # all atoms in |g⟩, the natural start of an experiment
    return np.kron(system, ancillas)


def rydberg_chain_with_ancillas(
    n_system: int = 6,
    *,
    spacing_um: float = 8.0,
    ancilla_sites: Sequence[float] | None = None,
    ancilla_offset_um: float = 9.0,
    c6: float = 865723.0,
    omega: float = 2.0,
    output: int | None = None,
    **ancilla,
) -> tuple[Hamiltonian, SympatheticConfig]:
    """A Rydberg chain (pulser's H, rad/µs, µm) with trainable local detunings and ancillas beside it.

        H_S = Σ_i (Ω/2) X_i − Σ_i d_i n_i + Σ_{i<j} C6/r_ij⁶ n_i n_j,   ∂H/∂d_i = −n_i,

    e.g. ``theta = [2.0] * n_system`` (uniform detuning). System atoms sit at (i·spacing, 0); ancilla
    a at (ancilla_sites[a]·spacing, ancilla_offset_um). ``c6`` defaults to AnalogDevice's
    (865 723 rad/µs·µm⁶). Extra keywords go to :class:`SympatheticConfig`. Output: n of the last
    (or ``output``) atom.
    """
    if ancilla_sites is None:  # asymmetric on purpose: a mirror-symmetric placement is a symmetry
        ancilla_sites = (0.0, 0.6 * (n_system - 1))
    positions = np.array([[i * spacing_um, 0.0] for i in range(n_system)])
    anc = np.array([[s * spacing_um, ancilla_offset_um] for s in ancilla_sites])
    terms = []
    for i in range(n_system):
        terms.append(dict(name=f"omega_{i}", operator=f"X{i}", coefficient=omega / 2))
        terms.append(dict(name=f"d_{i}", operator=f"n{i}", role="trainable", coefficient=-1.0, parameter=f"d_{i}"))
    for i in range(n_system):
        for j in range(i + 1, n_system):
            r = np.linalg.norm(positions[i] - positions[j])
            terms.append(dict(name=f"V_{i}_{j}", operator=f"n{i} n{j}", coefficient=c6 / r**6))
    out = n_system - 1 if output is None else output
    h = Hamiltonian.build(
        n_system,
        terms,
        outputs={f"n{out}": f"n{out}"},
        description=f"Rydberg chain, {n_system} atoms at {spacing_um} µm, Ω={omega}",
    )
    v = c6 / np.linalg.norm(positions[:, None, :] - anc[None, :, :], axis=-1) ** 6
    inter = 0.0
    if len(anc) > 1:
        inter = float(c6 / np.linalg.norm(anc[0] - anc[1]) ** 6)
    config = SympatheticConfig(couplings=tuple(map(tuple, v)), ancilla_interaction=inter, **ancilla)
    return h, config
