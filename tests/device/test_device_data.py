"""Device files: the packaged copy, the lookup order, and one-line errors for bad files."""

import json
from pathlib import Path

import pytest

from qep_analog.device import devices
from qep_analog.device.devices import PACKAGE_DEVICES_DIR, device_dirs, list_devices, load_device
from qep_analog.errors import QepValueError

TOP = Path(__file__).resolve().parents[2] / "devices"


def test_packaged_copy_is_identical_to_devices_dir():
    """qep_analog/devices_data/ (package data, for a non-editable install) mirrors devices/ byte for byte."""
    top = {p.name: p.read_bytes() for p in TOP.glob("*.json")}
    packaged = {p.name: p.read_bytes() for p in PACKAGE_DEVICES_DIR.glob("*.json")}
    assert top and packaged == top


def test_lab_device_loads_from_the_package_alone(monkeypatch):
    """With no source checkout (as after `pip install .`), the name still resolves to the packaged file."""
    monkeypatch.setattr(devices, "DEVICES_DIR", PACKAGE_DEVICES_DIR)
    assert device_dirs() == [PACKAGE_DEVICES_DIR]
    assert load_device("qep_lab_device").name == "QepLabDevice"


def test_environment_directory_comes_first_and_names_are_listed_once(tmp_path, monkeypatch):
    spec = json.loads((TOP / "qep_lab_device.json").read_text())
    spec["name"] = "MyLab"
    (tmp_path / "qep_lab_device.json").write_text(json.dumps(spec))
    monkeypatch.setenv("QEP_ANALOG_DEVICES", str(tmp_path))
    assert load_device("qep_lab_device").name == "MyLab"
    with pytest.raises(QepValueError) as info:
        load_device("no_such_device")
    known = str(info.value).split("known: ")[1]
    assert all(known.count(f"'{name}'") == 1 for name in ("AnalogDevice", "MockDevice", "qep_lab_device"))


def test_bad_file_is_one_line_and_the_rest_is_listed(tmp_path, monkeypatch):
    (tmp_path / "broken.json").write_bytes(b'{"name": "x", "version": "1"}')
    (tmp_path / "latin.json").write_bytes("{\"name\": \"d\xe9\"}".encode("latin-1"))
    monkeypatch.setenv("QEP_ANALOG_DEVICES", str(tmp_path))
    problems = []
    names = {row["name"] for row in list_devices(problems)}
    assert {"AnalogDevice", "QepLabDevice"} <= names
    assert len(problems) == 2 and all("\n" not in p for p in problems)
    assert "latin.json: not UTF-8" in problems[1]
    assert "broken.json" in problems[0] and not problems[0].rstrip().endswith("()")
    with pytest.raises(QepValueError, match="broken.json"):
        list_devices()


def test_names_are_never_paths(tmp_path, monkeypatch):
    """A device name from a protocol is a file stem: '../x' is unknown, not a path lookup."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(QepValueError, match="unknown device '../x'"):
        load_device("../x")
