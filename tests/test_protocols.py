"""Every ready protocol in protocols/ validates, reduced and --full (each also runs, 3 steps, in
tests/test_train.py::test_every_protocol_resumes_after_sigkill_bitwise)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from qep_analog.tasks import TASKS
from qep_analog.train import resolve

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"


def _task_protocols() -> list[Path]:
    return [p for p in sorted(PROTOCOLS.glob("*.toml")) if "task" in tomllib.loads(p.read_text()).get("protocol", {})]


def test_the_papers_tasks_have_protocols():
    names = {p.name for p in _task_protocols()}
    for expected in ("phase_sensor.toml", "phase_exploration.toml", "sensitivity.toml", "ising_classifier.toml",
                     "oscillator_regression.toml", "rydberg_classifier.toml"):
        assert expected in names
    tasks = {tomllib.loads(p.read_text())["protocol"]["task"] for p in _task_protocols()}
    assert tasks == set(TASKS)  # every task has a ready protocol


@pytest.mark.parametrize("path", _task_protocols(), ids=lambda p: p.stem)
@pytest.mark.parametrize("full", [False, True], ids=["reduced", "full"])
def test_protocol_validates(path: Path, full: bool):
    raw = tomllib.loads(path.read_text())
    task, sections = resolve(raw, str(path), full=full)
    assert task == raw["protocol"]["task"] and "full" not in sections
