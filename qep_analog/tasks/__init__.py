"""The papers' tasks as ready protocols, run by ``qep-analog train`` (see :mod:`qep_analog.train`).

Each task is ``run(ctx) -> dict`` (see :mod:`qep_analog.tasks.common`), chosen by the protocol's
``[protocol] task = ...``:

=============== ============================================================================
phase-sensor    Wanjura–Marquardt phase sensor on the cluster-Ising triangle (supervised)
classifier      a spin network classifying 2-feature data, next to logistic regression
exploration     maximise ⟨X₀X₄⟩ on the open cluster-Ising slice (unsupervised)
sensitivity     maximise |Δ⟨X₀X₄⟩/Δg_X| between two points sharing g_ZZ (unsupervised)
oscillator-regression  the quantum harmonic-oscillator network regression (Scellier)
rydberg-classifier     the flagship: a Rydberg-array classifier (positions + DMM detunings), exported as a bundle
rydberg-phases         a 2-atom Rydberg sensor recognising a Rydberg chain's phase (disordered, Z2, Z3)
inverse-design         positions + DMM detunings whose ground state has a target Z2 order (QEP or finite differences)
=============== ============================================================================

Every task builds a task object (parameters, ``gradient``, optionally ``evaluate``, ``validate``,
``project``) and runs it through the one driver (:func:`qep_analog.tasks.common.drive`).
"""

from __future__ import annotations

from qep_analog.tasks.inverse_design import run_inverse_design
from qep_analog.tasks.oscillator import run_oscillator
from qep_analog.tasks.rydberg import run_rydberg
from qep_analog.tasks.rydberg_phases_run import run_rydberg_phases
from qep_analog.tasks.supervised import run_classifier, run_phase_sensor
from qep_analog.tasks.unsupervised import run_exploration, run_sensitivity

TASKS = {
    "phase-sensor": run_phase_sensor,
    "classifier": run_classifier,
    "exploration": run_exploration,
    "sensitivity": run_sensitivity,
    "oscillator-regression": run_oscillator,
    "rydberg-classifier": run_rydberg,
    "inverse-design": run_inverse_design,
    "rydberg-phases": run_rydberg_phases,
}

# tasks whose steps hold independent work (samples × phases) for an executor; the others run serially
PARALLEL_TASKS = ("phase-sensor", "classifier", "rydberg-classifier", "rydberg-phases")

__all__ = ["PARALLEL_TASKS", "TASKS"]
