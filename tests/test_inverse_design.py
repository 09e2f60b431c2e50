"""Inverse design (task 'inverse-design'): QEP against finite differences, device limits, the shot count."""

import numpy as np
import pytest

from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium import get_backend
from qep_analog.errors import QepValueError
from qep_analog.learning import GradientConfig
from qep_analog.learning.driver import Draw, Driver, TrainingConfig
from qep_analog.tasks.inverse_design import InverseDesignTask, checkerboard, shots_per_step, validate_design_section

SQUARE = [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.5, 6.2]]


def _task(method="qep", beta=0.1, shots=None, positions=(0, 3), detunings=(1, 2, 3), fd_step=1e-4, model=None):
    model = model or RydbergModel(positions_um=SQUARE, device="qep_lab_device", omega=4.0,
                                  detunings=[1.0, -0.5, 0.5, 0.2])
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=beta, shots=shots)
    return InverseDesignTask(model=model, backend=get_backend("exact"), config=config,
                             target=checkerboard(model.positions_um, 6.0), positions=positions, detunings=detunings,
                             method=method, fd_step_um=fd_step, fd_step_detuning=fd_step)


def test_checkerboard_of_a_register_with_a_missing_site():
    pos = np.array([[0, 0], [6, 0], [12, 0], [0, 6], [12, 6]], dtype=float)  # (1, 1) missing
    assert checkerboard(pos, 6.0).tolist() == [1, 0, 1, 0, 0]
    with pytest.raises(QepValueError, match="spacing_um"):
        checkerboard(pos, 0.0)


def test_qep_matches_central_differences_with_beta_squared_bias():
    """Symmetric QEP (exact expectations) = ∂⟨Ĉ⟩/∂θ of Ĉ = Σ_i (n_i − t_i)² over mixed (x, y, δ) parameters; the
    bias is O(β²): relative error < 1e-3 at β = 0.05 and halving β quarters it."""
    fd_task = _task("fd")
    theta = fd_task.initial_theta(TrainingConfig())
    fd = fd_task.gradient(theta, None, Draw(0, 0)).gradient
    assert np.linalg.norm(fd) > 1e-2
    errors = []
    for beta in (0.1, 0.05):
        qep = _task("qep", beta=beta).gradient(theta, None, Draw(0, 0)).gradient
        errors.append(np.linalg.norm(qep - fd) / np.linalg.norm(fd))
    assert errors[1] < 1e-3
    assert 3.0 < errors[0] / errors[1] < 5.0


def test_finite_differences_are_those_of_the_exact_cost():
    task = _task("fd")
    theta = task.initial_theta(TrainingConfig())
    fd = task.gradient(theta, None, Draw(0, 0)).gradient
    for k in (0, 3):
        e = np.zeros_like(theta)
        e[k] = 1e-4
        ref = (task.exact_cost(theta + e) - task.exact_cost(theta - e)) / 2e-4
        assert fd[k] == pytest.approx(ref, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("positions,detunings", [((0,), (1,)), ((0, 3), (1, 2, 3))], ids=["P=3", "P=7"])
def test_shots_per_step_qep_three_phases_fd_two_p_plus_one(positions, detunings):
    shots = 20
    p = 2 * len(positions) + len(detunings)
    for method, expected in (("qep", 3 * shots), ("fd", (2 * p + 1) * shots)):
        task = _task(method, shots=shots, positions=positions, detunings=detunings, fd_step=0.2)
        assert len(task.parameter_names) == p
        driver = Driver(task=task, config=TrainingConfig(optimizer="sgd", learning_rate=0.5, steps=2, seed=3))
        driver.fit()
        assert [r["preparations"] for r in driver.history_ if r["step"] > 0] == [expected, expected]
        assert shots_per_step(method, p, shots) == expected
    assert shots_per_step("qep", 100, 50) == shots_per_step("qep", 10, 50) == 150
    with pytest.raises(QepValueError, match="method"):
        shots_per_step("spsa", 3, 10)


def test_projection_respects_every_device_limit_and_keeps_frozen_coordinates():
    task = _task(positions=(0, 3), detunings=(1, 2))
    theta = task.initial_theta(TrainingConfig())
    names = task.parameter_names
    bad = theta.copy()
    bad[names.index("x_0")], bad[names.index("y_0")] = 5.0, 0.5   # 1.1 µm from the frozen atom 1 at (6, 0)
    bad[names.index("x_3")] = 80.0                                 # beyond the 38 µm radius
    bad[names.index("delta_1")] = 500.0                            # beyond |δ| ≤ 2π·20 and the DMM span
    bad[names.index("delta_2")] = -400.0
    projected = task.project(bad)
    model = task.model_at(projected)
    assert model.violations() == []
    full = task.full(projected)
    frozen = np.setdiff1d(np.arange(full.size), task.index)
    assert np.array_equal(full[frozen], task.base[frozen])


def test_training_steps_stay_inside_the_device_limits():
    """Large learning rates (positions, detunings) with shots: every iterate is admissible, the cost falls."""
    task = _task(shots=100, beta=0.5)
    driver = Driver(task=task, config=TrainingConfig(optimizer="sgd", learning_rate=20.0, steps=4, seed=1,
                                                     learning_rates={"positions": 30.0}))
    driver.fit()
    assert task.model_at(driver.theta_).violations() == []
    costs = [r["cost"] for r in driver.history_]
    assert costs[-1] < costs[0]


def test_bad_design_sections_are_refused_by_name():
    with pytest.raises(QepValueError, match="design.bogus"):
        validate_design_section({"bogus": 1})
    with pytest.raises(QepValueError, match="design.method"):
        validate_design_section({"method": 3})
    with pytest.raises(QepValueError, match="design.method"):
        _task("newton")
    with pytest.raises(QepValueError, match="train_positions"):
        _task(positions=(0, 9))
    with pytest.raises(QepValueError, match="nothing to train"):
        _task(positions=(), detunings=())
