"""Settings, sampling, estimates and readout errors, statistically."""

import numpy as np
import pytest

from qep_analog.errors import QepValueError
from qep_analog.measurement import (
    ReadoutError,
    basis_probabilities,
    bits_to_counts,
    counts_to_bits,
    estimate_products,
    group_qubitwise,
    qubitwise_compatible,
    sample_bitstrings,
)
from qep_analog.models.pauli import PauliProduct, ProductTable
from qep_analog.models.spin_models import cluster_phase_sensor, transverse_field_ising


def _random_state(rng, n):
    psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    return psi / np.linalg.norm(psi)


@pytest.mark.parametrize("model, expected", [
    (transverse_field_ising(6, input_qubits=[0], output_qubits=[5]), 2),
    (cluster_phase_sensor(), 9),
])
def test_settings_are_qubitwise_commuting_and_minimal(model, expected):
    products = model.derivative_map[0].products
    settings = group_qubitwise(products, model.n_qubits)
    assert len(settings) == expected
    covered = sorted(i for s in settings for i in s.members)
    assert covered == list(range(len(products)))
    for s in settings:
        members = [products[i] for i in s.members]
        for i, a in enumerate(members):
            assert all(s.basis[q] == letter for q, letter in a.basis.items())
            for b in members[i + 1:]:
                assert qubitwise_compatible(a, b)


def test_shot_estimates_are_unbiased_within_error_bars():
    rng = np.random.default_rng(0)
    psi = _random_state(rng, 3)
    products = [PauliProduct.parse(t) for t in ["X0 Y1", "Y0 Z2", "X0 Y1 Z2", "n2 X0"]]
    exact = ProductTable(products, 3).expect(psi)
    for p, e in zip(products, exact, strict=True):
        basis = "".join(p.basis.get(q, "Z") for q in range(3))
        bits = sample_bitstrings(psi, basis, 20000, rng)
        mean, se = estimate_products(bits, [p])
        assert abs(mean[0] - e) < 4 * se[0]


def test_standard_error_scales_as_inverse_sqrt_shots():
    rng = np.random.default_rng(1)
    psi = _random_state(rng, 2)
    p = PauliProduct.parse("X0 X1")
    ses = []
    shots = np.array([100, 400, 1600, 6400])
    for m in shots:
        ses.append(np.mean([estimate_products(sample_bitstrings(psi, "XX", int(m), rng), [p])[1][0]
                            for _ in range(20)]))
    slope = np.polyfit(np.log(shots), np.log(ses), 1)[0]
    assert abs(slope + 0.5) < 0.05


def test_density_matrix_and_vector_give_same_probabilities():
    rng = np.random.default_rng(2)
    psi = _random_state(rng, 3)
    np.testing.assert_allclose(basis_probabilities(np.outer(psi, psi.conj()), "XYZ"),
                               basis_probabilities(psi, "XYZ"), atol=1e-14)


def test_readout_mitigation_removes_bias():
    rng = np.random.default_rng(3)
    psi = _random_state(rng, 3)
    p = PauliProduct.parse("n2 Z0")
    exact = ProductTable([p], 3).expect(psi)[0]
    readout = ReadoutError(p_false_pos=0.05, p_false_neg=(0.1, 0.08, 0.12))
    bits = sample_bitstrings(psi, "ZZZ", 100000, rng, readout)
    raw, raw_se = estimate_products(bits, [p])
    fixed, fixed_se = estimate_products(bits, [p], readout)
    assert abs(raw[0] - exact) > 5 * raw_se[0]      # the readout error biases the raw estimate
    assert abs(fixed[0] - exact) < 4 * fixed_se[0]  # mitigation removes it


def test_counts_round_trip_and_bad_input():
    rng = np.random.default_rng(4)
    bits = sample_bitstrings(_random_state(rng, 3), "ZZZ", 50, rng)
    counts = bits_to_counts(bits)
    assert sum(counts.values()) == 50
    np.testing.assert_array_equal(np.sort(counts_to_bits(counts, 3), axis=0), np.sort(bits, axis=0))
    with pytest.raises(QepValueError, match="length"):
        counts_to_bits({"0101": 3}, 3)
    with pytest.raises(QepValueError, match="only '0' and '1'"):
        counts_to_bits({"01x": 3})
    with pytest.raises(QepValueError, match="shots"):
        sample_bitstrings(_random_state(rng, 2), "ZZ", -3, rng)
    with pytest.raises(QepValueError, match="basis"):
        sample_bitstrings(_random_state(rng, 2), "ZQ", 3, rng)
    with pytest.raises(QepValueError, match="p_false_pos"):
        ReadoutError(p_false_pos=0.7)
