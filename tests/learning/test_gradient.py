"""QEP estimators against exact and finite-difference references of the same objective."""

import dataclasses
import json

import numpy as np
import pytest

from qep_analog.cli import main
from qep_analog.equilibrium import get_backend
from qep_analog.errors import QepValueError
from qep_analog.learning import GradientConfig, estimate_gradient
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.spin_models import cluster_phase_sensor, phase_targets, sample_triangle, transverse_field_ising

EXACT = get_backend("exact")


@pytest.fixture(scope="module")
def tfim_problem():
    rng = np.random.default_rng(7)
    h = transverse_field_ising(5, input_qubits=[0, 1], output_qubits=[3, 4])
    theta = 0.3 * rng.normal(size=len(h.parameter_names))
    theta[-5:] = 0.8 + 0.2 * rng.random(5)  # transverse fields keep the gap open
    x = rng.normal(size=(3, 2))
    t = rng.choice([-1.0, 1.0], size=(3, 2))
    return h, theta, x, t


@pytest.mark.parametrize("nudge", ["error-signal", "cost-operator"])
def test_exact_linear_response_matches_finite_differences(tfim_problem, nudge):
    h, theta, x, t = tfim_problem
    exact = estimate_gradient(h, EXACT, theta, x, t, GradientConfig(estimator="exact", nudge=nudge))
    fd = estimate_gradient(h, EXACT, theta, x, t,
                           GradientConfig(estimator="finite-difference", nudge=nudge, fd_step=1e-4))
    assert exact.objective == fd.objective
    np.testing.assert_allclose(exact.gradient, fd.gradient, atol=1e-6 * max(1, np.abs(exact.gradient).max()))


@pytest.mark.parametrize("nudge", ["error-signal", "cost-operator"])
def test_bias_slopes_one_sided_beta_symmetric_beta_squared(tfim_problem, nudge):
    h, theta, x, t = tfim_problem
    exact = estimate_gradient(h, EXACT, theta, x, t, GradientConfig(estimator="exact", nudge=nudge)).gradient
    betas = np.array([0.04, 0.02, 0.01, 0.005])
    errors = {}
    for estimator in ("one-sided", "symmetric"):
        errors[estimator] = [np.linalg.norm(estimate_gradient(
            h, EXACT, theta, x, t, GradientConfig(estimator=estimator, nudge=nudge, beta=b)).gradient - exact)
            for b in betas]
    slope_one = np.polyfit(np.log(betas), np.log(errors["one-sided"]), 1)[0]
    slope_sym = np.polyfit(np.log(betas), np.log(errors["symmetric"]), 1)[0]
    assert abs(slope_one - 1) < 0.15
    assert abs(slope_sym - 2) < 0.15


def test_cost_operator_and_error_signal_objectives_differ(tfim_problem):
    h, theta, x, t = tfim_problem
    a = estimate_gradient(h, EXACT, theta, x, t, GradientConfig(estimator="exact", nudge="error-signal"))
    b = estimate_gradient(h, EXACT, theta, x, t, GradientConfig(estimator="exact", nudge="cost-operator"))
    assert a.objective != b.objective
    assert np.linalg.norm(a.gradient - b.gradient) > 1e-3


def test_shot_noise_within_error_bars_and_inverse_sqrt_scaling(tfim_problem):
    h, theta, x, t = tfim_problem
    beta = 0.02
    ideal = estimate_gradient(h, EXACT, theta, x, t[:, :], GradientConfig(estimator="symmetric", beta=beta,
                                                                           nudge="cost-operator"))
    mean_se = []
    for shots in (400, 1600, 6400):
        cfg = GradientConfig(estimator="symmetric", beta=beta, shots=shots, nudge="cost-operator")
        est = estimate_gradient(h, EXACT, theta, x, t, cfg, seed=shots)
        z = (est.gradient - ideal.gradient) / est.stderr
        assert np.mean(np.abs(z) < 3) > 0.9
        mean_se.append(np.mean(est.stderr))
    slope = np.polyfit(np.log([400, 1600, 6400]), np.log(mean_se), 1)[0]
    assert abs(slope + 0.5) < 0.1


def test_preparation_counting_on_the_sensor():
    rng = np.random.default_rng(3)
    h = cluster_phase_sensor()
    points = sample_triangle(2, rng)
    theta = 0.3 * rng.normal(size=51)
    cfg = GradientConfig(estimator="symmetric", beta=0.1, shots=10)
    est = estimate_gradient(h, EXACT, theta, points, phase_targets(points), cfg)
    assert est.settings == 9
    # per sample: one free setting (outputs, error signal) + 2 × 9 nudged settings, 10 shots each
    assert est.preparations == 2 * (1 + 2 * 9) * 10
    ideal = estimate_gradient(h, EXACT, theta, points, phase_targets(points),
                              dataclasses.replace(cfg, measurement="gaussian"))
    assert ideal.settings == 51 and ideal.preparations == 2 * 2 * 51 * 10


def _crossing_model():
    # H = 0.1 Z0 + a X0 + J Z0 Z1 + 0.3 X1: with a ≈ 0 the ground state has Z0 = −1, and a cost that
    # rewards Z0 = +1 pushes the level |0⟩ below it once 2β > 0.1 — a level crossing under the nudge.
    return Hamiltonian.build(2, [
        dict(name="field0", operator="Z0", coefficient=0.1),
        dict(name="a", operator="X0", role="trainable", parameter="a"),
        dict(name="J", operator="Z0 Z1", role="trainable", parameter="J"),
        dict(name="x1", operator="X1", coefficient=0.3),
    ], outputs={"z0": "Z0"})


def test_level_crossing_is_detected_and_shrunk_or_dropped():
    h = _crossing_model()
    theta = np.array([0.005, 0.2])
    cfg = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=0.2, max_halvings=4)
    est = estimate_gradient(h, EXACT, theta, None, [[1.0]], cfg)
    assert est.crossings and est.crossings[0]["kind"] == "crossing"
    assert est.crossings[0]["overlap"] < 0.5 and est.crossings[0]["action"] == "shrunk"
    assert est.samples_used == 1
    exact = estimate_gradient(h, EXACT, theta, None, [[1.0]], GradientConfig(estimator="exact",
                                                                            nudge="cost-operator"))
    naive = estimate_gradient(h, EXACT, theta, None, [[1.0]], dataclasses.replace(cfg, overlap_threshold=0.0))
    # the crossed estimate is garbage; shrinking β restores the continuously connected branch
    assert np.linalg.norm(est.gradient - exact.gradient) < 0.5 * np.linalg.norm(naive.gradient - exact.gradient)
    small = estimate_gradient(h, EXACT, theta, None, [[1.0]], dataclasses.replace(cfg, beta=0.005))
    assert not small.crossings
    assert np.linalg.norm(small.gradient - exact.gradient) < 0.05 * np.linalg.norm(exact.gradient)
    dropped = estimate_gradient(h, EXACT, theta, None, [[1.0]], dataclasses.replace(cfg, crossing_policy="drop"))
    assert dropped.samples_dropped == 1 and dropped.crossings[0]["action"] == "dropped"


def test_one_sided_policy_keeps_the_uncrossed_side():
    h = _crossing_model()
    theta = np.array([0.005, 0.2])
    cfg = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=0.2, crossing_policy="one-sided")
    est = estimate_gradient(h, EXACT, theta, None, [[1.0]], cfg)
    # only +β (which rewards Z0 = +1) crosses; the estimate is the one-sided one from −β at the full β
    assert [(c["phase"], c["action"]) for c in est.crossings] == [("+beta", "one-sided")]
    assert est.samples_used == 1
    free = EXACT.prepare(h, theta, h.input_vector(None))
    y = h.output_expectations(free.state)
    direction = cfg.objective.nudge_direction(h, y, np.array([1.0]))
    minus = EXACT.prepare(h, theta, h.input_vector(None), direction.scaled(-0.2), reference=free)
    assert free.overlap(minus) > 0.9
    manual = (h.derivative_expectations(free.state) - h.derivative_expectations(minus.state)) / 0.2
    np.testing.assert_allclose(est.gradient, manual, rtol=1e-8, atol=1e-12)
    exact = estimate_gradient(h, EXACT, theta, None, [[1.0]], GradientConfig(estimator="exact",
                                                                            nudge="cost-operator"))
    cosine = est.gradient @ exact.gradient / np.linalg.norm(est.gradient) / np.linalg.norm(exact.gradient)
    assert cosine > 0.99
    # both sides uncrossed → the ordinary symmetric estimate, bit for bit
    calm = dataclasses.replace(cfg, beta=0.01)
    np.testing.assert_array_equal(estimate_gradient(h, EXACT, theta, None, [[1.0]], calm).gradient,
                                  estimate_gradient(h, EXACT, theta, None, [[1.0]],
                                                    dataclasses.replace(calm, crossing_policy="shrink")).gradient)
    # same preparations as the symmetric estimate: a measured free phase replaces the crossed one
    shots = dataclasses.replace(cfg, shots=10, measurement="gaussian")
    noisy = estimate_gradient(h, EXACT, theta, None, [[1.0]], shots)
    assert noisy.preparations == 2 * len(h.derivative_map[0].products) * 10


def test_bad_configs_name_the_field():
    for kwargs, field in [(dict(shots=-5), "shots"), (dict(beta=0.0), "beta"), (dict(estimator="magic"), "estimator"),
                          (dict(nudge="push"), "nudge"), (dict(beta=float("nan")), "beta")]:
        with pytest.raises(QepValueError, match=field):
            GradientConfig(**kwargs)
    h = Hamiltonian.build(1, [dict(name="a", operator="X0", role="trainable", parameter="a")])
    with pytest.raises(QepValueError, match="no output"):
        estimate_gradient(h, EXACT, [0.3], None, [[1.0]], GradientConfig())


def test_cli_gradient_json_and_one_line_errors(tmp_path, capsys):
    protocol = tmp_path / "p.toml"
    protocol.write_text("""
[model]
kind = "tfim"
n_qubits = 3
input_qubits = [0]
output_qubits = [2]
[data]
kind = "inline"
inputs = [[0.5], [-0.5]]
targets = [[1.0], [-1.0]]
""")
    assert main(["gradient", str(protocol), "--estimator", "exact", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["gradient"]) == set(out["stderr"]) and out["settings"] == 2
    assert "Σ" in out["objective"] and out["crossings"] == []
    assert main(["gradient", str(protocol), "--shots", "-3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shots" in err
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nkind = "tfim"\nn_qubits = 3\ncolour = "red"\n')
    assert main(["gradient", str(bad)]) == 2
    assert "model.colour" in capsys.readouterr().err
    bad.write_text('[model]\nkind = "pauli"\nn_qubits = 2\nterms = [{operator = "Q0"}]\n[data]\ntargets=[[1.0]]\n')
    assert main(["gradient", str(bad)]) == 2
    assert "Pauli letter" in capsys.readouterr().err


def test_hellmann_feynman_energy_derivative(tfim_problem):
    h, theta, x, _ = tfim_problem
    eps = 1e-6
    for k in (0, 7, len(theta) - 1):
        step = np.zeros_like(theta)
        step[k] = eps
        de = (EXACT.prepare(h, theta + step, x[0]).energy - EXACT.prepare(h, theta - step, x[0]).energy) / (2 * eps)
        assert abs(de - h.derivative_expectations(EXACT.prepare(h, theta, x[0]).state)[k]) < 1e-6


def test_massar_mognetti_cost_operator_objective_is_linear_in_z():
    """⟨½(Z − d)²⟩ = ½(1 + d²) − d⟨Z⟩: its gradient is −d ∇⟨Z⟩, minimised by ⟨Z⟩ → sign d."""
    from qep_analog.models.spin_models import massar_mognetti

    rng = np.random.default_rng(11)
    h = massar_mognetti(3, input_qubits=[0], output_qubits=[2])
    theta = rng.normal(size=len(h.parameter_names))
    x, d = [[0.7]], 0.4
    cost = estimate_gradient(h, EXACT, theta, x, [[d]], GradientConfig(estimator="exact", nudge="cost-operator",
                                                                        loss_scale=0.5))
    linear = estimate_gradient(h, EXACT, theta, x, [[1.0]], GradientConfig(estimator="exact", nudge="error-signal",
                                                                            loss="linear"))
    np.testing.assert_allclose(cost.gradient, -d * linear.gradient, atol=1e-10)


def test_results_name_the_state_used_and_thermal_states_skip_the_crossing_policy(tfim_problem):
    h, theta, x, t = tfim_problem
    cfg = GradientConfig(estimator="symmetric", beta=0.05, overlap_threshold=0.999)
    gibbs = estimate_gradient(h, get_backend("gibbs", temperature=0.5), theta, x, t, cfg)
    assert gibbs.state_kinds == ("gibbs",) and not gibbs.crossings
    assert estimate_gradient(h, EXACT, theta, x, t, cfg).state_kinds == ("eigenstate",)
