"""Device loading by pulser name or JSON path, listing with limits, the custom lab device."""

import json

import pytest
from pulser.devices import AnalogDevice, WeightedAnalogDevice

from qep_analog.device.devices import DEVICES_DIR, device_limits, list_devices, load_device
from qep_analog.errors import QepValueError


def test_pulser_names_give_pulser_objects():
    assert load_device("WeightedAnalogDevice") is WeightedAnalogDevice


def test_json_specs_equal_pulser_devices():
    assert load_device(DEVICES_DIR / "AnalogDevice.json") == AnalogDevice
    assert load_device(str(DEVICES_DIR / "WeightedAnalogDevice.json")) == WeightedAnalogDevice


def test_custom_lab_device_has_dmm_and_noise_and_round_trips():
    lab = load_device("qep_lab_device")
    limits = device_limits(lab)
    assert limits["dmm"] is not None and limits["dmm"]["bottom_detuning_rad_per_us"] < 0
    assert lab.noise_model is not None and "SPAM" in lab.noise_model.noise_types
    assert type(lab).from_abstract_repr(lab.to_abstract_repr()) == lab


def test_listing_has_key_limits():
    rows = {r["name"]: r for r in list_devices()}
    assert {"AnalogDevice", "WeightedAnalogDevice", "MockDevice", "QepLabDevice"} <= set(rows)
    w = rows["WeightedAnalogDevice"]
    assert w["min_distance_um"] == 5 and w["max_radial_distance_um"] == 80 and w["max_atoms"] == 256
    assert w["dmm"]["min_avg_abs_detuning_rad_per_us"] > 0
    assert rows["AnalogDevice"]["dmm"] is None


def test_bad_device_specs(tmp_path):
    with pytest.raises(QepValueError, match="unknown device 'Nope'"):
        load_device("Nope")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(QepValueError, match="not valid JSON"):
        load_device(bad)
    bad.write_text(json.dumps({"name": "x"}))
    with pytest.raises(QepValueError, match="not a valid pulser device"):
        load_device(bad)
