"""Protocol bundles: export, pulser round trip, the file-based hardware loop, and bad input."""

import json
from pathlib import Path

import numpy as np
import pulser
import pytest

from qep_analog.cli import main
from qep_analog.device.bundle import model_from, write_bundle
from qep_analog.device.bundle_io import read_bundle
from qep_analog.device.bundle_lab import apply_update, simulate_counts, update_bundle
from qep_analog.device.devices import load_device
from qep_analog.equilibrium import get_backend
from qep_analog.equilibrium.adiabatic import emulate_pulser
from qep_analog.errors import QepValueError
from qep_analog.learning.gradient import GradientConfig, estimate_gradient

SPEC = {
    "device": "MockDevice",
    "model": {"positions_um": [[0.0, 0.0], [9.0, 0.0], [4.5, 7.8], [13.5, 7.8]], "omega": 10.0, "phase": 0.0,
              "detunings": [3.0, 4.0, 2.0, 3.0], "input_atoms": [0], "output_atoms": [3],
              "input_mode": "local", "train_positions": True},
    "ramp": {"duration_ns": 2000, "start_detuning": -20.0, "shape": "cosine"},
    "layout": False,
    "data": {"inputs": [[1.0]], "targets": [[1.0]]},
    "training": {"beta": 1.0, "shots": 4000, "learning_rate": 2.0, "position_learning_rate": 2.0,
                 "objective": "⟨Ĉ⟩, Ĉ = Σ(n_ℓ − t_ℓ)²", "estimator": "symmetric"},
}


def _siblings(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    write_bundle(SPEC, root / "b0", drawings=True)
    simulate_counts(root / "b0", root / "c0", seed=11)
    return root


def test_export_writes_manifest_sequences_and_drawings(bundle):
    manifest = read_bundle(bundle / "b0")
    assert [e["phase"] for e in manifest["sequences"]] == ["free", "plus", "minus"]
    assert (bundle / "b0" / "drawings" / "register.png").stat().st_size > 0
    assert any(p.suffix == ".png" and "free_sequence" in p.name for p in (bundle / "b0" / "drawings").iterdir())
    plus = manifest["sequences"][1]
    assert plus["nudge_detunings"][3] == pytest.approx(1.0)  # +β(1 − 2t)n_3 with t = 1 → δ_3 + β
    assert "n0 n1" in plus["observables"] and "n3" in plus["observables"]


def test_sequences_round_trip_and_reproduce_backend_state(bundle):
    manifest = read_bundle(bundle / "b0")
    spec = dict(SPEC, device_object=load_device("MockDevice"))
    model = model_from(spec)
    h = model.hamiltonian()
    backend = get_backend("adiabatic", model=model, duration_ns=SPEC["ramp"]["duration_ns"],
                          schedule=SPEC["ramp"]["shape"])  # the bundle's ramp, not the backend default
    free = backend.prepare(h, model.theta(), [1.0])
    text = (bundle / "b0" / manifest["sequences"][0]["file"]).read_text()
    seq = pulser.Sequence.from_abstract_repr(text)
    assert seq.device.name == "MockDevice" and seq.register.qubit_ids == model.qubit_ids
    state = emulate_pulser(seq)
    assert abs(np.vdot(free.state, state)) == pytest.approx(1.0, abs=1e-7)


def test_file_loop_matches_in_process_step(bundle):
    """Counts from pulser-simulation → update → gradient and new parameters agree with the in-process
    QEP step (adiabatic backend, exact expectations at the same β) within 4 standard errors."""
    report = update_bundle(bundle / "b0", bundle / "c0", bundle / "b1", drawings=False)
    spec = dict(SPEC, device_object=load_device("MockDevice"))
    model = model_from(spec)
    h = model.hamiltonian()
    backend = get_backend("adiabatic", model=model, duration_ns=SPEC["ramp"]["duration_ns"],
                          schedule=SPEC["ramp"]["shape"])  # the bundle's ramp, not the backend default
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=1.0, shots=None)
    exact = estimate_gradient(h, backend, model.theta(), [[1.0]], [[1.0]], config).gradient
    file_grad, stderr = np.array(report["gradient"]), np.array(report["stderr"])
    assert np.all(np.abs(file_grad - exact) <= 4 * stderr + 1e-12)
    assert np.linalg.norm(exact) > 5 * np.linalg.norm(stderr) / np.sqrt(len(stderr))  # a real signal
    in_process = apply_update(model, exact, learning_rate=2.0, position_learning_rate=2.0)
    assert np.allclose(report["detunings"], in_process.detunings, atol=2.0 * 4 * stderr[:4].max())
    # the file loop and the in-process step differ only by the (shot-noise) gradient difference
    dpos = -2.0 * model.position_gradient(
        {n: g for n, g in zip(report["names"], file_grad - exact, strict=True) if n.startswith("J_")})
    assert np.allclose(np.array(report["positions_um"]) - in_process.positions_um, dpos, atol=1e-9)
    nxt = read_bundle(bundle / "b1")
    assert nxt["step"] == 1
    assert json.loads((bundle / "b1" / "gradient.json").read_text())["from_step"] == 0


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _refused(call, out: Path, match: str):
    before = _siblings(out)
    with pytest.raises(QepValueError, match=match):
        call()
    assert not out.exists() and _siblings(out) == before  # nothing half-written, no temp dirs left


def test_tampered_manifest_refused(bundle, tmp_path):
    bad = _copy(bundle / "b0", tmp_path / "tampered")
    m = json.loads((bad / "manifest.json").read_text())
    m["model"]["detunings"][0] += 1.0
    (bad / "manifest.json").write_text(json.dumps(m))
    _refused(lambda: update_bundle(bad, bundle / "c0", tmp_path / "out"), tmp_path / "out", "checksum")
    (bad / "manifest.json").write_text("{not json")
    _refused(lambda: update_bundle(bad, bundle / "c0", tmp_path / "out"), tmp_path / "out", "not valid JSON")
    m.pop("ramp")
    (bad / "manifest.json").write_text(json.dumps(m))
    _refused(lambda: update_bundle(bad, bundle / "c0", tmp_path / "out"), tmp_path / "out", "ramp")


def test_modified_sequence_file_refused(bundle, tmp_path):
    bad = _copy(bundle / "b0", tmp_path / "modseq")
    f = bad / "sequences" / "s000_plus.json"
    f.write_text(f.read_text().replace("MockDevice", "MockDevice "))
    _refused(lambda: update_bundle(bad, bundle / "c0", tmp_path / "out"), tmp_path / "out", "s000_plus")


def test_wrong_bitstring_length_refused(bundle, tmp_path):
    counts = _copy(bundle / "c0", tmp_path / "counts")
    (counts / "s000_minus.json").write_text(json.dumps({"010": 10, "111": 5}))
    _refused(lambda: update_bundle(bundle / "b0", counts, tmp_path / "out"), tmp_path / "out",
             "s000_minus.*length 3, expected 4")
    (counts / "s000_minus.json").unlink()
    _refused(lambda: update_bundle(bundle / "b0", counts, tmp_path / "out"), tmp_path / "out", "missing")


def test_bundle_for_another_device_refused(bundle, tmp_path):
    _refused(lambda: update_bundle(bundle / "b0", bundle / "c0", tmp_path / "out",
                                   expected_device="WeightedAnalogDevice"), tmp_path / "out", "MockDevice")


def test_failed_export_leaves_nothing(tmp_path):
    spec = dict(SPEC, device="AnalogDevice")  # no DMM for unequal detunings
    _refused(lambda: write_bundle(spec, tmp_path / "out", drawings=False), tmp_path / "out", "DMM")
    close = dict(SPEC, model=dict(SPEC["model"], positions_um=[[0, 0], [1, 0], [9, 0], [20, 0]]),
                 device="DigitalAnalogDevice")
    _refused(lambda: write_bundle(close, tmp_path / "out", drawings=False), tmp_path / "out", "q0, q1")


def test_cli_devices_and_one_line_errors(capsys, tmp_path):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "WeightedAnalogDevice" in out and "QepLabDevice" in out
    assert main(["update", str(tmp_path / "nothing"), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no manifest.json" in err


def test_cli_export_protocol(tmp_path, capsys):
    protocol = Path(__file__).resolve().parents[2] / "protocols" / "rydberg_qep_step.toml"
    assert main(["export", str(protocol), str(tmp_path / "b"), "--no-drawings"]) == 0
    assert len(read_bundle(tmp_path / "b")["sequences"]) == 6
    assert main(["export", str(protocol), str(tmp_path / "b"), "--no-drawings"]) == 2  # exists


def test_readout_mitigation_with_the_lab_device(tmp_path):
    """Counts with the lab device's readout flips (p_false_pos, p_false_neg of its SPAM model): the
    mitigated file-loop gradient agrees with the noiseless in-process one within 4 standard errors."""
    from pulser.noise_model import NoiseModel

    lab = load_device("qep_lab_device")
    spec = dict(SPEC, device="qep_lab_device", ramp=dict(SPEC["ramp"], duration_ns=1500),
                model=dict(SPEC["model"], positions_um=[[0.0, 0.0], [6.0, 0.0], [3.0, 5.2]], detunings=[1.0, 2.0, 1.5],
                           output_atoms=[2], omega=8.0),
                training=dict(SPEC["training"], shots=20000))
    write_bundle(spec, tmp_path / "b", drawings=False)
    readout_only = NoiseModel(p_false_pos=lab.noise_model.p_false_pos, p_false_neg=lab.noise_model.p_false_neg)
    simulate_counts(tmp_path / "b", tmp_path / "c", seed=5, noise_model=readout_only)
    report = update_bundle(tmp_path / "b", tmp_path / "c", tmp_path / "n", drawings=False, readout="device")
    model = model_from(dict(spec, device_object=lab))
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=1.0, shots=None)
    backend = get_backend("adiabatic", model=model, duration_ns=1500, schedule="cosine")  # the bundle's ramp
    exact = estimate_gradient(model.hamiltonian(), backend, model.theta(), [[1.0]], [[1.0]], config).gradient
    assert report["readout_mitigation"] == [lab.noise_model.p_false_pos, lab.noise_model.p_false_neg]
    assert np.all(np.abs(np.array(report["gradient"]) - exact) <= 4 * np.array(report["stderr"]) + 1e-12)
