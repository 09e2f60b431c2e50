"""Rydberg device layer: pulser devices, registers, DMM detuning maps, adiabatic sequences, bundles.

This layer (and :mod:`qep_analog.equilibrium.adiabatic`) is the only place that imports pulser.
Conventions (PHYSICS.md §3): H = Σ_i (Ω/2)(cos φ X_i + sin φ Y_i) − Σ_i δ_i n_i + Σ_{i<j} C6/r_ij⁶ n_i n_j,
with g = |0⟩, r = |1⟩, n = (1 − Z)/2, Ω and δ in rad/µs, positions in µm, times in ns.
"""

from qep_analog.device.devices import device_limits, list_devices, load_device
from qep_analog.device.dmm import DetuningPlan, plan_detunings
from qep_analog.device.embedding import Embedding, embed_couplings
from qep_analog.device.rydberg import RydbergModel
from qep_analog.device.sequences import RampSpec, build_sequence, model_sequence

__all__ = [
    "DetuningPlan",
    "Embedding",
    "RampSpec",
    "RydbergModel",
    "build_sequence",
    "device_limits",
    "embed_couplings",
    "list_devices",
    "load_device",
    "model_sequence",
    "plan_detunings",
]
