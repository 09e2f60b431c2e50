"""Cooling backend: the Davies bath relaxes to Gibbs; symmetries are detected; invariants hold."""

from __future__ import annotations

import numpy as np
import pytest
import qutip

from qep_analog.equilibrium import get_backend
from qep_analog.equilibrium.cooling import SymmetryWarning, trace_distance
from qep_analog.equilibrium.davies import (
    DaviesGenerator,
    bath_products,
    commutant_dimension,
    davies_collapse_operators,
    rate_function,
)
from qep_analog.equilibrium.exact import gibbs_state
from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliSum
from qep_analog.models.spin_models import transverse_field_ising


def _tfim(n=4, seed=0):
    h = transverse_field_ising(n, input_qubits=[0], output_qubits=[n - 1])
    theta = np.random.default_rng(seed).normal(size=len(h.parameter_names))
    return h, theta


def _baths(spec, n):
    return [p.matrix(n).toarray() for p in bath_products(spec, n)]


@pytest.mark.parametrize("spectral", ["glauber", "ohmic"])
def test_detailed_balance_of_rates(spectral):
    omega = np.linspace(-3, 3, 13)
    for temperature in (0.05, 0.3, 2.0):
        up = rate_function(-omega, temperature, 1.3, spectral)
        down = rate_function(omega, temperature, 1.3, spectral)
        np.testing.assert_allclose(up, np.exp(-omega / temperature) * down, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("method", ["steadystate", "mesolve"])
def test_steady_state_is_gibbs_on_four_qubits(method):
    h, theta = _tfim()
    nudge = PauliSum.from_spec("Z3").scaled(0.2)  # the nudge is part of the prepared H
    backend = get_backend("cooling", temperature=0.4, method=method)
    state = backend.prepare(h, theta, [0.5], nudge=nudge)
    h_dense = h.matrix(theta, [0.5], nudge.matrix(4)).toarray()
    rho_gibbs, _ = gibbs_state(h_dense, 0.4)
    assert state.kind == "gibbs" and state.info["unique"]
    assert trace_distance(state.state, rho_gibbs) < 1e-3
    assert state.info["trace_distance_to_gibbs"] < 1e-3
    np.testing.assert_allclose(state.energy, np.real(np.trace(rho_gibbs @ h_dense)), atol=1e-3)


def test_generator_equals_qutip_liouvillian_of_explicit_jumps():
    # A degenerate spectrum (classical Ising, equal couplings) exercises the Bohr grouping.
    h = Hamiltonian.build(
        3,
        [
            dict(operator="Z0 Z1"),
            dict(operator="Z1 Z2"),
            dict(operator="Z0 Z2"),
            dict(operator="X1", coefficient=0.0),
        ],
    )
    for h_dense in (h.dense(), _tfim(3)[0].dense(_tfim(3)[1], [0.3])):
        baths = _baths(["X", "Z"], 3)
        gen = DaviesGenerator(h_dense, baths, temperature=0.7, rate=0.9)
        c_ops = davies_collapse_operators(h_dense, baths, temperature=0.7, rate=0.9)
        reference = qutip.liouvillian(qutip.Qobj(h_dense), [qutip.Qobj(c) for c in c_ops]).full()
        v = gen.vectors
        change = np.kron(v.conj(), v)  # vec(V ρ V†) = (V* ⊗ V) vec ρ, column stacking
        mine = change @ gen.liouvillian.toarray() @ change.conj().T
        np.testing.assert_allclose(mine, reference, atol=1e-10)
        # the Gibbs state is annihilated by the generator
        assert gen.residual(gen.gibbs()) < 1e-10


def test_degenerate_classical_model_relaxes_to_gibbs():
    h = Hamiltonian.build(4, [dict(operator=f"Z{i} Z{(i + 1) % 4}") for i in range(4)])
    state = get_backend("cooling", temperature=0.5).prepare(h, None, None)
    rho_gibbs, _ = gibbs_state(h.dense(), 0.5)
    assert trace_distance(state.state, rho_gibbs) < 1e-6


def test_zero_temperature_limit_approaches_ground_state():
    h, theta = _tfim()
    energies, vectors = np.linalg.eigh(h.dense(theta, [0.5]))
    ground = vectors[:, 0]
    gap = energies[1] - energies[0]
    infidelities = []
    for temperature in (1.0, 0.3, 0.1, 0.03):
        rho = get_backend("cooling", temperature=temperature).prepare(h, theta, [0.5]).state
        infidelities.append(1 - np.real(ground.conj() @ rho @ ground))
    assert np.all(np.diff(infidelities) < 0)
    # the excited population is bounded by the Boltzmann factors of the excited levels
    bound = np.sum(np.exp(-(energies[1:] - energies[0]) / 0.03))
    assert infidelities[-1] <= bound * (1 + 1e-6) + 1e-12
    assert infidelities[-1] < 1e-3 if gap / 0.03 > 8 else True


def test_trace_and_positivity_preserved_along_mesolve():
    h, theta = _tfim()
    backend = get_backend("cooling", temperature=0.2, method="mesolve", initial="zero", rate=0.5)
    state = backend.prepare(h, theta, [0.5])
    traj = state.info["trajectory"]
    assert traj.times.size >= 3 and traj.times[0] == 0.0
    np.testing.assert_allclose(traj.trace, 1.0, atol=1e-8)
    assert traj.min_eigenvalue.min() > -1e-8
    assert traj.purity.max() <= 1 + 1e-8
    # converged: stopped before t_max, at the Gibbs state
    assert traj.residual[-1] <= backend.tolerance * backend.rate
    assert traj.trace_distance[-1] < 1e-3 and traj.trace_distance[0] > 0.1
    assert traj.times[-1] < backend.t_max


def test_warm_start_from_free_state_converges_sooner():
    h, theta = _tfim()
    backend = get_backend("cooling", temperature=0.3, method="mesolve")
    free = backend.prepare(h, theta, [0.5])
    nudged = backend.prepare(h, theta, [0.5], nudge=PauliSum.from_spec("Z3").scaled(0.05), reference=free)
    cold = get_backend("cooling", temperature=0.3, method="mesolve", initial="mixed").prepare(
        h, theta, [0.5], nudge=PauliSum.from_spec("Z3").scaled(0.05)
    )
    assert nudged.info["trajectory"].times[-1] <= cold.info["trajectory"].times[-1]
    assert nudged.info["trace_distance_to_gibbs"] < 1e-3


def test_symmetry_shared_by_bath_is_detected():
    h, theta = _tfim()  # without input field the TFIM has parity ∏X, and X-only baths share it
    with pytest.warns(SymmetryWarning, match="not unique"):
        state = get_backend("cooling", temperature=0.3, bath_operators=("X",)).prepare(h, theta, [0.0])
    assert state.kind == "steady-state" and not state.info["unique"]
    assert state.info["commutant_dimension"] == 2
    # the conserved operator found is the parity ∏X (up to normalisation)
    gen = DaviesGenerator(h.dense(theta, [0.0]), _baths(["X"], 4), temperature=0.3, rate=1.0)
    dim, conserved = commutant_dimension(gen)
    parity = PauliSum.from_spec("X0 X1 X2 X3").matrix(4).toarray()
    assert dim == 2
    assert abs(np.trace(conserved @ parity)) / np.linalg.norm(conserved) / 4 == pytest.approx(1, abs=1e-8)
    # a Z bath breaks it: unique, Gibbs, no warning (warnings are errors in tests)
    state = get_backend("cooling", temperature=0.3).prepare(h, theta, [0.0])
    assert state.kind == "gibbs" and state.info["commutant_dimension"] == 1


def test_bad_options_raise():
    with pytest.raises(QepValueError, match="unexpected keyword"):
        get_backend("cooling", temprature=0.1)
    with pytest.raises(QepValueError, match="'temperature'"):
        get_backend("cooling", temperature=-1.0)
    with pytest.raises(QepValueError, match="'method'"):
        get_backend("cooling", method="euler")
    with pytest.raises(QepValueError, match="identity"):
        bath_products(["I"], 3)


# ---------------------------------------------------------------------------------- sympathetic
def _sympathetic(sites=(0.0,), method="steadystate", **options):
    import dataclasses

    from qep_analog.equilibrium.sympathetic import rydberg_chain_with_ancillas

    h, cfg = rydberg_chain_with_ancillas(
        2, ancilla_sites=sites, ancilla_offset_um=7.0, omega_ancilla=1.0, omega_pump=3.0
    )
    theta = np.full(2, 2.0)
    energies = np.linalg.eigvalsh(h.dense(theta))
    cfg = dataclasses.replace(cfg, delta_ancilla=-(energies[1] - energies[0]))
    backend = get_backend("cooling", scheme="sympathetic", sympathetic=cfg, method=method, **options)
    return h, theta, backend


def test_sympathetic_operators_are_hermitian_and_sized():
    from qep_analog.equilibrium.sympathetic import rydberg_chain_with_ancillas, sympathetic_operators

    h, cfg = rydberg_chain_with_ancillas(3, ancilla_sites=(0.0, 1.3))
    big, c_ops = sympathetic_operators(h.dense(np.full(3, 2.0)), cfg)
    assert big.shape == (8 * 9, 8 * 9) and len(c_ops) == 2
    assert abs(big - big.conj().T).max() < 1e-12


def test_sympathetic_steady_state_cools_and_methods_agree():
    h, theta, backend = _sympathetic(method="mesolve", tolerance=1e-7, t_max=5000.0, initial="zero")
    by_mesolve = backend.prepare(h, theta, None)
    by_solver = _sympathetic()[2].prepare(h, theta, None)
    assert by_mesolve.kind == "steady-state"
    assert trace_distance(by_mesolve.state, by_solver.state) < 1e-4
    traj = by_mesolve.info["trajectory"]
    np.testing.assert_allclose(traj.trace, 1.0, atol=1e-8)
    assert traj.min_eigenvalue.min() > -1e-8
    # from |gg⟩ the energy above the ground state drops and the fidelity rises
    assert traj.energy_above_ground[-1] < 0.5 * traj.energy_above_ground[0]
    assert traj.fidelity[-1] > traj.fidelity[0] + 0.3
    # a non-equilibrium steady state: not the Gibbs state with the same energy
    assert by_solver.info["trace_distance_to_effective_gibbs"] > 5e-3


def test_sympathetic_mirror_symmetric_ancilla_is_detected():
    with pytest.warns(SymmetryWarning, match="not unique"):
        h, theta, backend = _sympathetic(sites=(0.5,))
        state = backend.prepare(h, theta, None)
    assert state.info["unique"] is False and state.info["symmetries"][0][0] == (1, 0)


def test_qep_bias_in_sympathetic_steady_state_but_not_in_gibbs():
    """Reciprocity holds in the Davies/Gibbs state; in the sympathetic NESS it fails for the
    parameter that is not the nudged one (for the nudged atom's own detuning the nudge *is* a
    parameter shift, so QEP and finite differences coincide there by construction)."""
    from qep_analog.learning.thermal import finite_difference_gradient, nudged_gradient

    h, theta, backend = _sympathetic()
    cost = PauliSum.from_spec("n1")
    qep = nudged_gradient(h, theta, None, cost, beta=1e-3, backend=backend)
    fd = finite_difference_gradient(h, theta, None, cost, None, step=1e-3, backend=backend)
    assert abs(qep[1] - fd[1]) < 1e-6 * abs(fd[1]) + 1e-9
    assert abs(qep[0] - fd[0]) > 0.01 * abs(fd[0])  # measured, not assumed: the NESS bias
    davies = get_backend("cooling", temperature=0.8)
    qep_t = nudged_gradient(h, theta, None, cost, beta=1e-3, backend=davies)
    fd_t = finite_difference_gradient(h, theta, None, cost, None, step=1e-3, backend=davies)
    np.testing.assert_allclose(qep_t, fd_t, atol=1e-5)


def test_cooling_protocol_trains_end_to_end(tmp_path):
    from pathlib import Path

    from qep_analog.train import run_training

    path = Path(__file__).resolve().parents[2] / "protocols" / "cooling_ising.toml"
    res = run_training(
        path,
        out_dir=tmp_path,
        progress=False,
        overrides=[
            "training.steps=2",
            "training.batch_size=2",
            "training.eval_every=2",
            "data.n_test=4",
            "gradient.shots=50",
            "task.plot_resolution=2",
        ],
    )
    assert res["config"]["backend"]["name"] == "cooling"
    assert len(res["history"]) == 2 and np.isfinite(res["history"][-1]["batch_loss"])


def test_sympathetic_options_from_a_protocol_table():
    backend = get_backend(
        "cooling", scheme="sympathetic", sympathetic={"couplings": [[7.0], [0.6]], "delta_ancilla": -1.35}
    )
    assert backend.sympathetic.n_system == 2 and backend.sympathetic.delta_ancilla == -1.35
    with pytest.raises(QepValueError, match="sympathetic"):
        get_backend("cooling", scheme="sympathetic", sympathetic={"coupling": [[1.0]]})
    with pytest.raises(QepValueError, match="SympatheticConfig"):
        get_backend("cooling", scheme="sympathetic")


@pytest.mark.slow
def test_six_qubit_mesolve_from_mixed_reaches_gibbs():
    h, theta = _tfim(n=6, seed=4)
    state = get_backend("cooling", temperature=0.25, method="mesolve", initial="mixed").prepare(h, theta, [0.3])
    rho_gibbs, _ = gibbs_state(h.dense(theta, [0.3]), 0.25)
    assert trace_distance(state.state, rho_gibbs) < 1e-3
    traj = state.info["trajectory"]
    assert traj.min_eigenvalue.min() > -1e-8 and np.abs(traj.trace - 1).max() < 1e-8
