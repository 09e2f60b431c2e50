"""Devices without a DMM (fresnel_like): global-nudge QEP, its export, jobs of ≤ max_runs and the shot bill."""

import json
import math

import numpy as np
import pytest

from qep_analog.device.bundle import _canonical, _sha, sample_nudges, step_spec, write_bundle
from qep_analog.device.bundle_io import read_bundle
from qep_analog.device.bundle_lab import update_bundle
from qep_analog.device.devices import list_devices, load_device
from qep_analog.device.lab import job_split, lab_metadata, read_lab_file, shot_bill
from qep_analog.device.rydberg import RydbergModel
from qep_analog.device.training import GlobalRydbergTask
from qep_analog.equilibrium import get_backend
from qep_analog.errors import QepValueError
from qep_analog.learning import GradientConfig
from qep_analog.learning.driver import Draw
from qep_analog.report import with_shot_bill

TRIANGLE = [[0.0, 0.0], [6.5, 0.0], [3.0, 5.5]]
SQUARE = [[0.0, 0.0], [7.0, 0.0], [0.0, 7.0], [7.5, 6.5]]


def _global_model(positions, detuning=3.0):
    n = len(positions)
    return RydbergModel(positions_um=positions, device="fresnel_like", omega=6.0, detunings=[detuning] * n,
                        input_atoms=tuple(range(n)), output_atoms=tuple(range(n)), input_mode="global")


def _task(model, beta, inputs, targets):
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=beta)
    return GlobalRydbergTask(model=model, backend=get_backend("exact"), config=config, inputs=inputs, targets=targets)


@pytest.mark.parametrize("positions", [TRIANGLE, SQUARE], ids=["3 atoms", "4 atoms"])
def test_global_nudge_gradient_matches_finite_differences_with_beta_squared_bias(positions):
    """Symmetric global-nudge QEP = ∂⟨Ĉ⟩/∂(positions, Δ) of Ĉ = Σ_i (n_i − t)², with an O(β²) bias."""
    x, t = [[6.0, 2.0], [9.0, -1.0], [4.0, 5.0]], [[1.0], [0.0], [1.0]]
    model = _global_model(positions)
    errors = []
    for beta in (0.2, 0.1):
        task = _task(model, beta, x, t)
        theta = task.theta_of(model)
        qep = task.gradient(theta, np.arange(3), Draw(0, 0)).gradient
        h, fd = 1e-4, np.zeros_like(theta)
        for k in range(theta.size):
            e = np.zeros_like(theta)
            e[k] = h
            fd[k] = (task.cost(theta + e, x, task.targets)[0] - task.cost(theta - e, x, task.targets)[0]) / (2 * h)
        errors.append(np.linalg.norm(qep - fd) / np.linalg.norm(fd))
    assert errors[0] < 2e-3
    assert 2.5 < errors[0] / errors[1] < 5.5  # halving β quarters the bias


def test_the_nudge_is_a_shift_of_the_global_detuning():
    model = _global_model(TRIANGLE)
    for t, beta in ((1.0, 0.3), (0.0, 0.7)):
        nudges = sample_nudges(model, [t] * 3, beta)
        # β(1 − 2t) Σ_i n_i adds −β(1 − 2t) to every atom's detuning (H ∋ −δ_i n_i)
        np.testing.assert_allclose(nudges["plus"], -beta * (1 - 2 * t) * np.ones(3), atol=1e-12)
        np.testing.assert_allclose(nudges["minus"], -nudges["plus"], atol=1e-12)


def _spec(**device):
    sections = {"device": {"name": "fresnel_like", "positions_um": TRIANGLE, "omega": 6.0, "detunings": [2.0] * 3,
                           "input_atoms": [0, 1, 2], "output_atoms": [0, 1, 2], "input_mode": "global",
                           "duration_ns": 2000, "layout": False, **device},
                "data": {"inputs": [[6.0, 1.0], [4.0, -1.0]], "targets": [[1.0] * 3, [0.0] * 3]},
                "gradient": {"beta": 0.8, "shots": 2500}, "training": {"learning_rate": 0.5}}
    return step_spec(sections)


def test_export_splits_jobs_and_bills_the_step(tmp_path):
    manifest = write_bundle(_spec(layout=True), tmp_path / "b", drawings=False)
    assert manifest["nudge"] == "global"
    # pulser's mimic_qpu validation passed with a trap layout; no sequence declares a DMM
    for entry in manifest["sequences"]:
        seq = json.loads((tmp_path / "b" / entry["file"]).read_text())
        assert all(not ch.startswith("dmm") for ch in seq["channels"]), seq["channels"]
    lab = lab_metadata("fresnel_like")
    assert lab.max_runs_per_job == 1000
    runs = {}
    for job in manifest["jobs"]:
        assert job["runs"] <= 1000
        runs.setdefault(job["sequence"], []).append(job["runs"])
    assert all(sorted(r) == [833, 833, 834] for r in runs.values()) and len(runs) == 6
    bill = manifest["shot_bill"]
    shots = 6 * 2500
    assert bill["shots"] == shots and bill["jobs"] == 18
    assert bill["hours"] == pytest.approx(shots / lab.shot_rate_hz / 3600) and bill["currency"] == "EUR"
    assert bill["cost"] == pytest.approx(shots * lab.price_per_shot)
    read_bundle(tmp_path / "b")  # the jobs add up


def test_export_refuses_a_local_nudge_and_a_long_sequence_on_a_device_without_dmm(tmp_path):
    with pytest.raises(QepValueError, match="has no DMM.*global detuning"):
        write_bundle(_spec(output_atoms=[2]) | {"data": {"inputs": [[6.0, 1.0]], "targets": [[1.0]]}},
                     tmp_path / "a", drawings=False)
    with pytest.raises(QepValueError, match="not uniform.*no DMM"):
        write_bundle(_spec(detunings=[2.0, 2.0, 1.0]), tmp_path / "b", drawings=False)
    with pytest.raises(QepValueError, match="max_sequence_duration of 6000 ns"):
        write_bundle(_spec(duration_ns=6400), tmp_path / "c", drawings=False)
    assert not any(tmp_path.iterdir())


def test_tampered_jobs_are_refused(tmp_path):
    write_bundle(_spec(), tmp_path / "b", drawings=False)
    path = tmp_path / "b" / "manifest.json"
    for change in ("runs", "big"):
        manifest = json.loads(path.read_text())
        if change == "runs":
            manifest["jobs"][0]["runs"] -= 1
        else:  # one job of all 2500 runs: over the device's max_runs
            seq = manifest["jobs"][0]["sequence"]
            manifest["jobs"] = [j for j in manifest["jobs"] if j["sequence"] != seq] + [
                {"id": seq, "sequence": seq, "runs": 2500}]
        manifest["checksum"] = _sha(_canonical(manifest))
        bad = tmp_path / change
        bad.mkdir()
        for f in (tmp_path / "b").rglob("*"):
            target = bad / f.relative_to(tmp_path / "b")
            target.parent.mkdir(parents=True, exist_ok=True)
            if f.is_file():
                target.write_bytes(f.read_bytes())
        (bad / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(QepValueError, match="jobs of sequence|max_runs"):
            read_bundle(bad)


def test_update_keeps_one_global_detuning(tmp_path):
    manifest = write_bundle(_spec(), tmp_path / "b", drawings=False)
    counts = tmp_path / "counts"
    counts.mkdir()
    rng = np.random.default_rng(0)
    for entry in manifest["sequences"]:
        bits = rng.integers(0, 2, size=(entry["shots"], 3))
        keys, n = np.unique(["".join(map(str, b)) for b in bits], return_counts=True)
        (counts / f"{entry['id']}.json").write_text(json.dumps(dict(zip(keys.tolist(), n.tolist(), strict=True))))
    report = update_bundle(tmp_path / "b", counts, tmp_path / "next", drawings=False)
    det = np.array(report["detunings"])
    grad = dict(zip(report["names"], report["gradient"], strict=True))
    total = sum(v for k, v in grad.items() if k.startswith("delta_"))
    np.testing.assert_allclose(det, 2.0 - 0.5 * total, rtol=1e-12)  # Δ ← Δ − η Σ_i ∂L/∂δ_i, all atoms alike
    following = json.loads((tmp_path / "next" / "manifest.json").read_text())
    assert following["nudge"] == "global" and following["shot_bill"] == manifest["shot_bill"]


def test_a_returned_manifest_cannot_point_the_bill_at_a_file(tmp_path):
    """update never reads a sidecar from a path named in the (untrusted) manifest, only a same-device stem."""
    write_bundle(_spec(), tmp_path / "b", drawings=False)
    fake = tmp_path / "fake.lab.json"
    fake.write_text('{"shot_rate_hz": 1e6, "price_per_shot": 0, "currency": "EUR"}')
    path = tmp_path / "b" / "manifest.json"
    manifest = json.loads(path.read_text())
    for spec, lab_used in ((str(tmp_path / "fake.json"), False), ("AnalogDevice", False), ("fresnel_like", True)):
        manifest["device"]["spec"] = spec
        manifest["checksum"] = _sha(_canonical(manifest))
        path.write_text(json.dumps(manifest))
        counts = tmp_path / f"counts_{lab_used}_{len(spec)}"
        counts.mkdir()
        for entry in manifest["sequences"]:
            (counts / f"{entry['id']}.json").write_text(json.dumps({"000": entry["shots"]}))
        out = tmp_path / f"next_{lab_used}_{len(spec)}"
        update_bundle(tmp_path / "b", counts, out, drawings=False)
        bill = json.loads((out / "manifest.json").read_text())["shot_bill"]
        assert (bill["hours"] is not None) == lab_used
        if lab_used:
            assert bill["hours"] == pytest.approx(bill["shots"] / 0.25 / 3600)


def test_shot_bill_and_job_split():
    device = load_device("fresnel_like")
    assert job_split(2500, 1000) == [834, 833, 833] and job_split(1000, 1000) == [1000]
    bill = shot_bill([1000, 1001, 0], device=device, lab=lab_metadata("fresnel_like"))
    assert (bill.shots, bill.jobs, bill.sequences) == (2001, 3, 3)
    no_lab = shot_bill([500] * 4, device=load_device("AnalogDevice"))
    assert no_lab.hours is None and no_lab.cost is None and no_lab.jobs == 4


@pytest.mark.parametrize("content, message", [
    ('{"shot_rate_hz": 0.25, "price_per_shot": 3.3, "currency": "EUR", "colour": 1}', "unknown keys"),
    ('{"shot_rate_hz": NaN, "price_per_shot": 3.3, "currency": "EUR"}', "not valid JSON"),
    ('{"shot_rate_hz": -1, "price_per_shot": 3.3, "currency": "EUR"}', "'shot_rate_hz' must be"),
    ('{"shot_rate_hz": 1, "price_per_shot": 3.3, "currency": "euros"}', "'currency'"),
    ('{"shot_rate_hz": 1, "price_per_shot": 3.3, "currency": "EUR", "max_runs_per_job": 0.5}', "max_runs_per_job"),
    ('[1, 2]', "JSON object"),
])
def test_bad_lab_files_are_refused_by_name(tmp_path, content, message):
    path = tmp_path / "x.lab.json"
    path.write_text(content)
    with pytest.raises(QepValueError, match=message) as info:
        read_lab_file(path)
    assert str(path) in str(info.value)


def test_lab_sidecars_are_not_devices():
    names = [d["name"] for d in list_devices()]
    assert "FresnelLikeDevice" in names and len(names) == len(set(names))
    with pytest.raises(QepValueError, match="unknown device"):
        load_device("fresnel_like.lab")
    assert lab_metadata("AnalogDevice") is None


def test_reports_bill_shots_only_when_there_are_shots():
    results = {"config": {"gradient": {"shots": 100}}, "final": {"preparations": 12_000}}
    bill = with_shot_bill(results)["final"]["shot_bill"]
    assert bill["shots"] == 12_000 and bill["jobs"] == math.ceil(12_000 / 1000)
    assert bill["hours"] == pytest.approx(12_000 / 0.25 / 3600) and "hypothetical" in bill["rate_source"]
    assert "shot_bill" not in results["final"]
    exact = {"config": {"gradient": {}}, "final": {"preparations": 12_000}}
    assert "shot_bill" not in with_shot_bill(exact)["final"]
