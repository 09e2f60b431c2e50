"""The state interface: dense vector and density matrix implementations agree with each other and with
exact linear algebra; the measurement layer and estimators read states only through the interface."""

import numpy as np
import pytest

from qep_analog.equilibrium import DensityMatrix, EquilibriumState, StateVector, get_backend
from qep_analog.errors import QepValueError
from qep_analog.measurement import sample_bitstrings
from qep_analog.measurement.observables import derivative_expectations, output_expectations
from qep_analog.models.pauli import PauliProduct, PauliSum
from qep_analog.models.spin_models import transverse_field_ising


def _random_vector(rng, n):
    psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    return psi / np.linalg.norm(psi)


def test_old_constructor_builds_the_matching_dense_implementation():
    psi = _random_vector(np.random.default_rng(0), 2)
    vec = EquilibriumState(state=psi, kind="eigenstate", energy=1.0)
    rho = EquilibriumState(state=np.outer(psi, psi.conj()), kind="gibbs")
    assert isinstance(vec, StateVector) and vec.is_pure and vec.energy == 1.0
    assert isinstance(rho, DensityMatrix) and not rho.is_pure
    assert isinstance(vec, EquilibriumState) and vec.n_qubits == 2 == rho.n_qubits
    assert not vec.flagged and StateVector(state=psi, kind="eigenstate", info={"flags": ["x"]}).flagged


def test_vector_and_density_matrix_give_the_same_expectations_and_match_matrices():
    rng = np.random.default_rng(1)
    psi = _random_vector(rng, 3)
    products = [PauliProduct.parse(t) for t in ["X0 Y1", "Z2", "n0 n2", "X0 Y1 Z2", "Y0 n1"]]
    vec = StateVector(state=psi, kind="eigenstate")
    rho = DensityMatrix(state=np.outer(psi, psi.conj()), kind="gibbs")
    exact = [np.vdot(psi, p.matrix(3) @ psi).real for p in products]
    np.testing.assert_allclose(vec.expect(products), exact, atol=1e-13)
    np.testing.assert_allclose(rho.expect(products), exact, atol=1e-13)
    obs = PauliSum(((0.5, products[0]), (-2.0, products[2])), constant=0.25)
    assert vec.expect_sums([obs])[0] == pytest.approx(0.25 + 0.5 * exact[0] - 2.0 * exact[2], abs=1e-13)


def test_overlap_is_the_modulus_of_the_inner_product():
    rng = np.random.default_rng(2)
    a, b = _random_vector(rng, 3), _random_vector(rng, 3)
    sa, sb = StateVector(state=a, kind="eigenstate"), StateVector(state=b, kind="eigenstate")
    assert sa.overlap(sb) == pytest.approx(abs(np.vdot(a, b)), abs=1e-14)
    assert sa.overlap(StateVector(state=1j * a, kind="eigenstate")) == pytest.approx(1.0, abs=1e-14)


def test_sampling_through_the_state_equals_the_array_path_bitwise():
    rng_state = np.random.default_rng(3)
    psi = _random_vector(rng_state, 3)
    vec = StateVector(state=psi, kind="eigenstate")
    a = sample_bitstrings(vec, "XZY", 500, np.random.default_rng(7))
    b = sample_bitstrings(psi, "XZY", 500, np.random.default_rng(7))
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == (500, 3)
    with pytest.raises(QepValueError, match="basis"):
        sample_bitstrings(vec, "XZ", 10, np.random.default_rng(0))
    with pytest.raises(QepValueError, match="shots"):
        vec.sample("ZZZ", 0, np.random.default_rng(0))


def test_model_observables_through_the_interface_match_the_dense_tables():
    h = transverse_field_ising(4, input_qubits=[0], output_qubits=[3])
    theta = np.random.default_rng(4).normal(size=len(h.parameter_names))
    state = get_backend("exact").prepare(h, theta, [0.3])
    np.testing.assert_allclose(derivative_expectations(h, state), h.derivative_expectations(state.state), atol=1e-13)
    np.testing.assert_allclose(output_expectations(h, state), h.output_expectations(state.state), atol=1e-13)
