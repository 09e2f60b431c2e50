"""Protocol files (TOML): model, data, backend, gradient and training, validated on load.

Only this module and the CLI touch files. A protocol is a table of sections::

    [model]      kind = "tfim" | "massar-mognetti" | "phase-sensor" | "cluster-slice" | "pauli"
    [data]       kind = "inline" | "phase-triangle" | "blobs"
    [backend]    name = "exact" | "gibbs" | "cooling" | "adiabatic", plus that backend's options
    [gradient]   the fields of GradientConfig (estimator, nudge, beta, shots, ...)
    [training]   optimizer, learning_rate, batch_size, steps, seed, eval_every, metric, ...

Every unknown key, wrong type or impossible value raises one QepValueError naming the key.
Other sections (e.g. ``[device]``, ``[task]``) are validated by the layer that reads them, which
registers its schema with :func:`register_section`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.spin_models import (
    cluster_chain_slice,
    cluster_phase_sensor,
    massar_mognetti,
    phase_targets,
    sample_triangle,
    transverse_field_ising,
)

_NUM = (int, float)
# section -> key -> allowed python types
SCHEMA: dict[str, dict[str, tuple]] = {
    "protocol": {"name": (str,), "description": (str,), "task": (str,)},
    "model": {
        "kind": (str,), "n_qubits": (int,), "input_qubits": (list,), "output_qubits": (list,),
        "edges": (list,), "pairs": (list,), "trainable_fields": (bool,), "transverse_field": _NUM,
        "trainable_biases": (bool,), "n_chain": (int,), "coupled_sites": (list,),
        "coupling_paulis": (str,), "terms": (list,), "outputs": (dict,), "g_zxz": _NUM, "output": (list,),
    },
    "data": {
        "kind": (str,), "inputs": (list,), "targets": (list,), "n_train": (int,), "n_test": (int,),
        "seed": (int,), "test_inputs": (list,), "test_targets": (list,), "separation": _NUM,
        "noise": _NUM, "input_scale": _NUM,
    },
    "backend": {"name": (str,), "options": (dict,)},
    "gradient": {
        "estimator": (str,), "nudge": (str,), "loss": (str,), "loss_scale": _NUM, "beta": _NUM,
        "shots": (int,), "measurement": (str,), "p_false_pos": _NUM, "p_false_neg": _NUM,
        "mitigate_readout": (bool,), "overlap_threshold": _NUM, "crossing_policy": (str,),
        "max_halvings": (int,), "fd_step": _NUM,
    },
    "training": {
        "optimizer": (str,), "learning_rate": _NUM, "batch_size": (int,), "steps": (int,), "seed": (int,),
        "eval_every": (int,), "metric": (str,), "init_scale": _NUM, "bounds": (list,),
        "checkpoint_every": (int,), "theta0": (dict, list),
        "schedule": (str,), "final_learning_rate": _NUM, "average": _NUM,
        "validation": (int,), "validation_shots": (int,), "validate_every": (int,),
        "learning_rates": (dict,), "normalize": (bool,),
    },
    # where the work runs (qep_analog.distributed); not part of a run's identity
    "execution": {"engine": (str,), "workers": (int,), "scheduler": (str,)},
    # read by qep_analog.tasks (``qep-analog train``)
    "task": {"starts": (list,), "plot_resolution": (int,), "baseline_l2": _NUM},
    # ``--full``: per-section overrides for the paper-size run, e.g. full.training = {steps = 2000}
    "full": {s: (dict,) for s in ("model", "data", "backend", "gradient", "training", "task", "oscillator",
                                  "device")},
}
_EXTRA_SECTIONS: dict[str, Callable[[Mapping], None]] = {}


def register_section(name: str, validator: Callable[[Mapping], None]) -> None:
    """Let another layer (device, oscillator, ...) own and validate a protocol section."""
    _EXTRA_SECTIONS[name] = validator


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """A validated protocol: the raw sections plus where it came from."""

    sections: dict
    source: str = "<memory>"

    def section(self, name: str) -> dict:
        return dict(self.sections.get(name, {}))


def validate(data: Mapping, source: str = "<memory>") -> Protocol:
    if not isinstance(data, Mapping):
        raise QepValueError(f"{source}: a protocol must be a table of sections")
    for section, content in data.items():
        if section in _EXTRA_SECTIONS:
            _EXTRA_SECTIONS[section](content)
            continue
        if section not in SCHEMA:
            known = sorted(set(SCHEMA) | set(_EXTRA_SECTIONS))
            if not isinstance(content, Mapping):
                raise QepValueError(f"{source}: top-level key '{section}' is outside any section; every key "
                                    f"belongs to one of the sections {known}")
            raise QepValueError(f"{source}: unknown section [{section}]; known: {known}")
        if not isinstance(content, Mapping):
            raise QepValueError(f"{source}: [{section}] must be a table")
        for key, value in content.items():
            allowed = SCHEMA[section].get(key)
            if allowed is None:
                raise QepValueError(f"{source}: unknown key '{section}.{key}'; allowed: {sorted(SCHEMA[section])}")
            if isinstance(value, bool) and bool not in allowed:
                raise QepValueError(f"{source}: '{section}.{key}' must be {_names(allowed)}, not a boolean")
            if not isinstance(value, allowed):
                raise QepValueError(f"{source}: '{section}.{key}' must be {_names(allowed)}, "
                                    f"not {type(value).__name__} {value!r}")
            if isinstance(value, float) and not np.isfinite(value):
                raise QepValueError(f"{source}: '{section}.{key}' must be finite, not {value}")
    return Protocol(sections={k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}, source=source)


def _names(types: tuple) -> str:
    return " or ".join({int: "an integer", float: "a number", str: "a string", bool: "a boolean",
                        list: "a list", dict: "a table"}[t] for t in types)


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a TOML protocol file."""
    path = Path(path)
    if not path.is_file():
        raise QepValueError(f"protocol file '{path}' does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise QepValueError(f"{path}: not valid TOML: {exc}") from None
    return validate(data, str(path))


# ---------------------------------------------------------------------------- builders
def build_model(protocol: Protocol) -> Hamiltonian:
    m = protocol.section("model")
    kind = m.pop("kind", None)
    src = protocol.source

    def take(*keys):
        return {k: m.pop(k) for k in keys if k in m}

    if kind == "tfim":
        opts = take("input_qubits", "output_qubits", "trainable_fields", "transverse_field", "trainable_biases")
        if "edges" in m:
            opts["edges"] = [tuple(e) for e in m.pop("edges")]
        h = transverse_field_ising(_required(m, "n_qubits", src), **opts)
    elif kind == "massar-mognetti":
        opts = take("input_qubits", "output_qubits")
        if "pairs" in m:
            opts["pairs"] = [tuple(e) for e in m.pop("pairs")]
        h = massar_mognetti(_required(m, "n_qubits", src), **opts)
    elif kind == "phase-sensor":
        h = cluster_phase_sensor(m.pop("n_chain", 8), **take("coupled_sites", "coupling_paulis"))
    elif kind == "cluster-slice":
        opts = take("g_zxz")
        if "output" in m:
            opts["output"] = tuple(m.pop("output"))
        h = cluster_chain_slice(m.pop("n_chain", 10), **opts)
    elif kind == "pauli":
        n = _required(m, "n_qubits", src)
        terms = m.pop("terms", None)
        if not terms:
            raise QepValueError(f"{src}: 'model.terms' must list at least one term for kind 'pauli'")
        h = Hamiltonian.build(n, terms, m.pop("outputs", {}))
    else:
        raise QepValueError(f"{src}: 'model.kind' must be one of tfim, massar-mognetti, phase-sensor, "
                            f"cluster-slice, pauli, not {kind!r}")
    if m:
        raise QepValueError(f"{src}: key(s) {sorted('model.' + k for k in m)} do not apply to model kind {kind!r}")
    return h


def _required(section: dict, key: str, src: str) -> Any:
    if key not in section:
        raise QepValueError(f"{src}: missing key '{key}'")
    return section.pop(key)


@dataclass(frozen=True, kw_only=True)
class Dataset:
    inputs: np.ndarray | None
    targets: np.ndarray
    test_inputs: np.ndarray | None
    test_targets: np.ndarray | None


def build_data(protocol: Protocol, hamiltonian: Hamiltonian) -> Dataset:
    d = protocol.section("data")
    kind = d.get("kind", "inline")
    rng = np.random.default_rng(d.get("seed", 0))
    src = protocol.source
    if kind == "inline":
        if "targets" not in d:
            raise QepValueError(f"{src}: 'data.targets' is required for inline data")

        def arr(key):
            return None if key not in d else np.atleast_2d(np.asarray(d[key], dtype=float))

        return Dataset(inputs=arr("inputs"), targets=arr("targets"), test_inputs=arr("test_inputs"),
                       test_targets=arr("test_targets"))
    if kind == "phase-triangle":
        train = sample_triangle(d.get("n_train", 1000), rng)
        test = sample_triangle(d.get("n_test", 200), rng)
        return Dataset(inputs=train, targets=phase_targets(train), test_inputs=test, test_targets=phase_targets(test))
    if kind == "blobs":
        n_in = len(hamiltonian.input_names)
        n_out = len(hamiltonian.outputs)
        if n_in < 1 or n_out != 1:
            raise QepValueError(f"{src}: 'blobs' data needs ≥ 1 input and exactly 1 output, "
                                f"the model has {n_in} and {n_out}")
        x, t = two_blobs(d.get("n_train", 100) + d.get("n_test", 100), n_in, rng,
                         separation=d.get("separation", 1.0), noise=d.get("noise", 0.5),
                         scale=d.get("input_scale", 1.0))
        k = d.get("n_train", 100)
        return Dataset(inputs=x[:k], targets=t[:k], test_inputs=x[k:], test_targets=t[k:])
    raise QepValueError(f"{src}: 'data.kind' must be inline, phase-triangle or blobs, not {kind!r}")


def two_blobs(n: int, n_features: int, rng: np.random.Generator, *, separation: float = 1.0,
              noise: float = 0.5, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A 2-class Gaussian-blob dataset; targets ±1 (one column), inputs scaled by ``scale``."""
    labels = rng.integers(0, 2, size=n)
    centre = np.zeros(n_features)
    centre[0] = separation / 2
    if n_features > 1:
        centre[1] = separation / 2
    x = np.where(labels[:, None] == 1, centre, -centre) + noise * rng.standard_normal((n, n_features))
    return scale * x, np.where(labels == 1, 1.0, -1.0)[:, None]


def build_gradient_config(protocol: Protocol, **overrides):
    """GradientConfig from ``[gradient]`` (``p_false_pos``/``p_false_neg`` form a ReadoutError)."""
    from qep_analog.learning.gradient import GradientConfig
    from qep_analog.measurement.sampling import ReadoutError

    g = protocol.section("gradient")
    g.update({k: v for k, v in overrides.items() if v is not None})
    fp, fn = g.pop("p_false_pos", 0.0), g.pop("p_false_neg", 0.0)
    if fp or fn:
        g["readout"] = ReadoutError(p_false_pos=fp, p_false_neg=fn)
    return GradientConfig(**g)


def build_backend(protocol: Protocol, **context):
    """The equilibrium backend named in ``[backend]`` with its ``options`` table."""
    from qep_analog.equilibrium.base import get_backend

    b = protocol.section("backend")
    return get_backend(b.get("name", "exact"), **{**b.get("options", {}), **context})
