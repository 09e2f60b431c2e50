"""Estimates from shots: a small frozen record and product estimators."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qep_analog.measurement.sampling import ReadoutError
from qep_analog.models.pauli import PauliProduct


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """A shot estimate: mean, standard error of the mean and the shots it used."""

    mean: float
    stderr: float
    shots: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.stderr:.3f}"


def product_outcomes(bits: np.ndarray, products: Sequence[PauliProduct],
                     readout: ReadoutError | None = None) -> np.ndarray:
    """Per-shot values of each product (products × shots), optionally readout-mitigated.

    ``bits`` must have been measured in a basis compatible with every product.
    With ``readout`` given, each qubit's ±1 outcome is replaced by its unbiased inverse-confusion
    value, so means stay unbiased (at a larger variance).
    """
    if readout is None:
        return np.array([p.outcome_values(bits) for p in products])
    signs = readout.mitigated_signs(bits)
    out = np.ones((len(products), bits.shape[0]))
    for k, p in enumerate(products):
        for q, letter in p.factors:
            out[k] *= (1.0 - signs[:, q]) / 2.0 if letter == "n" else signs[:, q]
    return out


def estimate_products(bits: np.ndarray, products: Sequence[PauliProduct],
                      readout: ReadoutError | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(means, standard errors) of each product from the same shots."""
    values = product_outcomes(bits, products, readout)
    shots = bits.shape[0]
    means = values.mean(axis=1)
    stderr = values.std(axis=1, ddof=1) / np.sqrt(shots) if shots > 1 else np.full(len(products), np.nan)
    return means, stderr
