"""Quantum-jump trajectories in the blockade subspace, for the channels that keep it.

Master equation and unravelling as in :mod:`.trajectories` (pulser's channels, OUR basis |0⟩ = |g⟩,
|1⟩ = |r⟩, ħ = 1, rad/µs, µs): between jumps ψ evolves with H_eff = H − (i/2) Σ_i K^{(i)}, K = Σ_k L_k†L_k;
a jump applies L_k^{(i)} with probability ∝ ‖L_k^{(i)} ψ‖². H is restricted to the blockade subspace P (and
Schrieffer–Wolff corrected, as in :mod:`.subspace`).

Which channels keep P (a jump must not create a Rydberg excitation, and K must be diagonal so that H_eff is
H_P plus a diagonal damping):

- dephasing L = √(2γ) n and relaxation L = √γ |g⟩⟨r|: yes;
- depolarizing: its X and Y jumps excite atoms (|g⟩ → |r⟩, possibly inside a blockaded pair): REFUSED by
  name (use the full-space "krylov" trajectories);
- eff_noise: only operators without a |r⟩⟨g| part and with a diagonal L†L (e.g. n, Z, |g⟩⟨r|); others are
  refused by name;
- leakage: refused (as in the full space).
Shot-to-shot channels and SPAM are drawn exactly as in the full space (same generator, same order), so
trajectory k of "subspace" and of "krylov" share their draws and waiting thresholds.

Integration: the subspace emulator's fourth-order commutator-free Magnus steps (two Gauss points, Lanczos
exponentials of the Hermitian exponents), each exponential e^{−ihA_s} (A_s the Hermitian Magnus exponent,
s = 1, 2) wrapped in the diagonal damping as e^{−hk/8} e^{−ihA_s} e^{−hk/8}, k(x) = Σ_i K^{(i)}_{n_i(x) n_i(x)}
(the exact damping over the step, split symmetrically: a second-order error ∝ h³‖H‖²‖K‖ per step, which the
step doubling below sees). Step count: doubling on the no-jump evolution of the noiseless draw until
d² ≤ ``tolerance``. Jump times are located by Illinois false position on log‖ψ‖² (one partial Magnus step
of length τ from the step start per evaluation), to |log‖ψ‖² − log r| ≤ 1e-9.

``error_estimate`` combines that integration estimate with the subspace's physical estimate for the
noiseless sequence (:func:`.subspace.propagate`: second-order distance and its residual):
(√e_int + √e_phys)².
"""

from __future__ import annotations

import numpy as np

from qep_analog.equilibrium.emulators._lanczos import expm_lanczos
from qep_analog.equilibrium.emulators.krylov import phase_distance
from qep_analog.equilibrium.emulators.noise import NoisySequence, trajectory_generator
from qep_analog.equilibrium.emulators.subspace import (
    BlockadeSubspace,
    SubspaceOperator,
    _embed,
    build_subspace,
    initial_steps,
)
from qep_analog.equilibrium.emulators.trajectories import jumps_within  # the jump loop, any stepper
from qep_analog.errors import ConvergenceError, QepValueError

_SQ3 = np.sqrt(3.0)
_A1 = 0.25 - _SQ3 / 6.0
_A2 = 0.25 + _SQ3 / 6.0
JUMP_LOG_TOL = 1e-9
MAX_STEPS = 200_000
_CHUNK = 256


def check_subspace_noise(noise_model, ops) -> None:
    """Refuse, by name, channels whose jumps or damping leave the blockade subspace."""
    if noise_model is None:
        return
    types = set(noise_model.noise_types)
    if "depolarizing" in types and noise_model.depolarizing_rate > 0:
        raise QepValueError("noise channel 'depolarizing' does not keep the blockade subspace (its X and Y jumps "
                            "excite atoms): use method='krylov' for its trajectories")
    for k, op in enumerate(ops):
        raising = abs(op[1, 0]) > 0
        k_op = op.conj().T @ op
        if raising or abs(k_op[0, 1]) > 1e-14:
            raise QepValueError(f"noise channel 'eff_noise' (operator {k}) does not keep the blockade subspace "
                                f"(it has a |r⟩⟨g| part or a non-diagonal L†L): use method='krylov'")


class _SubspaceStepper:
    """No-jump evolution of one trajectory's H_eff in P; jumps; embedding into the full space."""

    def __init__(self, sub: BlockadeSubspace, correction: bool, sampled, decay: np.ndarray, lanczos_tol: float):
        self.sub = sub
        self.op = SubspaceOperator(sub, correction)
        self.sampled = sampled
        kg, kr = float(np.real(decay[0, 0])), float(np.real(decay[1, 1]))
        self.damping = np.sum(np.where(sub.occ > 0, kr, kg), axis=1)  # k(x) = Σ_i K_{n_i n_i}
        self.lanczos_tol = lanczos_tol
        n = sub.n_atoms
        lookup = {int(s): i for i, s in enumerate(sub.states)}
        bits = [1 << (n - 1 - i) for i in range(n)]
        self.excited = [np.flatnonzero(sub.occ[:, i] > 0) for i in range(n)]
        self.lowered = [np.array([lookup[int(sub.states[x]) & ~bits[i]] for x in self.excited[i]], dtype=np.int64)
                        for i in range(n)]

    def gauss_controls(self, t0: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
        c1 = self.sampled.values(t0 + (0.5 - _SQ3 / 6.0) * tau)
        c2 = self.sampled.values(t0 + (0.5 + _SQ3 / 6.0) * tau)
        return c1, c2

    def _one(self, psi: np.ndarray, c1, c2, tau: float) -> np.ndarray:
        half = np.exp(-0.125 * tau * self.damping)
        op = self.op
        for w1, w2 in ((_A2, _A1), (_A1, _A2)):  # right factor (applied first) leans on the earlier point
            psi = psi * half
            data, diag = op.combine(c1, c2, w1, w2)
            psi, _ = expm_lanczos(op.indptr, op.indices, data, diag, psi, tau, 40, self.lanczos_tol)
            psi = psi * half
        return psi

    def step(self, psi: np.ndarray, t0: float, tau: float) -> tuple[np.ndarray, float]:
        c1, c2 = self.gauss_controls(np.array([t0]), tau)
        out = self._one(psi, c1[0], c2[0], tau)
        return out, float(np.vdot(out, out).real)

    def run(self, psi: np.ndarray, first: int, last: int, h: float, threshold: float):
        """Whole steps first … last−1 until ‖ψ‖² < threshold: (ψ, ψ at the start of the crossing step, its
        index or −1)."""
        for begin in range(first, last, _CHUNK):
            end = min(last, begin + _CHUNK)
            c1, c2 = self.gauss_controls(np.arange(begin, end) * h, h)
            for s in range(end - begin):
                prev = psi
                psi = self._one(psi, c1[s], c2[s], h)
                if threshold > 0 and float(np.vdot(psi, psi).real) < threshold:
                    return psi, prev, begin + s
        return psi, None, -1

    def jump_weights(self, psi: np.ndarray, ops) -> np.ndarray:
        """‖L_k^{(i)} ψ‖² for every atom i and operator k: shape (n, len(ops))."""
        prob = np.abs(psi) ** 2
        out = np.empty((self.sub.n_atoms, len(ops)))
        for i in range(self.sub.n_atoms):
            p_r = float(prob[self.excited[i]].sum())
            p_g = float(prob.sum()) - p_r
            for k, op in enumerate(ops):
                k_op = op.conj().T @ op  # diagonal (checked)
                out[i, k] = max(0.0, float(np.real(k_op[0, 0])) * p_g + float(np.real(k_op[1, 1])) * p_r)
        return out

    def apply(self, psi: np.ndarray, op: np.ndarray, atom: int) -> np.ndarray:
        """L ψ for a single-atom L = [[a, b], [0, d]] on ``atom`` (keeps P: no |r⟩⟨g| part)."""
        exc, low = self.excited[atom], self.lowered[atom]
        out = op[0, 0] * psi
        out[exc] = op[1, 1] * psi[exc]
        if op[0, 1] != 0:
            out[low] += op[0, 1] * psi[exc]
        return out

    def embed(self, psi_p: np.ndarray, correction: bool) -> np.ndarray:
        final = self.sampled.values(np.array([max(self.sampled.duration_us - 1e-3, 0.0)]))[0]
        psi_p = psi_p / np.linalg.norm(psi_p)
        dressed = self.op.dressing(psi_p, final) if correction else None
        return _embed(self.sub, psi_p, dressed)


def subspace_problem(noisy: NoisySequence, psi0: np.ndarray, *, radius_um: float, correction: bool,
                     tolerance: float, decay: np.ndarray) -> dict:
    """Step count (doubling on the noiseless no-jump evolution), subspace and the noiseless stepper."""
    sampled, _, _ = noisy.draw(None)
    sub = build_subspace(sampled.positions_um, sampled.c6, radius_um)
    outside = 1.0 - float(np.sum(np.abs(psi0[sub.states]) ** 2))
    if outside > 1e-12:
        raise QepValueError(f"'initial_state' has weight {outside:.2e} outside the blockade subspace of radius "
                            f"{radius_um:.2f} µm")
    steps = initial_steps(sub, sampled)
    int_tol = max(tolerance, 1e-14)

    def no_jump(n_steps: int) -> np.ndarray:
        stepper = _SubspaceStepper(sub, correction, sampled, decay, 1e-3 * np.sqrt(int_tol) / n_steps)
        out, _, _ = stepper.run(psi0[sub.states].astype(complex), 0, n_steps, sampled.duration_us / n_steps, -1.0)
        return out / np.linalg.norm(out)

    coarse = no_jump(max(1, steps // 2))
    while True:
        fine = no_jump(steps)
        dist = phase_distance(fine, coarse)
        if dist**2 <= int_tol:
            break
        if 2 * steps > MAX_STEPS:
            raise ConvergenceError(f"subspace trajectories did not reach 'tolerance' {tolerance:.1e} within "
                                   f"{MAX_STEPS} steps (estimate {dist**2:.1e})")
        coarse, steps = fine, 2 * steps
    return dict(n_steps=steps, estimate=dist**2, sub=sub, sampled=sampled,
                lanczos_tol=1e-3 * np.sqrt(int_tol) / steps)


def run_one_subspace(noisy: NoisySequence, setup: dict, seed: int, psi0: np.ndarray, radius_um: float,
                     correction: bool, decay: np.ndarray, index: int, rng=None) -> tuple[np.ndarray, int, list]:
    """Trajectory ``index`` in the blockade subspace: (final full-space ψ, number of jumps, jump records)."""
    if rng is None:
        rng = trajectory_generator(seed, noisy.digest, index)
    sub, sampled = setup["sub"], setup["sampled"]
    if noisy.shot_to_shot:
        sampled, _, _ = noisy.draw(rng)
        if "register" in noisy.noise_model.noise_types:  # moved atoms: interactions (and possibly P) change
            sub = build_subspace(sampled.positions_um, sampled.c6, radius_um)
    stepper = _SubspaceStepper(sub, correction, sampled, decay, setup["lanczos_tol"])
    ops = noisy.ops
    n_steps = setup["n_steps"]
    h = sampled.duration_us / n_steps
    psi = psi0[sub.states].astype(complex)
    threshold = rng.random() if ops else -1.0
    jumps: list = []
    step = 0
    while step < n_steps:
        psi, prev, crossed = stepper.run(psi, step, n_steps, h, threshold)
        if crossed < 0:
            break
        psi, threshold = jumps_within(stepper, prev, crossed * h, (crossed + 1) * h, threshold, rng, jumps,
                                      weights=lambda v: stepper.jump_weights(v, ops),
                                      apply=lambda v, k, atom: stepper.apply(v, ops[k], atom))
        step = crossed + 1
    return stepper.embed(psi, correction), len(jumps), jumps


__all__ = ["check_subspace_noise", "run_one_subspace", "subspace_problem"]
