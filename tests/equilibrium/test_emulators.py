"""Emulators of pulser sequences: conventions vs pulser, accuracy vs pulser-simulation, subspace
error estimates vs the full space, noise refusal. Exact references, fixed seeds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pulser import Pulse, Register, Sequence
from pulser.devices import DigitalAnalogDevice, MockDevice
from pulser.noise_model import NoiseModel
from pulser.waveforms import InterpolatedWaveform, RampWaveform

from qep_analog.equilibrium.emulators import EMULATORS, emulate, subspace_ground_state
from qep_analog.equilibrium.emulators.krylov import interaction_diagonal
from qep_analog.equilibrium.emulators.reference import SolverOptions, run_pulser
from qep_analog.equilibrium.emulators.sampled import hamiltonian_matrix, sample_sequence
from qep_analog.errors import QepValueError

TIGHT = SolverOptions(atol=1e-10, rtol=1e-8)


def fidelity(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(np.vdot(a, b)) ** 2)


def random_sweep(
    n_atoms: int, seed: int, *, dmm: bool, phase: float, duration_ns: int = 1200,
    spacing_um: float = 5.8, zigzag_um: float = 0.0,
):
    """A random smooth adiabatic-ish sweep on DigitalAnalogDevice (C6 = 5.42e6)."""
    rng = np.random.default_rng(seed)
    coords = [(i * spacing_um, zigzag_um * (i % 2)) for i in range(n_atoms)]
    reg = Register.from_coordinates(coords, prefix="q")
    seq = Sequence(reg, DigitalAnalogDevice)
    seq.declare_channel("ryd", "rydberg_global")
    omega_peak = rng.uniform(5.0, 9.0)
    amp = InterpolatedWaveform(
        duration_ns, [0.0, omega_peak * rng.uniform(0.6, 1.0), omega_peak, 0.0]
    )
    det = InterpolatedWaveform(
        duration_ns, [-15.0, rng.uniform(-8, -2), rng.uniform(0, 4), rng.uniform(4, 9)]
    )
    if dmm:
        weights = {f"q{i}": float(w) for i, w in enumerate(rng.uniform(0, 1, n_atoms))}
        seq.config_detuning_map(reg.define_detuning_map(weights), "dmm_0")
        seq.add_dmm_detuning(
            InterpolatedWaveform(duration_ns, [0.0, -rng.uniform(2, 6), -rng.uniform(1, 4)]),
            "dmm_0",
        )
    seq.add(Pulse(amp, det, phase), "ryd", protocol="no-delay")
    return seq


def reference_like(n_atoms: int, spacing_um: float = 5.7, device=MockDevice):
    reg = Register.rectangle(1, n_atoms, spacing=spacing_um, prefix="q")
    seq = Sequence(reg, device)
    seq.declare_channel("ising", "rydberg_global")
    seq.add(Pulse.ConstantDetuning(RampWaveform(200, 0.0, 9.18), -20.4, 0.0), "ising")
    seq.add(Pulse.ConstantAmplitude(9.18, RampWaveform(1600, -20.4, 9.18), 0.0), "ising")
    seq.add(Pulse.ConstantDetuning(RampWaveform(200, 9.18, 0.0), 9.18, 0.0), "ising")
    return seq


def test_hamiltonian_convention_matches_pulser_with_dmm_and_phase():
    from pulser_simulation import QutipEmulator

    seq = random_sweep(3, seed=1, dmm=True, phase=0.9, duration_ns=400)
    sampled = sample_sequence(seq)
    assert not np.allclose(sampled.delta[0], sampled.delta[1])  # the DMM is really local
    sim = QutipEmulator.from_sequence(seq)
    for t_ns in (0, 57, 200, 333, 399):
        ours = hamiltonian_matrix(sampled, t_ns * 1e-3)
        theirs = sim.get_hamiltonian(t_ns).full()[::-1, ::-1]  # pulser (r, g) → our order
        np.testing.assert_allclose(ours, theirs, atol=1e-10)
        np.testing.assert_allclose(ours, ours.conj().T, atol=1e-14)


def test_sampled_averages_are_exact_integrals_of_the_interpolant():
    seq = random_sweep(2, seed=2, dmm=True, phase=0.3, duration_ns=200)
    sampled = sample_sequence(seq)
    t0, t1 = 0.0123, 0.0877
    grid = np.linspace(t0, t1, 20001)
    values = sampled.values(grid)
    numeric = np.trapezoid(values, grid, axis=0) / (t1 - t0)
    np.testing.assert_allclose(sampled.averages([t0], [t1])[0], numeric, atol=1e-6)
    # backwards intervals (negative composition weights) give the same average
    np.testing.assert_allclose(sampled.averages([t1], [t0]), sampled.averages([t0], [t1]))


@pytest.mark.parametrize(
    "n_atoms, seed, dmm, phase",
    [(6, 11, False, 0.0), (6, 12, True, 0.8), (7, 13, True, -1.3)],
)
def test_krylov_matches_pulser_simulation(n_atoms, seed, dmm, phase):
    seq = random_sweep(n_atoms, seed, dmm=dmm, phase=phase)
    ref, _ = run_pulser(seq, options=TIGHT)
    res = emulate(seq, "krylov", tolerance=1e-7)
    assert fidelity(res.state, ref) >= 0.999
    assert np.isclose(np.linalg.norm(res.state), 1.0, atol=1e-10)
    assert res.error_estimate <= 1e-7
    assert res.dimension == 2**n_atoms and res.method == "krylov"


def test_krylov_error_estimate_bounds_true_error():
    seq = random_sweep(6, seed=21, dmm=True, phase=0.5)
    exact = emulate(seq, "krylov", tolerance=1e-12)
    for tol in (1e-3, 1e-5):
        res = emulate(seq, "krylov", tolerance=tol)
        true_infidelity = 1 - fidelity(res.state, exact.state)
        assert res.error_estimate <= tol
        assert true_infidelity <= res.error_estimate + exact.error_estimate + 1e-12


def test_krylov_custom_initial_state_matches_pulser():
    seq = random_sweep(4, seed=5, dmm=True, phase=0.4, duration_ns=400)
    rng = np.random.default_rng(3)
    psi0 = rng.normal(size=16) + 1j * rng.normal(size=16)
    psi0 /= np.linalg.norm(psi0)
    ref, _ = run_pulser(seq, initial_state=psi0, options=TIGHT)
    res = emulate(seq, "krylov", initial_state=psi0)
    assert fidelity(res.state, ref) >= 0.9999


@pytest.mark.parametrize(
    "n_atoms, seed, dmm, phase, zigzag",
    [(7, 31, False, 0.0, 0.0), (7, 32, True, 0.7, 0.0), (8, 33, True, -0.4, 2.0)],
)
def test_subspace_agrees_with_krylov_within_its_estimate(n_atoms, seed, dmm, phase, zigzag):
    seq = random_sweep(n_atoms, seed, dmm=dmm, phase=phase, zigzag_um=zigzag)
    full = emulate(seq, "krylov", tolerance=1e-9)
    for correction in (True, False):
        res = emulate(seq, "subspace", correction=correction)
        infidelity = 1 - fidelity(res.state, full.state)
        assert infidelity <= res.error_estimate + full.error_estimate
        assert res.dimension < 2**n_atoms and res.blockade_radius_um > 0
        assert np.isclose(np.linalg.norm(res.state), 1.0, atol=1e-10)
    # the correction must pay: its estimate and its true error are the smaller ones
    plain = emulate(seq, "subspace", correction=False)
    fixed = emulate(seq, "subspace", correction=True)
    assert 1 - fidelity(fixed.state, full.state) < 1 - fidelity(plain.state, full.state)
    assert fixed.error_estimate < plain.error_estimate


def test_subspace_dimension_of_a_chain_is_fibonacci():
    res = emulate(reference_like(9), "subspace")
    fib = [1, 2]
    while len(fib) < 11:
        fib.append(fib[-1] + fib[-2])
    assert res.dimension == fib[9]  # independent sets of a 9-atom path: F(11) = 89
    assert 5.7 < res.blockade_radius_um < 11.4


def test_subspace_warns_when_the_cut_is_not_far_off_resonant():
    # at 8 µm, U = C6/8⁶ ≈ 21 rad/µs is only ~2 Ω: a blockade cut there is not perturbative
    seq = reference_like(5, spacing_um=8.0)
    with pytest.warns(UserWarning, match="not ≫ Ω_max"):
        emulate(seq, "subspace", blockade_radius_um=9.0)


def test_subspace_ground_state_matches_exact_diagonalisation():
    n = 8
    pos = np.c_[np.arange(n) * 5.7, np.zeros(n)]
    c6 = MockDevice.interaction_coeff
    omega, delta = 6.0, np.linspace(3.0, 7.0, n)
    u = c6 / np.abs(pos[:, None, 0] - pos[None, :, 0] + np.eye(n)) ** 6 * (1 - np.eye(n))
    idx = np.arange(2**n)
    occ = (idx[:, None] >> np.arange(n - 1, -1, -1)[None, :]) & 1
    h = np.diag(interaction_diagonal(u) - occ @ delta).astype(complex)
    for i in range(n):
        bit = 1 << (n - 1 - i)
        g = idx[(idx & bit) == 0]
        h[g | bit, g] += omega / 2
        h[g, g | bit] += omega / 2
    evals, evecs = np.linalg.eigh(h)
    for correction in (True, False):
        gs = subspace_ground_state(pos, c6, omega, delta, correction=correction)
        infidelity = 1 - fidelity(gs.state, evecs[:, 0])
        assert infidelity <= gs.error_estimate
        assert gs.dimension == 55
    gs = subspace_ground_state(pos, c6, omega, delta, correction=True)
    assert abs(gs.energy - evals[0]) < 0.05 * abs(evals[0] - evals[1])


def test_unsupported_noise_channel_is_refused_and_spam_is_recorded():
    seq = reference_like(4)
    with pytest.raises(QepValueError, match="dephasing"):
        emulate(seq, "krylov", noise_model=NoiseModel(dephasing_rate=0.2))
    with pytest.raises(QepValueError, match="amplitude"):
        emulate(seq, "subspace", noise_model=NoiseModel(amp_sigma=0.05, runs=5, samples_per_run=1))
    spam = NoiseModel(p_false_pos=0.01, p_false_neg=0.05)
    res = emulate(seq, "subspace", noise_model=spam)
    assert res.info["spam"] == {"state_prep_error": 0.0, "p_false_pos": 0.01, "p_false_neg": 0.05}


def test_pulser_shot_noise_needs_explicit_trajectories():
    seq = reference_like(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        noise = NoiseModel(amp_sigma=0.05, runs=5, samples_per_run=1)
    with pytest.raises(QepValueError, match="n_trajectories"):
        emulate(seq, "pulser", noise_model=noise)


def test_bad_inputs_are_refused():
    seq = reference_like(3)
    with pytest.raises(QepValueError, match="method"):
        emulate(seq, "magic")
    with pytest.raises(QepValueError, match="initial_state"):
        emulate(seq, "krylov", initial_state=np.ones(8))
    outside = np.zeros(8, dtype=complex)
    outside[0b110] = 1.0  # neighbours 0 and 1 both excited: outside the blockade subspace
    with pytest.raises(QepValueError, match="outside the blockade subspace"):
        emulate(seq, "subspace", initial_state=outside)
    assert set(EMULATORS) == {"krylov", "subspace", "pulser"}


@pytest.mark.slow
def test_reference_sweep_10_atoms_against_pulser():
    seq = reference_like(10)
    ref, _ = run_pulser(seq, options=TIGHT)
    assert fidelity(emulate(seq, "krylov").state, ref) >= 0.9999
    corrected = emulate(seq, "subspace", correction=True)
    assert fidelity(corrected.state, ref) >= 0.999
    assert 1 - fidelity(corrected.state, ref) <= corrected.error_estimate + 1e-5


def test_subspace_correction_refuses_a_resonant_cut():
    # δ = 170 rad/µs > U_nn ≈ 158 rad/µs: exciting a blockaded neighbour is resonant
    reg = Register.rectangle(1, 4, spacing=5.7, prefix="q")
    seq = Sequence(reg, MockDevice)
    seq.declare_channel("ising", "rydberg_global")
    seq.add(Pulse.ConstantDetuning(RampWaveform(200, 0.0, 5.0), 170.0, 0.0), "ising")
    with pytest.warns(UserWarning, match="not ≫ Ω_max"):
        with pytest.raises(QepValueError, match="resonant"):
            emulate(seq, "subspace", correction=True)
