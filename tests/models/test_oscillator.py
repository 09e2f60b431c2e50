"""Physics checks of the oscillator network's closed-form Gaussian ground state."""

from __future__ import annotations

import numpy as np
import pytest
import qutip

from qep_analog.errors import QepValueError
from qep_analog.models.oscillator import OscillatorNetwork, OutputNudge, layered_network

N_FOCK = 32


def two_free_network() -> OscillatorNetwork:
    """Input 0, anchor 1 (at 0.3), free 2 and 3 (output 3), unequal masses."""
    return OscillatorNetwork(
        n_nodes=4,
        edges=((0, 2), (1, 2), (2, 3), (1, 3), (0, 3)),
        input_nodes=(0,),
        anchor_nodes=(1,),
        anchor_positions=(0.3,),
        output_nodes=(3,),
        masses=(1.0, 1.0, 1.3, 0.8),
    )


THETA = np.array([1.1, 0.7, 0.9, 0.5, 0.4])
X = np.array([0.8])


def fock_reference(net: OscillatorNetwork, theta, x, nudge: OutputNudge | None = None):
    """Ground state of H_f in a truncated Fock basis (N_FOCK per free mode) with qutip."""
    free = list(net.free_nodes)
    K = net.stiffness(theta)
    clamped = list(net.clamped_nodes)
    xc = net.clamped_positions(x)
    m = np.asarray(net.masses)
    n_free = len(free)
    ops_r, ops_p = [], []
    for a, node in enumerate(free):
        w0 = np.sqrt(K[node, node] / m[node])  # reference frequency of this mode's Fock basis
        a_op = qutip.destroy(N_FOCK)
        r = (a_op + a_op.dag()) / np.sqrt(2 * m[node] * w0)
        p = 1j * (a_op.dag() - a_op) * np.sqrt(m[node] * w0 / 2)
        ident = [qutip.qeye(N_FOCK)] * n_free
        ops_r.append(qutip.tensor(*[r if c == a else ident[c] for c in range(n_free)]))
        ops_p.append(qutip.tensor(*[p if c == a else ident[c] for c in range(n_free)]))
    pos = {node: ops_r[a] for a, node in enumerate(free)}
    for c, node in enumerate(clamped):
        pos[node] = float(xc[c]) * qutip.tensor(*[qutip.qeye(N_FOCK)] * n_free)
    H = sum(ops_p[a] * ops_p[a] / (2 * m[node]) for a, node in enumerate(free))
    derivs = []
    for kv, (i, j) in zip(theta, net.edges, strict=True):
        d = 0.5 * (pos[i] - pos[j]) ** 2
        derivs.append(d)
        H = H + kv * d
    if nudge is not None:
        for ell, node in enumerate(net.output_nodes):
            H = (
                H
                + nudge.force[ell] * pos[node]
                + 0.5 * nudge.spring[ell] * (pos[node] - nudge.centre[ell]) ** 2
            )
    energies, states = H.eigenstates(eigvals=1)
    psi = states[0]
    return dict(H=H, psi=psi, energy=energies[0], pos=pos, derivs=derivs)


def test_closed_form_matches_truncated_fock():
    net = two_free_network()
    state = net.ground_state(THETA, X)
    ref = fock_reference(net, THETA, X)
    psi, pos = ref["psi"], ref["pos"]
    for node in net.free_nodes:
        mean = qutip.expect(pos[node], psi)
        var = qutip.expect(pos[node] ** 2, psi) - mean**2
        assert mean == pytest.approx(state.mean[node], rel=1e-6)
        assert var == pytest.approx(state.covariance[node, node], rel=1e-6)
    cov23 = qutip.expect(pos[2] * pos[3], psi) - qutip.expect(pos[2], psi) * qutip.expect(
        pos[3], psi
    )
    assert cov23 == pytest.approx(state.covariance[2, 3], rel=1e-6)
    dh = np.array([qutip.expect(d, psi) for d in ref["derivs"]])
    np.testing.assert_allclose(state.pair_expectations(net.edges), dh, rtol=1e-6)
    assert ref["energy"] == pytest.approx(state.energy, rel=1e-8)


def test_nudged_closed_form_matches_truncated_fock():
    net = two_free_network()
    nudge = OutputNudge(force=np.array([0.2]), spring=np.array([0.6]), centre=np.array([0.9]))
    state = net.ground_state(THETA, X, nudge)
    ref = fock_reference(net, THETA, X, nudge)
    mean3 = qutip.expect(ref["pos"][3], ref["psi"])
    var3 = qutip.expect(ref["pos"][3] ** 2, ref["psi"]) - mean3**2
    assert mean3 == pytest.approx(state.mean[3], rel=1e-6)
    assert var3 == pytest.approx(state.covariance[3, 3], rel=1e-6)
    assert ref["energy"] == pytest.approx(state.energy, rel=1e-8)


def test_hellmann_feynman_by_finite_differences():
    net = two_free_network()
    nudge = OutputNudge.cost(0.3, [0.5])
    state = net.ground_state(THETA, X, nudge)
    h = 1e-5
    fd = []
    for e in range(net.n_parameters):
        step = np.zeros_like(THETA)
        step[e] = h
        fd.append(
            (
                net.ground_state(THETA + step, X, nudge).energy
                - net.ground_state(THETA - step, X, nudge).energy
            )
            / (2 * h)
        )
    np.testing.assert_allclose(fd, state.pair_expectations(net.edges), rtol=1e-7, atol=1e-10)
    # dE/dβ = ⟨C⟩ for the cost nudge βC (the other half of the QEP theorem)
    db = 1e-5
    e_plus = net.ground_state(THETA, X, OutputNudge.cost(0.3 + db, [0.5])).energy
    e_minus = net.ground_state(THETA, X, OutputNudge.cost(0.3 - db, [0.5])).energy
    cost = (state.mean[3] - 0.5) ** 2 + state.covariance[3, 3]
    assert (e_plus - e_minus) / (2 * db) == pytest.approx(cost, rel=1e-7)


def test_linear_nudge_shifts_mean_only():
    net = two_free_network()
    free = net.ground_state(THETA, X)
    pushed = net.ground_state(THETA, X, OutputNudge.linear([0.4]))
    np.testing.assert_allclose(pushed.covariance, free.covariance, atol=1e-14)
    K = net.stiffness(THETA)
    f = list(net.free_nodes)
    shift = -np.linalg.solve(K[np.ix_(f, f)], np.array([0.0, 0.4]))
    np.testing.assert_allclose(pushed.mean[f] - free.mean[f], shift, atol=1e-13)


def test_samples_reproduce_mean_and_covariance():
    net = two_free_network()
    state = net.ground_state(THETA, X)
    rng = np.random.default_rng(7)
    shots = 40_000
    samples = state.sample_positions(shots, rng)
    f = list(net.free_nodes)
    se = np.sqrt(np.diag(state.covariance)[f] / shots)
    assert np.all(np.abs(samples[:, f].mean(0) - state.mean[f]) < 5 * se)
    np.testing.assert_allclose(np.cov(samples[:, f].T), state.covariance[np.ix_(f, f)], rtol=0.05)
    assert np.all(samples[:, list(net.clamped_nodes)] == state.mean[list(net.clamped_nodes)])
    dh = net.derivative_samples(samples)
    se_dh = dh.std(0, ddof=1) / np.sqrt(shots)
    assert np.all(np.abs(dh.mean(0) - state.pair_expectations(net.edges)) < 5 * se_dh)


def test_convex_hull_of_clamped_positions():
    net = layered_network(3, 2, n_hidden=2, anchor_positions=(0.0,))
    rng = np.random.default_rng(3)
    theta = rng.uniform(0.1, 2.0, net.n_parameters)
    T = net.output_map(theta)
    assert np.all(T >= -1e-12)
    np.testing.assert_allclose(T.sum(axis=1), 1.0, atol=1e-12)
    x = rng.uniform(-1, 1, 3)
    state = net.ground_state(theta, x)
    np.testing.assert_allclose(
        state.mean[list(net.output_nodes)], T @ net.clamped_positions(x), atol=1e-12
    )


def test_uniform_scaling_of_springs_shrinks_variance_as_inverse_sqrt():
    """Pitfall: ⟨C⟩ = (μ−y)² + Var; k → λk keeps μ and gives Var ∝ λ^{-1/2}: ⟨C⟩ favours k → ∞."""
    net = two_free_network()
    base = net.ground_state(THETA, X)
    lambdas = np.array([1.0, 4.0, 16.0, 64.0])
    var = [net.ground_state(lam * THETA, X).covariance[3, 3] for lam in lambdas]
    means = [net.ground_state(lam * THETA, X).mean[3] for lam in lambdas]
    np.testing.assert_allclose(means, base.mean[3], rtol=1e-12)
    slope = np.polyfit(np.log(lambdas), np.log(var), 1)[0]
    assert slope == pytest.approx(-0.5, abs=1e-9)


def test_zero_mode_and_bad_input_are_refused():
    with pytest.raises(QepValueError, match="positive definite"):
        OscillatorNetwork(
            n_nodes=2, edges=((0, 1),), input_nodes=(), output_nodes=(1,)
        ).ground_state([1.0], [])
    net = two_free_network()
    with pytest.raises(QepValueError, match="'theta'"):
        net.ground_state(THETA[:2], X)
    with pytest.raises(QepValueError, match="'x'"):
        net.ground_state(THETA, [np.nan])
    with pytest.raises(QepValueError, match="'output_nodes'"):
        OscillatorNetwork(n_nodes=2, edges=((0, 1),), input_nodes=(0,), output_nodes=(0,))
    with pytest.raises(QepValueError, match="'masses'"):
        OscillatorNetwork(
            n_nodes=2, edges=((0, 1),), input_nodes=(0,), output_nodes=(1,), masses=(1.0, -1.0)
        )
    with pytest.raises(QepValueError, match="'shots'"):
        net.ground_state(THETA, X).sample_positions(0, np.random.default_rng(0))
