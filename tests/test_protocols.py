"""Every ready protocol in protocols/ validates (reduced and --full) and runs in a tiny configuration."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from qep_analog.train import is_oscillator, resolve, run_training

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
# per task: overrides that shrink a run to a few seconds
TINY = {
    "phase-sensor": ["training.steps=2", "training.eval_every=1", "data.n_test=4", "task.plot_resolution=2"],
    "classifier": ["training.steps=2", "training.eval_every=1", "data.n_test=6", "task.plot_resolution=2"],
    "exploration": ["training.steps=2", "task.plot_resolution=2"],
    "sensitivity": ["training.steps=2", "task.plot_resolution=2"],
    "rydberg-classifier": ["training.steps=1", "training.batch_size=1", "data.n_test=2", "gradient.shots=20"],
    "oscillator": ["oscillator.training.steps=3", "oscillator.training.eval_every=1", "oscillator.task.n_test=5",
                   "oscillator.optimum.restarts=0"],
}


def _task_protocols() -> list[Path]:
    out = []
    for path in sorted(PROTOCOLS.glob("*.toml")):
        raw = tomllib.loads(path.read_text())
        head = raw.get("protocol", {})
        if is_oscillator(raw) or (isinstance(head, dict) and "task" in head):
            out.append(path)
    return out


def test_the_papers_tasks_have_protocols():
    names = {p.name for p in _task_protocols()}
    for expected in ("phase_sensor.toml", "phase_exploration.toml", "sensitivity.toml", "ising_classifier.toml"):
        assert expected in names


@pytest.mark.parametrize("path", _task_protocols(), ids=lambda p: p.stem)
def test_protocol_runs_tiny(path: Path, tmp_path: Path):
    raw = tomllib.loads(path.read_text())
    task, _ = resolve(raw, str(path), full=True)  # the paper-size variant validates too
    res = run_training(path, out_dir=tmp_path, overrides=TINY[task], progress=False)
    assert res["task"] == task and res["history"]
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["final"] == json.loads(json.dumps(res["final"]))
    assert (tmp_path / "learning_curve.png").stat().st_size > 0
    assert (tmp_path / f"{task}.png").is_file()
    if task == "phase-sensor":
        assert 0 <= data["final"]["test_accuracy"] <= 1 and "crossing_events" in data["final"]
    if task == "exploration":
        assert len(data["plot"]["trajectories"]) == 2 and len(data["plot"]["trajectories"][0]) == 3
