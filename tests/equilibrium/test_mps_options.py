"""The mps backend's MPO lowering (direct two-site FSM vs quimb's builder), warm starts across steps, thread limits."""

import numpy as np
import pytest

from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium import get_backend
from qep_analog.equilibrium.mpo import _LETTER, build_mpo, two_body_mpo
from qep_analog.errors import QepValueError
from qep_analog.models.pauli import PauliProduct


def _random_terms(n: int, rng: np.random.Generator, three_body: bool = False):
    terms = [(rng.normal(), PauliProduct.parse(f"{letter}{i}")) for i in range(n) for letter in "XYZn"]
    for i in range(n):
        for j in range(i + 1, n):
            for a in "XYZn":
                for b in "XYZn":
                    if rng.random() < 0.25:
                        terms.append((rng.normal(), PauliProduct.parse(f"{a}{i} {b}{j}")))
    if three_body:
        terms.append((0.7, PauliProduct.parse("X0 Y2 n4")))
    return terms


def test_two_body_mpo_is_the_operator_quimb_builds():
    import quimb.operator as qo

    rng = np.random.default_rng(5)
    n = 6
    terms = _random_terms(n, rng)
    order = [int(q) for q in rng.permutation(n)]
    site_of = {q: k for k, q in enumerate(order)}
    builder = qo.SparseOperatorBuilder(hilbert_space=qo.HilbertSpace(n))
    for w, p in terms:
        builder.add_term(w, *[(_LETTER[letter], site_of[q]) for q, letter in p.factors])
    reference = builder.build_mpo().to_dense()
    np.testing.assert_allclose(two_body_mpo(terms, n, site_of).to_dense(), reference, atol=1e-12)
    # the same operator through build_mpo (compressed), and the builder path for a three-site term
    np.testing.assert_allclose(build_mpo(terms, n, order, compress_cutoff=1e-14).to_dense(), reference, atol=1e-9)
    more = _random_terms(n, rng, three_body=True)
    dense = sum(w * p.matrix(n) for w, p in more)
    np.testing.assert_allclose(build_mpo(more, n, list(range(n)), compress_cutoff=0.0).to_dense(), dense.toarray()
                               if hasattr(dense, "toarray") else dense, atol=1e-12)


def _chain(n: int = 10) -> RydbergModel:
    return RydbergModel(positions_um=np.c_[np.arange(n) * 6.0, np.zeros(n)], device="AnalogDevice", omega=2 * np.pi,
                        detunings=np.full(n, 3 * np.pi), input_atoms=(0,), output_atoms=(n - 1,))


def test_warm_free_starts_from_the_previous_step_and_finds_the_same_ground_state():
    model = _chain()
    h, theta = model.hamiltonian(), model.theta()
    moved = theta + 0.05 * np.random.default_rng(1).normal(size=theta.size)
    tight = dict(cutoff=1e-12, energy_tol=1e-11, local_eig_tol=1e-10)
    warm = get_backend("mps", model=model, warm_free=True, **tight)
    first = warm.prepare(h, theta, [0.3])
    assert not first.info["warm_start"]
    again = warm.prepare(h, moved, [0.3])
    other_input = warm.prepare(h, moved, [-0.3])
    cold = get_backend("mps", model=model, **tight).prepare(h, moved, [0.3])
    assert again.info["warm_start"] and not other_input.info["warm_start"]
    assert again.energy == pytest.approx(cold.energy, rel=1e-10) and again.overlap(cold) == pytest.approx(1, abs=1e-8)
    # off by default: every free phase starts from the seeded random MPS
    plain = get_backend("mps", model=model, **tight)
    plain.prepare(h, theta, [0.3])
    assert not plain.prepare(h, moved, [0.3]).info["warm_start"]


@pytest.mark.parametrize("threads", [0, 1.5, "2"])
def test_blas_threads_is_validated(threads):
    with pytest.raises(QepValueError, match="blas_threads"):
        get_backend("mps", blas_threads=threads)


def test_blas_threads_none_leaves_the_pool_alone():
    model = _chain(6)
    h = model.hamiltonian()
    a = get_backend("mps", model=model, blas_threads=None).prepare(h, model.theta(), [0.0])
    b = get_backend("mps", model=model).prepare(h, model.theta(), [0.0])
    assert a.energy == pytest.approx(b.energy, rel=1e-12)


def test_mpo_moments_are_the_dense_first_and_second_moments():
    """⟨ψ|H|ψ⟩ and ⟨ψ|H²|ψ⟩ contracted site by site equal the dense ones, for a random real and a random
    complex MPS and an MPO with X, Y, Z and n terms (Y makes it complex)."""
    import quimb.tensor as qtn

    from qep_analog.equilibrium.mps import mpo_arrays, mpo_moments
    from qep_analog.equilibrium.mps_state import from_quimb

    rng = np.random.default_rng(3)
    n = 6
    terms = _random_terms(n, rng)
    order = [int(q) for q in rng.permutation(n)]
    mpo = build_mpo(terms, n, order, compress_cutoff=1e-14)
    matrix = mpo.to_dense()
    for dtype in (float, complex):
        state = from_quimb(qtn.MPS_rand_state(n, bond_dim=4, seed=2, dtype=dtype), list(range(n)))
        psi = state.to_dense()
        first, second = mpo_moments(state.tensors, mpo_arrays(mpo))
        assert first == pytest.approx(np.vdot(psi, matrix @ psi).real, rel=1e-12, abs=1e-12)
        assert second == pytest.approx(np.vdot(matrix @ psi, matrix @ psi).real, rel=1e-12)


def test_backend_variance_is_the_dense_variance_of_its_state():
    model = _chain(8)
    h, theta = model.hamiltonian(), model.theta()
    state = get_backend("mps", model=model, max_bond=3).prepare(h, theta, [0.2])  # truncated: variance > 0
    matrix = h.matrix(theta, [0.2])
    psi = state.to_dense()
    energy = np.vdot(psi, matrix @ psi).real
    assert state.energy == pytest.approx(energy, rel=1e-10)
    assert state.info["variance"] == pytest.approx(np.vdot(matrix @ psi, matrix @ psi).real - energy**2, rel=1e-6)
    assert state.info["variance"] > 1e-8


def test_real_states_give_the_expectations_of_complex_arithmetic():
    import dataclasses

    model = _chain(8)
    state = get_backend("mps", model=model).prepare(model.hamiltonian(), model.theta(), [0.0])
    assert not np.iscomplexobj(state.tensors[3]) and state.info["blas_threads"] == 1
    complex_state = dataclasses.replace(state, tensors=tuple(a.astype(complex) for a in state.tensors))
    products = [PauliProduct.parse(p) for p in ("n0", "X3", "Y2", "Z1 n5", "X0 Y4 Z7", "n2 n3", "Y1 Y6")]
    np.testing.assert_allclose(state.expect(products), complex_state.expect(products), atol=1e-13)


@pytest.mark.parametrize("key,value", [("sweep_sequence", ""), ("sweep_sequence", "RX"), ("local_eig_ncv", 0),
                                       ("warm_local_eig_tol", 0.0), ("warm_local_eig_tol", 1.5)])
def test_sweep_options_are_validated(key, value):
    with pytest.raises(QepValueError, match=key):
        get_backend("mps", **{key: value})


@pytest.mark.parametrize("sequence", ["R", "RL"])
def test_sweep_sequences_find_the_same_ground_state(sequence):
    model = _chain(8)
    h, theta = model.hamiltonian(), model.theta()
    tight = dict(cutoff=1e-12, energy_tol=1e-11, local_eig_tol=1e-10)
    state = get_backend("mps", model=model, sweep_sequence=sequence, **tight).prepare(h, theta, [0.0])
    matrix = h.matrix(theta, [0.0])
    exact = np.linalg.eigvalsh(matrix.toarray() if hasattr(matrix, "toarray") else matrix)[0]
    assert state.energy == pytest.approx(exact, rel=1e-10) and state.info["sweep_sequence"] == sequence
