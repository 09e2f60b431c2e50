"""Quantum-jump (Monte Carlo wave-function) trajectories on the full-space splitting propagator.

Master equation (pulser's, see :mod:`.noise`), ħ = 1, rad/µs, µs, OUR basis (|0⟩ = |g⟩, |1⟩ = |r⟩):

    dρ/dt = −i[H(t), ρ] + Σ_i Σ_k (L_k^{(i)} ρ L_k^{(i)†} − ½{L_k^{(i)†} L_k^{(i)}, ρ}),
    H(t) = Σ_i (Ω_i/2)(cos φ_i X_i + sin φ_i Y_i) − Σ_i δ_i n_i + Σ_{i<j} U_ij n_i n_j.

Each trajectory draws its shot-to-shot noise (one Hamiltonian per trajectory, as pulser does), then
unravels the Lindblad part by quantum jumps (the waiting-time algorithm, Dalibard–Castin–Mølmer 1992):
draw r ~ U(0, 1); evolve the unnormalised ψ with H_eff = H − (i/2) Σ_i K^{(i)}, K = Σ_k L_k†L_k, until
‖ψ‖² = r; apply L_k^{(i)} with probability ∝ ‖L_k^{(i)} ψ‖²; renormalise; draw a new r. The average of
|ψ⟩⟨ψ| over trajectories is the solution of the master equation (plus shot-to-shot averaging).

Integration: the splitting of :mod:`.krylov` (Suzuki's fourth-order composition, exact diagonal
interaction factor, exact single-atom factors), with each single-atom factor now the exact 2×2
exponential of −iτ(h̄_i − (i/2)K), a non-unitary matrix (closed form below). Steps do not merge the
diagonal half-steps, so the state is known at every grid time t_s = s·h.

Error control: the number of steps is fixed once per sequence by step doubling on the no-jump evolution
of the noiseless draw: the distance d = min_φ ‖ψ_h/‖ψ_h‖ − e^{iφ} ψ_{2h}/‖ψ_{2h}‖‖ is halved until
d² ≤ ``tolerance`` (``error_estimate`` = d², an estimate of the per-trajectory infidelity of the
integration between jumps). Trajectories reuse that step: their draws shift the controls by a few per
cent, not the stiffness set by U_max.

Jump times: a jump detected in [t_s, t_s + h] is located by Illinois false position on log‖ψ(τ)‖² − log r,
each evaluation one splitting step of length τ from t_s, until |log‖ψ‖² − log r| ≤ 1e-9 (the jump time is
then accurate to ~1e-9/Γ µs, Γ = total jump rate); the rest of the step is integrated from the jump time,
so later grid points are unchanged. The jump itself is exact.

Seeds: trajectory k of a sequence uses ``np.random.default_rng(SeedSequence([seed, digest, k]))``
(:func:`.noise.trajectory_generator`), first for its shot-to-shot draws, then for its jumps: results are
bitwise reproducible and independent of the executor's order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numba
import numpy as np

from qep_analog.equilibrium.base import EquilibriumState, StateKind
from qep_analog.equilibrium.emulators.krylov import (
    SCHEMES,
    apply_gate_layer,
    initial_steps,
    interaction_diagonal,
    phase_distance,
)
from qep_analog.equilibrium.emulators.noise import (
    NoisySequence,
    decay_operator,
    prepare_noisy_sequence,
    trajectory_generator,
)
from qep_analog.equilibrium.emulators.sampled import SampledSequence
from qep_analog.errors import ConvergenceError, QepValueError
from qep_analog.executor import Executor, SerialExecutor

MAX_STEPS = 2_000_000
CHUNK_STEPS = 256
JUMP_LOG_TOL = 1e-9
_WEIGHTS = np.asarray(SCHEMES["suzuki4"])
_CUM = np.concatenate([[0.0], np.cumsum(_WEIGHTS)])
# Unmerged diagonal half-steps around the stages: w_0/2, (w_s + w_{s+1})/2, w_last/2.
_DIAG_COEFFS = np.concatenate([[0.5 * _WEIGHTS[0]], 0.5 * (_WEIGHTS[:-1] + _WEIGHTS[1:]), [0.5 * _WEIGHTS[-1]]])


@numba.njit(cache=True, nogil=True)
def _run_steps(psi, prev, n_qubits, gates, diag, n_stages, threshold):  # pragma: no cover - compiled
    """Apply whole steps (diag[0] G_0 diag[1] … G_{S−1} diag[S]) until ‖ψ‖² < threshold.

    ``prev`` receives the state at the start of the last step taken. Returns (index of the step that
    crossed the threshold or −1, ‖ψ‖²)."""
    dim = psi.shape[0]
    n_steps = gates.shape[0] // n_stages
    norm2 = 0.0
    for s in range(n_steps):
        for x in range(dim):
            prev[x] = psi[x]
        d = diag[0]
        for x in range(dim):
            psi[x] *= d[x]
        for st in range(n_stages):
            layer = s * n_stages + st
            apply_gate_layer(psi, n_qubits, gates, layer)
            d = diag[st + 1]
            for x in range(dim):
                psi[x] *= d[x]
        norm2 = 0.0
        for x in range(dim):
            norm2 += psi[x].real ** 2 + psi[x].imag ** 2
        if norm2 < threshold:
            return s, norm2
    return -1, norm2


def dissipative_gates(controls: np.ndarray, tau_us: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """exp(−iτ(h − (i/2)K)) for h = (a/2)X + (b/2)Y − δn and a constant Hermitian K ≥ 0, (g, r) basis.

    ``controls`` (L, 3, N) holds (a, b, δ), ``tau_us`` (L,), ``decay`` is K (2×2). Returns (L, N, 4)
    entries (g00, g01, g10, g11). Writing the exponent as c₀ I + c·σ (σ = X, Y, Z):
    c₀ = iτδ/2 − τk₀/2, c = −iτ(a, b, δ)/2 − τ(k_x, k_y, k_z)/2 with K = k₀I + k·σ, and
    exp(c₀ I + c·σ) = e^{c₀}[cosh s · I + (sinh s / s) c·σ], s² = c·c (even in s: no branch issue).
    """
    a = controls[:, 0, :]
    b = controls[:, 1, :]
    delta = controls[:, 2, :]
    tau = np.asarray(tau_us, dtype=float)[:, None]
    k0 = 0.5 * np.real(decay[0, 0] + decay[1, 1])
    kz = 0.5 * np.real(decay[0, 0] - decay[1, 1])
    kx = np.real(decay[1, 0])
    ky = np.imag(decay[1, 0])
    c0 = 0.5j * tau * delta - 0.5 * tau * k0
    cx = -0.5j * tau * a - 0.5 * tau * kx
    cy = -0.5j * tau * b - 0.5 * tau * ky
    cz = -0.5j * tau * delta - 0.5 * tau * kz
    s2 = cx * cx + cy * cy + cz * cz
    s = np.sqrt(s2.astype(complex))
    small = np.abs(s) < 1e-4
    safe = np.where(small, 1.0, s)
    f = np.where(small, 1.0 + s2 / 6.0 + s2 * s2 / 120.0, np.sinh(safe) / safe)
    ch = np.cosh(s)
    glob = np.exp(c0)
    gates = np.empty(a.shape + (4,), dtype=complex)
    gates[..., 0] = glob * (ch + f * cz)
    gates[..., 1] = glob * f * (cx - 1j * cy)
    gates[..., 2] = glob * f * (cx + 1j * cy)
    gates[..., 3] = glob * (ch - f * cz)
    return gates


@dataclass(frozen=True)
class _Stepper:
    """The splitting propagator of one trajectory's H_eff (controls, diagonal energies, K)."""

    sampled: SampledSequence
    energies: np.ndarray
    decay: np.ndarray

    def gates(self, t0: np.ndarray, tau: float) -> np.ndarray:
        """Gate layers of whole steps starting at times ``t0`` (µs), each of length ``tau``."""
        starts = (t0[:, None] + _CUM[None, :-1] * tau).ravel()
        stops = (t0[:, None] + _CUM[None, 1:] * tau).ravel()
        controls = self.sampled.averages(starts, stops)
        return dissipative_gates(controls, np.tile(_WEIGHTS * tau, t0.shape[0]), self.decay)

    def diagonal(self, tau: float) -> np.ndarray:
        return np.exp(-1j * np.outer(_DIAG_COEFFS * tau, self.energies))

    def step(self, psi: np.ndarray, t0: float, tau: float) -> tuple[np.ndarray, float]:
        """One splitting step of length ``tau`` from ``t0``; returns (new ψ, ‖ψ‖²)."""
        out = psi.copy()
        prev = np.empty_like(psi)
        _, norm2 = _run_steps(out, prev, self.sampled.n_atoms, self.gates(np.array([t0]), tau),
                              self.diagonal(tau), _WEIGHTS.size, -1.0)
        return out, norm2


def _jump_weights(psi: np.ndarray, ops: Sequence[np.ndarray], n: int) -> np.ndarray:
    """‖L_k^{(i)} ψ‖² = Tr(L_k†L_k ρ_i) for every atom i and operator k: shape (n, len(ops))."""
    t = psi.reshape((2,) * n)
    out = np.empty((n, len(ops)))
    for i in range(n):
        m = np.moveaxis(t, i, 0).reshape(2, -1)
        rho = m @ m.conj().T
        for k, op in enumerate(ops):
            out[i, k] = max(0.0, float(np.real(np.trace(op.conj().T @ op @ rho))))
    return out


def _apply_single(psi: np.ndarray, op: np.ndarray, atom: int, n: int) -> np.ndarray:
    t = np.moveaxis(psi.reshape((2,) * n), atom, 0)
    t = np.tensordot(op, t, axes=([1], [0]))
    return np.moveaxis(t, 0, atom).reshape(-1)


@dataclass(frozen=True, kw_only=True)
class _Problem:
    noisy: NoisySequence
    seed: int
    n_steps: int
    decay: np.ndarray
    psi0: np.ndarray
    noiseless: tuple  # (sampled, energies) of the noiseless draw, reused when there is no shot-to-shot noise


def _locate(stepper: _Stepper, psi: np.ndarray, t0: float, span: float, log_r: float) -> tuple[np.ndarray, float]:
    """ψ at the time t* ∈ (t0, t0 + span] where log‖ψ‖² = log_r (Illinois false position)."""
    lo, hi = 0.0, span
    f_lo = np.log(max(np.vdot(psi, psi).real, 1e-300)) - log_r
    out_hi, n_hi = stepper.step(psi, t0, hi)
    f_hi = np.log(max(n_hi, 1e-300)) - log_r
    best, best_tau = out_hi, hi
    side = 0
    for _ in range(100):
        tau = hi - f_hi * (hi - lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (lo + hi)
        tau = min(max(tau, lo), hi)
        out, n2 = stepper.step(psi, t0, tau)
        f = np.log(max(n2, 1e-300)) - log_r
        best, best_tau = out, tau
        if abs(f) <= JUMP_LOG_TOL or hi - lo <= 1e-12:
            break
        if f > 0:
            lo, f_lo = tau, f
            if side == -1:
                f_hi *= 0.5
            side = -1
        else:
            hi, f_hi = tau, f
            if side == 1:
                f_lo *= 0.5
            side = 1
    return best, t0 + best_tau


def _run_one(problem: _Problem, index: int, rng=None) -> tuple[np.ndarray, int, list]:
    """Trajectory ``index``: (final normalised ψ, number of jumps, [(t_us, atom, operator index)]).

    ``rng`` replaces the trajectory's generator (tests script the uniform numbers: waiting thresholds r and
    the operator choices u, in the order r₁, u₁, r₂, u₂, …)."""
    if rng is None:
        rng = trajectory_generator(problem.seed, problem.noisy.digest, index)
    noisy = problem.noisy
    n = noisy.n_atoms
    if noisy.shot_to_shot:
        sampled, u, _ = noisy.draw(rng)
        energies = interaction_diagonal(u)
    else:
        sampled, energies = problem.noiseless
    stepper = _Stepper(sampled, energies, problem.decay)
    ops = noisy.ops
    h = sampled.duration_us / problem.n_steps
    diag = stepper.diagonal(h)
    psi = problem.psi0.copy()
    prev = np.empty_like(psi)
    threshold = rng.random() if ops else -1.0
    jumps: list = []
    start = 0
    while start < problem.n_steps:
        stop = min(problem.n_steps, start + CHUNK_STEPS)
        gates = stepper.gates(np.arange(start, stop) * h, h)
        layer = 0
        while True:
            crossed, _ = _run_steps(psi, prev, n, gates[layer:], diag, _WEIGHTS.size, threshold)
            if crossed < 0:
                break
            step = start + layer // _WEIGHTS.size + crossed
            t_step, t_end = step * h, (step + 1) * h
            psi, threshold = jumps_within(stepper, prev.copy(), t_step, t_end, threshold, rng, jumps,
                                          weights=lambda v: _jump_weights(v, ops, n),
                                          apply=lambda v, k, atom: _apply_single(v, ops[k], atom, n))
            psi = np.ascontiguousarray(psi)
            prev = np.empty_like(psi)
            layer += (crossed + 1) * _WEIGHTS.size
            if layer >= gates.shape[0]:
                break
        start = stop
    psi = psi / np.linalg.norm(psi)
    return psi, len(jumps), jumps


def jumps_within(stepper, psi: np.ndarray, t: float, t_end: float, threshold: float, rng: np.random.Generator,
                 jumps: list, *, weights, apply) -> tuple[np.ndarray, float]:
    """The jumps of one trajectory inside the step [t, t_end] whose end crossed ``threshold`` (Gillespie-style).

    ``psi`` is the unnormalised state at t (‖ψ‖² > threshold). Repeatedly: find the jump time where
    ‖ψ‖² = threshold (:func:`_locate`), pick channel k on atom i with probability ∝ ‖L_k^(i) ψ‖²
    (``weights(ψ)``: atoms × channels), jump (``apply(ψ, k, i)``), renormalise, draw a new threshold,
    and evolve to t_end; stop when the step ends without another crossing. Appends (t, atom, k) to
    ``jumps``; returns the state at t_end and the current threshold. Shared by the full-space and the
    blockade-subspace trajectories, so both make the same draws."""
    while True:
        psi, t = _locate(stepper, psi, t, t_end - t, np.log(threshold))
        table = weights(psi)
        w = table.ravel()
        pick = int(np.searchsorted(np.cumsum(w), rng.random() * w.sum(), side="right"))
        atom, k = divmod(min(pick, w.size - 1), table.shape[1])
        psi = apply(psi, k, atom)
        psi = psi / np.linalg.norm(psi)
        jumps.append((float(t), int(atom), int(k)))
        threshold = rng.random()
        if t_end - t <= 1e-12:
            return psi, threshold
        rest, n2 = stepper.step(psi, t, t_end - t)
        if n2 >= threshold:
            return rest, threshold


def control_steps(noisy: NoisySequence, psi0: np.ndarray, tolerance: float) -> tuple[int, float, tuple]:
    """Step count from step doubling on the no-jump H_eff evolution of the noiseless draw.

    Returns (n_steps, d², (sampled, energies) of the noiseless draw)."""
    sampled, u, _ = noisy.draw(None)
    energies = interaction_diagonal(u)
    stepper = _Stepper(sampled, energies, decay_operator(list(noisy.ops)))

    def no_jump(steps: int) -> np.ndarray:
        h = sampled.duration_us / steps
        psi = psi0.copy()
        prev = np.empty_like(psi)
        diag = stepper.diagonal(h)
        for begin in range(0, steps, CHUNK_STEPS):
            end = min(steps, begin + CHUNK_STEPS)
            _run_steps(psi, prev, sampled.n_atoms, stepper.gates(np.arange(begin, end) * h, h), diag,
                       _WEIGHTS.size, -1.0)
        return psi / np.linalg.norm(psi)

    steps = max(2, initial_steps(sampled, "suzuki4", tolerance))
    coarse = no_jump(max(1, steps // 2))
    while True:
        fine = no_jump(steps)
        dist = phase_distance(fine, coarse)
        if dist**2 <= tolerance:
            return steps, dist**2, (sampled, energies)
        if 2 * steps > MAX_STEPS:
            raise ConvergenceError(f"trajectory integration did not reach 'tolerance' {tolerance:.1e} within "
                                   f"{MAX_STEPS} steps (estimate {dist**2:.1e})")
        coarse, steps = fine, 2 * steps


@dataclass(frozen=True, kw_only=True)
class TrajectoryResult:
    """Final states of K trajectories (normalised, OUR basis) and what we know about their accuracy.

    ``states`` (K, 2^N); ``n_jumps`` (K,); ``error_estimate``: per-trajectory integration infidelity
    estimate (step doubling, see module); ``n_steps``: grid steps per trajectory."""

    states: np.ndarray
    n_jumps: np.ndarray
    error_estimate: float
    n_steps: int
    seed: int
    wall_time_s: float
    info: dict = field(default_factory=dict)

    @property
    def n_trajectories(self) -> int:
        return int(self.states.shape[0])

    @property
    def n_atoms(self) -> int:
        return int(round(np.log2(self.states.shape[1])))

    def occupations(self) -> np.ndarray:
        """⟨n_i⟩ per trajectory: shape (K, N)."""
        probs = np.abs(self.states) ** 2
        n = self.n_atoms
        occ = ((np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)[None, :]) & 1).astype(float)
        return probs @ occ

    def correlations(self) -> np.ndarray:
        """⟨n_i n_j⟩ per trajectory: shape (K, N, N)."""
        probs = np.abs(self.states) ** 2
        n = self.n_atoms
        occ = ((np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)[None, :]) & 1).astype(float)
        return np.einsum("kx,xi,xj->kij", probs, occ, occ)

    def mean_and_error(self, per_trajectory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean over trajectories and its standard error std/√K (0 for a single trajectory)."""
        k = per_trajectory.shape[0]
        mean = per_trajectory.mean(axis=0)
        err = per_trajectory.std(axis=0, ddof=1) / np.sqrt(k) if k > 1 else np.zeros_like(mean)
        return mean, err

    def density_matrix(self) -> np.ndarray:
        """ρ = (1/K) Σ_k |ψ_k⟩⟨ψ_k| (2^N × 2^N: only for small N)."""
        return self.states.T @ self.states.conj() / self.n_trajectories

    def to_state(self, *, kind: StateKind = "pure-prepared", energy: float = float("nan"),
                 gap: float = float("nan"), info: dict | None = None) -> TrajectoryMixture:
        merged = dict(self.info)
        merged.update(info or {})
        return TrajectoryMixture(states=self.states, kind=kind, energy=energy, gap=gap, info=merged)


def run_trajectories(
    sequence,
    noise_model,
    *,
    n_trajectories: int,
    seed: int = 0,
    tolerance: float = 1e-6,
    initial_state: np.ndarray | None = None,
    with_modulation: bool = False,
    executor: Executor | None = None,
    progress: Callable[[int], None] | None = None,
    method: str = "krylov",
    blockade_radius_um: float | None = None,
    correction: bool = True,
) -> TrajectoryResult:
    """Emulate ``sequence`` under pulser's ``noise_model`` with ``n_trajectories`` quantum-jump trajectories.

    Trajectory k is seeded by (``seed``, the sequence, k). ``executor`` maps the trajectories (default:
    serial in this process); ``progress`` is called with the number of finished trajectories (serial only).
    State-preparation errors need the all-ground initial state (as in pulser). ``method`` = "krylov" (full
    space, every implemented channel) or "subspace" (blockade subspace of ``blockade_radius_um``, default
    (C6/Ω_max)^(1/6), Schrieffer–Wolff ``correction``; only channels that keep the subspace, see
    :mod:`.subspace_trajectories`). Trajectory k of both methods uses the same draws and thresholds."""
    if not isinstance(n_trajectories, int | np.integer) or isinstance(n_trajectories, bool) or n_trajectories < 1:
        raise QepValueError(f"'n_trajectories' must be a positive integer, not {n_trajectories!r}")
    if not (isinstance(tolerance, int | float) and 0 < tolerance < 1):
        raise QepValueError(f"'tolerance' must be in (0, 1), not {tolerance!r}")
    start = time.perf_counter()
    noisy = prepare_noisy_sequence(sequence, noise_model, with_modulation=with_modulation)
    dim = 2**noisy.n_atoms
    if initial_state is None:
        psi0 = np.zeros(dim, dtype=complex)
        psi0[0] = 1.0
    else:
        psi0 = np.asarray(initial_state, dtype=complex).copy()
        if psi0.shape != (dim,) or not np.isclose(np.linalg.norm(psi0), 1.0, atol=1e-8):
            raise QepValueError(f"'initial_state' must be a normalised vector of shape ({dim},)")
        nm = noise_model
        if nm is not None and "SPAM" in nm.noise_types and nm.state_prep_error > 0 and abs(abs(psi0[0]) - 1) > 1e-12:
            raise QepValueError("'state_prep_error' needs the all-ground 'initial_state' (as in pulser)")
    extra: dict = {}
    if method == "krylov":
        n_steps, estimate, noiseless = control_steps(noisy, psi0, tolerance)
        problem = _Problem(noisy=noisy, seed=int(seed), n_steps=n_steps, decay=decay_operator(list(noisy.ops)),
                           psi0=psi0, noiseless=noiseless)
        run = partial(_run_one, problem)
    elif method == "subspace":
        run, n_steps, estimate, extra = _subspace_run(noisy, psi0, int(seed), tolerance, blockade_radius_um,
                                                      bool(correction))
    else:
        raise QepValueError(f"'method' must be 'krylov' or 'subspace' for trajectories, not {method!r}")
    if executor is None or isinstance(executor, SerialExecutor):
        outputs = []
        for k in range(int(n_trajectories)):
            outputs.append(run(k))
            if progress is not None:
                progress(k + 1)
    else:
        outputs = executor.map(run, range(int(n_trajectories)))
    states = np.stack([o[0] for o in outputs])
    n_jumps = np.array([o[1] for o in outputs], dtype=int)
    info = {
        "method": "trajectories",
        "n_trajectories": int(n_trajectories),
        "noise_types": tuple(noise_model.noise_types) if noise_model is not None else (),
        "n_steps": n_steps,
        "step_ns": noisy.duration_ns / n_steps,
        "tolerance": tolerance,
        "error_estimate": estimate,
        "shot_to_shot": noisy.shot_to_shot,
        "mean_jumps": float(n_jumps.mean()),
        "seed": int(seed),
        "with_modulation": bool(with_modulation),
        "emulator": method,
        **extra,
    }
    return TrajectoryResult(states=states, n_jumps=n_jumps, error_estimate=float(estimate), n_steps=n_steps,
                            seed=int(seed), wall_time_s=time.perf_counter() - start, info=info)


def _subspace_run(noisy: NoisySequence, psi0: np.ndarray, seed: int, tolerance: float, radius: float | None,
                  correction: bool):
    """(trajectory function, steps, error estimate, info) of blockade-subspace trajectories."""
    from qep_analog.equilibrium.emulators.subspace import default_radius_um
    from qep_analog.equilibrium.emulators.subspace import propagate as subspace_propagate
    from qep_analog.equilibrium.emulators.subspace_trajectories import (
        check_subspace_noise,
        run_one_subspace,
        subspace_problem,
    )

    check_subspace_noise(noisy.noise_model, noisy.ops)
    sampled, _, _ = noisy.draw(None)
    if radius is None:
        omega_max = sampled.max_omega()
        radius = default_radius_um(sampled.c6, omega_max) if omega_max > 0 else 0.0
    if not radius >= 0:
        raise QepValueError(f"'blockade_radius_um' must be ≥ 0, not {radius}")
    decay = decay_operator(list(noisy.ops))
    setup = subspace_problem(noisy, psi0, radius_um=float(radius), correction=correction, tolerance=tolerance,
                             decay=decay)
    # The physical (perturbative) error of the subspace, estimated on the noiseless sequence.
    _, physical, phys_info = subspace_propagate(sampled, psi0, radius_um=float(radius), correction=correction,
                                                tolerance=tolerance)
    estimate = (np.sqrt(setup["estimate"]) + np.sqrt(physical)) ** 2
    run = partial(run_one_subspace, noisy, setup, seed, psi0, float(radius), correction, decay)
    info = {"blockade_radius_um": float(radius), "correction": correction, "dimension": setup["sub"].dimension,
            "integration_error_estimate": float(setup["estimate"]), "physical_error_estimate": float(physical)}
    return run, setup["n_steps"], float(estimate), info


@dataclass(frozen=True, kw_only=True)
class TrajectoryMixture(EquilibriumState):
    """An equal-weight mixture of K trajectory state vectors: ρ = (1/K) Σ_k |ψ_k⟩⟨ψ_k|.

    ``expect`` averages over trajectories (:meth:`expect_with_errors` adds the standard errors);
    ``sample`` spreads the shots over the trajectories (⌊M/K⌋ each, one more for the first M mod K),
    each drawn from its own trajectory's state, as pulser's per-trajectory ``BitStrings`` are, then
    shuffles them. Readout errors belong to the measurement layer."""

    states: np.ndarray
    kind: StateKind = "pure-prepared"
    energy: float = float("nan")
    gap: float = float("nan")
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.states.ndim != 2:
            raise QepValueError(f"'states' must be (trajectories, 2^N), not shape {self.states.shape}")

    @property
    def n_qubits(self) -> int:
        return int(round(np.log2(self.states.shape[1])))

    @property
    def is_pure(self) -> bool:
        return self.states.shape[0] == 1

    @property
    def state(self) -> np.ndarray:
        """The dense state: the vector for one trajectory, else the density matrix (small N only)."""
        if self.states.shape[0] == 1:
            return self.states[0]
        return self.states.T @ self.states.conj() / self.states.shape[0]

    def expect_with_errors(self, products) -> tuple[np.ndarray, np.ndarray]:
        """(mean over trajectories, standard error std/√K) of ⟨P⟩ for each product."""
        from qep_analog.equilibrium.dense import _table

        products = tuple(products)
        if not products:
            return np.zeros(0), np.zeros(0)
        table = _table(products, self.n_qubits)
        values = np.array([table.expect(psi) for psi in self.states])
        k = values.shape[0]
        err = values.std(axis=0, ddof=1) / np.sqrt(k) if k > 1 else np.zeros(values.shape[1])
        return values.mean(axis=0), err

    def expect(self, products) -> np.ndarray:
        return self.expect_with_errors(products)[0]

    def sample(self, basis: str, shots: int, rng: np.random.Generator) -> np.ndarray:
        from qep_analog.equilibrium.dense import check_shots, sample_dense

        shots = check_shots(shots)
        k = self.states.shape[0]
        counts = np.full(k, shots // k)
        counts[: shots % k] += 1
        parts = [sample_dense(self.states[j], basis, int(c), rng) for j, c in enumerate(counts) if c > 0]
        out = np.concatenate(parts)
        return out[rng.permutation(out.shape[0])]

    def overlap(self, other: EquilibriumState) -> float:
        """Tr(ρσ)/√(Tr ρ² Tr σ²) from the trajectory Gram matrices (|⟨a|b⟩| for two pure states)."""
        mine = self.states
        theirs = getattr(other, "states", None)
        if theirs is None:
            b = getattr(other, "state", None)
            if not isinstance(b, np.ndarray) or b.ndim != 1:
                raise QepValueError(f"cannot compare a trajectory mixture with a {type(other).__name__}")
            theirs = b[None, :]
        if mine.shape[0] == 1 and theirs.shape[0] == 1:
            return float(abs(np.vdot(mine[0], theirs[0])))
        cross = np.mean(np.abs(mine.conj() @ theirs.T) ** 2)
        pa = np.mean(np.abs(mine.conj() @ mine.T) ** 2)
        pb = np.mean(np.abs(theirs.conj() @ theirs.T) ** 2)
        return float(cross / np.sqrt(pa * pb))


__all__ = ["TrajectoryMixture", "TrajectoryResult", "dissipative_gates", "run_trajectories"]
