"""Test and validation metrics of a Hamiltonian model's prepared states.

:func:`evaluate` scores exact expectations (no shot noise); :func:`validate` scores *measured*
outputs (projective shots per output setting, readout errors included, preparations counted),
which is what model selection on hardware can use.
"""

from __future__ import annotations

import numpy as np

from qep_analog.equilibrium.base import EquilibriumBackend
from qep_analog.errors import QepValueError
from qep_analog.learning.gradient import GradientConfig, measure_outputs, objective_value
from qep_analog.measurement.observables import output_expectations
from qep_analog.models.hamiltonian import Hamiltonian

METRICS = ("argmax", "sign", "none")


def evaluate(hamiltonian: Hamiltonian, backend: EquilibriumBackend, theta, inputs, targets,
             config: GradientConfig, metric: str = "argmax") -> dict:
    """Exact test metrics of the free equilibrium state (no shot noise).

    * ``loss``: the objective of ``config`` averaged over samples;
    * ``accuracy`` (``argmax``): the max-choice accuracy, argmax⟨O_ℓ⟩ = argmax t_ℓ;
      ``single_shot_accuracy``: the mean of ⟨O_correct⟩ — the probability that one shot of
      projector outputs names the right class;
    * ``accuracy`` (``sign``): sign⟨O_ℓ⟩ = sign t_ℓ for ±1 outputs such as Z.
    """
    if metric not in METRICS:
        raise QepValueError(f"'metric' must be one of {METRICS}, not {metric!r}")
    obj = config.objective
    inputs = np.atleast_2d(np.asarray(inputs, dtype=float)) if hamiltonian.input_names else None
    targets = np.atleast_2d(np.asarray(targets, dtype=float))
    losses, outputs = [], []
    for i, t in enumerate(targets):
        x = hamiltonian.input_vector(inputs[i] if inputs is not None else None)
        state = backend.prepare(hamiltonian, theta, x)
        outputs.append(output_expectations(hamiltonian, state))
        losses.append(objective_value(obj, hamiltonian, state, obj.check_targets(hamiltonian, t)))
    outputs = np.array(outputs)
    result = {"loss": float(np.mean(losses)), **_accuracy(outputs, targets, metric)}
    if metric == "argmax":
        result["single_shot_accuracy"] = float(np.mean(outputs[np.arange(len(targets)), np.argmax(targets, axis=1)]))
    return result


def _accuracy(outputs: np.ndarray, targets: np.ndarray, metric: str) -> dict:
    """{"accuracy": …} of outputs against targets (argmax or sign rule; nothing for "none")."""
    if metric == "argmax":
        return {"accuracy": float(np.mean(np.argmax(outputs, axis=1) == np.argmax(targets, axis=1)))}
    if metric == "sign":
        return {"accuracy": float(np.mean(np.all(np.sign(outputs) == np.sign(targets), axis=1)))}
    return {}


def validate(hamiltonian: Hamiltonian, backend: EquilibriumBackend, theta, inputs, targets,
             config: GradientConfig, *, shots: int | None, rng: np.random.Generator,
             metric: str = "argmax") -> dict:
    """Validation metrics from measured outputs (``shots`` per output setting; None = exact).

    * ``accuracy``: as in :func:`evaluate`, from the measured outputs (not for ``metric="none"``);
    * ``output_error``: the mean over samples of Σ_ℓ (y_ℓ − t_ℓ)², y the measured outputs;
    * ``preparations``: the state preparations spent (0 with exact outputs).
    """
    inputs = np.atleast_2d(np.asarray(inputs, dtype=float)) if hamiltonian.input_names else None
    targets = np.atleast_2d(np.asarray(targets, dtype=float))
    outputs, preparations = [], 0
    for i in range(len(targets)):
        x = hamiltonian.input_vector(inputs[i] if inputs is not None else None)
        y, n = measure_outputs(hamiltonian, backend.prepare(hamiltonian, theta, x), config, shots=shots, rng=rng)
        outputs.append(y)
        preparations += n
    outputs = np.array(outputs)
    return {"output_error": float(np.mean(np.sum((outputs - targets) ** 2, axis=1))), "preparations": preparations,
            **_accuracy(outputs, targets, metric)}
