"""Protocol files (TOML): model, data, backend, gradient and training, validated on load.

Only this module and the CLI touch files. A protocol is a table of sections::

    [model]      kind = "tfim" | "massar-mognetti" | "phase-sensor" | "cluster-slice" | "pauli"
    [data]       kind = "inline" | "phase-triangle" | "blobs"
    [backend]    name = "exact" | "gibbs" | "cooling" | "adiabatic", plus that backend's options
    [gradient]   the fields of GradientConfig (estimator, nudge, beta, shots, ...)
    [training]   optimizer, learning_rate, batch_size, steps, seed, eval_every, metric, ...

Every unknown key, wrong type or impossible value raises one QepValueError naming the file and the
key. This module reads and validates; turning sections into models, data and backends is the task
layer's (:mod:`qep_analog.tasks.build`).
Other sections (e.g. ``[device]``, ``[task]``) are validated by the layer that reads them, which
registers its schema with :func:`register_section`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qep_analog.errors import QepValueError

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
        "max_halvings": (int,), "fd_step": _NUM, "preparation_policy": (str,),
        "shot_allocation": (str,), "pilot_shots": (int,), "shot_budget": (int,), "adaptive_beta": (bool,),
        "beta_min": _NUM,
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
            try:
                _EXTRA_SECTIONS[section](content)
            except QepValueError as exc:
                message = str(exc)
                raise QepValueError(message if message.startswith(source) else f"{source}: {message}") from None
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


MAX_PROTOCOL_BYTES = 4 * 2**20


def read_toml(path: str | Path) -> dict:
    """The TOML file at ``path``; every way it can fail is one QepValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise QepValueError(f"protocol file '{path}' does not exist")
    try:
        if path.stat().st_size > MAX_PROTOCOL_BYTES:
            raise QepValueError(f"{path}: a protocol must be at most {MAX_PROTOCOL_BYTES} bytes")
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise QepValueError(f"{path}: not UTF-8 text (byte {exc.start}); save the protocol as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise QepValueError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise QepValueError(f"{path}: tables or arrays nested too deeply") from None
    except OSError as exc:
        raise QepValueError(f"{path}: cannot be read ({exc.strerror})") from None


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a TOML protocol file."""
    return validate(read_toml(path), str(path))

