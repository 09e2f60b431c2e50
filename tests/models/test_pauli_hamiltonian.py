"""Pauli strings and Hamiltonians against explicit Kronecker products."""

import numpy as np
import pytest

from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliProduct, PauliSum, ProductTable, anticommutator, square
from qep_analog.models.spin_models import (
    cluster_chain_slice,
    cluster_ising_phase,
    cluster_phase_sensor,
    massar_mognetti,
    phase_targets,
    transverse_field_ising,
)

SINGLE = {
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]]),
    "Z": np.diag([1.0, -1.0]).astype(complex),
    "n": np.diag([0.0, 1.0]).astype(complex),
}


def kron_matrix(product: PauliProduct, n: int) -> np.ndarray:
    factors = dict(product.factors)
    out = np.eye(1)
    for q in range(n):
        out = np.kron(out, SINGLE[factors[q]] if q in factors else np.eye(2))
    return out


def random_model(rng, n=4, n_terms=14):
    specs = []
    for k in range(n_terms):
        qubits = rng.choice(n, size=rng.integers(1, 4), replace=False)
        op = " ".join(f"{rng.choice(list('XYZn'))}{q}" for q in qubits)
        role = str(rng.choice(["fixed", "trainable", "input"]))
        specs.append(dict(name=f"t{k}", operator=op, role=role, coefficient=float(rng.normal()),
                          parameter=None if role == "fixed" else f"{role[0]}{k % 3}"))
    return Hamiltonian.build(n, specs, outputs={"o": [[0.5, "Z0 Z1"], [1.0, "I"]], "p": "n2 X3"})


def test_products_match_kronecker():
    rng = np.random.default_rng(0)
    for text in ["Z0 Z1", "X3", "n2 n0", "Y1 X0 Z2", "Y0 Y2", "I", ""]:
        p = PauliProduct.parse(text, 4)
        np.testing.assert_allclose(p.matrix(4).toarray(), kron_matrix(p, 4), atol=0)
    psi = rng.normal(size=16) + 1j * rng.normal(size=16)
    psi /= np.linalg.norm(psi)
    products = [PauliProduct.parse(t) for t in ["X0 Y1", "n3 Z2", "Y0 X1 Y2 Z3"]]
    exp = ProductTable(products, 4).expect(psi)
    ref = [np.vdot(psi, kron_matrix(p, 4) @ psi).real for p in products]
    np.testing.assert_allclose(exp, ref, atol=1e-14)
    rho = np.outer(psi, psi.conj())
    np.testing.assert_allclose(ProductTable(products, 4).expect(rho), ref, atol=1e-14)


def test_hamiltonian_lowering_hermitian_and_exact():
    rng = np.random.default_rng(1)
    h = random_model(rng)
    theta = rng.normal(size=len(h.parameter_names))
    x = rng.normal(size=len(h.input_names))
    weights = h.term_weights(theta, x)
    ref = sum(w * kron_matrix(t.operator, 4) for w, t in zip(weights, h.terms, strict=True))
    dense = h.dense(theta, x)
    np.testing.assert_allclose(dense, ref, atol=1e-13)
    np.testing.assert_allclose(dense, dense.conj().T, atol=1e-14)


def test_derivative_is_hellmann_feynman_of_lowering():
    rng = np.random.default_rng(2)
    h = random_model(rng)
    theta = rng.normal(size=len(h.parameter_names))
    x = rng.normal(size=len(h.input_names))
    eps = 1e-6
    for k, name in enumerate(h.parameter_names):
        step = np.zeros_like(theta)
        step[k] = eps
        fd = (h.dense(theta + step, x) - h.dense(theta - step, x)) / (2 * eps)
        np.testing.assert_allclose(h.derivative(name).matrix(4).toarray(), fd, atol=1e-8)


def test_square_and_anticommutator():
    a = PauliSum.from_spec([[0.3, "n0 X1"], [1.2, "Z0 Y2"], [-0.5, "I"]])
    b = PauliSum.from_spec([[0.7, "X0 n1"], [0.2, "Y0"], [1.0, "I"]])
    ma, mb = a.matrix(3).toarray(), b.matrix(3).toarray()
    np.testing.assert_allclose(anticommutator(a, b).matrix(3).toarray(), ma @ mb + mb @ ma, atol=1e-14)
    np.testing.assert_allclose(square(a).matrix(3).toarray(), ma @ ma, atol=1e-14)


@pytest.mark.parametrize(
    "text, message",
    [("Q0", "unknown Pauli letter"), ("Z9", "out of range"), ("Z", "cannot read"), ("Z0 Z0", "twice")],
)
def test_bad_pauli_strings(text, message):
    with pytest.raises(QepValueError, match=message):
        PauliProduct.parse(text, 4)


def test_bad_terms_name_the_field():
    with pytest.raises(QepValueError, match="t0.coefficient"):
        Hamiltonian.build(2, [dict(name="t0", operator="Z0", coefficient=float("nan"))])
    with pytest.raises(QepValueError, match="coefficient"):
        Hamiltonian.build(2, [dict(name="t0", operator="Z0", coefficient=float("inf"))])
    with pytest.raises(QepValueError, match="needs a 'parameter'"):
        Hamiltonian.build(2, [dict(name="t0", operator="Z0", role="trainable")])
    with pytest.raises(QepValueError, match="role"):
        Hamiltonian.build(2, [dict(name="t0", operator="Z0", role="nudge")])
    with pytest.raises(QepValueError, match="unknown key"):
        Hamiltonian.build(2, [dict(name="t0", operator="Z0", strength=1)])
    h = transverse_field_ising(3, input_qubits=[0], output_qubits=[2])
    with pytest.raises(QepValueError, match="finite"):
        h.matrix(np.full(len(h.parameter_names), np.nan), [0.0])


def test_model_signs_and_counts():
    h = transverse_field_ising(4, input_qubits=[0], output_qubits=[3])
    assert h.derivative("J_0_1").terms == ((-1.0, PauliProduct.parse("Z0 Z1")),)
    assert h.derivative("h_2").terms == ((-1.0, PauliProduct.parse("X2")),)
    mm = massar_mognetti(3, input_qubits=[0], output_qubits=[2])
    assert set(mm.parameter_names) == {"a_0_1", "a_0_2", "a_1_2", "b_0_1", "b_0_2", "b_1_2"}
    sensor = cluster_phase_sensor()
    assert sensor.n_qubits == 10 and len(sensor.parameter_names) == 51
    # the three projectors sum to ≤ 1 and are diagonal projectors
    total = sum(o.observable.matrix(10).toarray() for o in sensor.outputs)
    assert np.all(np.diag(total).real <= 1 + 1e-12)
    for o in sensor.outputs:
        m = o.observable.matrix(10).toarray()
        np.testing.assert_allclose(m @ m, m, atol=1e-14)
    assert len(cluster_phase_sensor(coupling_paulis="Z").parameter_names) == 4 + 6 + 9
    assert cluster_chain_slice().parameter_names == ("g_zz", "g_x")


def test_phase_labels_follow_exact_boundaries():
    assert cluster_ising_phase(1.0, 2.5, 0.5) == "FM"
    assert cluster_ising_phase(2.0, 1.0, 1.0) == "SPT"
    assert cluster_ising_phase(0.5, 1.0, 2.5) == "PM"
    targets = phase_targets(np.array([[1.0, 2.5, 0.5], [2.0, 1.0, 1.0]]))
    np.testing.assert_array_equal(targets, [[0, 1, 0], [1, 0, 0]])
