"""A returned bundle is hostile input: escapes, unverified files, absurd numbers, counts that do not
match, non-finite JSON, permissions and signals (issue 12)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qep_analog.cli import main
from qep_analog.device import limits
from qep_analog.device.bundle import atomic_directory, export_protocol, write_bundle
from qep_analog.device.bundle_io import read_bundle, read_counts
from qep_analog.device.bundle_lab import simulate_counts, update_bundle
from qep_analog.errors import QepValueError

BASE = Path(__file__).resolve().parents[1] / "data" / "bad" / "protocols" / "export_base_good.toml.txt"


def _rehash(manifest: dict) -> dict:
    body = json.dumps({k: v for k, v in manifest.items() if k != "checksum"}, sort_keys=True, separators=(",", ":"))
    manifest["checksum"] = hashlib.sha256(body.encode()).hexdigest()
    return manifest


def _tree(root: Path) -> dict[str, tuple]:
    return {str(p.relative_to(root)): (p.lstat().st_mode, p.lstat().st_size) for p in sorted(root.rglob("*"))}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp("secure")
    export_protocol(BASE, root / "b0", drawings=False)
    simulate_counts(root / "b0", root / "c0", seed=7)
    return root


def _copy(good: Path, dst: Path) -> tuple[Path, Path]:
    shutil.copytree(good / "b0", dst / "b0")
    shutil.copytree(good / "c0", dst / "c0")
    return dst / "b0", dst / "c0"


def _edit(bundle: Path, change) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(_rehash(manifest)))


@pytest.mark.parametrize("sid", ["../../escaped", "/tmp/qep_abs_escaped", "..", "a/../../escaped", ".x", "a" * 65])
def test_escaping_ids_write_nothing_outside(good, tmp_path, sid):
    """Ids and files that point outside: lab-counts and update refuse them and write nothing anywhere
    (the checksum is recomputed, as an attacker would)."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    bundle, counts = _copy(good, work)

    def change(m):
        old = m["sequences"][0]["id"]
        m["sequences"][0]["id"] = sid
        m["sequences"][0]["file"] = f"sequences/{sid}.json"
        m["files"][f"sequences/{sid}.json"] = m["files"].pop(f"sequences/{old}.json")
        shutil.copy(bundle / "sequences" / f"{old}.json", work / "stolen.json")
    _edit(bundle, change)
    (counts / "s000_free.json").rename(work / "keep.json")
    before = _tree(tmp_path)
    with pytest.raises(QepValueError, match="sequences|files"):
        simulate_counts(bundle, work / "cnew")
    with pytest.raises(QepValueError, match="sequences|files"):
        update_bundle(bundle, counts, work / "next", drawings=False)
    assert main(["lab-counts", str(bundle), str(work / "cnew")]) == 2
    assert _tree(tmp_path) == before
    assert not Path("/tmp/qep_abs_escaped.json").exists()


def test_symlinks_out_of_the_bundle_and_counts_are_refused(good, tmp_path):
    """A hashed file may be a symlink to an identical file elsewhere: the hash matches, the path does not
    stay inside the bundle, so it is refused; the same for a counts file."""
    bundle, counts = _copy(good, tmp_path)
    outside = tmp_path / "outside.json"
    shutil.copy(bundle / "sequences" / "s000_plus.json", outside)
    (bundle / "sequences" / "s000_plus.json").unlink()
    (bundle / "sequences" / "s000_plus.json").symlink_to(outside)
    with pytest.raises(QepValueError, match="leaves the directory"):
        read_bundle(bundle)
    bundle2, _ = _copy(good, tmp_path / "second")
    shutil.copy(counts / "s000_free.json", tmp_path / "outside_counts.json")
    (counts / "s000_free.json").unlink()
    (counts / "s000_free.json").symlink_to(tmp_path / "outside_counts.json")
    with pytest.raises(QepValueError, match="leaves the directory"):
        read_counts(read_bundle(bundle2), counts)


def test_sequence_file_must_be_hashed_and_is_rehashed_when_run(good, tmp_path, monkeypatch):
    """lab-counts runs only hashed sequence files, checking the bytes it actually reads."""
    bundle, _ = _copy(good, tmp_path)
    manifest = read_bundle(bundle)
    import qep_analog.device.bundle_lab as module

    real = module.read_bundle

    def read_then_tamper(path, **kwargs):  # a file changed after the check and before the run
        m = real(path, **kwargs)
        f = Path(path) / "sequences" / "s000_minus.json"
        f.write_text(f.read_text().replace("MockDevice", "MockDevice "))
        return m

    monkeypatch.setattr(module, "read_bundle", read_then_tamper)
    with pytest.raises(QepValueError, match="s000_minus.json' is modified"):
        simulate_counts(bundle, tmp_path / "c")
    assert not (tmp_path / "c").exists() and manifest["files"]


def test_device_spec_in_the_manifest_is_a_label_not_a_path(good, tmp_path):
    """`update` builds the next bundle on the verified device.json, never on a name or path from the manifest."""
    bundle, counts = _copy(good, tmp_path)
    _edit(bundle, lambda m: m["device"].__setitem__("spec", str(tmp_path / "no_such_device_file.json")))
    update_bundle(bundle, counts, tmp_path / "next", drawings=False)
    assert (tmp_path / "next" / "device.json").read_bytes() == (bundle / "device.json").read_bytes()


@pytest.mark.parametrize(("path", "value", "key"), [
    (("training", "learning_rate"), 1e300, "training/learning_rate"),
    (("training", "position_learning_rate"), 1e300, "training/position_learning_rate"),
    (("training", "beta"), 1e300, "training/beta"),
    (("training", "shots"), 2**63 - 1, "training/shots"),
    (("ramp", "duration_ns"), 10**8, "ramp/duration_ns"),
    (("model", "omega"), -1e300, "model/omega"),
])
def test_absurd_numbers_are_refused_by_name(good, tmp_path, path, value, key):
    bundle, counts = _copy(good, tmp_path)
    _edit(bundle, lambda m: m[path[0]].__setitem__(path[1], value))
    with pytest.raises(QepValueError, match=key):
        update_bundle(bundle, counts, tmp_path / "next", drawings=False)
    assert not (tmp_path / "next").exists()


def test_model_beyond_the_device_limits_is_refused(tmp_path):
    """Numbers within the project bounds but beyond the device's own limits: the device decides."""
    spec = {"device": "qep_lab_device",
            "model": {"positions_um": [[0.0, 0.0], [6.0, 0.0], [3.0, 5.2]], "omega": 4.0, "phase": 0.0,
                      "detunings": [1.0, 1.0, 1.0], "input_atoms": [], "output_atoms": [2], "input_mode": "local",
                      "train_positions": True},
            "ramp": {"duration_ns": 2000, "start_detuning": -20.0, "shape": "cosine"}, "layout": False,
            "data": {"inputs": [[]], "targets": [[1.0]]},
            "training": {"beta": 0.5, "shots": 100, "learning_rate": 1.0, "position_learning_rate": 1.0,
                         "objective": "C", "estimator": "symmetric"}}
    write_bundle(spec, tmp_path / "b", drawings=False)
    _edit(tmp_path / "b", lambda m: m["model"].__setitem__("omega", 900.0))  # the lab device: Ω ≤ 2π·2 rad/µs
    with pytest.raises(QepValueError, match="model is invalid: 'omega' = 900 rad/µs exceeds"):
        read_bundle(tmp_path / "b")


def test_counts_total_must_match_the_manifest(good, tmp_path):
    """Totals in [⌈0.9·shots⌉, shots] are accepted; one shot fewer, or any shot more, is refused."""
    bundle, counts = _copy(good, tmp_path)
    manifest = read_bundle(bundle)
    shots = manifest["training"]["shots"]
    low = math.ceil(limits.SHOT_TOLERANCE * shots)
    for total, ok in ((low, True), (shots, True), (low - 1, False), (shots + 1, False), (1, False)):
        (counts / "s000_plus.json").write_text(json.dumps({"0000": total - total // 2, "0001": total // 2}))
        if ok:
            assert read_counts(manifest, counts)["s000_plus"].shape == (total, 4)
        else:
            with pytest.raises(QepValueError, match=f"{total} shots in total"):
                read_counts(manifest, counts)
    for bad in ({"0000": True}, {"0000": float(shots)}, {"0000": -1, "0001": shots + 1}, {"0000": 10**23}):
        (counts / "s000_plus.json").write_text(json.dumps(bad))
        with pytest.raises(QepValueError, match="must be an integer"):
            read_counts(manifest, counts)


def _strict(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in JSON")
    return json.loads(text, parse_constant=refuse)


def test_update_writes_strict_json_and_refuses_non_finite(good, tmp_path, monkeypatch):
    bundle, counts = _copy(good, tmp_path)
    update_bundle(bundle, counts, tmp_path / "next", drawings=False)
    report = _strict((tmp_path / "next" / "gradient.json").read_text())
    assert all(math.isfinite(v) for v in report["stderr"] + report["gradient"])
    _strict((tmp_path / "next" / "manifest.json").read_text())
    import qep_analog.device.bundle_lab as module

    real = module.gradient_from_bits

    def nan_stderr(*args):
        result = real(*args)
        result["stderr"] = result["stderr"] * float("nan")
        return result

    monkeypatch.setattr(module, "gradient_from_bits", nan_stderr)
    with pytest.raises(QepValueError, match="stderr is not finite"):
        update_bundle(bundle, counts, tmp_path / "next2", drawings=False)
    assert not (tmp_path / "next2").exists()


def test_one_permission_rule_for_output_directories(good, tmp_path):
    """Bundles and counts get the mode of a plain mkdir (0777 minus the umask), as train's --out does."""
    old = os.umask(0o027)
    try:
        write_bundle_dir = tmp_path / "b"
        export_protocol(BASE, write_bundle_dir, drawings=False)
        with atomic_directory(tmp_path / "c") as tmp:
            (tmp / "x.json").write_text("{}")
        os.mkdir(tmp_path / "reference")
    finally:
        os.umask(old)
    expected = (tmp_path / "reference").stat().st_mode & 0o777
    assert expected == 0o750
    assert (tmp_path / "b").stat().st_mode & 0o777 == expected
    assert (tmp_path / "b" / "sequences").stat().st_mode & 0o777 == expected
    assert (tmp_path / "c").stat().st_mode & 0o777 == expected


def test_failed_write_removes_the_parents_it_created(tmp_path):
    with pytest.raises(QepValueError, match="boom"):
        with atomic_directory(tmp_path / "new" / "deeper" / "out"):
            raise QepValueError("boom")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_lab_counts_cleans_up(tmp_path):
    """SIGTERM while lab-counts emulates: exit 143, no hidden .COUNTS.tmp-* directory, no COUNTS_DIR."""
    text = BASE.read_text().replace("inputs = [[1.0]]\ntargets = [[1.0]]",
                                    "inputs = [" + ", ".join(["[1.0]"] * 12) + "]\ntargets = ["
                                    + ", ".join(["[1.0]"] * 12) + "]")
    (tmp_path / "p.toml").write_text(text)
    export_protocol(tmp_path / "p.toml", tmp_path / "b", drawings=False)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "qep_analog.cli", "lab-counts", "b", "counts"], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".counts.tmp-*")) and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, f"lab-counts finished before it could be signalled: {proc.stderr.read()}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == ["qep-analog: terminated (SIGTERM)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "p.toml"]


def test_lab_counts_force_replaces_an_existing_directory(good, tmp_path, capsys):
    """The refusal message suggests --force; lab-counts has it."""
    bundle, counts = _copy(good, tmp_path)
    assert main(["lab-counts", str(bundle), str(counts)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["lab-counts", str(bundle), str(counts), "--force", "--seed", "1"]) == 0
    assert read_counts(read_bundle(bundle), counts)["s000_free"].shape[1] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b0", "c0"]
