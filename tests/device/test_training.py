"""Rydberg QEP training: detunings online, positions per stage, loss decreases."""

import numpy as np
import pytest

from qep_analog.device.rydberg import RydbergModel
from qep_analog.device.training import RydbergTrainer, RydbergTrainingConfig, mean_cost

POSITIONS = [[0.0, 0.0], [9.0, 0.0], [4.5, 7.8], [13.5, 7.8]]
X, Y = [[2.0], [-2.0]], [[1.0], [0.0]]


def _model(**kw):
    base = dict(positions_um=POSITIONS, device="MockDevice", omega=10.0, detunings=[3.0, 4.0, 2.0, 3.0],
                input_atoms=(0,), output_atoms=(3,))
    base.update(kw)
    return RydbergModel(**base)


def test_noiseless_training_lowers_the_cost():
    model = _model()
    config = RydbergTrainingConfig(steps=15, shots=None, learning_rate=40.0, position_learning_rate=20.0,
                                   batch_size=2)
    trainer = RydbergTrainer(config=config, backend="exact").fit(model, X, Y)
    before, after = mean_cost(model, X, Y), mean_cost(trainer.model_, X, Y)
    assert after < before - 0.02
    assert trainer.model_.violations() == []
    assert len(trainer.history_) == 15


def test_positions_move_only_at_stage_ends_and_layouts_are_counted():
    model = _model(device="WeightedAnalogDevice")
    config = RydbergTrainingConfig(steps=2, shots=None, learning_rate=1.0, position_learning_rate=20.0,
                                   batch_size=2, stage_steps=3)
    trainer = RydbergTrainer(config=config, backend="exact").fit(model, X, Y)
    assert np.array_equal(trainer.model_.positions_um, model.positions_um)
    assert not np.array_equal(trainer.model_.detunings, model.detunings)
    assert trainer.layouts_ == 0
    config = RydbergTrainingConfig(steps=3, shots=None, learning_rate=1.0, position_learning_rate=20.0,
                                   batch_size=2, stage_steps=3)
    trainer = RydbergTrainer(config=config, backend="exact").fit(model, X, Y)
    assert not np.array_equal(trainer.model_.positions_um, model.positions_um)
    assert trainer.layouts_ == 1 and trainer.layout_seconds_ > 0


@pytest.mark.slow
def test_adiabatic_training_with_shots_lowers_the_cost():
    model = _model()
    config = RydbergTrainingConfig(steps=8, shots=20000, learning_rate=40.0, position_learning_rate=20.0,
                                   batch_size=2, seed=2)
    trainer = RydbergTrainer(config=config, backend="adiabatic", backend_options={"duration_ns": 2000})
    trainer.fit(model, X, Y)
    assert mean_cost(trainer.model_, X, Y) < mean_cost(model, X, Y)
