"""Optimisers, the one driver's learning, groups, projection, averaging, selection and exact resume."""

import numpy as np
import pytest

from qep_analog.datasets import two_blobs
from qep_analog.equilibrium import get_backend
from qep_analog.errors import QepValueError
from qep_analog.learning import GradientConfig
from qep_analog.learning.driver import Draw, Driver, StepEstimate, TrainingConfig
from qep_analog.learning.evaluation import evaluate, validate
from qep_analog.learning.gradient import measure_outputs
from qep_analog.learning.optimizers import SGD, Adam, make_optimizer
from qep_analog.models.spin_models import transverse_field_ising
from qep_analog.tasks.supervised import SpinTask


def test_sgd_is_the_local_rule_and_adam_first_step_is_lr_sign():
    theta, grad = np.array([0.5, -1.0]), np.array([2.0, -0.1])
    np.testing.assert_allclose(SGD(learning_rate=0.1).step(theta, grad), theta - 0.1 * grad)
    np.testing.assert_allclose(Adam(learning_rate=0.1).step(theta, grad), theta - 0.1 * np.sign(grad), rtol=1e-6)
    with pytest.raises(QepValueError, match="learning_rate"):
        make_optimizer("adam", learning_rate=-1)
    with pytest.raises(QepValueError, match="optimizer"):
        make_optimizer("lbfgs")


class _Fitter:
    """A driver on a 4-qubit TFIM classifier, fitted to the data given to ``fit``."""

    def __init__(self, n_steps, callback=None, **kw):
        self.n_steps, self.callback, self.kw = n_steps, callback, kw
        self.state = None

    def fit(self, x, t, *, test_inputs=None, test_targets=None, validation_inputs=None, validation_targets=None):
        h = transverse_field_ising(4, input_qubits=[0, 1], output_qubits=[3], trainable_biases=True)
        task = SpinTask(hamiltonian=h, backend=get_backend("exact"),
                        config=GradientConfig(estimator="symmetric", beta=0.05, shots=200), inputs=x, targets=t,
                        test_inputs=test_inputs, test_targets=test_targets, validation_inputs=validation_inputs,
                        validation_targets=validation_targets, validation_shots=self.kw.pop("validation_shots", None),
                        metric="sign")
        config = TrainingConfig(optimizer="adam", learning_rate=0.05, batch_size=8, steps=self.n_steps, seed=5,
                                metric="sign", init_scale=0.5, eval_every=10, **self.kw)
        driver = Driver(task=task, config=config, callback=self.callback)
        if self.state is not None:
            driver.load_state_dict(self.state)
        return driver.fit()

    def load_state_dict(self, state):
        self.state = state


def _trainer(n_steps, **kw):
    return _Fitter(n_steps, **kw)


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
    resumed = resumed.fit(x, t)
    np.testing.assert_array_equal(full.theta_, resumed.theta_)
    assert [r["batch_loss"] for r in full.history_] == [r["batch_loss"] for r in resumed.history_]


def test_parameter_average_is_the_bias_corrected_ema_of_the_iterates_and_survives_resume():
    rng = np.random.default_rng(2)
    x, t = two_blobs(30, 2, rng)
    iterates = []
    tr = _trainer(7, average=0.8, callback=lambda trainer, rec: iterates.append(trainer.theta_.copy())).fit(x, t)
    weights = 0.2 * 0.8 ** np.arange(6, -1, -1)
    np.testing.assert_allclose(tr.parameters_, weights @ np.array(iterates) / (1 - 0.8**7), rtol=1e-12)
    # the optimiser's own path is untouched by the averaging
    np.testing.assert_array_equal(tr.theta_, _trainer(7).fit(x, t).theta_)
    part = _trainer(4, average=0.8).fit(x, t)
    resumed = _trainer(7, average=0.8)
    resumed.load_state_dict(part.state_dict())
    resumed = resumed.fit(x, t)
    np.testing.assert_array_equal(resumed.parameters_, tr.parameters_)
    with pytest.raises(QepValueError, match="average"):
        TrainingConfig(average=1.0)


def test_best_validation_selection_keeps_the_best_scored_iterate_and_survives_resume():
    rng = np.random.default_rng(3)
    x, t = two_blobs(60, 2, rng, separation=1.0, noise=0.6)
    iterates = {}
    kw = dict(validation=15, validate_every=2)
    tr = _trainer(9, callback=lambda trainer, rec: iterates.update({trainer.step_: trainer.theta_.copy()}), **kw)
    tr = tr.fit(x[:30], t[:30], test_inputs=x[30:45], test_targets=t[30:45], validation_inputs=x[45:],
                validation_targets=t[45:])
    # score every validated iterate independently with the exact test metrics: (accuracy, −Σ(y − t)²)
    h, backend, cfg = tr.task.hamiltonian, tr.task.backend, tr.task.config
    validated = [2, 4, 6, 8, 9]
    scores = {}
    for s in validated:
        y = np.array([h.output_expectations(backend.prepare(h, iterates[s], h.input_vector(xi)).state)
                      for xi in x[45:]])
        acc = evaluate(h, backend, iterates[s], x[45:], t[45:], cfg, "sign")["accuracy"]
        scores[s] = (acc, -float(np.mean(np.sum((y - t[45:]) ** 2, axis=1))))
    best = max(validated, key=lambda s: (scores[s], -s))  # first of equal scores wins
    assert tr.best_step_ == best
    np.testing.assert_array_equal(tr.parameters_, iterates[best])
    assert [r.get("selected_step") for r in tr.history_ if "validation_accuracy" in r] == [
        max((v for v in validated if v <= s), key=lambda v: (scores[v], -v)) for s in validated]
    # the optimiser's own path is untouched by the selection
    np.testing.assert_array_equal(tr.theta_, _trainer(9).fit(x[:30], t[:30]).theta_)
    # exact validation spends no shots, so the step's preparations are the gradient's alone
    assert all(r["preparations"] == 8 * (1 + 2 * 2) * 200 for r in tr.history_)
    part = _trainer(5, **kw).fit(x[:30], t[:30], validation_inputs=x[45:], validation_targets=t[45:])
    resumed = _trainer(9, **kw)
    resumed.load_state_dict(part.state_dict())
    resumed = resumed.fit(x[:30], t[:30], validation_inputs=x[45:], validation_targets=t[45:])
    assert resumed.best_step_ == best
    np.testing.assert_array_equal(resumed.parameters_, tr.parameters_)
    with pytest.raises(QepValueError, match="validation set"):
        _trainer(3, **kw).fit(x[:30], t[:30])
    with pytest.raises(QepValueError, match="validation_shots"):
        TrainingConfig(validation=3, validation_shots=0)


def test_measured_validation_counts_its_shots_and_is_unbiased():
    h = transverse_field_ising(3, input_qubits=[0], output_qubits=[2], trainable_biases=True)
    backend = get_backend("exact")
    cfg = GradientConfig(estimator="symmetric", beta=0.1, shots=10, measurement="gaussian")
    theta = 0.7 * np.random.default_rng(4).standard_normal(len(h.parameter_names))
    x = np.array([[0.3], [-0.8]])
    state = backend.prepare(h, theta, h.input_vector(x[0]))
    exact = h.output_expectations(state.state)
    n = 4000
    y, preps = measure_outputs(h, state, cfg, shots=n, rng=np.random.default_rng(5))
    assert preps == n  # one Z setting for one ⟨Z⟩ output, whatever the gradient's Gaussian idealisation
    se = np.sqrt((1 - exact**2) / n)
    assert np.all(np.abs(y - exact) < 4 * se)  # ±1 outcomes: variance 1 − ⟨Z⟩²
    val = validate(h, backend, theta, x, np.sign(exact) * np.ones((2, 1)), cfg, shots=n,
                   rng=np.random.default_rng(6), metric="sign")
    assert val["preparations"] == 2 * n
    assert measure_outputs(h, state, cfg, shots=None, rng=np.random.default_rng(0))[1] == 0


class _Quadratic:
    """L(θ) = ½|θ − c|², gradient θ − c, in two groups; no batches."""

    parameter_names = ("a0", "a1", "b0")
    n_samples = 0

    def __init__(self, centre):
        self.centre = np.asarray(centre, dtype=float)

    def parameter_groups(self):
        return {"a": [0, 1], "b": [2]}

    def initial_theta(self, config):
        return np.zeros(3)

    def gradient(self, theta, batch, draw):
        assert batch is None and isinstance(draw, Draw)
        return StepEstimate(gradient=theta - self.centre, loss=0.5 * float(np.sum((theta - self.centre) ** 2)))

    def project(self, theta):
        return np.minimum(theta, 2.5)  # a device-limit-like constraint


def test_group_learning_rates_normalised_steps_and_projection():
    task = _Quadratic([3.0, 4.0, 1.0])
    # one SGD step with per-group rates: θ = 0 − η_g (0 − c)
    d = Driver(task=task, config=TrainingConfig(optimizer="sgd", learning_rate=0.1, learning_rates={"b": 0.5},
                                                steps=1)).fit()
    np.testing.assert_allclose(d.theta_, [0.3, 0.4, 0.5], rtol=1e-15)
    assert d.history_[0]["learning_rate"] == {"a": 0.1, "b": 0.5}
    # normalised steps: each group moves by exactly η along its own unit vector, then the projection clips
    d = Driver(task=task, config=TrainingConfig(optimizer="sgd", learning_rate=1.0, normalize=True, steps=1)).fit()
    np.testing.assert_allclose(d.theta_, [0.6, 0.8, 1.0], rtol=1e-15)
    d = Driver(task=task, config=TrainingConfig(optimizer="sgd", learning_rate=1.0, normalize=True, steps=5)).fit()
    assert d.theta_[1] == 2.5 and np.all(d.theta_ <= 2.5)
    # training.bounds clips before the task's projection; SGD on the quadratic converges to the (clipped) centre
    d = Driver(task=task, config=TrainingConfig(optimizer="sgd", learning_rate=0.5, steps=60, bounds=(-1.0, 2.0))).fit()
    np.testing.assert_allclose(d.theta_, [2.0, 2.0, 1.0], atol=1e-12)
    with pytest.raises(QepValueError, match="learning_rates"):
        Driver(task=task, config=TrainingConfig(learning_rates={"positions": 1.0}))


def test_training_config_refuses_unknown_and_absurd_keys():
    with pytest.raises(QepValueError, match="training.stepz"):
        TrainingConfig.from_section({"stepz": 3})
    for key, value in (("steps", 10**20), ("learning_rate", 1e308), ("learning_rate", float("nan")),
                       ("batch_size", 0), ("seed", -1), ("bounds", [1.0, 0.0]), ("steps", 2.5), ("normalize", 1)):
        with pytest.raises(QepValueError, match=f"training.{key}"):
            TrainingConfig.from_section({key: value})
