"""The Rydberg phase sensor (task ``rydberg-phases``): labels, Hamiltonian, gradient, limits, protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qep_analog.cli import main
from qep_analog.device.devices import load_device
from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium.exact import ExactBackend
from qep_analog.errors import QepValueError
from qep_analog.learning.driver import Draw
from qep_analog.learning.gradient import GradientConfig
from qep_analog.tasks.rydberg_chain import ChainSpec, chain_labels, order_parameters
from qep_analog.tasks.rydberg_phases import RydbergPhaseTask, scores, sensor_hamiltonian

PROTOCOL = Path(__file__).resolve().parents[1] / "protocols" / "rydberg_phase_sensor.toml"
DEVICE = load_device("WeightedAnalogDevice")


def _delta(bits: str) -> np.ndarray:
    p = np.zeros(2 ** len(bits))
    p[int(bits, 2)] = 1.0
    return p


def test_order_parameters_of_perfect_crystals_and_uniform_states():
    n = 7
    # r g r g r g r: n̄ = 4/7, (1/N) Σ(−1)^j (b_j − n̄) = 24/49;  r g g r g g r: n̄ = 3/7, |…| = 18/49 at k = 2π/3
    m2, m3 = order_parameters(_delta("1010101"), n)
    assert m2 == pytest.approx(4 * (24 / 49) ** 2, rel=1e-12)
    m2_of_z3, m3 = order_parameters(_delta("1001001"), n)
    assert m3 == pytest.approx(9 * (18 / 49) ** 2, rel=1e-12)
    assert m2_of_z3 == pytest.approx(4 * (4 / 49) ** 2, rel=1e-12)
    for uniform in ("0000000", "1111111"):
        assert order_parameters(_delta(uniform), n) == pytest.approx((0.0, 0.0), abs=1e-12)
    # a cat of the two Z2 crystals of an even chain keeps the structure factor of each
    cat = 0.5 * (_delta("101010") + _delta("010101"))
    assert order_parameters(cat, 6)[0] == pytest.approx(order_parameters(_delta("101010"), 6)[0], rel=1e-12)


def test_labels_deep_in_each_phase():
    spec = ChainSpec(n_atoms=7, omega=1.6, c6=float(DEVICE.interaction_coeff))
    points = [[-1.0, 1.5],  # Δ < 0: all atoms in g, disordered
              [4.0, 1.5],  # nearest neighbours blockaded, next-nearest not: Z2
              [4.0, 2.5],  # next-nearest blockaded too: Z3
              [4.0, 0.6]]  # nothing blockaded at large Δ: every atom in r, uniform (disordered)
    assert chain_labels(spec, points).tolist() == [0, 1, 2, 0]


def test_sensor_hamiltonian_matches_the_device_model():
    """H(θ, x) of the task equals RydbergModel's (checked against pulser in tests/device) for one register."""
    spec = ChainSpec(n_atoms=3, omega=1.6, c6=float(DEVICE.interaction_coeff))
    task = _task(spec)
    point = np.array([2.0, 1.8])
    delta, _ = spec.controls(point)
    positions = task.register(point, task.offsets)
    det = np.concatenate([np.zeros(3), task.detunings]) + delta
    model = RydbergModel(positions_um=positions, device=DEVICE, omega=spec.omega, detunings=det,
                         train_positions=False, trainable_detunings=())
    h = sensor_hamiltonian(3)
    mine = h.dense(task.sample_theta(positions, task.detunings), task.controls(point))
    theirs = model.hamiltonian().dense()
    assert np.allclose(mine, theirs, atol=1e-9 * np.abs(theirs).max())


def _task(spec: ChainSpec, *, beta: float = 0.01, shots=None, inputs=None, labels=None, train_positions=True,
          units: str = "um", codes=("gg", "rg", "gr")):
    inputs = np.array([[2.5, 1.5], [3.0, 2.4], [0.5, 2.0]]) if inputs is None else inputs
    labels = np.array([1, 2, 0]) if labels is None else labels
    offsets = [[-6.0, 0.0], [3.0, 6.5]] if units == "um" else [[-1.1, 0.3], [0.6, 1.1]]
    return RydbergPhaseTask(chain=spec, device=DEVICE, offsets=offsets, offset_units=units, detunings=[0.4, -0.3],
                            backend=ExactBackend(), config=GradientConfig(estimator="symmetric", nudge="cost-operator",
                                                                          beta=beta, shots=shots),
                            inputs=inputs, labels=labels, test_inputs=inputs, test_labels=labels,
                            train_positions=train_positions, codes=codes)


@pytest.mark.parametrize("units", ["spacing", "um"])
def test_qep_gradient_matches_finite_differences_of_the_cost(units: str):
    """Symmetric QEP (DMM nudge, chain rule to the offsets) vs central FD of the mean exact ⟨Ĉ⟩, 3 + 2 atoms."""
    spec = ChainSpec(n_atoms=3, omega=1.6, c6=float(DEVICE.interaction_coeff), rb_range=(1.0, 2.2))
    task = _task(spec, units=units)
    theta = task.initial_theta(_config())
    batch = np.arange(3)
    qep = task.gradient(theta, batch, Draw(0, 0)).gradient

    def cost(th):
        return scores(task.outcome_probabilities(th, task.inputs), task.labels)["loss"]

    step = 1e-4
    fd = np.array([(cost(theta + step * e) - cost(theta - step * e)) / (2 * step) for e in np.eye(6)])
    assert np.linalg.norm(fd) > 1e-3  # a real signal, on positions and detunings alike
    assert np.abs(fd[:4]).max() > 1e-4 and np.abs(fd[4:]).max() > 1e-3
    assert np.linalg.norm(qep - fd) < 1e-3 * np.linalg.norm(fd)
    # the bias of the symmetric estimator is O(β²)
    errs = [np.linalg.norm(_task(spec, beta=b, units=units).gradient(theta, batch, Draw(0, 0)).gradient - fd)
            for b in (0.4, 0.2)]
    assert 3.0 < errs[0] / errs[1] < 5.0


def test_other_read_out_codes_gradient_matches_finite_differences():
    """Codes gg / rr / rg (disordered / Z2 / Z3): the cost, the nudge and the scores follow the codes."""
    spec = ChainSpec(n_atoms=3, omega=1.6, c6=float(DEVICE.interaction_coeff), rb_range=(1.0, 2.2))
    codes = ("gg", "rr", "rg")
    task = _task(spec, units="spacing", codes=codes)
    theta = task.initial_theta(_config())
    qep = task.gradient(theta, np.arange(3), Draw(0, 0)).gradient

    def cost(th):
        return scores(task.outcome_probabilities(th, task.inputs), task.labels, codes)["loss"]

    fd = np.array([(cost(theta + 1e-4 * e) - cost(theta - 1e-4 * e)) / 2e-4 for e in np.eye(6)])
    assert np.linalg.norm(qep - fd) < 1e-3 * np.linalg.norm(fd)
    default = _task(spec, units="spacing").gradient(theta, np.arange(3), Draw(0, 0)).gradient
    assert np.linalg.norm(qep - default) > 1e-2 * np.linalg.norm(fd)  # the Z2 code changed: so did the gradient
    # evaluate() scores with the task's codes
    probs = task.outcome_probabilities(theta, task.inputs)
    assert task.evaluate(theta)["test_loss"] == pytest.approx(scores(probs, task.labels, codes)["loss"])


def test_hidden_third_sensor_atom_gradient_matches_finite_differences():
    """A 3-atom sensor (A, B read, C hidden): 9 parameters, QEP vs central FD of the mean exact ⟨Ĉ⟩, 3 + 3 atoms;
    the hidden atom is in the register but not in the cost."""
    spec = ChainSpec(n_atoms=3, omega=1.6, c6=float(DEVICE.interaction_coeff), rb_range=(1.0, 2.2))
    inputs, labels = np.array([[2.5, 1.5], [3.0, 2.1], [0.5, 2.0]]), np.array([1, 2, 0])
    task = RydbergPhaseTask(chain=spec, device=DEVICE, offsets=[[-1.1, 0.3], [0.6, 1.1], [2.0, -1.2]],
                            detunings=[0.4, -0.3, 0.8], backend=ExactBackend(),
                            config=GradientConfig(estimator="symmetric", nudge="cost-operator", beta=0.01),
                            inputs=inputs, labels=labels)
    assert task.parameter_names == ("x_A", "y_A", "x_B", "y_B", "x_C", "y_C", "delta_A", "delta_B", "delta_C")
    assert [o.name for o in task.hamiltonian.outputs] == ["n_3", "n_4"]
    theta = task.initial_theta(_config())
    qep = task.gradient(theta, np.arange(3), Draw(0, 0)).gradient

    def cost(th):
        return scores(task.outcome_probabilities(th, inputs), labels)["loss"]

    fd = np.array([(cost(theta + 1e-4 * e) - cost(theta - 1e-4 * e)) / 2e-4 for e in np.eye(9)])
    assert np.abs(fd[4:6]).max() > 1e-4 and abs(fd[8]) > 1e-5  # the hidden atom matters
    assert np.linalg.norm(qep - fd) < 1e-3 * np.linalg.norm(fd)


def test_lobpcg_backend_matches_exact_on_a_wide_spectrum():
    """exact-lobpcg gives exact's ground state (energy, state, gap) at R_b/a = 2.8 (J_nn ≈ 480 Ω), free and
    nudged, on 7 + 2 atoms (512 states, above dense_max_dim)."""
    from qep_analog.equilibrium.base import get_backend
    from qep_analog.models.pauli import PauliProduct, PauliSum

    spec = ChainSpec(n_atoms=7, omega=1.6, c6=float(DEVICE.interaction_coeff))
    task = _task(spec, units="spacing")
    lob, ref = get_backend("exact-lobpcg", tol=1e-9), ExactBackend(tol=1e-10)
    h = task.hamiltonian
    nudge = PauliSum(((0.3, PauliProduct.parse("n7", h.n_qubits)),))
    for point in ([2.7, 2.8], [0.5, 2.4], [3.5, 1.3]):
        theta, x = task.sample_theta(task.register(point, task.offsets), task.detunings), task.controls(point)
        free = lob.prepare(h, theta, x)
        assert free.info["method"] == "lobpcg"
        for mine, theirs in ((free, ref.prepare(h, theta, x)),
                             (lob.prepare(h, theta, x, nudge=nudge, reference=free), ref.prepare(h, theta, x, nudge))):
            assert mine.energy == pytest.approx(theirs.energy, abs=1e-8 * abs(theirs.energy))
            assert mine.gap == pytest.approx(theirs.gap, rel=1e-6)
            assert abs(np.vdot(mine.state, theirs.state)) ** 2 == pytest.approx(1.0, abs=1e-9)


def test_validate_scores_held_out_points_exactly_or_from_shots():
    spec = ChainSpec(n_atoms=3, omega=1.6, c6=float(DEVICE.interaction_coeff), rb_range=(1.0, 2.2))
    task = _task(spec, units="spacing")
    task.validation_inputs, task.validation_labels = task.inputs[:2], task.labels[:2]
    theta = task.initial_theta(_config())
    exact = scores(task.outcome_probabilities(theta, task.inputs[:2]), task.labels[:2])
    val = task.validate(theta, np.random.default_rng(0))
    assert val["accuracy"] == exact["accuracy"] and val["output_error"] == pytest.approx(exact["loss"], rel=1e-12)
    assert val["preparations"] == 2
    task.validation_shots = 50
    val = task.validate(theta, np.random.default_rng(0))
    assert val["preparations"] == 100
    # frequencies of 50 shots, averaged over 2 points: multiples of 1/100
    assert val["single_shot_accuracy"] * 100 == pytest.approx(round(val["single_shot_accuracy"] * 100), abs=1e-9)


def _config():
    from qep_analog.learning.driver import TrainingConfig

    return TrainingConfig(steps=1)


def test_frozen_positions_get_no_position_step():
    spec = ChainSpec(n_atoms=3, omega=1.6, c6=float(DEVICE.interaction_coeff))
    task = _task(spec, train_positions=False)
    theta = task.initial_theta(_config())
    g = task.gradient(theta, np.arange(3), Draw(0, 0)).gradient
    assert np.all(g[:4] == 0) and np.any(g[4:] != 0)
    moved = task.project(theta - np.array([3.0, 3.0, -3.0, 3.0, 0.1, 0.1]))
    assert np.array_equal(moved[:4], theta[:4])


@pytest.mark.parametrize("units", ["spacing", "um"])
def test_projection_keeps_every_register_within_the_device_limits(units: str):
    spec = ChainSpec(n_atoms=7, omega=1.6, c6=float(DEVICE.interaction_coeff))
    task = _task(spec, units=units)
    scale = 1.0 if units == "um" else 1 / 5.0
    # on top of chain atom 0, on the chain's axis, on each other, far outside the radius; detunings beyond the DMM
    for offsets in ([[0.5, 0.0], [0.5, 0.1]], [[20.0, 1.0], [30.0, -1.0]], [[-200.0, 0.0], [-6.0, 0.0]],
                    [[7.5, 0.2], [12.4, -0.1]]):
        theta = task.project(task.theta_of(np.array(offsets) * scale, [100.0, -100.0]))
        task.check_registers(theta)  # raises on any violation at either end of the spacing range
        det = theta[4:]
        assert max(det.max(), 0) - min(det.min(), 0) <= 2 * np.pi * 10 + 1e-9  # DMM bottom of WeightedAnalogDevice


def test_scores_are_max_choice_and_single_shot():
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.3, 0.4, 0.1]])
    s = scores(probs, np.array([0, 1]))
    assert s["accuracy"] == 0.5
    assert s["single_shot_accuracy"] == pytest.approx((0.7 + 0.3) / 2)
    # ⟨Ĉ⟩ = expected Hamming distance to the code: label 0 (gg): ⟨n_A⟩ + ⟨n_B⟩ = 0.2 + 0.2; label 1 (rg): 0.6 + 0.5
    assert s["loss"] == pytest.approx((0.4 + 1.1) / 2)
    # codes gg / rr / rg: phase 1 (Z2) is read as rr (column 3), phase 2 (Z3) as rg (column 1)
    s = scores(probs, np.array([0, 1]), ("gg", "rr", "rg"))
    assert s["accuracy"] == 0.5  # row 2: named probabilities (gg, rr, rg) = (0.2, 0.1, 0.3): argmax 2, not 1
    assert s["single_shot_accuracy"] == pytest.approx((0.7 + 0.1) / 2)
    # label 1 (rr): (1 − ⟨n_A⟩) + (1 − ⟨n_B⟩) = 0.6 + 0.5 for row 2; label 0 (gg) as before: 0.4
    assert s["loss"] == pytest.approx((0.4 + 1.1) / 2)


def test_bad_sensors_are_refused():
    spec = ChainSpec(n_atoms=3, omega=1.6, c6=float(DEVICE.interaction_coeff))
    with pytest.raises(QepValueError, match="DMM"):
        RydbergPhaseTask(chain=spec, device=load_device("AnalogDevice"), offsets=[[-6, 0], [3, 6]], offset_units="um",
                         detunings=[0, 0], backend=ExactBackend(),
                         config=GradientConfig(estimator="symmetric", nudge="cost-operator"),
                         inputs=[[1.0, 1.5]], labels=[0])
    with pytest.raises(QepValueError, match="2 or 3 atoms"):
        RydbergPhaseTask(chain=spec, device=DEVICE, offsets=[[-6, 0]], detunings=[0], backend=ExactBackend(),
                         config=GradientConfig(estimator="symmetric", nudge="cost-operator"),
                         inputs=[[1.0, 1.5]], labels=[0])
    with pytest.raises(QepValueError, match="cost-operator"):
        RydbergPhaseTask(chain=spec, device=DEVICE, offsets=[[-6, 0], [3, 6]], offset_units="um", detunings=[0, 0],
                         backend=ExactBackend(), config=GradientConfig(), inputs=[[1.0, 1.5]], labels=[0])
    with pytest.raises(QepValueError, match="n_atoms"):
        ChainSpec(n_atoms=40)
    for codes in (("gg", "gg", "rg"), ("gg", "rg"), ("gg", "rg", "xx")):
        with pytest.raises(QepValueError, match="chain.codes"):
            _task(spec, codes=codes)


def test_protocol_trains_two_steps(tmp_path: Path):
    out = tmp_path / "run"
    code = main(["train", str(PROTOCOL), "--out", str(out), "--no-progress", "--set", "training.steps=2",
                 "--set", "training.eval_every=2", "--set", "data.n_train=12", "--set", "data.n_test=6",
                 "--set", "task.plot_resolution=2", "--set", "gradient.shots=20"])
    assert code == 0
    r = json.loads((out / "results.json").read_text())
    final = r["final"]
    assert final["steps"] == 2 and final["preparations"] == 2 * 10 * 3 * 20  # batch × (free, ±β) × shots
    assert 0 <= final["test_accuracy"] <= 1 and 0 <= final["test_single_shot_accuracy"] <= 1
    assert set(r["theta"]) == {"x_A", "y_A", "x_B", "y_B", "delta_A", "delta_B"}
    assert (out / "rydberg-phases.png").stat().st_size > 0


def test_protocol_with_other_codes_runs_and_records_them(tmp_path: Path, capsys):
    out = tmp_path / "run"
    code = main(["train", str(PROTOCOL), "--out", str(out), "--no-progress", "--set", "training.steps=1",
                 "--set", "training.eval_every=1", "--set", "data.n_train=12", "--set", "data.n_test=6",
                 "--set", "task.plot_resolution=2", "--set", "gradient.shots=20",
                 "--set", 'chain.codes=["gg", "rr", "rg"]'])
    assert code == 0
    assert json.loads((out / "results.json").read_text())["plot"]["codes"] == ["gg", "rr", "rg"]
    code = main(["train", str(PROTOCOL), "--out", str(tmp_path / "bad"), "--no-progress",
                 "--set", 'chain.codes=["gg", "rr"]'])
    assert code == 2 and "chain.codes" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "results.json").exists()


def test_unknown_chain_key_is_one_line_error(tmp_path: Path, capsys):
    code = main(["train", str(PROTOCOL), "--out", str(tmp_path / "x"), "--no-progress", "--set", "chain.bogus=1"])
    assert code == 2
    assert "chain.bogus" in capsys.readouterr().err
