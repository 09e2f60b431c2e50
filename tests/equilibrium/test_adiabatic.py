"""The adiabatic backend: ramp fidelity, QEP gradient against the exact backend, nudge timing.

Target (4 atoms, MockDevice, C6 = 5.42e6 rad/µs·µm⁶): a rhombus of side 9 µm plus one atom,
Ω = 10 rad/µs, δ = (3, 4, 2, 3) rad/µs, input detuning on q0, output n_3. Ramping from
δ₀ = −20 rad/µs, the minimum gap along the cosine path is ≈ 7.3 rad/µs (computed and checked
below); 3 µs then give 1 − F ≈ 6e-5.
"""

import numpy as np
import pytest
from pulser.noise_model import NoiseModel

from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium import get_backend
from qep_analog.equilibrium.adiabatic import minimum_gap, nudge_to_detunings
from qep_analog.errors import QepValueError
from qep_analog.learning.gradient import GradientConfig, estimate_gradient
from qep_analog.models.pauli import PauliSum

POSITIONS = [[0.0, 0.0], [9.0, 0.0], [4.5, 7.8], [13.5, 7.8]]
INPUTS = [[1.0], [-1.0]]
TARGETS = [[1.0], [1.0]]


def _model(**kw):
    base = dict(positions_um=POSITIONS, device="MockDevice", omega=10.0, detunings=[3.0, 4.0, 2.0, 3.0],
                input_atoms=(0,), output_atoms=(3,))
    base.update(kw)
    return RydbergModel(**base)


def test_ramp_reaches_ground_state():
    model = _model()
    h, theta = model.hamiltonian(), model.theta()
    backend = get_backend("adiabatic", model=model, duration_ns=3000, start_detuning=-20.0)
    gap, _ = minimum_gap(model, theta, INPUTS[0], ramp=backend.ramp, points=101)
    assert gap > 5.0  # the stated minimum gap of this target
    state = backend.prepare(h, theta, INPUTS[0])
    assert state.kind == "pure-prepared"
    assert state.info["infidelity"] <= 1e-3
    assert 0 <= state.info["energy_above_ground"] <= 10 * state.info["infidelity"] * np.abs(h.dense(
        theta, INPUTS[0])).sum()
    assert np.isclose(np.linalg.norm(state.state), 1.0)


def test_infidelity_falls_with_duration():
    model = _model()
    h, theta = model.hamiltonian(), model.theta()
    infid = [get_backend("adiabatic", model=model, duration_ns=t).prepare(h, theta, INPUTS[0]).info["infidelity"]
             for t in (1000, 2000)]
    assert infid[1] < infid[0] / 4  # cosine ramp: ~T⁻⁴ once adiabatic, at least T⁻²


def test_adiabatic_qep_gradient_matches_exact_backend():
    """Noiseless adiabatic preparation (1 − F ≤ 1e-3) gives the exact-backend QEP gradient at the same β
    to ≤ 0.1 relative error (errors are linear in √(1 − F))."""
    model = _model()
    h, theta = model.hamiltonian(), model.theta()
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=1.0, shots=None)
    exact = estimate_gradient(h, get_backend("exact"), theta, INPUTS, TARGETS, config)
    adiabatic = estimate_gradient(h, get_backend("adiabatic", model=model, duration_ns=3000), theta, INPUTS,
                                  TARGETS, config)
    rel = np.linalg.norm(adiabatic.gradient - exact.gradient) / np.linalg.norm(exact.gradient)
    assert rel <= 0.1
    assert adiabatic.samples_dropped == 0


def test_step_nudge_mid_ramp_biases_more_than_ramped_nudge():
    """A nudge switched on as a step at t = T/2 (s = 0.5, Ω = 5 rad/µs) excites the system; ramped with the
    control shape it does not. The bias against the exact QEP gradient, measured from Z-basis shots,
    exceeds the ramped one by more than 3 standard errors."""
    model = _model()
    h, theta = model.hamiltonian(), model.theta()
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=1.0, shots=None)
    exact = estimate_gradient(h, get_backend("exact"), theta, INPUTS[:1], TARGETS[:1], config).gradient
    shot_config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=1.0, shots=20000)
    biases, errors = [], []
    for switch in ("ramped", 0.5):
        backend = get_backend("adiabatic", model=model, duration_ns=1500, nudge_switch=switch)
        est = estimate_gradient(h, backend, theta, INPUTS[:1], TARGETS[:1], shot_config, seed=7)
        k = int(np.argmax(np.abs(exact)))  # the output atom's own detuning
        biases.append(abs(est.gradient[k] - exact[k]))
        errors.append(est.stderr[k])
    assert biases[1] - biases[0] >= 3 * np.hypot(*errors)


def test_nudge_maps_to_local_detunings():
    nudge = PauliSum.from_spec([[0.3, "n2"], [0.5, "Z1"], [2.0, "I"]], 3)
    assert np.allclose(nudge_to_detunings(nudge, 3), [0.0, 1.0, -0.3])
    with pytest.raises(QepValueError, match="local detunings"):
        nudge_to_detunings(PauliSum.from_spec([[0.3, "X2"]], 3), 3)
    with pytest.raises(QepValueError, match="local detunings"):
        nudge_to_detunings(PauliSum.from_spec([[0.3, "n1 n2"]], 3), 3)


def test_shot_to_shot_noise_needs_trajectories():
    noise = NoiseModel(amp_sigma=0.05)
    with pytest.raises(QepValueError, match="n_trajectories"):
        get_backend("adiabatic", model=_model(), noise_model=noise)


def test_dephasing_gives_a_density_matrix():
    model = _model(positions_um=POSITIONS[:3], detunings=[3.0, 4.0, 2.0], output_atoms=(2,))
    h, theta = model.hamiltonian(), model.theta()
    noisy = get_backend("adiabatic", model=model, duration_ns=1000, noise_model=NoiseModel(dephasing_rate=0.2))
    clean = get_backend("adiabatic", model=model, duration_ns=1000)
    rho = noisy.prepare(h, theta, [1.0])
    psi = clean.prepare(h, theta, [1.0])
    assert rho.state.ndim == 2 and np.isclose(np.trace(rho.state).real, 1.0, atol=1e-6)
    assert np.allclose(rho.state, rho.state.conj().T, atol=1e-10)
    assert rho.info["fidelity"] < psi.info["fidelity"]


def test_wrong_hamiltonian_refused():
    backend = get_backend("adiabatic", model=_model())
    other = _model(input_atoms=()).hamiltonian()
    with pytest.raises(QepValueError, match="RydbergModel"):
        backend.prepare(other, np.zeros(len(other.parameter_names)), None)


def test_unknown_option_refused():
    with pytest.raises(QepValueError):
        get_backend("adiabatic", model=_model(), duraton_ns=100)


def test_fast_emulator_reproduces_pulser_state():
    model = _model(phase=0.4)
    h, theta = model.hamiltonian(), model.theta()
    states = [get_backend("adiabatic", model=model, duration_ns=1000, emulator=e).prepare(h, theta, [1.0]).state
              for e in ("pulser", "krylov")]
    assert abs(np.vdot(*states)) ** 2 >= 1 - 1e-4


def test_channel_modulation_changes_z_statistics_little():
    """With WeightedAnalogDevice's modulation bandwidths Ω falls after the sequence; Z-basis statistics
    (all a QEP step reads) move by a total-variation distance ≲ 1e-2 (PHYSICS.md §3)."""
    model = _model(device="WeightedAnalogDevice")
    h, theta = model.hamiltonian(), model.theta()
    plain = get_backend("adiabatic", model=model, duration_ns=2000).prepare(h, theta, [1.0])
    modulated = get_backend("adiabatic", model=model, duration_ns=2000, with_modulation=True).prepare(h, theta,
                                                                                                      [1.0])
    tv = 0.5 * np.abs(plain.probabilities() - modulated.probabilities()).sum()
    assert 0 < tv <= 1e-2


def test_lab_device_noise_model_with_trajectories():
    """The custom lab device's noise model (SPAM, dephasing, relaxation, Doppler, amplitude) runs with
    explicit trajectories; its readout flips go to the measurement layer."""
    from qep_analog.device.devices import load_device

    lab = load_device("qep_lab_device")
    model = _model(device=lab, positions_um=POSITIONS[:3], detunings=[3.0, 4.0, 2.0], output_atoms=(2,))
    h, theta = model.hamiltonian(), model.theta()
    backend = get_backend("adiabatic", model=model, duration_ns=1000, noise_model=lab.noise_model, n_trajectories=6)
    state = backend.prepare(h, theta, [1.0])
    rho = state.state
    assert rho.ndim == 2 and np.isclose(np.trace(rho).real, 1.0, atol=1e-6)
    assert np.allclose(rho, rho.conj().T, atol=1e-10) and np.linalg.eigvalsh(rho).min() > -1e-8
    clean = get_backend("adiabatic", model=model, duration_ns=1000).prepare(h, theta, [1.0])
    # Clean evolution is pure; dephasing, relaxation and shot-to-shot draws leave a mixed state.
    assert np.isclose(np.linalg.norm(clean.state), 1.0) and np.real(np.trace(rho @ rho)) < 0.99
    # The noise draws come from the backend's seed: the same seed reproduces the state, another changes it.
    again = get_backend("adiabatic", model=model, duration_ns=1000, noise_model=lab.noise_model,
                        n_trajectories=6).prepare(h, theta, [1.0])
    other = get_backend("adiabatic", model=model, duration_ns=1000, noise_model=lab.noise_model,
                        n_trajectories=6, seed=1).prepare(h, theta, [1.0])
    assert np.array_equal(again.state, rho) and not np.allclose(other.state, rho, atol=1e-8)
    readout = backend.readout_error()
    assert readout.p_false_pos == lab.noise_model.p_false_pos and readout.p_false_neg == lab.noise_model.p_false_neg


@pytest.mark.slow
def test_cosine_ramps_beat_linear_ramps():
    """Infidelity scales ~T⁻² for linear ramps and faster (~T⁻⁴) for cosine ramps (PHYSICS.md §3)."""
    model = _model()
    h, theta = model.hamiltonian(), model.theta()
    durations = [1000, 2000, 4000]

    def infidelities(shape):
        return [get_backend("adiabatic", model=model, duration_ns=t, shape=shape).prepare(h, theta, [1.0])
                .info["infidelity"] for t in durations]

    cosine, linear = infidelities("cosine"), infidelities("linear")
    slope_cos = np.polyfit(np.log(durations), np.log(cosine), 1)[0]
    slope_lin = np.polyfit(np.log(durations[1:]), np.log(linear[1:]), 1)[0]
    assert -3.0 < slope_lin < -1.5
    assert slope_cos < slope_lin - 1.0
    assert cosine[-1] < 0.1 * linear[-1]
