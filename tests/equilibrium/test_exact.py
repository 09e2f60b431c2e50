"""Exact eigenstates, the continuation policy and Gibbs states."""

import numpy as np
import pytest
import scipy.linalg as la

from qep_analog.equilibrium import get_backend
from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliSum
from qep_analog.models.spin_models import cluster_phase_sensor, transverse_field_ising


def test_ground_state_dense_and_lanczos_agree():
    rng = np.random.default_rng(0)
    h = transverse_field_ising(9, input_qubits=[0, 1], output_qubits=[8])  # dim 512: Lanczos
    theta, x = rng.normal(size=len(h.parameter_names)), rng.normal(size=2)
    energies, vectors = la.eigh(h.dense(theta, x))
    for backend in (get_backend("exact", tol=1e-10), get_backend("exact", dense_max_dim=1024)):
        st = backend.prepare(h, theta, x)
        assert abs(st.energy - energies[0]) < 1e-8
        assert abs(st.gap - (energies[1] - energies[0])) < 1e-6
        assert abs(abs(np.vdot(st.state, vectors[:, 0])) - 1) < 1e-8
        assert abs(np.linalg.norm(st.state) - 1) < 1e-12


def test_highest_and_interior_levels_follow_by_overlap():
    rng = np.random.default_rng(1)
    h = transverse_field_ising(4, input_qubits=[0], output_qubits=[3])
    theta, x = rng.normal(size=len(h.parameter_names)), [0.3]
    energies = la.eigvalsh(h.dense(theta, x))
    top = get_backend("exact", eigenstate="highest").prepare(h, theta, x)
    assert abs(top.energy - energies[-1]) < 1e-10
    level = get_backend("exact", eigenstate=3)
    free = level.prepare(h, theta, x)
    assert abs(free.energy - energies[3]) < 1e-10
    nudge = PauliSum.from_spec("Z3").scaled(1e-3)
    nudged = level.prepare(h, theta, x, nudge, reference=free)
    assert abs(np.vdot(free.state, nudged.state)) > 0.99
    # first-order perturbation theory for the followed level
    first_order = np.vdot(free.state, nudge.matrix(4) @ free.state).real
    assert abs(nudged.energy - free.energy - first_order) < 1e-5


def test_degenerate_ground_state_is_flagged():
    h = Hamiltonian.build(2, [dict(name="zz", operator="Z0 Z1")], outputs={"z": "Z0"})
    st = get_backend("exact").prepare(h, [], [])
    assert st.info["degenerate"]


def test_gibbs_state_trace_positivity_and_limits():
    rng = np.random.default_rng(2)
    h = transverse_field_ising(3, input_qubits=[0], output_qubits=[2])
    theta, x = rng.normal(size=len(h.parameter_names)), [0.5]
    hot = get_backend("gibbs", temperature=1e3).prepare(h, theta, x)
    cold = get_backend("gibbs", temperature=1e-3).prepare(h, theta, x)
    for st in (hot, cold):
        assert abs(np.trace(st.state) - 1) < 1e-12
        assert np.min(la.eigvalsh(st.state)) > -1e-12
    np.testing.assert_allclose(hot.state, np.eye(8) / 8, atol=1e-3)
    ground = get_backend("exact").prepare(h, theta, x)
    assert abs(np.vdot(ground.state, cold.state @ ground.state).real - 1) < 1e-6
    with pytest.raises(QepValueError, match="temperature"):
        get_backend("gibbs", temperature=-1.0)


def test_backend_registry_errors():
    with pytest.raises(QepValueError, match="unknown equilibrium backend"):
        get_backend("magic")
    with pytest.raises(QepValueError, match="exact"):
        get_backend("exact", colour="red")


def test_sensor_warm_start_gives_same_state():
    rng = np.random.default_rng(3)
    h = cluster_phase_sensor()
    theta = 0.3 * rng.normal(size=51)
    x = [1.0, 2.0, 1.0]
    backend = get_backend("exact", tol=1e-10)
    free = backend.prepare(h, theta, x)
    nudge = PauliSum.from_spec([[0.05, "Z8"], [0.02, "Z9"]])
    warm = backend.prepare(h, theta, x, nudge, reference=free)
    cold = backend.prepare(h, theta, x, nudge)
    assert abs(abs(np.vdot(warm.state, cold.state)) - 1) < 1e-8
