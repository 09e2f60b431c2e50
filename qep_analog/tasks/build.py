"""Protocol sections → physics objects: the model, the data set, the gradient configuration, the backend.

The task layer turns validated protocol sections into the objects of the layers below. Every
unknown key or impossible value raises one :class:`~qep_analog.errors.QepValueError` naming it.
"""

from __future__ import annotations

from typing import Any

from qep_analog.datasets import Dataset, make_dataset
from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.spin_models import (
    cluster_chain_slice,
    cluster_phase_sensor,
    massar_mognetti,
    transverse_field_ising,
)
from qep_analog.protocol import Protocol


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


def build_data(protocol: Protocol, hamiltonian: Hamiltonian) -> Dataset:
    """The protocol's ``[data]`` set (:func:`qep_analog.datasets.make_dataset`)."""
    return make_dataset(protocol.section("data"), hamiltonian, protocol.source)


def build_gradient_config(protocol: Protocol, **overrides):
    """GradientConfig from ``[gradient]`` (``p_false_pos``/``p_false_neg`` form a ReadoutError)."""
    from qep_analog.learning.gradient import GradientConfig
    from qep_analog.measurement.sampling import ReadoutError

    g = protocol.section("gradient")
    g.update({k: v for k, v in overrides.items() if v is not None})
    where = f"{protocol.source}: [gradient]"
    for key, (low, high) in GRADIENT_BOUNDS.items():
        value = g.get(key)
        if value is not None and not (isinstance(value, (int, float)) and low <= value <= high):
            raise QepValueError(f"{where} 'gradient.{key}' must lie in [{low:g}, {high:g}], not {value!r}")
    try:
        fp, fn = g.pop("p_false_pos", 0.0), g.pop("p_false_neg", 0.0)
        if fp or fn:
            g["readout"] = ReadoutError(p_false_pos=fp, p_false_neg=fn)
        return GradientConfig(**g)
    except QepValueError as exc:
        raise QepValueError(f"{where} {exc}") from None


# documented upper bounds, checked before anything is allocated (shots bound memory and time)
GRADIENT_BOUNDS = {"beta": (0.0, 1e4), "shots": (1, 10**8), "loss_scale": (0.0, 1e6), "fd_step": (0.0, 1e3),
                   "overlap_threshold": (0.0, 1.0), "max_halvings": (0, 30), "pilot_shots": (1, 10**8),
                   "shot_budget": (1, 10**10), "beta_min": (0.0, 1e4)}


def build_backend(protocol: Protocol, **context):
    """The equilibrium backend named in ``[backend]`` with its ``options`` table."""
    from qep_analog.equilibrium.base import get_backend

    b = protocol.section("backend")
    return get_backend(b.get("name", "exact"), **{**b.get("options", {}), **context})
