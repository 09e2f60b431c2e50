"""Rydberg device layer: pulser devices, registers, DMM detuning maps, adiabatic sequences, bundles.

This layer (and :mod:`qep_analog.equilibrium.adiabatic`) is the only place that imports pulser.
Conventions (PHYSICS.md §3): H = Σ_i (Ω/2)(cos φ X_i + sin φ Y_i) − Σ_i δ_i n_i + Σ_{i<j} C6/r_ij⁶ n_i n_j,
with g = |0⟩, r = |1⟩, n = (1 − Z)/2, Ω and δ in rad/µs, positions in µm, times in ns.
"""

import importlib

_EXPORTS = {
    "DetuningPlan": "dmm", "plan_detunings": "dmm", "Embedding": "embedding", "embed_couplings": "embedding",
    "RydbergModel": "rydberg", "RampSpec": "sequences", "build_sequence": "sequences",
    "model_sequence": "sequences", "device_limits": "devices", "list_devices": "devices", "load_device": "devices",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # lazy: importing the package (e.g. for the CLI's [device] section) must not import pulser
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"qep_analog.device.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'qep_analog.device' has no attribute {name!r}")
