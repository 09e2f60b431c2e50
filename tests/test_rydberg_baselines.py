"""The blind (Δ/Ω-only) baselines of the Rydberg phase sensor task."""

import itertools

import numpy as np

from qep_analog.tasks.rydberg_phases_run import detuning_only_baseline, detuning_threshold_baseline


def _brute_force(x, y, xt, yt) -> float:
    """Every pair of thresholds between distinct training values (and ±∞), each interval its majority label;
    the first best pair in (lower, upper) order, scored on the test set."""
    values = np.unique(x)
    candidates = [-np.inf, *((values[:-1] + values[1:]) / 2), np.inf]
    best, best_rule = -1, None
    for lo, hi in itertools.combinations_with_replacement(candidates, 2):
        parts = [y[x < lo], y[(x >= lo) & (x < hi)], y[x >= hi]]
        labels = [int(np.argmax(np.bincount(p, minlength=3))) if len(p) else 0 for p in parts]
        correct = sum(int(np.sum(p == lab)) for p, lab in zip(parts, labels, strict=True))
        if correct > best:
            best, best_rule = correct, (lo, hi, labels)
    lo, hi, labels = best_rule
    pred = np.where(xt < lo, labels[0], np.where(xt < hi, labels[1], labels[2]))
    return float(np.mean(pred == yt))


def test_threshold_baseline_is_the_best_two_threshold_rule():
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = np.round(rng.uniform(-1, 4, (25, 2)), 1)  # ties in Δ/Ω
        y = rng.integers(0, 3, 25)
        xt = rng.uniform(-1, 4, (40, 2))
        yt = rng.integers(0, 3, 40)
        assert detuning_threshold_baseline(x, y, xt, yt) == _brute_force(x[:, 0], y, xt[:, 0], yt)


def test_threshold_baseline_reads_interval_labels_exactly_and_cannot_see_rb():
    rng = np.random.default_rng(0)
    x, xt = rng.uniform(-1, 4, (400, 2)), rng.uniform(-1, 4, (200, 2))

    def intervals(p):
        return np.where(p[:, 0] < 1.0, 0, np.where(p[:, 0] < 2.5, 1, 2))

    assert detuning_threshold_baseline(x, intervals(x), xt, intervals(xt)) == 1.0

    def by_rb(p):  # Z2 / Z3 decided by R_b/a alone above Δ/Ω = 1: a Δ/Ω reader must miss one of them
        return np.where(p[:, 0] < 1.0, 0, np.where(p[:, 1] > 1.9, 2, 1))

    yt = by_rb(xt)
    ceiling = _brute_force(xt[:, 0], yt, xt[:, 0], yt)  # the best Δ/Ω rule fitted on the test points themselves
    assert ceiling < 0.8  # about a third of the test points are Z3 above Δ/Ω = 1, mixed with Z2 at every Δ/Ω
    acc = detuning_threshold_baseline(x, by_rb(x), xt, yt)
    assert np.mean(yt == 0) < acc <= ceiling
    assert detuning_only_baseline(x, by_rb(x), xt, yt) < 0.8


def test_threshold_baseline_refuses_an_empty_training_set():
    import pytest

    from qep_analog.errors import QepValueError

    with pytest.raises(QepValueError, match="at least one training point"):
        detuning_threshold_baseline(np.zeros((0, 2)), np.zeros(0, dtype=int), np.zeros((3, 2)), np.zeros(3, dtype=int))
