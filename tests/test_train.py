"""``qep-analog train``: schedules, logistic baseline, validation errors, outputs, exact resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from qep_analog.cli import main
from qep_analog.learning.driver import learning_rate_at
from qep_analog.tasks.supervised import logistic_accuracy, logistic_regression, triangle_grid
from qep_analog.tasks.unsupervised import boundary_distance
from qep_analog.train import resolve, run_training

TINY = textwrap.dedent("""
    [protocol]
    name = "tiny"
    task = "classifier"

    [model]
    kind = "tfim"
    n_qubits = 3
    input_qubits = [0, 1]
    output_qubits = [2]
    trainable_biases = true

    [data]
    kind = "blobs"
    n_train = 30
    n_test = 20
    seed = 2
    separation = 2.0

    [backend]
    name = "exact"

    [gradient]
    estimator = "symmetric"
    beta = 0.1
    shots = 50
    measurement = "grouped"

    [training]
    optimizer = "adam"
    learning_rate = 0.05
    final_learning_rate = 0.01
    schedule = "cosine"
    batch_size = 4
    steps = 7
    eval_every = 3
    seed = 5
    init_scale = 0.5
    metric = "sign"
    checkpoint_every = 2

    [task]
    plot_resolution = 3

    [full]
    training = { steps = 9 }
""")


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_schedules_hit_their_endpoints():
    for schedule in ("exponential", "cosine"):
        assert learning_rate_at(0, 100, initial=0.1, final=0.001, schedule=schedule) == pytest.approx(0.1)
        assert learning_rate_at(100, 100, initial=0.1, final=0.001, schedule=schedule) == pytest.approx(0.001)
        lrs = [learning_rate_at(s, 100, initial=0.1, final=0.001, schedule=schedule) for s in range(101)]
        assert np.all(np.diff(lrs) <= 0)  # monotone decay
    assert learning_rate_at(50, 100, initial=0.1, final=0.001, schedule="exponential") == pytest.approx(0.01)
    assert learning_rate_at(37, 100, initial=0.1, final=0.001, schedule="constant") == 0.1


def test_logistic_regression_is_a_stationary_point_and_separates():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2))
    labels = np.where(x @ [1.0, -2.0] + 0.3 > 0, 1.0, -1.0)
    w = logistic_regression(x, labels, l2=1e-2)
    assert logistic_accuracy(w, x, labels) >= 0.97
    # the regularised log-loss is stationary at w (finite differences)
    y = (labels > 0).astype(float)
    xb = np.hstack([x, np.ones((200, 1))])

    def loss(v):
        z = xb @ v
        return np.mean(np.logaddexp(0, z) - y * z) + 0.5e-2 * np.sum(v[:-1] ** 2)

    fd = [(loss(w + e) - loss(w - e)) / 2e-6 for e in np.eye(3) * 1e-6]
    assert np.max(np.abs(fd)) < 1e-4


def test_triangle_grid_and_slice_boundaries():
    grid = triangle_grid(6)
    assert len(grid) == 28 and np.allclose(grid.sum(axis=1), 4.0) and grid.min() >= 0
    assert boundary_distance(0.5, 0.0) == pytest.approx(0.0)  # apex of |g_ZZ| = |g_X − 0.5|
    assert boundary_distance(-0.5, 0.3) == pytest.approx(0.0)  # on the segment g_X = g_ZXZ
    assert boundary_distance(1.5, 1.0) == pytest.approx(0.0)


def test_validation_errors_are_one_line_exit_2(tiny: Path, capsys):
    bad = tiny.parent / "bad.toml"
    bad.write_text(TINY.replace("beta = 0.1", "betta = 0.1"))
    assert main(["train", str(bad), "--out", str(tiny.parent / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "gradient.betta" in err and "\n" not in err
    # a typo in [full] fails even without --full
    bad.write_text(TINY.replace("training = { steps = 9 }", "training = { stepz = 9 }"))
    assert main(["train", str(bad)]) == 2
    assert "training.stepz" in capsys.readouterr().err
    # wrong type and impossible values
    bad.write_text(TINY.replace("steps = 7", 'steps = "seven"'))
    assert main(["train", str(bad)]) == 2
    assert "training.steps" in capsys.readouterr().err
    bad.write_text(TINY.replace("steps = 7", "steps = 0"))
    assert main(["train", str(bad), "--out", str(tiny.parent / "o")]) == 2
    assert "training.steps" in capsys.readouterr().err
    assert main(["train", str(tiny), "--set", "training.shedule=3"]) == 2
    assert "training.shedule" in capsys.readouterr().err
    # a validation split must leave training samples
    assert main(["train", str(tiny), "--out", str(tiny.parent / "o"), "--set", "training.validation=30"]) == 2
    assert "training.validation" in capsys.readouterr().err


def test_full_and_set_overrides(tiny: Path):
    raw = __import__("tomllib").loads(TINY)
    _, reduced = resolve(raw, "tiny", full=False)
    _, full = resolve(raw, "tiny", full=True, overrides=["gradient.measurement=gaussian", "training.seed=9"])
    assert reduced["training"]["steps"] == 7 and "full" not in reduced
    assert full["training"]["steps"] == 9 and full["gradient"]["measurement"] == "gaussian"
    assert full["training"]["seed"] == 9


def test_outputs_and_report(tiny: Path, tmp_path: Path):
    res = run_training(tiny, out_dir=tmp_path / "run", progress=False)
    out = tmp_path / "run"
    for name in ("results.json", "report.md", "learning_curve.png", "classifier.png", "checkpoint.json"):
        assert (out / name).is_file(), name
    data = json.loads((out / "results.json").read_text())
    for key in ("config", "seed", "versions", "history", "final", "theta"):
        assert key in data
    assert data["seed"] == 5 and len(data["history"]) == 7
    assert data["versions"]["numpy"] == np.__version__
    assert 0 <= data["final"]["test_accuracy"] <= 1 and 0 <= data["final"]["logistic_test_accuracy"] <= 1
    # preparations are counted as in PHYSICS.md §1: (1 free + 2 × 2 nudged settings) × M per sample
    if res["final"]["samples_dropped"] == 0:
        assert data["final"]["preparations"] == 7 * 4 * (1 + 2 * 2) * 50
    assert "test_accuracy" in (out / "report.md").read_text()


_KILLER = (Path(__file__).parent / "data" / "kill_after_step.py").read_text(encoding="utf-8")


def _theta(out: Path) -> list[float]:
    return list(json.loads((out / "results.json").read_text())["theta"].values())


@pytest.mark.parametrize("extra", [[], ["--set", "training.validation=8", "--set", "training.validate_every=2"]],
                         ids=["plain", "validation-selection"])
def test_resume_after_sigkill_is_bitwise_identical(tiny: Path, tmp_path: Path, extra: list[str]):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    assert main(["train", str(tiny), "--out", str(straight), "--no-progress", *extra]) == 0
    killed = tmp_path / "killed"
    # killed right after step 5 completes: the last checkpoint is step 4, so step 5 is redone
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(tiny), str(killed), "5", *extra], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (killed / "results.json").exists()
    saved = json.loads((killed / "checkpoint.json").read_text())
    assert saved["state"]["step_"] == 4
    assert main(["train", str(tiny), "--out", str(killed), "--resume", "--no-progress", *extra]) == 0
    assert _theta(killed) == _theta(straight)  # bitwise: floats round-trip exactly through JSON
    a = json.loads((killed / "results.json").read_text())["history"]
    b = json.loads((straight / "results.json").read_text())["history"]
    assert a == b


def test_unsupervised_resume_after_sigkill_is_bitwise_identical(tmp_path: Path):
    protocol = str(Path(__file__).resolve().parents[1] / "protocols" / "sensitivity.toml")
    extra = ["--set", "training.steps=4", "--set", "training.checkpoint_every=2", "--set", "task.plot_resolution=2"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["train", protocol, "--out", str(straight), "--no-progress", *extra]) == 0
    proc = subprocess.run([sys.executable, "-c", _KILLER, protocol, str(killed), "3", *extra],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert main(["train", protocol, "--out", str(killed), "--resume", "--no-progress", *extra]) == 0
    a = json.loads((killed / "results.json").read_text())
    b = json.loads((straight / "results.json").read_text())
    assert a["plot"]["trajectories"] == b["plot"]["trajectories"] and a["history"] == b["history"]


def test_resume_refuses_a_foreign_checkpoint_and_names_the_difference(tiny: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(tiny), "--out", str(out), "--no-progress"]) == 0
    assert main(["train", str(tiny), "--out", str(out), "--resume", "--seed", "6", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err and "seed 5, not 6" in err
    assert main(["train", str(tiny), "--out", str(out), "--resume", "--no-progress",
                 "--set", "gradient.beta=0.2"]) == 2
    assert "gradient.beta" in capsys.readouterr().err
    (out / "checkpoint.json").write_text("{not json")
    assert main(["train", str(tiny), "--out", str(out), "--resume", "--no-progress"]) == 2
    assert "corrupt" in capsys.readouterr().err


def test_failed_runs_leave_nothing_and_resume_without_checkpoint_says_so(tiny: Path, tmp_path: Path, capsys):
    out = tmp_path / "never"
    assert main(["train", str(tiny), "--out", str(out), "--set", "training.learning_rate=1e308"]) == 2
    assert "training.learning_rate" in capsys.readouterr().err and not out.exists()
    assert main(["train", str(tiny), "--out", str(out), "--set", "data.n_test=1000000000"]) == 2
    assert "data.n_test" in capsys.readouterr().err and not out.exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", str(tiny), "--out", str(blocker)]) == 2
    assert "not a directory" in capsys.readouterr().err
    fresh = tmp_path / "fresh"
    assert main(["train", str(tiny), "--out", str(fresh), "--resume", "--no-progress"]) == 0
    assert "no checkpoint" in capsys.readouterr().err


PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
TRAINABLE = sorted(p.name for p in PROTOCOLS.glob("*.toml") if "task = " in p.read_text(encoding="utf-8"))
# the smallest run that still exercises each task's whole path: 3 steps, a checkpoint after every step
_SMALL = {"phase_sensor.toml": ["data.n_test=6", "data.n_train=20", "task.plot_resolution=2"],
          "phase_exploration.toml": ["task.plot_resolution=2"], "sensitivity.toml": ["task.plot_resolution=2"],
          "ising_classifier.toml": ["data.n_test=6", "task.plot_resolution=2"],
          "cooling_ising.toml": ["data.n_test=4", "task.plot_resolution=2", "training.batch_size=2"],
          "oscillator_regression.toml": ["oscillator.task.n_test=10", "oscillator.optimum.restarts=0"],
          "rydberg_classifier.toml": ["data.n_test=4", "training.batch_size=2", "gradient.shots=50"],
          "fresnel_global.toml": ["data.n_test=4", "training.batch_size=2", "gradient.shots=50"],
          "rydberg_phase_sensor.toml": ["data.n_test=4", "data.n_train=10", "training.batch_size=2",
                                        "task.plot_resolution=2", "gradient.shots=20"],
          "inverse_design.toml": ['design.train_positions="none"', "gradient.shots=50"],
          "rydberg_phase_sensor_mps.toml": ["chain.n_atoms=7", "data.n_test=2", "data.n_train=4",
                                            "training.batch_size=2", "task.plot_resolution=2", "gradient.shots=20"],
          "rydberg_chain_51_device.toml": ["training.batch_size=1", "gradient.shots=50", "backend.options.max_bond=16",
                                           "backend.options.max_sweeps=6"]}


def test_every_protocol_is_covered():
    assert set(TRAINABLE) == set(_SMALL)


@pytest.mark.parametrize("name", TRAINABLE)
def test_every_protocol_resumes_after_sigkill_bitwise(name: str, tmp_path: Path):
    """3 steps of every protocol; SIGKILL after step 2, resume, and compare with an uninterrupted run."""
    protocol = str(PROTOCOLS / name)
    extra = ["--set", "training.steps=3", "--set", "training.checkpoint_every=1", "--set", "training.eval_every=3"]
    for item in _SMALL[name]:
        extra += ["--set", item]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["train", protocol, "--out", str(straight), "--no-progress", *extra]) == 0
    proc = subprocess.run([sys.executable, "-c", _KILLER, protocol, str(killed), "3", *extra],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    saved = json.loads((killed / "checkpoint.json").read_text())
    assert saved["state"]["step_"] == 2  # step 3 finished but was not saved: it is redone
    assert main(["train", protocol, "--out", str(killed), "--resume", "--no-progress", *extra]) == 0
    a = json.loads((killed / "results.json").read_text())
    b = json.loads((straight / "results.json").read_text())
    assert len(b["history"]) >= 3 and b["final"]["steps"] == 3
    assert (straight / "learning_curve.png").stat().st_size > 0 and (straight / f"{b['task']}.png").is_file()
    assert a["history"] == b["history"] and a["theta"] == b["theta"] and a["final"] == b["final"]


_BAD_FILES = {
    "latin1.toml": '[protocol]\nname = "caf\xe9"\n'.encode("latin-1"),
    "utf16.toml": '[protocol]\ntask = "classifier"\n'.encode("utf-16"),
    "binary.toml": bytes(range(256)) * 4,
    "deep.toml": ("a = " + "[" * 3000 + "]" * 3000 + "\n").encode(),
    "naninf.toml": b"a = nan\nb = inf\n",
    "empty.toml": b"",
    "not_toml.toml": b"[protocol\ntask = classifier\n",
}
_BAD_SETS = [["--set", "gradient.estimator=bogus"], ["--set", "gradient.beta=1e308"], ["--set", "gradient.shots=-5"],
             ["--set", "gradient.shots=1000000000000000000"], ["--set", "training.steps=1e20"],
             ["--set", "training.steps=100000000000"], ["--set", "training.learning_rate=1e308"],
             ["--set", "data.n_test=1e9"], ["--seed", "-1"], ["--set", "training.bogus=1"],
             ["--set", "protocol.task=nope"], ["--set", "training.learning_rates={nowhere = 1.0}"]]


@pytest.mark.parametrize("case", [*_BAD_FILES, *range(len(_BAD_SETS))], ids=str)
def test_bad_train_input_is_one_line_exit_2_and_writes_nothing(case, tiny: Path, tmp_path: Path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    if isinstance(case, str):
        protocol, extra = root / case, []
        protocol.write_bytes(_BAD_FILES[case])
    else:
        protocol, extra = tiny, _BAD_SETS[case]
    before = sorted(root.rglob("*"))
    assert main(["train", str(protocol), "--out", str(root / "out"), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("qep-analog: error:") and "Traceback" not in err, err
    assert sorted(root.rglob("*")) == before  # nothing written, nothing left behind
