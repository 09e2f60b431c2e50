"""Measurement layer: settings (bases), bitstrings, readout errors and estimators."""

from qep_analog.measurement.estimate import Estimate, estimate_products, product_outcomes
from qep_analog.measurement.grouping import Setting, group_qubitwise, qubitwise_compatible
from qep_analog.measurement.sampling import (
    ReadoutError,
    basis_probabilities,
    bits_to_counts,
    counts_to_bits,
    rotate_to_basis,
    sample_bitstrings,
)

__all__ = [
    "Estimate", "ReadoutError", "Setting", "basis_probabilities", "bits_to_counts", "counts_to_bits",
    "estimate_products", "group_qubitwise", "product_outcomes", "qubitwise_compatible",
    "rotate_to_basis", "sample_bitstrings",
]
