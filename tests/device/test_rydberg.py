"""RydbergModel: Hamiltonian against pulser_simulation, chain rule, device constraints."""

import numpy as np
import pytest
from pulser_simulation import QutipEmulator

from qep_analog.device.rydberg import RydbergModel
from qep_analog.device.sequences import RampSpec, model_sequence
from qep_analog.errors import QepValueError


def _model(**kw):
    base = dict(positions_um=[[0.0, 0.0], [7.0, 0.0], [3.0, 6.0]], device="MockDevice", omega=5.0,
                phase=0.7, detunings=[1.0, 2.5, -0.5], input_atoms=(0,), output_atoms=(2,))
    base.update(kw)
    return RydbergModel(**base)


@pytest.mark.parametrize("device", ["MockDevice", "DigitalAnalogDevice", "qep_lab_device"])
def test_hamiltonian_matches_pulser_with_dmm(device):
    """3 atoms in 2D, φ ≠ 0, unequal local detunings through a DMM: pulser's H at the end of the
    ramp equals ours (pulser's (r, g) order reversed) to 1e-6 relative."""
    model = _model(device=device)
    h = model.hamiltonian()
    theta, x = model.theta(), model.inputs([0.8])
    controls = model.controls(theta, x)
    ramp = RampSpec(duration_ns=400, start_detuning=-10.0)
    seq, plan = model_sequence(model, controls, ramp)
    assert plan.uses_dmm
    pulser_h = QutipEmulator.from_sequence(seq).get_hamiltonian(ramp.duration_ns - 1).full()[::-1, ::-1]
    # our H with the detunings actually realised (weights rounded to 1e-6)
    realised = model.with_(detunings=plan.realised, input_atoms=())
    ours = realised.hamiltonian().dense(realised.theta())
    assert np.max(np.abs(ours - pulser_h)) <= 1e-6 * np.max(np.abs(ours))
    assert np.allclose(plan.realised, controls["detunings"], atol=1e-5)
    assert np.allclose(h.dense(theta, x), h.dense(theta, x).conj().T)


def test_couplings_are_c6_over_r6_from_device():
    model = _model(device="WeightedAnalogDevice", positions_um=[[0, 0], [6, 0], [0, 8]])
    j = model.couplings()
    c6 = 12241414.53
    assert np.isclose(j[0, 1], c6 / 6**6) and np.isclose(j[0, 2], c6 / 8**6) and np.isclose(j[1, 2], c6 / 10**6)


def test_chain_rule_matches_finite_differences():
    rng = np.random.default_rng(3)
    model = _model(positions_um=rng.uniform(-10, 10, size=(4, 2)), detunings=[0, 1, 2, 3], input_atoms=())
    weights = rng.normal(size=(4, 4))

    def loss(pos):
        return np.sum(np.triu(weights, 1) * model.with_(positions_um=pos).couplings())

    grad = model.position_gradient(weights)
    eps, num = 1e-6, np.zeros_like(grad)
    for i in range(4):
        for d in range(2):
            p = model.positions_um.copy()
            p[i, d] += eps
            up = loss(p)
            p[i, d] -= 2 * eps
            num[i, d] = (up - loss(p)) / (2 * eps)
    assert np.allclose(grad, num, rtol=1e-5, atol=1e-8 * np.abs(grad).max())
    # the gradient over parameter names splits into positions and detunings
    names = model.hamiltonian().parameter_names
    g_theta = rng.normal(size=len(names))
    g_pos, g_det = model.split_gradient(g_theta)
    assert np.allclose(g_det, g_theta[:4])
    assert g_pos.shape == (4, 2)


def test_translation_invariance_of_position_gradient():
    """J depends on differences only: the position gradient sums to zero over atoms."""
    model = _model(input_atoms=())
    g = model.position_gradient(np.ones((3, 3)))
    assert np.allclose(g.sum(axis=0), 0, atol=1e-9 * np.abs(g).max())


def test_violations_name_atoms_and_limits():
    model = _model(device="AnalogDevice", positions_um=[[0, 0], [3, 0], [40, 0]], omega=20.0, detunings=[0, 0, 200],
                   input_atoms=())
    with pytest.raises(QepValueError) as err:
        model.validate()
    msg = str(err.value)
    for needle in ("q0, q1", "min_atom_distance", "q2", "max_radial_distance", "max_amp", "max_abs_detuning"):
        assert needle in msg


def test_coinciding_atoms_are_refused_even_on_a_device_without_a_minimum_distance():
    """MockDevice allows any distance; C6/r⁶ of coinciding atoms is infinite (found by the bundle fuzz test)."""
    from qep_analog.device.limits import MIN_ATOM_DISTANCE_UM

    model = _model(device="MockDevice", positions_um=[[0, 0], [0, 0], [9, 0]], input_atoms=())
    with pytest.raises(QepValueError, match="atoms q0, q1 are 0 µm apart"):
        model.validate()
    projected = model.project()
    assert projected.violations() == []
    assert np.linalg.norm(projected.positions_um[0] - projected.positions_um[1]) >= MIN_ATOM_DISTANCE_UM
    assert np.all(np.isfinite(projected.couplings()))


def test_projection_restores_constraints_and_is_idempotent():
    model = _model(device="AnalogDevice", positions_um=[[0, 0], [3, 0], [40, 0]], detunings=[0, 0, 200],
                   input_atoms=())
    projected = model.project()
    assert projected.violations() == []
    again = projected.project()
    assert np.allclose(again.positions_um, projected.positions_um)


def test_couplings_must_come_from_positions():
    model = _model()
    theta = model.theta()
    theta[-1] *= 1.1
    with pytest.raises(QepValueError, match="J_1_2"):
        model.controls(theta, [0.0])


def test_register_layout_on_weighted_device():
    model = _model(device="WeightedAnalogDevice", positions_um=[[0, 0], [6, 0], [3, 5.5]], input_atoms=())
    reg, seconds = model.register_with_layout()
    assert reg.layout is not None and seconds > 0
    assert np.allclose(np.array([reg.qubits[q].as_array() for q in model.qubit_ids]), model.positions_um)


def test_detuning_span_limited_by_dmm_bottom():
    model = _model(device="WeightedAnalogDevice", positions_um=[[0, 0], [6, 0], [3, 5.5]], detunings=[-40, 30, 0],
                   input_atoms=())
    assert any("bottom_detuning" in v and "q0, q1" in v for v in model.violations())
    projected = model.project()
    assert projected.violations() == []
    assert np.ptp(projected.detunings) <= 2 * np.pi * 10 + 1e-9


def test_global_input_mode_equals_shifted_controls():
    """Inputs as global (Ω, δ): H(θ, (Ω', δ')) equals the local model with Ω = Ω' and every δ_i + δ'."""
    model = _model(input_mode="global", input_atoms=(0,))
    h = model.hamiltonian()
    assert set(h.input_names) == {"omega", "delta_global"}
    x = model.inputs([7.5, -1.2])
    shifted = _model(input_atoms=(), omega=7.5, detunings=np.array([1.0, 2.5, -0.5]) - 1.2)
    assert np.allclose(h.dense(model.theta(), x), shifted.hamiltonian().dense(shifted.theta()))
    controls = model.controls(model.theta(), x)
    assert controls["omega"] == 7.5 and np.allclose(controls["detunings"], shifted.detunings)
