"""The adiabatic backend's preparation by quantum-jump trajectories, returned without the 4^N density matrix.

``prepare_trajectories`` runs the backend's ramp sequence for H(θ, x) + nudge through
:func:`.trajectories.run_trajectories` and returns the :class:`.trajectories.TrajectoryMixture` of the K
final state vectors (memory K·2^N, not 4^N): ``expect`` and ``sample`` work trajectory by trajectory.
``energy`` = (1/K) Σ_k ⟨ψ_k|H + nudge|ψ_k⟩ = Tr(ρH) (rad/µs); with ``compare_exact`` (≤ 16 atoms)
``info["fidelity"]`` = (1/K) Σ_k |⟨E₀|ψ_k⟩|² = ⟨E₀|ρ|E₀⟩ against the exact ground state, as the dense path
reports it.
"""

from __future__ import annotations

import numpy as np

from qep_analog.equilibrium.emulators.trajectories import TrajectoryMixture, run_trajectories


def prepare_trajectories(backend, hamiltonian, theta: np.ndarray, x: np.ndarray, nudge) -> TrajectoryMixture:
    """Ramp to H(θ, x) + nudge with the backend's noise model and ``n_trajectories`` (see module)."""
    seq, plan = backend.sequence(theta, x, nudge)
    result = run_trajectories(seq, backend.noise_model, n_trajectories=int(backend.n_trajectories),
                              seed=backend.seed, with_modulation=backend.with_modulation)
    extra = None if nudge is None else nudge.matrix(hamiltonian.n_qubits)
    h = hamiltonian.matrix(theta, x, extra=extra)
    states = result.states  # (K, 2^N)
    per_trajectory = np.real(np.einsum("kx,xk->k", states.conj(), h @ states.T))
    ramp = backend.ramp
    info = dict(sequence=seq, detuning_plan=plan, duration_ns=ramp.duration_ns, emulator="trajectories",
                nudge_switch=ramp.nudge_switch, noise=True, schedule=backend.schedule, nudge_mode=ramp.nudge,
                nudge_ramp_ns=ramp.nudge_ramp_ns, hold_ns=ramp.hold_ns, dephase=backend.dephase,
                energy_standard_error=float(per_trajectory.std(ddof=1) / np.sqrt(len(per_trajectory)))
                if len(per_trajectory) > 1 else 0.0)
    energy = float(per_trajectory.mean())
    gap = float("nan")
    if backend.compare_exact and hamiltonian.n_qubits <= 16:
        from qep_analog.equilibrium.adiabatic import lowest_levels  # adiabatic imports this module lazily

        w, v = lowest_levels(h)
        fid = float(np.mean(np.abs(states.conj() @ v[:, 0]) ** 2))
        gap = float(w[1] - w[0])
        info.update(fidelity=fid, infidelity=1.0 - fid, energy_above_ground=energy - float(w[0]),
                    ground_energy=float(w[0]), degenerate=bool(gap < 1e-9))
    return result.to_state(kind="pure-prepared", energy=energy, gap=gap, info=info)


__all__ = ["prepare_trajectories"]
