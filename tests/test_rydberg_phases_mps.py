"""The Rydberg phase sensor beyond exact diagonalisation: DMRG (``mps``) labels and gradients against the exact
route at small N, the size limits, the label cache, and the 25-atom protocol (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from qep_analog.device.devices import load_device
from qep_analog.equilibrium.exact import ExactBackend
from qep_analog.equilibrium.mps import MPSBackend
from qep_analog.errors import QepValueError
from qep_analog.learning.driver import Draw
from qep_analog.learning.gradient import GradientConfig
from qep_analog.tasks.rydberg_chain import ChainSpec, chain_order, order_parameters, structure_factors
from qep_analog.tasks.rydberg_phases import RydbergPhaseTask
from qep_analog.tasks.rydberg_phases_run import cached_chain_order

MOCK = load_device("MockDevice")
C6 = float(MOCK.interaction_coeff)
# one point deep in each phase, one near each boundary of the N = 7 labels, and the box's largest R_b/a
POINTS = np.array([[-1.0, 1.5], [3.0, 1.5], [3.5, 2.8], [0.8, 1.5], [2.0, 2.1], [3.0, 1.1], [0.5, 2.7]])
MPS = MPSBackend(max_bond=64, cutoff=1e-10, energy_tol=1e-8, variance_tol=1e-4)


def test_structure_factors_from_correlations_equal_the_bitstring_sum():
    """m_k from ⟨n_j⟩, ⟨n_j n_l⟩ is the same number as the Born-weighted sum over bitstrings, for any state."""
    n = 6
    rng = np.random.default_rng(3)
    bits = ((np.arange(2**n)[:, None] >> (n - 1 - np.arange(n))) & 1).astype(float)
    for _ in range(5):
        p = rng.random(2**n) ** 4
        p /= p.sum()
        density, pair = p @ bits, bits.T @ (p[:, None] * bits)
        assert structure_factors(density, pair) == pytest.approx(order_parameters(p, n), rel=1e-12, abs=1e-14)
    with pytest.raises(QepValueError, match="pair"):
        structure_factors(np.zeros(3), np.zeros((3, 4)))


@pytest.mark.parametrize("n_atoms", [7, 9])
def test_mps_labels_match_the_exact_labels(n_atoms: int):
    exact = chain_order(ChainSpec(n_atoms=n_atoms, c6=C6), POINTS)
    mps = chain_order(ChainSpec(n_atoms=n_atoms, c6=C6, ground_states="mps"), POINTS, MPS)
    np.testing.assert_allclose(mps, exact, atol=2e-6)


def test_size_limits_follow_the_ground_state_route():
    assert ChainSpec(n_atoms=51, c6=C6, ground_states="mps").n_atoms == 51
    with pytest.raises(QepValueError, match="'chain.n_atoms' must be an integer in \\[3, 16\\]"):
        ChainSpec(n_atoms=25, c6=C6)
    with pytest.raises(QepValueError, match="'chain.ground_states'"):
        ChainSpec(n_atoms=7, ground_states="dmrg")
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=0.3)
    spec = ChainSpec(n_atoms=25, c6=C6, ground_states="mps")
    kwargs = dict(chain=spec, device=MOCK, offsets=[[-1.8, 0.0], [-2.6, 0.8]], detunings=[0.0, -1.6], config=config,
                  inputs=POINTS[:1], labels=[0])
    with pytest.raises(QepValueError, match="'chain.n_atoms' = 25 needs \\[backend\\] name = 'mps'"):
        RydbergPhaseTask(backend=ExactBackend(), **kwargs)
    task = RydbergPhaseTask(backend=MPSBackend(), **kwargs)
    assert task.backend.order == (26, 25, *range(25))  # the sensor next to chain atom 0 on the MPS


def _task(backend, n_atoms: int, shots=None) -> RydbergPhaseTask:
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=0.3, shots=shots,
                            crossing_policy="shrink", overlap_threshold=0.5)
    spec = ChainSpec(n_atoms=n_atoms, c6=C6, ground_states="exact" if n_atoms <= 16 else "mps")
    labels = np.array([0, 1, 2, 1, 2, 0, 0])
    return RydbergPhaseTask(chain=spec, device=MOCK, offsets=[[-1.6, 0.4], [-2.5, 1.1]], detunings=[-1.2, -2.6],
                            backend=backend, config=config, inputs=POINTS, labels=labels)


def test_mps_gradient_matches_the_exact_gradient():
    """One QEP sample per phase region at N = 7 + 2 (exact expectations, β = 0.3): mps against exact."""
    exact, mps = _task(ExactBackend(), 7), _task(MPS, 7)
    theta = exact.theta_of(exact.offsets, exact.detunings)
    for k in (1, 2, 4, 5):
        batch = np.array([k])
        g_exact = exact.gradient(theta, batch, Draw(1, 0))
        g_mps = mps.gradient(theta, batch, Draw(1, 0))
        assert g_mps.dropped == 0 and g_mps.crossings == 0
        np.testing.assert_allclose(g_mps.gradient, g_exact.gradient, atol=1e-5 * (1 + np.abs(g_exact.gradient).max()))
        assert g_mps.loss == pytest.approx(g_exact.loss, abs=1e-6)
    np.testing.assert_allclose(mps.outcome_probabilities(theta, POINTS), exact.outcome_probabilities(theta, POINTS),
                               atol=1e-6)


def test_label_cache_reads_back_what_it_wrote(tmp_path):
    spec = ChainSpec(n_atoms=5, c6=C6)
    first = cached_chain_order(spec, POINTS[:3], cache=str(tmp_path))
    files = list(tmp_path.glob("chain_order_*.npz"))
    assert len(files) == 1
    np.testing.assert_array_equal(first, chain_order(spec, POINTS[:3]))
    np.testing.assert_array_equal(cached_chain_order(spec, POINTS[:3], cache=str(tmp_path)), first)
    cached_chain_order(spec, POINTS[:2], cache=str(tmp_path))  # other points: another file
    assert len(list(tmp_path.glob("chain_order_*.npz"))) == 2


@pytest.mark.slow
def test_25_atom_chain_labels_and_one_gradient_step():
    """N = 25 (+ 2 sensor atoms): DMRG labels deep in each phase, and one batch of QEP samples without a dropped
    or flagged nudged phase; the sensor at one end reads the same outcomes as at N = 7 deep in the phases."""
    spec = ChainSpec(n_atoms=25, c6=C6, ground_states="mps")
    from qep_analog.tasks.rydberg_chain import chain_labels

    assert chain_labels(spec, [[-1.0, 1.5], [3.0, 1.5], [3.5, 2.8]], backend=MPS).tolist() == [0, 1, 2]
    big, small = _task(MPS, 25, shots=100), _task(ExactBackend(), 7)
    theta = big.theta_of(big.offsets, big.detunings)
    est = big.gradient(theta, np.array([0, 1, 2]), Draw(1, 0))
    assert est.dropped == 0 and est.crossings == 0 and est.preparations == 3 * 3 * 100
    deep = POINTS[:3]
    np.testing.assert_allclose(big.outcome_probabilities(theta, deep), small.outcome_probabilities(theta, deep),
                               atol=2e-2)
