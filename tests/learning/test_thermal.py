"""Thermal QEP: the theorem against finite differences, the covariance rule and its limits."""

from __future__ import annotations

import numpy as np
import pytest

from qep_analog.equilibrium import get_backend
from qep_analog.errors import QepValueError
from qep_analog.learning.gradient import GradientConfig, estimate_gradient
from qep_analog.learning.thermal import (
    covariance_rule,
    covariance_rule_from_bits,
    covariance_rule_mean,
    covariance_rule_variance,
    finite_difference_gradient,
    gibbs,
    kubo_mori_covariance,
    nudged_gradient,
    plain_covariance,
    thermal_response,
)
from qep_analog.measurement.sampling import sample_bitstrings
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliSum
from qep_analog.models.spin_models import transverse_field_ising

C3 = PauliSum.from_spec("Z3")


def _tfim(seed=1):
    h = transverse_field_ising(4, input_qubits=[0], output_qubits=[3])
    return h, np.random.default_rng(seed).normal(size=len(h.parameter_names)), [0.4]


def _ising_chain(n=3, omega=0.0):
    """H = Σ J_i Z_i Z_{i+1} + Σ b_i Z_i + Ω Σ X_i (trainable J, b; fixed Ω)."""
    terms = [dict(name=f"J{i}", operator=f"Z{i} Z{i + 1}", role="trainable", parameter=f"J{i}") for i in range(n - 1)]
    terms += [dict(name=f"b{i}", operator=f"Z{i}", role="trainable", parameter=f"b{i}") for i in range(n)]
    terms += [dict(name=f"x{i}", operator=f"X{i}", coefficient=omega) for i in range(n)]
    return Hamiltonian.build(n, terms, outputs={"z": f"Z{n - 1}"})


@pytest.mark.parametrize("temperature", [1.0, 0.3, 0.1])
def test_exact_response_equals_finite_differences(temperature):
    h, theta, x = _tfim()
    exact = thermal_response(h, theta, x, C3, temperature)
    fd = finite_difference_gradient(h, theta, x, C3, temperature, step=1e-4)
    np.testing.assert_allclose(exact, fd, atol=1e-6 * max(1.0, np.abs(exact).max()))


def test_nudged_estimators_converge_with_expected_orders():
    h, theta, x = _tfim()
    fd = finite_difference_gradient(h, theta, x, C3, 0.3)
    err = {
        est: [
            np.abs(nudged_gradient(h, theta, x, C3, beta=b, estimator=est, temperature=0.3) - fd).max()
            for b in (0.04, 0.02)
        ]
        for est in ("one-sided", "symmetric")
    }
    assert err["one-sided"][0] / err["one-sided"][1] == pytest.approx(2, rel=0.15)
    assert err["symmetric"][0] / err["symmetric"][1] == pytest.approx(4, rel=0.15)
    assert err["symmetric"][1] < err["one-sided"][1]
    # the sign: nudging with +βC gives the descent direction of ⟨C⟩ as −g (not eq. 42's ascent)
    g = nudged_gradient(h, theta, x, C3, beta=0.01, temperature=0.3)
    step = 1e-3 * g / np.linalg.norm(g)
    from qep_analog.learning.thermal import thermal_expectation

    assert thermal_expectation(h, theta - step, x, C3, 0.3) < thermal_expectation(h, theta, x, C3, 0.3)


def test_thermal_qep_through_the_generic_estimator_with_gibbs_and_cooling():
    h, theta, x = _tfim()
    cfg = GradientConfig(estimator="symmetric", nudge="cost-operator", loss="linear", beta=0.01)
    # linear cost with weight 1 on the single output: Ĉ = Z3
    exact = thermal_response(h, theta, x, C3, 0.3)
    for backend in (get_backend("gibbs", temperature=0.3), get_backend("cooling", temperature=0.3)):
        est = estimate_gradient(h, backend, theta, [x], [[1.0]], cfg)
        np.testing.assert_allclose(est.gradient, exact, atol=5e-3 * np.abs(exact).max())
        assert not est.crossings
    fd = estimate_gradient(
        h,
        get_backend("cooling", temperature=0.3),
        theta,
        [x],
        [[1.0]],
        GradientConfig(estimator="finite-difference", nudge="cost-operator", loss="linear", fd_step=1e-4),
    )
    np.testing.assert_allclose(fd.gradient, exact, atol=1e-5 * np.abs(exact).max())


def test_thermal_qep_with_shots_is_unbiased():
    h, theta, x = _tfim()
    cfg = GradientConfig(estimator="symmetric", nudge="cost-operator", loss="linear", beta=0.2, shots=4000)
    backend = get_backend("gibbs", temperature=1.0)
    est = estimate_gradient(h, backend, theta, [x], [[1.0]], cfg, seed=3)
    noiseless = nudged_gradient(h, theta, x, C3, beta=0.2, temperature=1.0)
    z = (est.gradient - noiseless) / est.stderr
    assert np.all(np.abs(z) < 4.5)
    assert est.preparations == (1 + 2 * est.settings) * 4000  # free outputs + 2 nudged phases


def test_kubo_mori_equals_plain_covariance_when_observables_commute_with_h():
    h = _ising_chain(omega=0.0)
    theta = np.random.default_rng(0).normal(size=len(h.parameter_names))
    c = PauliSum.from_spec("Z2")
    for temperature in (2.0, 0.5, 0.1):
        exact = thermal_response(h, theta, None, c, temperature)
        mean = covariance_rule_mean(h, theta, None, c, temperature)
        np.testing.assert_allclose(mean, exact, atol=1e-12 * max(1, np.abs(exact).max()))


def test_covariance_rule_from_bitstrings_matches_exact_at_zero_omega():
    h = _ising_chain(omega=0.0)
    theta = np.random.default_rng(0).normal(size=len(h.parameter_names))
    c = PauliSum.from_spec("Z2")
    exact = thermal_response(h, theta, None, c, 0.7)
    est = covariance_rule(h, theta, None, c, 0.7, shots=20000, seed=11)
    assert est.basis == "ZZZ"
    assert np.all(np.abs(est.gradient - exact) < 4 * est.stderr + 1e-12)
    np.testing.assert_allclose(est.stderr, np.sqrt(covariance_rule_variance(h, theta, None, c, 0.7, 20000)), rtol=0.1)
    # the cooling backend's free state gives the same statistics
    est2 = covariance_rule(
        h,
        theta,
        None,
        c,
        0.7,
        shots=20000,
        seed=12,
        backend=get_backend("cooling", temperature=0.7),
    )
    assert np.all(np.abs(est2.gradient - exact) < 4 * est2.stderr + 1e-12)


def test_covariance_rule_refuses_observables_in_different_bases():
    h, theta, x = _tfim()  # ∂H/∂h_k = −X_k, C = Z3
    with pytest.raises(QepValueError, match="one product basis"):
        covariance_rule(h, theta, x, PauliSum.from_spec("Z0"), 0.3, shots=10)
    names = [p for p in h.parameter_names if p.startswith("J")]
    est = covariance_rule(h, theta, x, C3, 0.3, shots=100, parameters=names)
    assert est.parameter_names == tuple(names)


def test_covariance_rule_discrepancy_grows_like_inverse_temperature():
    """With Ω ≠ 0, T·(plain − exact) → −Cov_ground(A, C) as T → 0: a 1/T discrepancy."""
    h = _ising_chain(omega=1.0)
    theta = np.random.default_rng(2).normal(size=len(h.parameter_names))
    c = PauliSum.from_spec("Z2")
    hd = h.dense(theta)
    _, v = np.linalg.eigh(hd)
    ground = np.outer(v[:, 0], v[:, 0].conj())
    limit = np.array(
        [
            -plain_covariance(ground, h.derivative(k).matrix(3).toarray(), c.matrix(3).toarray())
            for k in h.parameter_names
        ]
    )
    scaled = []
    for temperature in (0.04, 0.02, 0.01):
        disc = covariance_rule_mean(h, theta, None, c, temperature) - thermal_response(h, theta, None, c, temperature)
        scaled.append(temperature * disc)
    errors = [np.abs(s - limit).max() for s in scaled]  # the exact response stays finite: O(T) left
    assert errors[2] < 0.6 * errors[1] < 0.36 * errors[0]
    assert errors[2] < 0.02 * np.abs(limit).max()
    assert np.abs(limit).max() > 0.01  # non-trivial quantum fluctuations in the ground state
    # and at Ω ≠ 0 the two covariances really differ
    rho = gibbs(hd, 0.3)
    a, cc = h.derivative("J0").matrix(3).toarray(), c.matrix(3).toarray()
    assert abs(plain_covariance(rho, a, cc) - kubo_mori_covariance(hd, a, cc, 0.3)) > 1e-3


def test_covariance_rule_shot_variance_scales_as_one_over_m_t_squared():
    h = _ising_chain(omega=0.0)
    theta = np.random.default_rng(0).normal(size=len(h.parameter_names))
    c = PauliSum.from_spec("Z2")
    rng = np.random.default_rng(5)
    repeats = 300
    for temperature, shots in ((2.0, 200), (2.0, 800), (0.5, 200)):
        rho = gibbs(h.dense(theta), temperature)
        draws = np.array(
            [
                covariance_rule_from_bits(h, sample_bitstrings(rho, "ZZZ", shots, rng), c, temperature).gradient
                for _ in range(repeats)
            ]
        )
        predicted = covariance_rule_variance(h, theta, None, c, temperature, shots)
        ratio = draws.var(axis=0, ddof=1) / predicted
        # χ² with 299 dof: relative sd 0.08; allow 4.5 sd plus the O(1/M) finite-sample term
        assert np.all(np.abs(ratio - 1) < 0.4), ratio


def test_bad_thermal_inputs_raise():
    h, theta, x = _tfim()
    with pytest.raises(QepValueError, match="'temperature'"):
        thermal_response(h, theta, x, C3, 0.0)
    with pytest.raises(QepValueError, match="'beta'"):
        nudged_gradient(h, theta, x, C3, beta=-0.1, temperature=1.0)
    with pytest.raises(QepValueError, match="'estimator'"):
        nudged_gradient(h, theta, x, C3, beta=0.1, estimator="two-sided", temperature=1.0)
