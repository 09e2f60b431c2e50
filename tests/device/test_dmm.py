"""DMM decomposition on WeightedAnalogDevice: every constraint of PHYSICS.md §3."""

import numpy as np
import pulser
import pytest
from pulser.backend.abc import Backend
from pulser.devices import AnalogDevice, WeightedAnalogDevice
from pulser.sampler import sample
from pulser.waveforms import CustomWaveform

from qep_analog.device.dmm import plan_detunings
from qep_analog.device.rydberg import RydbergModel
from qep_analog.device.sequences import RampSpec, build_sequence, model_sequence
from qep_analog.errors import QepRuntimeError, QepValueError

TWO_PI = 2 * np.pi
REG = pulser.Register.from_coordinates([[0, 0], [7, 0], [3.5, 6], [10, 7]], prefix="q")


def _final_local_detunings(seq):
    samples = sample(seq).to_nested_dict(all_local=True)["Local"]["ground-rydberg"]
    return np.array([samples[q]["det"][-1] for q in REG.qubit_ids])


@pytest.mark.parametrize("targets", [[1.0, 3.0, 5.0, 5.0], [-4.0, 2.0, 0.0, 7.5], [6.0, -8.0, 6.0, 0.0]])
def test_decomposition_is_realised_by_pulser(targets):
    ramp = RampSpec(duration_ns=1000, start_detuning=-20.0)
    seq, plan = build_sequence(REG, WeightedAnalogDevice, omega=6.0, phase=0.0, detunings=targets, ramp=ramp)
    assert plan.uses_dmm and np.all((plan.weights >= 0) & (plan.weights <= 1)) and plan.dmm_amplitude <= 0
    assert np.allclose(_final_local_detunings(seq), targets, atol=1e-5)
    assert np.allclose(plan.realised, targets, atol=1e-5)


def test_small_offset_raises_reference_and_pulser_accepts_it():
    """A 0.2 rad/µs nudge below the top target: the naive reference (max d) gives a weight that pulser
    refuses under min_avg_abs_detuning; our plan raises the reference and pulser accepts the map."""
    targets = np.array([5.0, 5.0 - 0.2, 2.0, 5.0])
    ramp = RampSpec(duration_ns=1000, start_detuning=-20.0)
    s = ramp.shape_samples()
    naive_w = (targets.max() - targets) / (targets.max() - targets.min())
    seq = pulser.Sequence(REG, WeightedAnalogDevice)
    seq.declare_channel("g", "rydberg_global")
    seq.config_detuning_map(REG.define_detuning_map(dict(zip(REG.qubit_ids, naive_w, strict=True))), "dmm_0")
    with pytest.raises(ValueError, match="min_avg_abs_detuning|minimum threshold"):
        seq.add_dmm_detuning(CustomWaveform((targets.min() - targets.max()) * s), "dmm_0")
    seq, plan = build_sequence(REG, WeightedAnalogDevice, omega=6.0, phase=0.0, detunings=targets, ramp=ramp)
    assert plan.delta_reference > targets.max() and "raised" in plan.reason
    assert np.all(plan.weights > 0)
    assert np.allclose(_final_local_detunings(seq), targets, atol=1e-5)


def test_unrealisable_small_offset_is_refused_with_reason():
    top = WeightedAnalogDevice.channels["rydberg_global"].max_abs_detuning
    with pytest.raises(QepRuntimeError, match="min_avg_abs_detuning.*max_abs_detuning"):
        plan_detunings([top - 5, top - 0.1, top, top], WeightedAnalogDevice, shape_mean=0.5)


def test_bottom_detuning_refused():
    with pytest.raises(QepValueError, match="bottom_detuning"):
        plan_detunings([-60.0, 10.0, 0.0, 0.0], WeightedAnalogDevice, shape_mean=0.5)


def test_uniform_targets_need_no_dmm_even_without_one():
    plan = plan_detunings([3.0, 3.0, 3.0], AnalogDevice)
    assert not plan.uses_dmm and plan.delta_reference == 3.0


def test_device_without_dmm_refuses_local_detunings():
    with pytest.raises(QepValueError, match="no DMM"):
        plan_detunings([1.0, 2.0], AnalogDevice)


def test_global_detuning_limit_and_clock():
    with pytest.raises(QepValueError, match="start_detuning"):
        plan_detunings([1.0, 2.0], WeightedAnalogDevice, start_detuning=-100.0)
    with pytest.raises(QepValueError, match="4 ns clock"):
        build_sequence(REG, WeightedAnalogDevice, omega=6.0, phase=0.0, detunings=[0, 1, 2, 3],
                       ramp=RampSpec(duration_ns=1002))
    with pytest.raises(QepValueError, match="max_sequence_duration"):
        build_sequence(REG, WeightedAnalogDevice, omega=6.0, phase=0.0, detunings=[0, 1, 2, 3],
                       ramp=RampSpec(duration_ns=6004))


def test_global_channel_minimum_average_amplitude_is_reported():
    """WeightedAnalogDevice's global channel needs a mean Ω ≥ 2π·0.3 rad/µs over the pulse."""
    with pytest.raises(QepValueError, match="rydberg_global"):
        build_sequence(REG, WeightedAnalogDevice, omega=2.0, phase=0.0, detunings=[0, 1, 2, 3],
                       ramp=RampSpec(duration_ns=1000))


def test_step_nudge_needs_second_map():
    ramp = RampSpec(duration_ns=1000, nudge_switch=0.5)
    with pytest.raises(QepValueError, match="second detuning map"):
        build_sequence(REG, WeightedAnalogDevice, omega=6.0, phase=0.0, detunings=[0, 1, 2, 3], ramp=ramp,
                       step_nudge=[0, 0, 0, -2.0])


def test_model_sequence_on_weighted_device_validates_for_qpu():
    """With an automatic trap layout the exported sequence passes pulser's QPU validation."""
    model = RydbergModel(positions_um=[[0, 0], [7, 0], [3.5, 6], [10, 7]], device="WeightedAnalogDevice",
                         omega=6.0, detunings=[0, 1, 2, 3])
    seq, _ = model_sequence(model, model.controls(model.theta(), []), RampSpec(duration_ns=1000),
                            register=model.register(layout=True))
    Backend.validate_sequence(seq, mimic_qpu=True)


def test_unrealisable_nudge_is_explained_by_the_backend():
    """Near the top of the global detuning range a 0.1 rad/µs nudge on WeightedAnalogDevice cannot be
    realised (min_avg_abs_detuning); the backend says so instead of running a different nudge."""
    from qep_analog.equilibrium import get_backend
    from qep_analog.models.pauli import PauliSum

    model = RydbergModel(positions_um=[[0, 0], [7, 0], [3.5, 6], [10, 7]], device="WeightedAnalogDevice",
                         omega=6.0, detunings=[55.0, 62.0, 62.0, 62.0], output_atoms=(3,))
    backend = get_backend("adiabatic", model=model, duration_ns=1000)
    nudge = PauliSum.from_spec([[0.1, "n3"]], 4)
    with pytest.raises(QepRuntimeError, match=r"nudged local detunings \(nudge .*min_avg_abs_detuning"):
        backend.prepare(model.hamiltonian(), model.theta(), None, nudge)
