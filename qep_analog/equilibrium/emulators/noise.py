"""pulser's ``NoiseModel`` read into what a quantum-jump trajectory needs: collapse operators and
per-trajectory draws, with pulser 1.9's own definitions (operators, rates, units, distributions).

Every definition below is pulser-simulation's, read from pulser 1.9.1
(``pulser/_hamiltonian_data/hamiltonian_data.py``, ``pulser/noise_model.py``,
``pulser_simulation/hamiltonian.py``); the channel table with citations is in the issue-15 note.

Lindblad channels (local, every atom, present or not — ``_build_collapse_operators``), in OUR basis
|0⟩ = |g⟩, |1⟩ = |r⟩ (pulser orders (r, g); an operator A given in pulser's basis is P A P here, P the swap):

- dephasing: L = √(2γ_φ) n, n = |r⟩⟨r| (``hyperfine_dephasing_rate`` acts on 'h' only: unused here);
- relaxation: L = √γ_r |g⟩⟨r|;
- depolarizing: L ∈ √(γ_d/4)·{X, Y, Z} (pulser's second operator is −Y: same dissipator);
- eff_noise: L = √r_k A_k (A_k 2×2 in pulser's basis, swapped here);
- leakage (a third 'x' level) is refused by name.

Shot-to-shot channels, drawn once per trajectory (``_create_noise_trajectories``) from the trajectory's own
generator: state-preparation errors (bad atoms), Doppler δ_D ~ N(0, k_eff√(k_B T/m)) per atom, amplitude
max(0, N(1, amp_sigma)) per channel (× exp(−(d_⊥/w)²) for global pulses with ``laser_waist``), detuning
N(0, detuning_sigma) per channel plus the high-frequency PSD phases, DMM factor max(0, N(1, dmm_sigma)) per
DMM channel, register displacements N(0, σ_xy), N(0, σ_z) per atom. They are applied to the samples by
pulser's own code (``HamiltonianData._sample_with_trajectory``, which also applies ``dmm_crosstalk``), so the
noisy Hamiltonian of a trajectory is exactly pulser's for the same draws. Only the random generator differs:
ours is seeded per (sequence, trajectory), pulser's is numpy's global one.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np

from qep_analog.equilibrium.emulators.sampled import MAX_ATOMS, SampledSequence, interaction_matrix
from qep_analog.errors import QepValueError

# Channels our trajectories implement (pulser 1.9 NoiseModel.noise_types); anything else is refused by name.
IMPLEMENTED = frozenset({
    "dephasing", "relaxation", "depolarizing", "eff_noise", "SPAM", "amplitude", "doppler", "detuning",
    "register", "dmm_sigma", "dmm_crosstalk",
})
LINDBLAD = frozenset({"dephasing", "relaxation", "depolarizing", "eff_noise"})
_SWAP = np.array([[0.0, 1.0], [1.0, 0.0]])
_X = np.array([[0, 1], [1, 0]], dtype=complex)
_Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
_Z = np.array([[1, 0], [0, -1]], dtype=complex)
_N = np.array([[0, 0], [0, 1]], dtype=complex)
_LOWER = np.array([[0, 1], [0, 0]], dtype=complex)  # |g⟩⟨r| in (g, r)


def check_noise_model(noise_model) -> None:
    """Refuse channels the trajectories do not implement, naming them (never silently ignored)."""
    if noise_model is None:
        return
    types = set(noise_model.noise_types)
    missing = sorted(types - IMPLEMENTED)
    if "leakage" in types or getattr(noise_model, "with_leakage", False):
        raise QepValueError(
            "noise channel 'leakage' (with_leakage=True, a third 'x' level) is not implemented by the "
            "trajectory emulator; use emulator='pulser'"
        )
    if missing:
        raise QepValueError(f"noise channel(s) {missing} of 'noise_model' are not implemented by the trajectory "
                            f"emulator; use emulator='pulser'")
    if "eff_noise" in types:
        for k, op in enumerate(noise_model.eff_noise_opers):
            shape = np.asarray(op).shape
            if shape != (2, 2):
                raise QepValueError(f"'eff_noise_opers[{k}]' must be 2×2 (ground-rydberg), not of shape {shape}")


def collapse_operators(noise_model) -> list[np.ndarray]:
    """Single-atom collapse operators L_k (2×2, OUR basis, √rate included) of the Lindblad channels.

    Each acts on every atom: the master equation is dρ/dt = −i[H, ρ] + Σ_{i,k} D[L_k^{(i)}]ρ with
    D[L]ρ = LρL† − ½{L†L, ρ}. Rates in 1/µs."""
    if noise_model is None:
        return []
    check_noise_model(noise_model)
    types = set(noise_model.noise_types)
    ops: list[np.ndarray] = []
    if "dephasing" in types and noise_model.dephasing_rate > 0:
        ops.append(np.sqrt(2.0 * noise_model.dephasing_rate) * _N)
    if "relaxation" in types and noise_model.relaxation_rate > 0:
        ops.append(np.sqrt(noise_model.relaxation_rate) * _LOWER)
    if "depolarizing" in types and noise_model.depolarizing_rate > 0:
        coeff = np.sqrt(noise_model.depolarizing_rate / 4.0)
        ops.extend(coeff * p for p in (_X, _Y, _Z))
    if "eff_noise" in types:
        for rate, op in zip(noise_model.eff_noise_rates, noise_model.eff_noise_opers, strict=True):
            if rate > 0:
                ops.append(np.sqrt(rate) * (_SWAP @ np.asarray(op, dtype=complex) @ _SWAP))
    return ops


def decay_operator(ops: list[np.ndarray]) -> np.ndarray:
    """K = Σ_k L_k†L_k (2×2, Hermitian, ≥ 0): H_eff = H − (i/2) Σ_i K^{(i)} between jumps."""
    k = np.zeros((2, 2), dtype=complex)
    for op in ops:
        k += op.conj().T @ op
    return k


def sequence_digest(sequence) -> int:
    """A 64-bit integer fixed by the sequence's abstract representation (for per-sequence seeds)."""
    text = sequence.to_abstract_repr()
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def trajectory_generator(seed: int, digest: int, trajectory: int) -> np.random.Generator:
    """The generator of trajectory ``trajectory`` of the sequence with ``digest``: independent of the
    order in which trajectories run (so any executor gives bitwise the same results)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, digest, int(trajectory)]))


@dataclass(frozen=True, kw_only=True)
class NoisySequence:
    """A sequence and a noise model, prepared once; :meth:`draw` gives one trajectory's Hamiltonian.

    ``hamiltonian_data`` is pulser's ``HamiltonianData`` for the sequence (used to apply the draws with
    pulser's own code); ``noise_model`` the pulser NoiseModel; ``ops`` the collapse operators."""

    hamiltonian_data: object
    noise_model: object
    ops: tuple[np.ndarray, ...]
    c6: float
    qubit_ids: tuple[str, ...]
    duration_ns: int
    digest: int

    @property
    def n_atoms(self) -> int:
        return len(self.qubit_ids)

    @property
    def shot_to_shot(self) -> bool:
        """True when trajectories differ in their Hamiltonian (pulser's stochastic noise, SPAM prep included)."""
        from pulser._hamiltonian_data.hamiltonian_data import has_shot_to_shot_except_spam

        nm = self.noise_model
        prep = "SPAM" in nm.noise_types and nm.state_prep_error > 0
        return bool(has_shot_to_shot_except_spam(nm) or prep)

    def draw(self, rng: np.random.Generator | None) -> tuple[SampledSequence, np.ndarray, dict]:
        """One trajectory's (controls, interaction matrix U_ij in rad/µs, draws) from ``rng``.

        ``rng=None`` gives the noiseless draw (no bad atom, unit factors, zero offsets): the Hamiltonian
        used for the step-size control."""
        from pulser._hamiltonian_data.noise_trajectory import NoiseTrajectory
        from pulser.channels import DMM

        hd = self.hamiltonian_data
        nm = self.noise_model
        types = set(nm.noise_types)
        qids = list(hd._qid_index)
        n = len(qids)
        channels = list(hd.samples.channel_samples)
        ch_objs = hd.samples._ch_objs
        stochastic = rng is not None
        # Order of draws as in pulser's _create_noise_trajectories (bad atoms, Doppler, per channel, register).
        if stochastic and "SPAM" in types and nm.state_prep_error > 0:
            bad = rng.uniform(size=n) < nm.state_prep_error
        else:
            bad = np.zeros(n, dtype=bool)
        if stochastic and "doppler" in types:
            from pulser.noise_model import _doppler_sigma

            doppler = rng.normal(0.0, _doppler_sigma(nm.temperature * 1e-6), size=n)
        else:
            doppler = np.zeros(n)
        amp, det, phases, dmm = {}, {}, {}, {}
        for ch in channels:
            amp[ch] = max(0.0, rng.normal(1.0, nm.amp_sigma)) if stochastic and nm.amp_sigma else 1.0
            det[ch] = rng.normal(0.0, nm.detuning_sigma) if stochastic and nm.detuning_sigma else 0.0
            if nm.detuning_hf_omegas:
                size = len(nm.detuning_hf_omegas) - 1
                phases[ch] = rng.uniform(0.0, 2 * np.pi, size=size) if stochastic else np.zeros(size)
            else:
                phases[ch] = np.array(0.0)
            is_dmm = isinstance(ch_objs[ch], DMM)
            dmm[ch] = max(0.0, rng.normal(1.0, nm.dmm_sigma)) if stochastic and nm.dmm_sigma and is_dmm else 1.0
        register = hd.register
        displacement = np.zeros((n, 3))
        if stochastic and "register" in types:
            from pulser.noise_model import _register_sigma_xy_z
            from pulser.register import Register3D

            sigma_xy, sigma_z = _register_sigma_xy_z(nm.temperature, nm.trap_waist, float(nm.trap_depth))
            displacement = np.column_stack([rng.normal(0, sigma_xy, (n, 2)), rng.normal(0, sigma_z, n)])
            base = _positions(hd.register, qids)
            register = Register3D({q: base[i] + displacement[i] for i, q in enumerate(qids)})
        positions = _positions(register, qids)
        bad_atoms = {q: bool(b) for q, b in zip(qids, bad, strict=True)}
        traj = NoiseTrajectory(bad_atoms, dict(zip(qids, doppler, strict=True)), amp, det, phases, register,
                               None, dmm)
        samples = hd._sample_with_trajectory(traj)
        sampled = _sampled_from_samples(samples, qids, positions, self.c6, self.duration_ns)
        u = interaction_matrix(positions, self.c6)
        u[bad, :] = 0.0
        u[:, bad] = 0.0
        draws = {"bad_atoms": bad, "doppler": doppler, "amp": amp, "det": det, "dmm": dmm,
                 "displacement_um": displacement}
        return sampled, u, draws


def prepare_noisy_sequence(sequence, noise_model, *, with_modulation: bool = False) -> NoisySequence:
    """Read ``sequence`` and ``noise_model`` once (refusing unimplemented channels by name)."""
    from pulser._hamiltonian_data.hamiltonian_data import HamiltonianData

    from qep_analog.equilibrium.emulators.reference import seeded_global_numpy

    check_noise_model(noise_model)
    n_atoms = len(sequence.register.qubit_ids)
    if n_atoms > MAX_ATOMS:
        raise QepValueError(f"emulation supports at most {MAX_ATOMS} atoms, not {n_atoms}")
    # HamiltonianData draws one trajectory from numpy's global generator on creation: keep that unseen.
    with seeded_global_numpy(0), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        hd = HamiltonianData.from_sequence(sequence, with_modulation=with_modulation, noise_model=noise_model,
                                           n_trajectories=1)
    if set(hd.samples.used_bases) - {"ground-rydberg"}:
        raise QepValueError(f"trajectories handle the 'ground-rydberg' basis only, not {sorted(hd.samples.used_bases)}")
    hd.local_noises = True  # always read per-atom samples (also for Lindblad-only models)
    return NoisySequence(
        hamiltonian_data=hd,
        noise_model=noise_model,
        ops=tuple(collapse_operators(noise_model)),
        c6=float(sequence.device.interaction_coeff),
        qubit_ids=tuple(str(q) for q in sequence.register.qubit_ids),
        duration_ns=int(hd.samples.max_duration),
        digest=sequence_digest(sequence),
    )


def _positions(register, qids) -> np.ndarray:
    coords = register.qubits
    pos = np.zeros((len(qids), 3))
    for i, q in enumerate(qids):
        c = np.asarray(coords[q].as_array() if hasattr(coords[q], "as_array") else coords[q], dtype=float)
        pos[i, : c.shape[0]] = c
    return pos


def _sampled_from_samples(samples, qids, positions, c6: float, duration: int) -> SampledSequence:
    """Per-atom (Ω, δ, φ) of pulser ``SequenceSamples`` (all local) as a :class:`SampledSequence`."""
    nested = samples.to_nested_dict(all_local=True)
    per_atom = nested.get("Local", {}).get("ground-rydberg", {})
    n = len(qids)
    omega = np.zeros((n, duration))
    delta = np.zeros((n, duration))
    phase = np.zeros((n, duration))
    for i, q in enumerate(qids):
        if q not in per_atom:
            continue
        entry = per_atom[q]
        for name, target in (("amp", omega), ("det", delta), ("phase", phase)):
            arr = np.asarray(entry[name], dtype=float)
            m = min(arr.shape[0], duration)
            target[i, :m] = arr[:m]
    return SampledSequence(qubit_ids=tuple(str(q) for q in qids), positions_um=positions, c6=c6,
                           duration_ns=duration, omega=omega, delta=delta, phase=phase)


__all__ = [
    "IMPLEMENTED",
    "NoisySequence",
    "check_noise_model",
    "collapse_operators",
    "decay_operator",
    "prepare_noisy_sequence",
    "sequence_digest",
    "trajectory_generator",
]
