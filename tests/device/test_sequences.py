"""Ramp sequences: every control follows one shape, the nudge ramps with it, JSON round trip."""

import numpy as np
import pulser
import pytest
from pulser.sampler import sample

from qep_analog.device.sequences import RampSpec, build_sequence
from qep_analog.equilibrium.adiabatic import emulate_pulser
from qep_analog.errors import QepValueError

REG = pulser.Register.from_coordinates([[0, 0], [8, 0], [4, 7]], prefix="q")


def _local(seq):
    return sample(seq).to_nested_dict(all_local=True)["Local"]["ground-rydberg"]


@pytest.mark.parametrize("shape", ["cosine", "linear"])
def test_controls_follow_one_shape_from_all_ground(shape):
    ramp = RampSpec(duration_ns=800, start_detuning=-15.0, shape=shape)
    targets = np.array([2.0, -3.0, 5.0])
    seq, _ = build_sequence(REG, pulser.devices.DigitalAnalogDevice, omega=9.0, phase=0.3, detunings=targets,
                            ramp=ramp)
    s = ramp.shape_samples()
    assert s[0] == 0 and s[-1] == 1
    local = _local(seq)
    for i, q in enumerate(REG.qubit_ids):
        assert np.allclose(local[q]["amp"], 9.0 * s, atol=1e-9)
        assert np.allclose(local[q]["det"], -15.0 + s * (targets[i] + 15.0), atol=1e-5)
        assert np.allclose(local[q]["phase"], 0.3)


def test_sequence_json_round_trip_reproduces_state():
    ramp = RampSpec(duration_ns=600, start_detuning=-15.0)
    seq, _ = build_sequence(REG, pulser.devices.DigitalAnalogDevice, omega=9.0, phase=0.3,
                            detunings=[2.0, -3.0, 5.0], ramp=ramp)
    loaded = pulser.Sequence.from_abstract_repr(seq.to_abstract_repr())
    a, b = emulate_pulser(seq), emulate_pulser(loaded)
    assert abs(np.vdot(a, b)) == pytest.approx(1.0, abs=1e-10)
    for q in REG.qubit_ids:
        assert np.allclose(_local(seq)[q]["det"], _local(loaded)[q]["det"])


def test_step_nudge_switches_at_the_stated_time():
    ramp = RampSpec(duration_ns=400, start_detuning=-15.0, nudge_switch=0.5)
    seq, _ = build_sequence(REG, pulser.devices.MockDevice, omega=9.0, phase=0.0, detunings=[2.0, -3.0, 5.0],
                            ramp=ramp, step_nudge=[0.0, 0.0, -1.5])
    s = ramp.shape_samples()
    det = _local(seq)["q2"]["det"]
    expected = -15.0 + s * 20.0 - 1.5 * (np.arange(400) >= 200)
    assert np.allclose(det, expected, atol=1e-5)
    assert np.allclose(_local(seq)["q0"]["det"], -15.0 + s * 17.0, atol=1e-5)


def test_bad_ramps_refused():
    with pytest.raises(QepValueError, match="start_detuning"):
        RampSpec(start_detuning=1.0)
    with pytest.raises(QepValueError, match="nudge_switch"):
        RampSpec(nudge_switch=1.5)
    with pytest.raises(QepValueError, match="shape"):
        RampSpec(shape="gauss")
