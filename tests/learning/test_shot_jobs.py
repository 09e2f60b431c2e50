"""The Rydberg training report's jobs follow the runs actually made (issue 17 part 4, the shot bill).

A job runs one sequence at most ``max_runs_per_job`` times; a pilot and the rest of the same phase are two
submissions. The reference counts are computed here without the code under test: in closed form for the
uniform and ``even`` allocations, and for every allocation from a spy on the sampler, where each call is one
run of a prepared sequence on the device (a Z-basis setting measured ``shots`` times).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from qep_analog.device import lab as lab_module
from qep_analog.device.lab import LabMetadata
from qep_analog.errors import QepValueError
from qep_analog.learning import meter as meter_module
from qep_analog.learning.shots import sequence_runs
from qep_analog.train import run_training

LAB = LabMetadata(shot_rate_hz=0.5, price_per_shot=2.0, currency="EUR", max_runs_per_job=7)
M, PILOT, BATCH, STEPS = 20, 3, 2, 2
BASE = ['backend.name="exact"', "backend.options={}", "data.n_train=8", "data.n_test=4", f"training.batch_size={BATCH}",
        f"training.steps={STEPS}", f"training.eval_every={STEPS}", f"gradient.shots={M}"]
ALLOCATIONS = {
    "uniform": [],
    "even": ['gradient.shot_allocation="even"', f"gradient.pilot_shots={PILOT}"],
    "variance": ['gradient.shot_allocation="variance"', f"gradient.pilot_shots={PILOT}"],
    "adaptive": ["gradient.adaptive_beta=true", f"gradient.pilot_shots={PILOT}", "gradient.beta=2.0"],
}


def _jobs(runs) -> int:
    return sum(math.ceil(m / LAB.max_runs_per_job) for m in runs)


def _closed_form(allocation: str) -> list[int] | None:
    """Shots of each run of the whole training, by hand (one Z setting per phase, no sample dropped)."""
    if allocation == "uniform":  # free, +β, −β: one run of M each
        return [M] * (STEPS * BATCH * 3)
    if allocation == "even":  # 3 pilot runs of m₀, then the rest of the uniform budget split over the 2·BATCH legs
        rest = 3 * M * BATCH - 3 * PILOT * BATCH
        legs = 2 * BATCH
        q, r = divmod(rest, legs)
        per_step = [PILOT] * (3 * BATCH) + [q + 1] * r + [q] * (legs - r)
        return per_step * STEPS
    return None  # variance / adaptive: the rest depends on the measured pilot


@pytest.fixture()
def spy(monkeypatch):
    """Every sampler call (one run of a prepared sequence), with its shots; the test lab's rates."""
    calls: list[int] = []
    original = meter_module.sample_bitstrings

    def counting(state, basis, shots, rng, readout=None):
        calls.append(int(shots))
        return original(state, basis, shots, rng, readout)

    monkeypatch.setattr(meter_module, "sample_bitstrings", counting)
    monkeypatch.setattr(lab_module, "lab_metadata", lambda name: LAB)
    return calls


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize("allocation", list(ALLOCATIONS))
def test_the_bill_counts_one_job_per_run_made(tmp_path, spy, allocation):
    res = run_training("protocols/rydberg_classifier.toml", out_dir=tmp_path / allocation, progress=False,
                       overrides=BASE + ALLOCATIONS[allocation])
    bill = res["final"]["shot_bill"]
    made = list(spy)
    assert sum(made) == res["final"]["preparations"] == 3 * M * BATCH * STEPS  # the uniform budget, every mode
    expected = _closed_form(allocation)
    if expected is not None:
        assert sorted(made) == sorted(expected)
    per_sample_step = {"uniform": 3, "even": 5, "variance": 5, "adaptive": 7}[allocation]
    assert len(made) <= per_sample_step * BATCH * STEPS  # a rest of 0 shots (Neyman share 0) is no run
    if allocation in ("uniform", "even"):
        assert len(made) == per_sample_step * BATCH * STEPS
    assert bill["shots"] == sum(made) and bill["jobs"] == _jobs(made) and bill["sequences"] == len(made)
    assert bill["max_runs_per_job"] == LAB.max_runs_per_job
    assert bill["hours"] == pytest.approx(sum(made) / LAB.shot_rate_hz / 3600.0, rel=1e-12)
    assert bill["cost"] == pytest.approx(sum(made) * LAB.price_per_shot, rel=1e-12)
    staged = allocation != "uniform"
    assert all(("runs" in r) == staged for r in res["history"] if r["step"] > 0)  # uniform: records unchanged
    if allocation == "even":  # the old count (one run of M per sample and phase) missed the split: 36 jobs, not 44
        assert _jobs([M] * (3 * BATCH * STEPS)) == 36 and bill["jobs"] == 12 * 1 + 8 * 4 == 44


def test_sequence_runs_reads_records_and_refuses_overcounts():
    history = [{"step": 0, "preparations": 0}, {"step": 1, "preparations": 60, "runs": [3, 3, 3, 25, 26]},
               {"step": 2, "preparations": 100}]
    assert sequence_runs(history, 20) == [3, 3, 3, 25, 26, 20, 20, 20, 20, 20]
    with pytest.raises(QepValueError, match="more than its 10 preparations"):
        sequence_runs([{"step": 1, "preparations": 10, "runs": [6, 6]}], 5)
    with pytest.raises(QepValueError, match="gradient.shots"):
        sequence_runs(history, 0)
    assert np.array_equal(sequence_runs([], 5), [])


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_the_inverse_design_bill_counts_the_split_runs_too(tmp_path, spy):
    """One sample per step: 3 pilot runs of m₀, then the rest of 3M split over the ±β legs (2 runs)."""
    over = ["device.positions_um=[[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]]",
            "device.detunings=[0.0, 0.0, 0.0, 0.0]", f"training.steps={STEPS}", f"gradient.shots={M}",
            'gradient.shot_allocation="even"', f"gradient.pilot_shots={PILOT}"]
    res = run_training("protocols/inverse_design.toml", out_dir=tmp_path / "design", progress=False, overrides=over)
    bill = res["final"]["shot_bill"]
    q, r = divmod(3 * M - 3 * PILOT, 2)
    expected = ([PILOT] * 3 + [q + r, q]) * STEPS
    assert sorted(spy) == sorted(expected) and bill["shots"] == sum(expected) == 3 * M * STEPS
    assert bill["jobs"] == _jobs(expected) == STEPS * (3 + 4 + 4)
    assert bill["cost"] == pytest.approx(sum(expected) * LAB.price_per_shot, rel=1e-12)
