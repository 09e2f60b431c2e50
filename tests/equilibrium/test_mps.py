"""The ``mps`` backend against ``exact`` on small random Rydberg registers (1D and 2D, DMM detunings, inputs)."""

import numpy as np
import pytest
from scipy import stats

from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium import get_backend
from qep_analog.equilibrium.mpo import snake_order
from qep_analog.equilibrium.mps_state import MPSState
from qep_analog.learning.gradient import GradientConfig, estimate_gradient
from qep_analog.measurement.observables import derivative_expectations, output_expectations
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliProduct, PauliSum

TIGHT = dict(cutoff=1e-14, energy_tol=1e-12, mpo_cutoff=1e-14)


def _register(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "chain":
        pos = np.c_[np.arange(8) * 6.5, np.zeros(8)]
    else:  # a 2 × 5 ladder, listed row by row (the snake order differs from the given one)
        pos = np.array([[6.5 * i, 7.0 * j] for j in range(2) for i in range(5)], dtype=float)
    return pos + rng.uniform(-0.4, 0.4, size=pos.shape)


def _model(kind: str, seed: int) -> RydbergModel:
    rng = np.random.default_rng(seed)
    pos = _register(kind, rng)
    n = len(pos)
    return RydbergModel(positions_um=pos, device="AnalogDevice", omega=2 * np.pi,
                        detunings=2 * np.pi * rng.uniform(0.8, 2.0, size=n), input_atoms=(0, 1),
                        output_atoms=(n - 1, n - 2))


@pytest.mark.parametrize("kind, seed", [("chain", 1), ("ladder", 2)])
def test_ground_energy_derivatives_and_outputs_match_exact(kind, seed):
    model = _model(kind, seed)
    h, theta, x = model.hamiltonian(), model.theta(), model.inputs([0.7, -0.4])
    exact = get_backend("exact").prepare(h, theta, x)
    mps = get_backend("mps", model=model, **TIGHT).prepare(h, theta, x)
    assert isinstance(mps, MPSState) and not mps.flagged
    assert abs(mps.energy - exact.energy) <= 1e-8 * abs(exact.energy)
    assert mps.info["variance"] < 1e-8
    np.testing.assert_allclose(derivative_expectations(h, mps), derivative_expectations(h, exact), atol=1e-6)
    np.testing.assert_allclose(output_expectations(h, mps), output_expectations(h, exact), atol=1e-6)
    assert abs(abs(np.vdot(mps.to_dense(), exact.state)) - 1) < 1e-8
    if kind == "ladder":
        assert mps.info["order"] == "snake" and mps.info["qubit_order"] != list(range(h.n_qubits))


def test_expectations_of_arbitrary_products_match_exact_in_any_site_order():
    model = _model("ladder", 3)
    h, theta, x = model.hamiltonian(), model.theta(), model.inputs([0.2, 0.5])
    exact = get_backend("exact").prepare(h, theta, x)
    products = [PauliProduct.parse(t) for t in ["X0", "Y3", "Z9", "n2 n7", "X0 X1", "Z0 Y5 n9", "X4 Z6 X8", "I"]]
    for order in ("given", "fiedler", (9, 1, 4, 0, 2, 8, 3, 7, 5, 6)):
        mps = get_backend("mps", order=order, **TIGHT).prepare(h, theta, x)
        np.testing.assert_allclose(mps.expect(products), exact.expect(products), atol=1e-7)


def test_snake_order_on_a_ladder_alternates_columns():
    pos = np.array([[6.0 * i, 5.0 * j] for j in range(3) for i in range(4)])  # 4 columns of 3, row by row
    order = snake_order(pos)
    assert order == [0, 4, 8, 9, 5, 1, 2, 6, 10, 11, 7, 3]


def test_symmetric_qep_gradient_matches_exact_backend_at_the_same_beta():
    model = _model("chain", 4)
    h, theta = model.hamiltonian(), model.theta()
    inputs, targets = np.array([[0.5, -0.3], [-0.2, 0.8]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=0.2)
    ref = estimate_gradient(h, get_backend("exact"), theta, inputs, targets, config)
    est = estimate_gradient(h, get_backend("mps", model=model, **TIGHT), theta, inputs, targets, config)
    assert est.samples_used == 2 and not est.crossings
    assert np.linalg.norm(est.gradient - ref.gradient) <= 1e-5 * np.linalg.norm(ref.gradient)
    assert est.loss == pytest.approx(ref.loss, rel=1e-8)


@pytest.mark.parametrize("basis", ["ZZZZZZ", "XZYZXZ"])
def test_sampled_histogram_passes_chi2_against_exact_probabilities(basis):
    model = _model("chain", 5).with_(positions_um=np.c_[np.arange(6) * 6.5, np.zeros(6)], detunings=np.full(6, 9.0),
                                     input_atoms=(), output_atoms=(5,))
    h, theta = model.hamiltonian(), model.theta()
    exact = get_backend("exact").prepare(h, theta, None)
    mps = get_backend("mps", **TIGHT).prepare(h, theta, None)
    shots = 20000
    bits = mps.sample(basis, shots, np.random.default_rng(11))
    index = bits @ (1 << np.arange(5, -1, -1))
    observed = np.bincount(index, minlength=64)
    from qep_analog.measurement import basis_probabilities

    expected = basis_probabilities(exact.state, basis) * shots
    keep = expected >= 5  # pool the rare outcomes into one bin
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-3


def test_level_crossing_under_the_nudge_is_detected_as_in_exact():
    # two nearly degenerate ground states (|0000⟩ and |1000⟩ split by 0.02); the nudge flips their order
    h = Hamiltonian.build(4, [
        dict(name="bias0", operator="Z0", coefficient=-0.01), dict(name="x0", operator="X0", coefficient=0.001),
        dict(name="zz", operator="Z1 Z2", role="trainable", parameter="J"),
        dict(name="x1", operator="X1", coefficient=0.3), dict(name="zz23", operator="Z2 Z3", coefficient=-1.0),
        dict(name="z3", operator="Z3", coefficient=-0.5),
    ], outputs={"z0": "Z0"})
    config = GradientConfig(estimator="symmetric", nudge="error-signal", beta=0.5, crossing_policy="drop")
    events = []
    for backend in (get_backend("exact"), get_backend("mps", **TIGHT)):
        est = estimate_gradient(h, backend, [-1.0], None, [[-1.0]], config)
        events.append([(c["phase"], c["kind"], c.get("action")) for c in est.crossings])
        assert est.samples_dropped == 1
    assert events[0] == events[1] and events[0]


def test_truncation_beyond_max_bond_is_flagged_not_silently_accepted():
    model = _model("ladder", 6)
    h, theta, x = model.hamiltonian(), model.theta(), model.inputs([0.0, 0.0])
    small = get_backend("mps", model=model, max_bond=2, **TIGHT).prepare(h, theta, x)
    assert small.flagged and "truncation" in small.info["flags"] and small.info["max_bond_reached"] == 2
    full = get_backend("mps", model=model, **TIGHT).prepare(h, theta, x)
    assert not full.flagged and full.info["truncation"] == 0.0


def test_flagged_nudged_phase_is_treated_as_a_crossing():
    model = _model("chain", 7)
    h, theta = model.hamiltonian(), model.theta()
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=0.2, crossing_policy="drop")
    # an unreachable variance tolerance (no refinement: at cutoff 0 the computed variance can round to 0) flags
    # every phase; the free phase is recorded, the nudged ones drop
    est = estimate_gradient(h, get_backend("mps", variance_tol=0.0, variance_refinements=0, energy_tol=1e-6), theta,
                            [[0.1, 0.2]],
                            [[1.0, 0.0]], config)
    kinds = {(c["phase"], c["kind"]) for c in est.crossings}
    assert ("free", "flagged") in kinds and ("+beta", "crossing") in kinds and est.samples_dropped == 1


def test_bitwise_reproducible_from_a_seed():
    model = _model("chain", 8)
    h, theta, x = model.hamiltonian(), model.theta(), model.inputs([0.3, 0.3])
    runs = []
    for _ in range(2):
        state = get_backend("mps", model=model).prepare(h, theta, x)
        runs.append((state.tensors, state.sample("ZZZZZZZZ", 300, np.random.default_rng(5))))
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][0], runs[1][0], strict=True))
    assert np.array_equal(runs[0][1], runs[1][1])


def test_warm_started_nudged_phase_matches_a_cold_start():
    model = _model("chain", 9)
    h, theta, x = model.hamiltonian(), model.theta(), model.inputs([0.4, -0.1])
    backend = get_backend("mps", model=model, **TIGHT)
    free = backend.prepare(h, theta, x)
    nudge = PauliSum(((0.3, PauliProduct.parse("n7")),))
    warm = backend.prepare(h, theta, x, nudge, reference=free)
    cold = backend.prepare(h, theta, x, nudge)
    assert warm.info["warm_start"] and not cold.info["warm_start"]
    assert abs(warm.energy - cold.energy) < 1e-9 and warm.overlap(cold) == pytest.approx(1.0, abs=1e-8)
    assert free.overlap(warm) == pytest.approx(abs(np.vdot(free.to_dense(), warm.to_dense())), abs=1e-12)
