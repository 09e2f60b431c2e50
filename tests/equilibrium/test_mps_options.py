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
