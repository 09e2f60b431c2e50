"""A failed adiabatic preparation is a per-sample flag of its own (issue 14 item 3): recorded apart from level
crossings, and kept, shrunk (weight d₀/d in the batch mean) or dropped by ``preparation_policy``."""

import numpy as np
import pytest

from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium import get_backend
from qep_analog.errors import QepValueError
from qep_analog.learning.gradient import GradientConfig, estimate_gradient

# 4 atoms on MockDevice, one input (q0), output n_3; a 500 ns cosine ramp is far from adiabatic for some inputs
MODEL = RydbergModel(positions_um=[[0.0, 0.0], [9.0, 0.0], [4.5, 7.8], [13.5, 7.8]], device="MockDevice", omega=10.0,
                     detunings=[3.0, 4.0, 2.0, 3.0], input_atoms=(0,), output_atoms=(3,))
INPUTS = [[1.0], [-3.0], [4.0]]
TARGETS = [[1.0], [0.0], [1.0]]


def _backend(threshold):
    return get_backend("adiabatic", model=MODEL, duration_ns=500, schedule="cosine", emulator="krylov",
                       quality_check="second-ramp", quality_threshold=threshold)


def _estimate(policy, threshold):
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=0.5, shots=None,
                            preparation_policy=policy)
    return estimate_gradient(MODEL.hamiltonian(), _backend(threshold), MODEL.theta(), INPUTS, TARGETS, config)


@pytest.fixture(scope="module")
def distances():
    h, backend = MODEL.hamiltonian(), _backend(None)
    d = [backend.prepare(h, MODEL.theta(), x).info["preparation"]["second_ramp_distance"] for x in INPUTS]
    assert len(set(np.round(d, 6))) == len(d)  # distinct, so a threshold between them flags some samples only
    return np.array(d)


def test_flagged_preparations_are_recorded_apart_from_crossings(distances):
    threshold = float(np.median(distances))  # flags exactly the one sample above the median
    keep = _estimate("keep", threshold)
    flagged = [f["sample"] for f in keep.preparation_flags]
    assert flagged == [int(np.argmax(distances))]
    assert keep.preparation_flags[0]["distance"] == pytest.approx(distances.max())
    assert not [c for c in keep.crossings if c["kind"] in ("crossing", "flagged")]  # not a crossing
    assert keep.samples_used == 3 and keep.samples_dropped == 0
    # unflagged ("keep", threshold above every distance): the same plain mean over the same per-sample estimates
    plain = _estimate("keep", 1.0)
    assert not plain.preparation_flags
    assert np.array_equal(plain.gradient, keep.gradient)
    assert np.allclose(keep.gradient, keep.per_sample.mean(axis=0), rtol=0, atol=1e-15)


def test_shrink_weights_the_flagged_sample_and_drop_removes_it(distances):
    threshold = float(np.median(distances))
    keep, shrink, drop = (_estimate(p, threshold) for p in ("keep", "shrink", "drop"))
    bad = int(np.argmax(distances))
    weights = np.ones(3)
    weights[bad] = threshold / distances[bad]
    assert 0 < weights[bad] < 1 and shrink.preparation_flags[0]["weight"] == pytest.approx(weights[bad])
    assert np.allclose(shrink.gradient, weights @ keep.per_sample / weights.sum(), rtol=1e-12, atol=1e-14)
    good = [i for i in range(3) if i != bad]
    assert drop.samples_dropped == 1 and drop.samples_used == 2
    assert np.allclose(drop.gradient, keep.per_sample[good].mean(axis=0), rtol=1e-12, atol=1e-14)
    assert drop.preparation_flags[0]["action"] == "dropped"
    assert not np.allclose(drop.gradient, keep.gradient)  # the flagged sample did carry weight


def test_unknown_preparation_policy_is_refused():
    with pytest.raises(QepValueError, match="preparation_policy"):
        GradientConfig(preparation_policy="ignore")
