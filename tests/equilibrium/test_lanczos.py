"""The compiled Lanczos eigensolver against dense diagonalisation, and its use by the exact backend."""

import numpy as np
import pytest
import scipy.linalg as la

from qep_analog.equilibrium import get_backend
from qep_analog.equilibrium.exact import _default_start
from qep_analog.equilibrium.lanczos import lowest_two
from qep_analog.models.pauli import PauliSum
from qep_analog.models.spin_models import cluster_phase_sensor, sample_triangle, transverse_field_ising


def _sensor_point(seed):
    rng = np.random.default_rng(seed)
    h = cluster_phase_sensor()
    return h, 0.3 * rng.standard_normal(len(h.parameter_names)), sample_triangle(1, rng)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_operator_applies_the_same_matrix_as_csr(seed):
    h, theta, x = _sensor_point(seed)
    nudge = PauliSum.from_spec([[0.7, "Z8"], [-0.2, "Z8 Z9"]])
    diagonal = nudge.diagonal(h.n_qubits)
    csr = h.matrix(theta, x) + nudge.matrix(h.n_qubits)
    op = h.mask_operator(theta, x, extra_diagonal=diagonal)
    v = np.array([1, 1j]) @ np.random.default_rng(seed).standard_normal((2, h.dim))
    assert np.allclose(op @ v, csr @ v, atol=1e-12)
    assert np.allclose(h.matrix(theta, x, extra_diagonal=diagonal).toarray(), csr.toarray(), atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_two_lowest_levels_match_dense_eigh(seed):
    """Complex Hermitian sensor Hamiltonian (Y couplings), both operator forms, to the stated tolerance."""
    h, theta, x = _sensor_point(seed)
    energies, vectors = la.eigh(h.dense(theta, x))
    for op in (h.matrix(theta, x), h.mask_operator(theta, x)):
        res = lowest_two(op, _default_start(h.dim), tol=1e-10)
        assert res.converged
        assert abs(res.energies[0] - energies[0]) < 1e-9 and abs(res.energies[1] - energies[1]) < 1e-8
        assert abs(abs(np.vdot(vectors[:, 0], res.vector)) - 1) < 1e-9
        # the reported residual is the explicit one, within ARPACK's criterion tol·|E|
        explicit = np.linalg.norm(op @ res.vector - res.energies[0] * res.vector)
        assert np.isclose(res.residual, explicit) and res.residual <= 1e-10 * abs(energies[0]) * 1.01


def test_highest_level_and_real_matrices():
    rng = np.random.default_rng(4)
    h = transverse_field_ising(9, input_qubits=[0, 1], output_qubits=[8])
    theta, x = rng.normal(size=len(h.parameter_names)), rng.normal(size=2)
    energies = la.eigvalsh(h.dense(theta, x))
    res = lowest_two(h.matrix(theta, x), _default_start(h.dim), tol=1e-10, sign=-1.0)
    assert res.converged and np.allclose(-res.energies, energies[[-1, -2]], atol=1e-8)
    assert res.vector.dtype == np.float64


def test_ghost_copies_of_the_ground_level_are_not_reported_as_a_gap():
    """Long runs without reorthogonalisation duplicate converged Ritz values; the reported second
    level must still be the true E₁ even when far more steps than needed are taken."""
    h, theta, x = _sensor_point(5)
    energies = la.eigvalsh(h.dense(theta, x))
    # a tolerance far below what E₁ can reach forces ~all of max_iter steps (ghosts appear)
    res = lowest_two(h.matrix(theta, x), _default_start(h.dim), tol=1e-15, max_iter=300)
    assert res.converged and res.iterations > 150  # ~3× the steps a 1e-10 solve needs
    assert abs(res.energies[0] - energies[0]) < 1e-10 and abs(res.energies[1] - energies[1]) < 1e-8


def test_exact_backend_falls_back_to_arpack_and_says_so(monkeypatch):
    import qep_analog.equilibrium.exact as exact

    h, theta, x = _sensor_point(6)
    ref = get_backend("exact", tol=1e-10).prepare(h, theta, x)
    assert ref.info["method"] == "lanczos" and ref.info["iterations"] > 0

    def never(*args, **kwargs):
        return lowest_two(*args, **{**kwargs, "max_iter": 3})

    monkeypatch.setattr(exact, "lowest_two", never)
    st = get_backend("exact", tol=1e-10).prepare(h, theta, x)
    assert st.info["method"] == "arpack"
    assert abs(st.energy - ref.energy) < 1e-9 and abs(abs(np.vdot(st.state, ref.state)) - 1) < 1e-9


def test_nudged_solves_agree_between_solvers():
    """Warm-started nudged phases (diagonal and non-diagonal nudges) agree with ARPACK."""
    h, theta, x = _sensor_point(7)
    for spec in ([[0.4, "Z8"], [0.3, "n9"]], [[0.4, "X8"]]):
        nudge = PauliSum.from_spec(spec)
        states = []
        for solver in ("lanczos", "arpack"):
            backend = get_backend("exact", tol=1e-10, solver=solver)
            free = backend.prepare(h, theta, x)
            states.append(backend.prepare(h, theta, x, nudge, reference=free))
        assert abs(states[0].energy - states[1].energy) < 1e-9 and abs(states[0].gap - states[1].gap) < 1e-7
        assert abs(abs(np.vdot(states[0].state, states[1].state)) - 1) < 1e-9
