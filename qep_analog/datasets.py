"""Data sets of the supervised tasks: inline tables, phase-triangle samples and Gaussian blobs.

``make_dataset(section, hamiltonian)`` turns a protocol's ``[data]`` table into a :class:`Dataset`;
the generators are plain functions of an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.spin_models import phase_targets, sample_triangle

KINDS = ("inline", "phase-triangle", "blobs")
MAX_SAMPLES = 10**6  # per split: bounds memory before anything is allocated


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """Training inputs/targets and optional test inputs/targets (rows are samples)."""

    inputs: np.ndarray | None
    targets: np.ndarray
    test_inputs: np.ndarray | None
    test_targets: np.ndarray | None


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


def _count(section: Mapping, key: str, default: int, source: str) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SAMPLES:
        raise QepValueError(f"{source}: 'data.{key}' must be an integer in [1, {MAX_SAMPLES}], not {value!r}")
    return value


def make_dataset(section: Mapping, hamiltonian: Hamiltonian, source: str = "<memory>") -> Dataset:
    """The data set described by a ``[data]`` table (``kind`` = inline | phase-triangle | blobs)."""
    d = dict(section)
    kind = d.get("kind", "inline")
    rng = np.random.default_rng(d.get("seed", 0))
    if kind == "inline":
        if "targets" not in d:
            raise QepValueError(f"{source}: 'data.targets' is required for inline data")

        def arr(key):
            if key not in d:
                return None
            try:
                value = np.atleast_2d(np.asarray(d[key], dtype=float))
            except (TypeError, ValueError):
                raise QepValueError(f"{source}: 'data.{key}' must be a rectangular table of numbers") from None
            if value.ndim != 2 or not np.all(np.isfinite(value)):
                raise QepValueError(f"{source}: 'data.{key}' must be a rectangular table of finite numbers")
            return value

        return Dataset(inputs=arr("inputs"), targets=arr("targets"), test_inputs=arr("test_inputs"),
                       test_targets=arr("test_targets"))
    if kind == "phase-triangle":
        train = sample_triangle(_count(d, "n_train", 1000, source), rng)
        test = sample_triangle(_count(d, "n_test", 200, source), rng)
        return Dataset(inputs=train, targets=phase_targets(train), test_inputs=test, test_targets=phase_targets(test))
    if kind == "blobs":
        n_in = len(hamiltonian.input_names)
        n_out = len(hamiltonian.outputs)
        if n_in < 1 or n_out != 1:
            raise QepValueError(f"{source}: 'blobs' data needs ≥ 1 input and exactly 1 output, "
                                f"the model has {n_in} and {n_out}")
        k, n_test = _count(d, "n_train", 100, source), _count(d, "n_test", 100, source)
        x, t = two_blobs(k + n_test, n_in, rng, separation=d.get("separation", 1.0), noise=d.get("noise", 0.5),
                         scale=d.get("input_scale", 1.0))
        return Dataset(inputs=x[:k], targets=t[:k], test_inputs=x[k:], test_targets=t[k:])
    raise QepValueError(f"{source}: 'data.kind' must be one of {KINDS}, not {kind!r}")
