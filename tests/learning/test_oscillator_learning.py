"""Physics checks of the oscillator network's QEP gradients and of protocol 5 (regression)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import qutip

from qep_analog.errors import QepValueError
from qep_analog.learning.oscillator import (
    NUDGE_OBJECTIVE,
    OBJECTIVES,
    combine,
    exact_gradient,
    finite_difference_gradient,
    mean_loss_and_gradient,
    objective_value,
    optimum_mean_loss,
    qep_gradient,
)
from qep_analog.models.oscillator import OscillatorNetwork, layered_network
from qep_analog.protocol import validate
from qep_analog.tasks.oscillator import make_regression_task
from qep_analog.train import run_training

NET = OscillatorNetwork(
    n_nodes=4,
    edges=((0, 2), (1, 2), (2, 3), (1, 3), (0, 3)),
    input_nodes=(0,),
    anchor_nodes=(1,),
    anchor_positions=(0.3,),
    output_nodes=(2, 3),
    masses=(1.0, 1.0, 1.3, 0.8),
)
THETA = np.array([1.1, 0.7, 0.9, 0.5, 0.4])
X = np.array([0.8])
Y = np.array([0.2, 0.65])


def fock_linear_response(n_fock: int = 30) -> dict[str, np.ndarray]:
    """Exact β → 0 gradients in a truncated Fock basis: g = 2 Re⟨ψ|A (E₀ − H)⁺ (B − ⟨B⟩)|ψ⟩."""
    K, m = NET.stiffness(THETA), np.asarray(NET.masses)
    free = list(NET.free_nodes)
    pos, mom = {}, {}
    for a, node in enumerate(free):
        w0 = np.sqrt(K[node, node] / m[node])
        op = qutip.destroy(n_fock)
        ops = [qutip.qeye(n_fock)] * len(free)
        pos[node] = qutip.tensor(*[(op + op.dag()) / np.sqrt(2 * m[node] * w0) if c == a else o
                                   for c, o in enumerate(ops)])
        mom[node] = qutip.tensor(*[1j * (op.dag() - op) * np.sqrt(m[node] * w0 / 2) if c == a else o
                                   for c, o in enumerate(ops)])
    one = qutip.tensor(*[qutip.qeye(n_fock)] * len(free))
    for c, node in enumerate(NET.clamped_nodes):
        pos[node] = float(NET.clamped_positions(X)[c]) * one
    derivs = [0.5 * (pos[i] - pos[j]) ** 2 for i, j in NET.edges]
    H = sum(mom[n] ** 2 / (2 * m[n]) for n in free)
    H = H + sum(k * d for k, d in zip(THETA, derivs, strict=True))
    E, V = np.linalg.eigh(H.full())
    psi = V[:, 0]
    resolvent = V[:, 1:] @ np.diag(1.0 / (E[0] - E[1:])) @ V[:, 1:].conj().T

    def response(B: np.ndarray) -> np.ndarray:
        dB = (B - (psi.conj() @ B @ psi) * np.eye(len(psi))) @ psi
        return np.array([2 * np.real(psi.conj() @ d.full() @ resolvent @ dB) for d in derivs])

    outs = [pos[n].full() for n in NET.output_nodes]
    mu = np.array([np.real(psi.conj() @ r @ psi) for r in outs])
    eye = np.eye(len(psi))
    cost = sum((r - y * eye) @ (r - y * eye) for r, y in zip(outs, Y, strict=True))
    mean_loss = sum(2 * (mu_l - y) * response(r) for mu_l, y, r in zip(mu, Y, outs, strict=True))
    return {"mean-loss": mean_loss, "cost-expectation": response(cost)}


def test_exact_gradient_matches_fock_linear_response_and_finite_differences():
    reference = fock_linear_response()
    for objective in OBJECTIVES:
        exact = exact_gradient(NET, THETA, X, Y, objective)
        assert exact.objective == objective and exact.parameter_names == NET.parameter_names
        np.testing.assert_allclose(exact.gradient, reference[objective], rtol=1e-6, atol=1e-9)
        fd = finite_difference_gradient(NET, THETA, X, Y, objective, step=1e-5)
        np.testing.assert_allclose(exact.gradient, fd.gradient, rtol=1e-7, atol=1e-10)


def _slope(betas, errors) -> float:
    return float(np.polyfit(np.log(betas), np.log(errors), 1)[0])


@pytest.mark.parametrize("nudge", sorted(NUDGE_OBJECTIVE))
def test_qep_converges_to_exact_with_expected_orders(nudge):
    exact = exact_gradient(NET, THETA, X, Y, NUDGE_OBJECTIVE[nudge]).gradient
    betas = np.array([0.08, 0.04, 0.02, 0.01])
    err = {
        est: [np.linalg.norm(qep_gradient(NET, THETA, X, Y, nudge=nudge, estimator=est,
                                          beta=b).gradient - exact) for b in betas]
        for est in ("one-sided", "symmetric")
    }
    assert _slope(betas, err["one-sided"]) == pytest.approx(1.0, abs=0.05)
    if nudge == "cost-operator":
        assert _slope(betas, err["symmetric"]) == pytest.approx(2.0, abs=0.05)
    else:
        # A linear force only shifts the mean: ⟨∂H/∂k⟩_β is exactly quadratic in β,
        # so the symmetric error-signal estimator is exact at every β.
        for b in (0.01, 1.0, 5.0):
            g = qep_gradient(NET, THETA, X, Y, nudge=nudge, estimator="symmetric", beta=b)
            np.testing.assert_allclose(g.gradient, exact, rtol=1e-9, atol=1e-12)


def test_shot_noise_scales_as_inverse_sqrt_shots_and_stderr_is_calibrated():
    rng = np.random.default_rng(11)
    exact = exact_gradient(NET, THETA, X, Y, "cost-expectation").gradient
    shots_list = np.array([50, 200, 800, 3200])
    spread, reported = [], []
    for shots in shots_list:
        runs = [qep_gradient(NET, THETA, X, Y, nudge="cost-operator", estimator="symmetric",
                             beta=0.1, shots=int(shots), rng=rng) for _ in range(150)]
        g = np.array([r.gradient for r in runs])
        spread.append(g.std(axis=0, ddof=1).mean())
        reported.append(np.mean([r.stderr for r in runs], axis=0).mean())
        # unbiased up to the O(β²) bias, which is far below the shot noise here
        assert np.all(np.abs(g.mean(0) - exact) < 4.5 * g.std(0, ddof=1) / np.sqrt(len(runs)))
    assert _slope(shots_list, spread) == pytest.approx(-0.5, abs=0.06)
    assert _slope(shots_list, reported) == pytest.approx(-0.5, abs=0.03)
    np.testing.assert_allclose(reported, spread, rtol=0.2)


def test_error_signal_from_shots_is_unbiased():
    rng = np.random.default_rng(5)
    exact = exact_gradient(NET, THETA, X, Y, "mean-loss").gradient
    runs = [qep_gradient(NET, THETA, X, Y, nudge="error-signal", estimator="symmetric", beta=1.0,
                         shots=400, rng=rng).gradient for _ in range(300)]
    g = np.array(runs)
    assert np.all(np.abs(g.mean(0) - exact) < 4.5 * g.std(0, ddof=1) / np.sqrt(len(runs)))


@pytest.mark.parametrize(
    ("nudge", "estimator", "phases"),
    [("error-signal", "one-sided", 2), ("error-signal", "symmetric", 3),
     ("cost-operator", "one-sided", 2), ("cost-operator", "symmetric", 2)],
)
def test_preparations_are_counted_per_phase(nudge, estimator, phases):
    g = qep_gradient(NET, THETA, X, Y, nudge=nudge, estimator=estimator, beta=0.1, shots=37,
                     rng=np.random.default_rng(0))
    assert g.preparations == 37 * phases
    assert g.objective == NUDGE_OBJECTIVE[nudge]
    fd = finite_difference_gradient(NET, THETA, X, Y, "mean-loss", step=0.1, shots=37,
                                    rng=np.random.default_rng(0))
    assert fd.preparations == 2 * NET.n_parameters * 37
    assert combine([g, g]).preparations == 2 * g.preparations


def test_scaling_pitfall_of_the_cost_objective():
    """k → λk keeps μ and gives Var ∝ λ^{-1/2}, so θ·∇⟨C⟩ = −½ Σ Var(r_out) < 0 and θ·∇L = 0."""
    state = NET.ground_state(THETA, X)
    var_out = np.diag(state.covariance)[list(NET.output_nodes)].sum()
    g_cost = exact_gradient(NET, THETA, X, Y, "cost-expectation").gradient
    g_mean = exact_gradient(NET, THETA, X, Y, "mean-loss").gradient
    assert THETA @ g_cost == pytest.approx(-0.5 * var_out, rel=1e-10)
    assert THETA @ g_mean == pytest.approx(0.0, abs=1e-12)
    assert objective_value(NET, 10 * THETA, X, Y, "cost-expectation") < objective_value(
        NET, THETA, X, Y, "cost-expectation")


def test_dataset_loss_gradient_and_constrained_optimum():
    rng = np.random.default_rng(2)
    task = make_regression_task(n_inputs=2, n_outputs=1, n_hidden=0, anchor_positions=[0.0],
                                n_train=20, n_test=5, input_low=-1, input_high=1,
                                target_map=None, rng=rng)
    net = task.network
    assert task.target_inside_hull
    theta = rng.uniform(0.5, 1.5, net.n_parameters)
    loss, grad = mean_loss_and_gradient(net, theta, task.xs_train, task.ys_train)
    per_sample = [exact_gradient(net, theta, x, y, "mean-loss").gradient
                  for x, y in zip(task.xs_train, task.ys_train, strict=True)]
    np.testing.assert_allclose(grad, np.mean(per_sample, axis=0), rtol=1e-10, atol=1e-14)
    pairs = zip(task.xs_train, task.ys_train, strict=True)
    assert loss == pytest.approx(np.mean([objective_value(net, theta, x, y, "mean-loss")
                                          for x, y in pairs]))
    # A single output tied directly to every clamped node realises any convex map exactly.
    theta_opt, loss_opt = optimum_mean_loss(net, task.xs_train, task.ys_train, k_min=1e-3,
                                            k_max=100.0, restarts=2, rng=rng)
    assert loss_opt < 1e-12
    np.testing.assert_allclose(net.output_map(theta_opt), task.target_map, atol=1e-5)
    # A target outside the hull cannot be reached: the optimum keeps a finite error.
    out = make_regression_task(n_inputs=2, n_outputs=1, n_hidden=0, anchor_positions=[0.0],
                               n_train=20, n_test=5, input_low=-1, input_high=1,
                               target_map=[[1.5, 0.2, -0.7]], rng=rng)
    assert not out.target_inside_hull
    _, loss_out = optimum_mean_loss(out.network, out.xs_train, out.ys_train, k_min=1e-3,
                                    k_max=100.0, restarts=2, rng=rng)
    assert loss_out > 1e-2


def test_tiny_protocol_run_learns_and_reports(tmp_path):
    """The shipped protocol file through ``qep-analog train``'s driver, in a tiny configuration."""
    protocol = Path(__file__).parents[2] / "protocols" / "oscillator_regression.toml"
    sets = ["oscillator.network.n_inputs=2", "oscillator.network.n_outputs=1", "oscillator.network.n_hidden=1",
            "oscillator.task.n_train=16", "oscillator.task.n_test=16", "oscillator.optimum.restarts=1",
            "training.steps=40", "training.batch_size=4", "gradient.shots=50", "training.eval_every=20",
            "training.final_learning_rate=0.01"]
    result = run_training(protocol, out_dir=tmp_path / "a", seed=3, overrides=sets, progress=False)
    json.dumps(result["history"])
    evaluated = [r for r in result["history"] if "train_mean_loss" in r]
    assert [r["step"] for r in evaluated] == [0, 20, 40]
    assert evaluated[-1]["train_mean_loss"] < 0.5 * evaluated[0]["train_mean_loss"]
    final = result["final"]
    assert final["optimum_train_mean_loss"] <= final["train_mean_loss"] + 1e-12
    assert final["target_inside_hull"]
    n_edges = layered_network(2, 1, n_hidden=1).n_parameters
    assert final["preparations"] == 40 * 4 * 3 * 50  # steps × batch × 3 phases × shots
    assert len(result["theta"]) == n_edges
    assert all(v >= 0.01 for v in result["theta"].values())  # training.bounds = [0.01, 100]
    again = run_training(protocol, out_dir=tmp_path / "b", seed=3, overrides=sets, progress=False)
    assert again["final"]["train_mean_loss"] == final["train_mean_loss"]


def test_protocol_rejects_bad_configuration(tmp_path):
    protocol = Path(__file__).parents[2] / "protocols" / "oscillator_regression.toml"
    with pytest.raises(QepValueError, match="oscillator.bogus"):
        validate({"oscillator": {"bogus": 1}})
    with pytest.raises(QepValueError, match="oscillator.task.n_train"):
        validate({"oscillator": {"task": {"n_train": 2.5}}})
    with pytest.raises(QepValueError, match="training.stepz"):
        run_training(protocol, out_dir=tmp_path / "x", overrides=["training.stepz=3"], progress=False)
    with pytest.raises(QepValueError, match="gradient.nudge"):
        run_training(protocol, out_dir=tmp_path / "x", overrides=["gradient.nudge='springs'"], progress=False)
    with pytest.raises(QepValueError, match="gradient.loss"):
        run_training(protocol, out_dir=tmp_path / "x", overrides=["gradient.loss='mse'"], progress=False)
    assert not (tmp_path / "x").exists()
    with pytest.raises(QepValueError, match="shots"):
        qep_gradient(NET, THETA, X, Y, nudge="error-signal", estimator="symmetric", beta=0.1,
                     shots=-3, rng=np.random.default_rng(0))
