"""Optimisers, the trainer's learning and its exact reproducibility."""

import numpy as np
import pytest

from qep_analog.equilibrium import get_backend
from qep_analog.errors import QepValueError
from qep_analog.learning import GradientConfig
from qep_analog.learning.optimizers import SGD, Adam, make_optimizer
from qep_analog.learning.trainer import QEPTrainer
from qep_analog.models.spin_models import transverse_field_ising
from qep_analog.protocol import two_blobs


def test_sgd_is_the_local_rule_and_adam_first_step_is_lr_sign():
    theta, grad = np.array([0.5, -1.0]), np.array([2.0, -0.1])
    np.testing.assert_allclose(SGD(learning_rate=0.1).step(theta, grad), theta - 0.1 * grad)
    np.testing.assert_allclose(Adam(learning_rate=0.1).step(theta, grad), theta - 0.1 * np.sign(grad), rtol=1e-6)
    with pytest.raises(QepValueError, match="learning_rate"):
        make_optimizer("adam", learning_rate=-1)
    with pytest.raises(QepValueError, match="optimizer"):
        make_optimizer("lbfgs")


def _trainer(n_steps, **kw):
    h = transverse_field_ising(4, input_qubits=[0, 1], output_qubits=[3], trainable_biases=True)
    return QEPTrainer(hamiltonian=h, backend=get_backend("exact"),
                      gradient=GradientConfig(estimator="symmetric", beta=0.05, shots=200),
                      optimizer=Adam(learning_rate=0.05), batch_size=8, n_steps=n_steps, seed=5,
                      metric="sign", init_scale=0.5, eval_every=10, **kw)


def test_training_reduces_the_test_loss():
    rng = np.random.default_rng(0)
    x, t = two_blobs(80, 2, rng, separation=2.0, noise=0.4)
    tr = _trainer(30).fit(x[:40], t[:40], test_inputs=x[40:], test_targets=t[40:])
    first, last = tr.history_[9], tr.history_[-1]
    assert last["test_loss"] < first["test_loss"]
    assert last["test_accuracy"] >= 0.8
    assert all(r["preparations"] == 8 * (1 + 2 * 2) * 200 for r in tr.history_)


def test_resume_reproduces_an_uninterrupted_run_bitwise():
    rng = np.random.default_rng(1)
    x, t = two_blobs(30, 2, rng)
    full = _trainer(6).fit(x, t)
    part = _trainer(3).fit(x, t)
    state = part.state_dict()
    resumed = _trainer(6)
    resumed.load_state_dict(state)
    resumed.fit(x, t)
    np.testing.assert_array_equal(full.theta_, resumed.theta_)
    assert [r["batch_loss"] for r in full.history_] == [r["batch_loss"] for r in resumed.history_]


def test_parameter_average_is_the_bias_corrected_ema_of_the_iterates_and_survives_resume():
    rng = np.random.default_rng(2)
    x, t = two_blobs(30, 2, rng)
    iterates = []
    tr = _trainer(7, average=0.8, callback=lambda trainer, rec: iterates.append(trainer.theta_.copy()))
    tr.fit(x, t)
    weights = 0.2 * 0.8 ** np.arange(6, -1, -1)
    np.testing.assert_allclose(tr.parameters_, weights @ np.array(iterates) / (1 - 0.8**7), rtol=1e-12)
    # the optimiser's own path is untouched by the averaging
    np.testing.assert_array_equal(tr.theta_, _trainer(7).fit(x, t).theta_)
    part = _trainer(4, average=0.8).fit(x, t)
    resumed = _trainer(7, average=0.8)
    resumed.load_state_dict(part.state_dict())
    resumed.fit(x, t)
    np.testing.assert_array_equal(resumed.parameters_, tr.parameters_)
    with pytest.raises(QepValueError, match="average"):
        _trainer(3, average=1.0)
