"""Property-based fuzzing of the manifest and counts readers: any JSON tree or byte string gives a
QepError or a valid load, never another exception (hypothesis, derandomized, no example database)."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qep_analog.device.bundle import export_protocol
from qep_analog.device.bundle_io import read_bundle, read_counts
from qep_analog.device.bundle_lab import simulate_counts
from qep_analog.errors import QepError

BASE = Path(__file__).resolve().parents[1] / "data" / "bad" / "protocols" / "export_base_good.toml.txt"
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
trees = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=16)


def _rehash(manifest: dict) -> None:
    body = json.dumps({k: v for k, v in manifest.items() if k != "checksum"}, sort_keys=True, separators=(",", ":"))
    manifest["checksum"] = hashlib.sha256(body.encode()).hexdigest()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    export_protocol(BASE, root / "good", drawings=False)
    simulate_counts(root / "good", root / "counts", seed=5)
    shutil.copytree(root / "good", root / "b")
    manifest = json.loads((root / "good" / "manifest.json").read_text())
    return root, manifest, read_bundle(root / "good")


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _load(bundle: Path):
    try:
        manifest = read_bundle(bundle)
    except QepError:
        return None
    assert isinstance(manifest, dict) and manifest["sequences"]
    return manifest


@FUZZ
@given(tree=trees)
def test_manifest_from_any_json_tree(lab, tree):
    root, _, _ = lab
    (root / "b" / "manifest.json").write_text(json.dumps(tree))
    assert _load(root / "b") is None  # a random tree is never a valid manifest


@FUZZ
@given(data=st.binary(max_size=300))
def test_manifest_from_any_bytes(lab, data):
    root, _, _ = lab
    (root / "b" / "manifest.json").write_bytes(data)
    assert _load(root / "b") is None


@settings(FUZZ, max_examples=400)
@given(data=st.data())
def test_manifest_with_one_field_replaced(lab, data):
    """One field of a good manifest replaced by a random tree (or deleted), checksum recomputed as an
    attacker would: refused with a QepError, or loaded with its files still inside the bundle."""
    root, good, _ = lab
    manifest = copy.deepcopy(good)
    paths = [p for p in _paths(manifest) if p and p[0] != "checksum"]
    path = data.draw(st.sampled_from(paths))
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(trees)
    if data.draw(st.integers(0, 9)):
        _rehash(manifest)
    (root / "b" / "manifest.json").write_text(json.dumps(manifest))
    loaded = _load(root / "b")
    if loaded is not None:
        base = (root / "b").resolve()
        assert all(base in (base / rel).resolve().parents for rel in loaded["files"])
        assert all(np.isfinite(loaded["training"][k]) for k in ("beta", "learning_rate", "position_learning_rate"))


@FUZZ
@given(tree=trees)
def test_counts_from_any_json_tree(lab, tree, tmp_path):
    root, good, loaded = lab
    counts = tmp_path / "c"
    if not counts.exists():
        shutil.copytree(root / "counts", counts)
    (counts / "s000_plus.json").write_text(json.dumps(tree))
    _check_counts(good, loaded, counts)


@FUZZ
@given(data=st.binary(max_size=300))
def test_counts_from_any_bytes(lab, data, tmp_path):
    root, good, loaded = lab
    counts = tmp_path / "c"
    if not counts.exists():
        shutil.copytree(root / "counts", counts)
    (counts / "s000_plus.json").write_bytes(data)
    _check_counts(good, loaded, counts)


@FUZZ
@given(counts=st.dictionaries(st.text(alphabet="01x", min_size=3, max_size=5),
                              st.integers(-5, 250) | st.booleans() | st.floats() | st.none() | st.text(max_size=3),
                              max_size=6))
def test_counts_with_bitstring_keys(lab, counts, tmp_path):
    root, good, loaded = lab
    folder = tmp_path / "c"
    if not folder.exists():
        shutil.copytree(root / "counts", folder)
    (folder / "s000_plus.json").write_text(json.dumps(counts))
    _check_counts(good, loaded, folder)


def _check_counts(good: dict, manifest: dict, counts: Path) -> None:
    try:
        bits = read_counts(manifest, counts)
    except QepError:
        return
    shots = good["training"]["shots"]
    for array in bits.values():
        assert array.shape[1] == 4 and 0.9 * shots <= array.shape[0] <= shots
        assert set(np.unique(array)) <= {0, 1}


@pytest.mark.slow
@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_update_with_one_field_replaced(lab, data, tmp_path):
    """The whole `update` (read, gradient, next bundle) on a good manifest with one field replaced and
    the checksum recomputed: a QepError, or a next bundle that reads back (slow: ~0.2 s per example)."""
    from qep_analog.device.bundle_lab import update_bundle

    root, good, _ = lab
    manifest = copy.deepcopy(good)
    path = data.draw(st.sampled_from([p for p in _paths(manifest) if p and p[0] not in ("checksum", "files")]))
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = data.draw(trees | st.floats(-1e3, 1e3) | st.integers(-5, 300))
    _rehash(manifest)
    (root / "b" / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "next"
    shutil.rmtree(out, ignore_errors=True)
    try:
        update_bundle(root / "b", root / "counts", out, drawings=False)
    except QepError:
        assert not out.exists()
        return
    assert read_bundle(out)["step"] == manifest["step"] + 1
