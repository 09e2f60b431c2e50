"""Bundles with the gap-aware ramp: the lab plays the sequences that training emulated, inside the device's limits,
and the manifest records the schedule and the estimated preparation error (issue 14, "Where it lands")."""

import inspect
from pathlib import Path

import numpy as np
import pulser
import pytest
from pulser import Pulse
from pulser.sampler import sample
from pulser.waveforms import CustomWaveform

from qep_analog.cli import main
from qep_analog.device.bundle import model_from, sample_nudge_operators, step_spec, write_bundle
from qep_analog.device.bundle_io import read_bundle
from qep_analog.device.devices import load_device
from qep_analog.device.protocol_section import SHAPES, validate_device_section
from qep_analog.device.pulse_limits import ChannelLoad, channel_loads, check_pulse_limits
from qep_analog.equilibrium import get_backend
from qep_analog.equilibrium.adiabatic import AdiabaticBackend
from qep_analog.equilibrium.schedules import DEFAULT_BOUNDARY, DEFAULT_POINTS, SCHEDULES
from qep_analog.errors import QepValueError

# four atoms of the classifier's register on qep_lab_device (DMM, 6 µs, its limits and C6)
SPEC = {
    "device": "qep_lab_device",
    "model": {"positions_um": [[0.0, 0.0], [0.0, 8.0], [6.0, 4.0], [12.0, 4.0]], "omega": 4.0, "phase": 0.0,
              "detunings": [2.0, 2.0, 2.5, 2.0], "input_atoms": [0, 1], "output_atoms": [3],
              "input_mode": "local", "train_positions": True},
    "ramp": {"duration_ns": 4000, "start_detuning": -20.0, "shape": "local-adiabatic",
             "schedule_boundary": DEFAULT_BOUNDARY, "schedule_points": DEFAULT_POINTS},
    "layout": False,
    "data": {"inputs": [[1.5, -1.0], [-2.0, 0.5]], "targets": [[1.0], [0.0]]},
    "training": {"beta": 1.0, "shots": 500, "learning_rate": 5.0, "position_learning_rate": 2.0,
                 "objective": "⟨Ĉ⟩, Ĉ = Σ(n_ℓ − t_ℓ)²", "estimator": "symmetric"},
}


def _training_backend(model, shape="local-adiabatic"):
    """The backend as ``tasks/rydberg.py`` builds it for training from the same [device] ramp."""
    return get_backend("adiabatic", model=model, duration_ns=SPEC["ramp"]["duration_ns"],
                       start_detuning=SPEC["ramp"]["start_detuning"], schedule=shape, emulator="krylov")


def _controls(seq) -> dict:
    return sample(seq).to_nested_dict(all_local=True)["Local"]["ground-rydberg"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("la_bundle")
    write_bundle(SPEC, root / "b0", drawings=False)
    model = model_from(dict(SPEC, device_object=load_device("qep_lab_device")))
    return root / "b0", read_bundle(root / "b0"), model


def test_exported_waveforms_equal_the_sequences_training_emulates(exported):
    path, manifest, model = exported
    backend = _training_backend(model)
    cosine = _training_backend(model, "cosine")
    h, theta = model.hamiltonian(), model.theta()
    for entry in manifest["sequences"]:
        x, t = SPEC["data"]["inputs"][entry["sample"]], SPEC["data"]["targets"][entry["sample"]]
        nudge = sample_nudge_operators(model, t, SPEC["training"]["beta"])[entry["phase"]]
        trained, _ = backend.sequence(theta, h.input_vector(model.inputs(x)), nudge)
        lab = pulser.Sequence.from_abstract_repr((path / entry["file"]).read_text())
        got, want = _controls(lab), _controls(trained)
        assert got.keys() == want.keys()
        for atom in want:
            for key in ("amp", "det", "phase"):
                assert np.array_equal(np.asarray(got[atom][key]), np.asarray(want[atom][key])), (entry["id"], key)
        other, _ = cosine.sequence(theta, h.input_vector(model.inputs(x)), nudge)
        assert np.max(np.abs(np.asarray(_controls(other)["q0"]["amp"]) - np.asarray(got["q0"]["amp"]))) > 0.1


def test_manifest_records_schedule_and_the_preparation_error_of_each_sequence(exported):
    _, manifest, model = exported
    assert manifest["ramp"]["shape"] == manifest["preparation"]["schedule"] == "local-adiabatic"
    assert manifest["ramp"]["schedule_boundary"] == DEFAULT_BOUNDARY
    prep = manifest["preparation"]
    assert prep["estimated"] is True
    backend = get_backend("adiabatic", model=model, duration_ns=4000, schedule="local-adiabatic", emulator="krylov",
                          quality_check="second-ramp")
    h, theta = model.hamiltonian(), model.theta()
    infidelities = []
    for entry in manifest["sequences"]:
        x, t = SPEC["data"]["inputs"][entry["sample"]], SPEC["data"]["targets"][entry["sample"]]
        nudge = sample_nudge_operators(model, t, SPEC["training"]["beta"])[entry["phase"]]
        xv = h.input_vector(model.inputs(x))
        if entry["phase"] != "free":  # the backend's quality verdict is computed on the free phase first
            backend.prepare(h, theta, xv)
        state = backend.prepare(h, theta, xv, nudge)
        assert entry["preparation"]["infidelity"] == pytest.approx(state.info["infidelity"], abs=1e-9)
        assert 0 <= entry["preparation"]["infidelity"] < 0.2
        if entry["phase"] == "free":
            assert entry["preparation"]["second_ramp_distance"] == pytest.approx(
                state.info["preparation"]["second_ramp_distance"], abs=1e-12)
        infidelities.append(entry["preparation"]["infidelity"])
    assert prep["max_infidelity"] == pytest.approx(max(infidelities))
    assert prep["median_infidelity"] == pytest.approx(float(np.median(infidelities)))
    distances = {e["id"]: e["preparation"]["second_ramp_distance"] for e in manifest["sequences"]
                 if e["phase"] == "free"}
    assert prep["flagged"] == sorted(k for k, d in distances.items() if d > prep["flag_threshold"])


def test_every_exported_pulse_is_inside_the_device_limits(exported):
    path, manifest, _ = exported
    device = load_device("qep_lab_device")
    (ch,) = device.channels.values()
    for entry in manifest["sequences"]:
        seq = pulser.Sequence.from_abstract_repr((path / entry["file"]).read_text())
        loads = {load.kind: load for load in channel_loads(seq)}
        glob = loads["global"]
        assert glob.duration_ns == 4000 and glob.duration_ns % ch.clock_period == 0
        assert glob.max_amp <= ch.max_amp and glob.max_abs_detuning <= ch.max_abs_detuning
        assert glob.amp_slew <= glob.amp_slew_limit and glob.detuning_slew <= glob.detuning_slew_limit
        # the hardware's modulation follows the ramp to within 5 % of its range (it is smooth, not only slow)
        assert glob.lag_fraction < 0.05
        assert loads["dmm"].max_abs_detuning <= abs(next(iter(device.dmm_channels.values())).bottom_detuning)
        assert all(not load.violations(lag_fraction=0.05) for load in loads.values())
    assert 0 < manifest["pulse_limits"]["max_slew_fraction"] < 1
    assert 0 < manifest["pulse_limits"]["max_lag_fraction"] < 0.05


def test_a_jump_faster_than_the_channel_rise_time_is_refused():
    device = load_device("qep_lab_device")
    reg = pulser.Register.from_coordinates([[0.0, 0.0], [8.0, 0.0]], prefix="q")
    seq = pulser.Sequence(reg, device)
    seq.declare_channel("g", "rydberg_global")
    amp = np.concatenate([np.zeros(100), np.full(100, 10.0)])  # 10 rad/µs in 1 ns, far above max_amp / rise time
    seq.add(Pulse(CustomWaveform(amp), CustomWaveform(np.zeros(200)), 0.0), "g")
    with pytest.raises(QepValueError, match="amplitude slew .* exceeds"):
        check_pulse_limits(seq)
    load = ChannelLoad(channel="g", kind="global", duration_ns=1002, clock_ns=4, max_amp=1.0, amp_limit=2.0,
                       max_abs_detuning=0.0, detuning_limit=None, amp_slew=0.0, detuning_slew=0.0,
                       amp_slew_limit=None, detuning_slew_limit=None, amp_lag=0.0, detuning_lag=0.0)
    assert any("4 ns clock" in p for p in load.violations())


def test_schedule_names_and_defaults_agree_across_layers():
    assert SHAPES == SCHEDULES
    params = inspect.signature(AdiabaticBackend.__init__).parameters
    assert params["schedule_boundary"].default == DEFAULT_BOUNDARY
    assert params["schedule_points"].default == DEFAULT_POINTS


def test_device_section_takes_the_gap_aware_schedule():
    validate_device_section({"shape": "local-adiabatic", "schedule_boundary": 0.5, "schedule_points": 21})
    for bad in ({"shape": "sine"}, {"schedule_boundary": 0.0}, {"schedule_points": 2}):
        with pytest.raises(QepValueError, match="device"):
            validate_device_section(bad)
    sections = {"device": {"name": "qep_lab_device", "positions_um": [[0, 0]], "omega": 4.0, "detunings": [1.0],
                           "shape": "local-adiabatic"}, "data": {"targets": []}}
    assert step_spec(sections)["ramp"] == {"duration_ns": 3000, "start_detuning": -20.0, "shape": "local-adiabatic",
                                           "schedule_boundary": DEFAULT_BOUNDARY, "schedule_points": DEFAULT_POINTS}
    sections["device"]["shape"] = "cosine"
    assert "schedule_boundary" not in step_spec(sections)["ramp"]


def test_training_refuses_a_backend_schedule_that_the_bundle_would_not_play(tmp_path, capsys):
    protocol = Path(__file__).resolve().parents[2] / "protocols" / "rydberg_classifier.toml"
    code = main(["train", str(protocol), "--out", str(tmp_path / "r"), "--no-progress",
                 "--set", "device.shape=cosine", "--set", "backend.options={emulator=\"krylov\", schedule=\"linear\"}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "backend.options.schedule" in err and "[device]" in err
