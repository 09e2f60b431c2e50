"""Quantum-jump trajectories in the blockade subspace (channels that keep it), and noisy ``emulate`` routing.

References: the full-space trajectories with the SAME seeds (trajectory k of both methods shares its draws and
waiting thresholds, so the paired difference isolates the subspace approximation, bounded per trajectory by
√error_estimate for observables with eigenvalues in [0, 1]) and pulser-simulation's mesolve."""

from __future__ import annotations

import numpy as np
import pytest
from pulser import Pulse, Register, Sequence
from pulser.noise_model import NoiseModel
from pulser.waveforms import InterpolatedWaveform

from qep_analog.device.devices import load_device
from qep_analog.equilibrium.emulators import emulate
from qep_analog.equilibrium.emulators.trajectories import run_trajectories
from qep_analog.errors import QepValueError

LAB = load_device("qep_lab_device")


def blockaded_ramp(n_atoms: int = 4, duration_ns: int = 1500, spacing_um: float = 5.0, omega: float = 3.0) -> Sequence:
    """A chain at 5 µm on qep_lab_device (U_nn = 55 rad/µs ≫ Ω = 3), DMM map, φ = 0.7."""
    reg = Register.from_coordinates([(i * spacing_um, 0.0) for i in range(n_atoms)], prefix="q")
    seq = Sequence(reg, LAB)
    seq.declare_channel("ryd", "rydberg_global")
    weights = {f"q{i}": float(w) for i, w in enumerate(np.linspace(0.2, 1.0, n_atoms))}
    seq.config_detuning_map(reg.define_detuning_map(weights), "dmm_0")
    seq.add_dmm_detuning(InterpolatedWaveform(duration_ns, [0.0, -4.0, -2.0]), "dmm_0")
    seq.add(Pulse(InterpolatedWaveform(duration_ns, [0.0, omega, omega, 0.0]),
                  InterpolatedWaveform(duration_ns, [-8.0, -3.0, 1.0, 2.0]), 0.7), "ryd", protocol="no-delay")
    return seq


def paired(seq, nm, k: int, seed: int = 3):
    full = run_trajectories(seq, nm, n_trajectories=k, seed=seed, method="krylov")
    sub = run_trajectories(seq, nm, n_trajectories=k, seed=seed, method="subspace")
    return full, sub


def assert_paired_agreement(full, sub):
    """Mean paired difference of ⟨n_i⟩ within 3 standard errors of the paired differences plus the
    subspace's error bound √error_estimate (|Δ⟨O⟩| ≤ trace distance for 0 ≤ O ≤ 1)."""
    diff = sub.occupations() - full.occupations()
    k = diff.shape[0]
    se = diff.std(axis=0, ddof=1) / np.sqrt(k)
    bound = 3 * se + np.sqrt(sub.error_estimate) + np.sqrt(full.error_estimate)
    assert np.all(np.abs(diff.mean(axis=0)) <= bound), (diff.mean(axis=0), bound)


def test_subspace_trajectories_pair_with_full_space_ones():
    full, sub = paired(blockaded_ramp(4), NoiseModel(dephasing_rate=0.5, relaxation_rate=0.3), 40)
    assert sub.info["emulator"] == "subspace" and sub.info["dimension"] == 8  # 1 + 4 + 3 (no adjacent pair)
    np.testing.assert_array_equal(sub.n_jumps, full.n_jumps)  # same thresholds, nearly the same states
    assert_paired_agreement(full, sub)
    assert sub.error_estimate < 1e-3


def test_subspace_trajectories_match_pulser_mesolve():
    from qep_analog.equilibrium.emulators.reference import SolverOptions, run_pulser

    seq = blockaded_ramp(4)
    nm = NoiseModel(dephasing_rate=0.5, relaxation_rate=0.3)
    rho, _ = run_pulser(seq, noise_model=nm, options=SolverOptions(atol=1e-10, rtol=1e-8))
    probs = np.real(np.diag(rho))
    occ = ((np.arange(16)[:, None] >> np.arange(3, -1, -1)[None, :]) & 1).astype(float)
    exact = probs @ occ
    k = 200
    sub = run_trajectories(seq, nm, n_trajectories=k, seed=5, method="subspace")
    per = sub.occupations()
    mean, se = per.mean(axis=0), per.std(axis=0, ddof=1) / np.sqrt(k)
    z = np.abs(mean - exact) / np.sqrt(se**2 + sub.error_estimate)
    assert np.all(z <= 3), (mean, exact, z)


def test_subspace_trajectories_with_shot_to_shot_noise_pair_with_full_space():
    """Amplitude, Doppler, register (per-trajectory subspace from the moved atoms) and state-preparation draws."""
    nm = NoiseModel(dephasing_rate=0.3, amp_sigma=0.05, temperature=50.0, trap_waist=1.0, trap_depth=150.0,
                    state_prep_error=0.1)
    full, sub = paired(blockaded_ramp(4, duration_ns=1000), nm, 16)
    assert_paired_agreement(full, sub)


def test_subspace_trajectories_are_bitwise_reproducible():
    seq = blockaded_ramp(3, duration_ns=600)
    nm = NoiseModel(dephasing_rate=0.8, relaxation_rate=0.8, amp_sigma=0.05)
    a = run_trajectories(seq, nm, n_trajectories=5, seed=9, method="subspace")
    b = run_trajectories(seq, nm, n_trajectories=5, seed=9, method="subspace")
    assert np.array_equal(a.states, b.states) and a.n_jumps.sum() > 0
    from qep_analog.executor import ProcessExecutor

    c = run_trajectories(seq, nm, n_trajectories=5, seed=9, method="subspace", executor=ProcessExecutor(workers=2))
    assert np.array_equal(a.states, c.states)


@pytest.mark.parametrize("nm, name", [
    (NoiseModel(depolarizing_rate=0.1), "depolarizing"),
    (NoiseModel(eff_noise_rates=(0.1,), eff_noise_opers=(np.array([[0, 1], [1, 0]]),)), "eff_noise"),
])
def test_channels_leaving_the_subspace_are_refused_by_name(nm, name):
    with pytest.raises(QepValueError, match=name):
        run_trajectories(blockaded_ramp(2, duration_ns=200), nm, n_trajectories=1, method="subspace")


def test_emulate_routes_noise_to_trajectories():
    seq = blockaded_ramp(3, duration_ns=600)
    nm = NoiseModel(dephasing_rate=0.5, relaxation_rate=0.5, p_false_pos=0.01)
    for method in ("krylov", "subspace"):
        res = emulate(seq, method, noise_model=nm, n_trajectories=6, seed=4)
        ref = run_trajectories(seq, nm, n_trajectories=6, seed=4, tolerance=1e-7, method=method)
        assert np.array_equal(res.state, ref.density_matrix())
        assert res.info["trajectories"].n_trajectories == 6 and res.info["spam"]["p_false_pos"] == 0.01
        assert res.error_estimate == ref.error_estimate
    with pytest.raises(QepValueError, match="n_trajectories"):
        emulate(seq, "krylov", noise_model=nm)
    with pytest.raises(QepValueError, match="depolarizing"):
        emulate(seq, "subspace", noise_model=NoiseModel(depolarizing_rate=0.1), n_trajectories=2)


def test_adiabatic_backend_returns_the_trajectory_mixture_without_a_dense_matrix():
    """prepare() gives K state vectors; expect = Tr(ρ P) and energy = Tr(ρ H) of the dense mixture, and the
    fidelity ⟨E₀|ρ|E₀⟩, all to 1e-12; sampling spreads the shots over the trajectories."""
    from qep_analog.device.rydberg import RydbergModel
    from qep_analog.equilibrium.base import get_backend
    from qep_analog.equilibrium.emulators.trajectories import TrajectoryMixture
    from qep_analog.models.pauli import PauliProduct

    model = RydbergModel(positions_um=[[0.0, 0.0], [9.0, 0.0], [4.5, 7.8]], device=LAB, omega=6.0,
                         detunings=[3.0, 4.0, 2.0], input_atoms=(0,), output_atoms=(2,))
    h, theta = model.hamiltonian(), model.theta()
    backend = get_backend("adiabatic", model=model, duration_ns=800, noise_model="device", n_trajectories=5)
    state = backend.prepare(h, theta, [1.0])
    assert isinstance(state, TrajectoryMixture) and state.states.shape == (5, 8)
    rho = state.states.T @ state.states.conj() / 5
    hm = h.matrix(theta, h.input_vector([1.0])).toarray()
    assert abs(state.energy - np.real(np.trace(rho @ hm))) < 1e-12
    w, v = np.linalg.eigh(hm)
    assert abs(state.info["fidelity"] - np.real(v[:, 0].conj() @ rho @ v[:, 0])) < 1e-12
    z2 = np.kron(np.eye(4), np.diag([1.0, -1.0]))
    assert abs(state.expect([PauliProduct.parse("Z2")])[0] - np.real(np.trace(rho @ z2))) < 1e-12
    assert state.sample("ZZZ", 10, np.random.default_rng(0)).shape == (10, 3)
