"""Every malformed input of the corpus under tests/data/bad/ is refused the same way, by every command.

For each input and each command it reaches (export, lab-counts, update, devices, gradient), run the
CLI in-process and assert: exit code 2, exactly one line on stderr, no traceback, the line names the
key or file at fault where the corpus says which, and no file or directory is created, changed or
left behind anywhere under the temporary root (bundle and counts directories live inside it).

The corpus:
* ``manifest/*.json``: patches of a good bundle's manifest.json (``set``/``delete`` by slash path;
  the checksum is recomputed unless ``"rehash": false``, as an attacker would); run by update and
  lab-counts. ``manifest/*.raw``: bytes that replace manifest.json.
* ``counts/*.json``: bytes that replace one counts file of a good counts directory; run by update.
* ``devices/*.json``: bad device files; run by devices (found through $QEP_ANALOG_DEVICES), export
  (a protocol naming the file) and update (``--device FILE``).
* ``protocols/export_*.toml``, ``protocols/gradient_*.toml``, ``protocols/any_*.toml`` (both).
* ``args.json``: bad command-line arguments and environment per command.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from qep_analog.cli import main

BAD = Path(__file__).resolve().parent / "data" / "bad"
EXPORT_BASE = BAD / "protocols" / "export_base_good.toml.txt"
GRADIENT_BASE = BAD / "protocols" / "gradient_base_good.toml.txt"

# The fragment each refusal must contain (the key or file at fault), by corpus entry.
EXPECT = {
    "manifest/id_traversal.json": "sequences/0/id", "manifest/id_absolute.json": "sequences/0/id",
    "manifest/id_hidden.json": "sequences/0/id", "manifest/id_too_long.json": "sequences/0/id",
    "manifest/file_traversal.json": "sequences/0/file", "manifest/file_absolute.json": "sequences/0/file",
    "manifest/file_not_hashed.json": "sequences[0]", "manifest/files_key_traversal.json": "files",
    "manifest/device_file_elsewhere.json": "device/file",
    "manifest/learning_rate_1e300.json": "training/learning_rate",
    "manifest/learning_rate_negative.json": "training/learning_rate",
    "manifest/position_learning_rate_huge.json": "training/position_learning_rate",
    "manifest/beta_zero.json": "training/beta", "manifest/beta_huge.json": "training/beta",
    "manifest/shots_int64_max.json": "training/shots", "manifest/shots_float.json": "training/shots",
    "manifest/shots_bool.json": "training/shots", "manifest/sequence_shots_differ.json": "shots",
    "manifest/sequence_beta_differ.json": "beta", "manifest/duration_1e8.json": "ramp/duration_ns",
    "manifest/omega_huge.json": "model/omega", "manifest/detuning_huge.json": "model/detunings/0",
    "manifest/position_huge.json": "register/positions_um/0/0", "manifest/step_huge.json": "step",
    "manifest/target_out_of_range.json": "data/targets/0/0", "manifest/parameters_differ.json": "parameters",
    "manifest/sample_out_of_range.json": "sample", "manifest/duplicate_id.json": "twice",
    "manifest/missing_ramp.json": "ramp", "manifest/sequences_not_list.json": "sequences",
    "manifest/qubit_id_bad.json": "register/qubit_ids/0", "manifest/output_atom_out_of_range.json": "output_atoms",
    "manifest/checksum_not_updated.json": "checksum", "manifest/version_2.json": "version",
    "manifest/estimator_other.json": "training/estimator",
    "manifest/raw_latin1.raw": "UTF-8", "manifest/raw_utf16.raw": "UTF-8", "manifest/raw_binary.raw": "UTF-8",
    "manifest/raw_empty.raw": "not valid JSON", "manifest/raw_nan.raw": "NaN",
    "manifest/raw_infinity.raw": "1e999", "manifest/raw_deep.raw": "nested too deeply",
    "manifest/raw_bigint.raw": "manifest", "manifest/raw_list.raw": "<root>",
    "manifest/raw_truncated.raw": "not valid JSON",
    "counts/one_shot.json": "1 shots in total", "counts/too_many.json": "301 shots in total",
    "counts/bool_count.json": "True", "counts/float_count.json": "199.5", "counts/negative_count.json": "-1",
    "counts/count_1e23.json": "1e+23", "counts/count_10pow23_int.json": "100000000000000000000000",
    "counts/nan_count.json": "NaN", "counts/string_count.json": "'200'", "counts/short_bitstring.json": "length 3",
    "counts/bad_chars.json": "00x0", "counts/not_object.json": "JSON object", "counts/latin1.json": "UTF-8",
    "counts/utf16.json": "UTF-8", "counts/binary.json": "UTF-8", "counts/empty.json": "not valid JSON",
    "counts/deep.json": "nested too deeply", "counts/bigint_digits.json": "s000_plus.json",
    "devices/missing_channels.json": "'channels' is a required property", "devices/name_number.json": "'name'",
    "devices/negative_atoms.json": "max_atom_num", "devices/latin1.json": "UTF-8", "devices/utf16.json": "UTF-8",
    "devices/binary.json": "UTF-8", "devices/empty.json": "not valid JSON", "devices/not_object.json": "list",
    "devices/deep.json": "nest", "devices/truncated.json": "not valid JSON",
    "protocols/export_duration_1e8.toml": "duration_ns", "protocols/export_duration_float.toml": "duration_ns",
    "protocols/export_duration_negative.toml": "duration_ns",
    "protocols/export_learning_rate_1e300.toml": "'training.learning_rate'",
    "protocols/export_learning_rate_inf.toml": "'training.learning_rate'",
    "protocols/export_shots_negative.toml": "shots",
    "protocols/export_shots_int64_max.toml": "shots", "protocols/export_shots_one.toml": "shots",
    "protocols/export_beta_1e308.toml": "beta", "protocols/export_beta_zero.toml": "beta",
    "protocols/export_omega_inf.toml": "omega", "protocols/export_omega_1e300.toml": "omega",
    "protocols/export_detuning_nan.toml": "detunings", "protocols/export_positions_huge.toml": "positions_um",
    "protocols/export_positions_ragged.toml": "positions_um", "protocols/export_unknown_device.toml": "no_such_device",
    "protocols/export_samples_300.toml": "export_samples_300.toml",
    "protocols/export_total_pulse_time.toml": "6,000,000 ns of pulses",
    "protocols/export_device_name_traversal.toml": "unknown device",
    "protocols/export_targets_out_of_range.toml": "data.targets", "protocols/export_targets_not_list.toml": "targets",
    "protocols/export_inputs_mismatch.toml": "data.inputs", "protocols/export_output_atom_out_of_range.toml": "output",
    "protocols/export_position_learning_rate_1e300.toml": "position_learning_rate",
    "protocols/any_binary.toml": "UTF-8", "protocols/any_latin1.toml": "UTF-8", "protocols/any_utf16.toml": "UTF-8",
    "protocols/any_deep.toml": "nested too deeply", "protocols/any_deep_inline_tables.toml": "nested too deeply",
    "protocols/any_empty.toml": "any_empty.toml", "protocols/any_not_toml.toml": "any_not_toml.toml",
    "protocols/gradient_beta_1e308.toml": "beta", "protocols/gradient_shots_int64_max.toml": "shots",
    "protocols/gradient_exact_with_shots.toml": "shots", "protocols/gradient_batch_size_zero.toml": "batch_size",
}


@dataclass
class Case:
    command: str
    entry: str  # corpus entry (relative to tests/data/bad) or "args.json:<i>"
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    setup: str = "none"  # "bundle" (good bundle and counts copied in), "bundle+b1" / "bundle+file"
    # (and an existing b1/ or file afile), "none"
    expect: str | None = None
    stdout_has: str | None = None


def _cases() -> list[Case]:
    cases = []
    for f in sorted((BAD / "manifest").iterdir()):
        entry = f"manifest/{f.name}"
        cases.append(Case("update", entry, ["update", "b0", "c0", "--out", "b1", "--no-drawings"], setup="bundle"))
        cases.append(Case("lab-counts", entry, ["lab-counts", "b0", "cnew"], setup="bundle"))
    for f in sorted((BAD / "counts").iterdir()):
        cases.append(Case("update", f"counts/{f.name}", ["update", "b0", "c0", "--out", "b1", "--no-drawings"],
                          setup="bundle"))
    for f in sorted((BAD / "devices").iterdir()):
        entry = f"devices/{f.name}"
        cases.append(Case("devices", entry, ["devices"], stdout_has="AnalogDevice"))
        cases.append(Case("export", entry, ["export", "protocol.toml", "b1", "--no-drawings"]))
        cases.append(Case("update", entry, ["update", "b0", "c0", "--out", "b1", "--no-drawings", "--device",
                                            "devs/" + f.name], setup="bundle"))
    for f in sorted((BAD / "protocols").glob("*.toml")):
        entry = f"protocols/{f.name}"
        if f.name.startswith(("export_", "any_")):
            cases.append(Case("export", entry, ["export", str(f), "b1", "--no-drawings"]))
        if f.name.startswith(("gradient_", "any_")):
            cases.append(Case("gradient", entry, ["gradient", str(f)]))
    for i, spec in enumerate(json.loads((BAD / "args.json").read_text())):
        argv = [a.replace("{gradient_protocol}", str(GRADIENT_BASE)).replace("{export_protocol}", str(EXPORT_BASE))
                for a in spec["argv"]]
        cases.append(Case(argv[0], f"args.json:{i}", argv, env=spec.get("env", {}),
                          setup=spec.get("setup", "bundle" if argv[0] in ("update", "lab-counts") else "none"),
                          expect=spec["expect"]))
    for case in cases:
        if case.expect is None:
            case.expect = EXPECT.get(case.entry)
    return cases


CASES = _cases()


def _rehash(manifest: dict) -> None:
    body = json.dumps({k: v for k, v in manifest.items() if k != "checksum"}, sort_keys=True, separators=(",", ":"))
    manifest["checksum"] = hashlib.sha256(body.encode()).hexdigest()


def _walk(obj, path: str, *, create: bool = False):
    keys = path.split("/")
    for key in keys[:-1]:
        obj = obj[int(key)] if isinstance(obj, list) else obj[key]
    last = keys[-1]
    return obj, int(last) if isinstance(obj, list) else last


def _patched_manifest(manifest: dict, patch: dict) -> dict:
    for path, value in patch.get("set", {}).items():
        if path.startswith("files/"):  # file names contain slashes: the rest of the path is one key
            manifest["files"][path[len("files/"):]] = value
            continue
        parent, key = _walk(manifest, path)
        parent[key] = value
    for path in patch.get("delete", []):
        parent, key = _walk(manifest, path)
        del parent[key]
    if patch.get("rehash", True):
        _rehash(manifest)
    return manifest


def _snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    from qep_analog.device.bundle import export_protocol
    from qep_analog.device.bundle_lab import simulate_counts

    root = tmp_path_factory.mktemp("good")
    export_protocol(EXPORT_BASE, root / "b0", drawings=False)
    simulate_counts(root / "b0", root / "c0", seed=3)
    return root


def _prepare(case: Case, work: Path, good: Path) -> None:
    if case.setup.startswith("bundle"):
        shutil.copytree(good / "b0", work / "b0")
        shutil.copytree(good / "c0", work / "c0")
    if case.setup == "bundle+b1":  # an existing output directory
        (work / "b1").mkdir()
    if case.setup == "bundle+file":  # an existing file where an output directory should go
        (work / "afile").write_text("not a directory\n")
    source = BAD / case.entry.split(":")[0]
    if case.entry.startswith("manifest/") and source.suffix == ".raw":
        (work / "b0" / "manifest.json").write_bytes(source.read_bytes())
    elif case.entry.startswith("manifest/"):
        manifest = json.loads((work / "b0" / "manifest.json").read_text())
        patched = _patched_manifest(manifest, json.loads(source.read_text()))
        (work / "b0" / "manifest.json").write_text(json.dumps(patched))
    elif case.entry.startswith("counts/"):
        (work / "c0" / "s000_plus.json").write_bytes(source.read_bytes())
    elif case.entry.startswith("devices/"):
        (work / "devs").mkdir()
        shutil.copy(source, work / "devs" / source.name)
        text = EXPORT_BASE.read_text().replace('name = "MockDevice"', f'name = "devs/{source.name}"')
        (work / "protocol.toml").write_text(text)


def run_case(case: Case, tmp_path: Path, good: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    """Run one case in a fresh temporary root; return (exit code, stdout, stderr) after the checks
    that hold for every case (nothing created or left behind under the root)."""
    work = tmp_path / "root" / "work"  # '../../x' from a directory in work/ stays inside tmp_path
    work.mkdir(parents=True)
    _prepare(case, work, good)
    monkeypatch.chdir(work)
    monkeypatch.delenv("QEP_ANALOG_DEVICES", raising=False)
    if case.entry.startswith("devices/"):
        monkeypatch.setenv("QEP_ANALOG_DEVICES", str(work / "devs"))
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    code = main(case.argv)
    out, err = capsys.readouterr()
    assert _snapshot(tmp_path) == before, f"{case.entry}: files changed under the temporary root"
    assert not Path("/tmp/qep_escaped.json").exists()
    return code, out, err


@pytest.mark.parametrize("case", CASES, ids=[f"{c.command}:{c.entry}" for c in CASES])
def test_bad_input_is_one_line_exit_2(case, tmp_path, good, monkeypatch, capsys):
    code, out, err = run_case(case, tmp_path, good, monkeypatch, capsys)
    if os.environ.get("QEP_SHOW_ERRORS"):
        print(f"\n@@ {case.command} {case.entry} -> {code}: {err.strip()}", file=sys.__stdout__)
    assert code == 2, f"exit {code}; stderr: {err!r}"
    assert err.endswith("\n") and err.count("\n") == 1, f"not one stderr line: {err!r}"
    assert "Traceback" not in err and err.startswith("qep-analog: error: ")
    if case.expect is not None:
        assert case.expect in err, f"{err!r} does not name {case.expect!r}"
    if case.stdout_has is not None:  # `devices` still lists the good devices
        assert case.stdout_has in out


def test_every_corpus_entry_has_an_expectation():
    """A new corpus file must say which key or file its refusal names."""
    named = {c.entry for c in CASES if not c.entry.startswith("args.json")}
    assert named <= set(EXPECT), sorted(named - set(EXPECT))[:5]
    assert all(c.expect for c in CASES if c.entry.startswith("args.json"))


def test_good_inputs_pass_the_same_harness(tmp_path, good, monkeypatch, capsys):
    """The harness refuses for the right reason: the good bundle and counts update, and `devices` lists."""
    code, _, err = run_case(Case("devices", "none", ["devices"]), tmp_path / "a", good, monkeypatch, capsys)
    assert code == 0 and err == ""
    work = tmp_path / "b" / "root" / "work"
    case = Case("update", "none", ["update", "b0", "c0", "--out", "b1", "--no-drawings"], setup="bundle")
    work.mkdir(parents=True)
    _prepare(case, work, good)
    monkeypatch.chdir(work)
    assert main(case.argv) == 0, capsys.readouterr().err
    assert json.loads((work / "b1" / "gradient.json").read_text())["from_step"] == 0
    assert os.stat(work / "b1").st_mode & 0o777 == 0o777 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_exact_estimator_drops_protocol_shots_with_a_note(tmp_path, monkeypatch, capsys):
    """`--estimator exact` on a protocol with shots: the shots are dropped and stderr says so (not silently)."""
    protocol = tmp_path / "p.toml"
    protocol.write_text(GRADIENT_BASE.read_text().replace("beta = 0.1", "beta = 0.1\nshots = 100"))
    monkeypatch.chdir(tmp_path)
    assert main(["gradient", str(protocol), "--estimator", "exact", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "ignores gradient.shots = 100" in err
    result = json.loads(out)
    assert result["shots"] is None and result["measurement"] == "exact-expectations"
