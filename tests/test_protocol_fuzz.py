"""Property-based fuzzing of the protocol loader: any bytes or any tree gives a valid load or a QepError."""

from __future__ import annotations

import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qep_analog.errors import QepError
from qep_analog.learning.driver import TrainingConfig
from qep_analog.train import read_toml, resolve

_KEYS = st.sampled_from(["protocol", "model", "data", "backend", "gradient", "training", "task", "full", "device",
                         "oscillator", "execution", "kind", "task", "steps", "beta", "shots", "n_qubits", "name",
                         "learning_rate", "bounds", "seed", "terms", "x", "é"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
_TREES = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=20)
_FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FAST
@given(st.dictionaries(_KEYS, _TREES, max_size=5))
def test_any_tree_resolves_or_raises_a_qep_error(tree):
    try:
        task, sections = resolve(tree, "fuzz", full=False)
    except QepError:
        return
    assert isinstance(task, str) and isinstance(sections, dict)
    try:  # the [training] table of anything that resolved is either valid or refused by name
        TrainingConfig.from_section(sections.get("training", {}))
    except QepError:
        pass


@_FAST
@given(st.binary(max_size=300))
def test_any_bytes_load_or_raise_a_qep_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "p.toml"
    path.write_bytes(data)
    try:
        raw = read_toml(path)
    except QepError:
        return
    assert raw == tomllib.loads(data.decode("utf-8"))


@_FAST
@given(st.text(alphabet=st.sampled_from(list("[]{}=\\\"'.,#\n abc123-+eE")), max_size=200))
def test_toml_like_text_loads_or_raises_a_qep_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "p.toml"
    path.write_text(text, encoding="utf-8")
    try:
        resolve(read_toml(path), str(path), full=True)
    except QepError:
        pass
