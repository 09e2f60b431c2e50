"""Rydberg QEP training through the one driver: detunings and positions, group rates, device limits."""

import numpy as np
import pytest

from qep_analog.device.rydberg import RydbergModel
from qep_analog.device.training import RydbergTask
from qep_analog.equilibrium import get_backend
from qep_analog.errors import QepValueError
from qep_analog.learning import GradientConfig
from qep_analog.learning.driver import Draw, Driver, TrainingConfig

POSITIONS = [[0.0, 0.0], [9.0, 0.0], [4.5, 7.8], [13.5, 7.8]]
X, Y = [[2.0], [-2.0]], [[1.0], [0.0]]


def _model(**kw):
    base = dict(positions_um=POSITIONS, device="MockDevice", omega=10.0, detunings=[3.0, 4.0, 2.0, 3.0],
                input_atoms=(0,), output_atoms=(3,))
    base.update(kw)
    return RydbergModel(**base)


def _task(model, backend=None, shots=None):
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=1.0, shots=shots)
    return RydbergTask(model=model, backend=backend or get_backend("exact"), config=config, inputs=X, targets=Y,
                       test_inputs=X, test_targets=Y)


def _config(**kw):
    base = dict(optimizer="sgd", learning_rate=40.0, learning_rates={"positions": 20.0}, batch_size=2, steps=15)
    base.update(kw)
    return TrainingConfig(**base)


def test_noiseless_training_lowers_the_cost_within_device_limits():
    task = _task(_model())
    driver = Driver(task=task, config=_config()).fit()
    before, _ = task.cost(task.theta_of(task.model), X, Y)
    after, _ = task.cost(driver.parameters_, X, Y)
    assert after < before - 0.02
    assert task.model_at(driver.parameters_).violations() == []
    # the step-0 evaluation, then one record per step
    assert len(driver.history_) == 16 and driver.history_[0]["step"] == 0


def test_group_rates_and_frozen_positions():
    model = _model(train_positions=False)
    task = _task(model)
    driver = Driver(task=task, config=_config(steps=2)).fit()
    moved = task.model_at(driver.parameters_)
    assert np.array_equal(moved.positions_um, model.positions_um)
    assert not np.array_equal(moved.detunings, model.detunings)
    # one SGD step: Δθ = −η_group ∂L/∂θ exactly, with the chain rule for the positions
    task = _task(_model())
    one = Driver(task=task, config=_config(steps=1, learning_rate=1e-3, learning_rates={"positions": 2e-3})).fit()
    grad = task.gradient(task.theta_of(task.model), np.arange(2), Draw(0, 0)).gradient  # exact: no shots
    k = task.model.positions_um.size
    expected = task.theta_of(task.model) - np.concatenate([2e-3 * grad[:k], 1e-3 * grad[k:]])
    np.testing.assert_allclose(one.theta_, task.project(expected), rtol=1e-12)


def test_projection_keeps_atoms_apart_and_theta0_is_refused():
    task = _task(_model(device="AnalogDevice", positions_um=[[0, 0], [6, 0], [3, 5.2], [9, 5.2]]))
    theta = task.theta_of(task.model)
    theta[2] = 0.5  # atom 1 onto atom 0: closer than AnalogDevice's 5 µm
    projected = task.model_at(task.project(theta))
    assert projected.violations() == []
    with pytest.raises(QepValueError, match="theta0"):
        Driver(task=task, config=_config(theta0=[0.0] * 12)).fit()


@pytest.mark.slow
def test_adiabatic_training_with_shots_lowers_the_cost():
    model = _model()
    backend = get_backend("adiabatic", model=model, duration_ns=2000)
    task = _task(model, backend=backend, shots=20000)
    driver = Driver(task=task, config=_config(steps=8, seed=2)).fit()
    assert task.cost(driver.parameters_, X, Y)[0] < task.cost(task.theta_of(model), X, Y)[0]
