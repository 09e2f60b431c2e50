"""What every ``qep-analog train`` task shares: the run context, checkpoints, schedules, progress.

A task is a function ``run(ctx: RunContext) -> dict`` returning a JSON-serialisable result with
at least ``history`` (a list of per-step records) and ``final`` (the final metrics). Tasks that
loop over steps call :meth:`RunContext.step_done` after every step; it writes an atomic
checkpoint (temp file + ``os.replace``) every ``training.checkpoint_every`` steps, from which
``--resume`` continues bit for bit: every random draw of step s is seeded by (seed, s), so
nothing but the checkpointed state carries over between steps.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.protocol import Protocol

SCHEDULES = ("constant", "exponential", "cosine")
CHECKPOINT = "checkpoint.json"


def learning_rate_at(step: int, n_steps: int, *, initial: float, final: float | None,
                     schedule: str = "constant") -> float:
    """Learning rate of step ``step`` (0-based) out of ``n_steps``.

    ``constant``: η₀; ``exponential``: η₀ (η₁/η₀)^(s/n); ``cosine``: η₁ + ½(η₀ − η₁)(1 + cos πs/n).
    """
    if schedule not in SCHEDULES:
        raise QepValueError(f"'training.schedule' must be one of {SCHEDULES}, not {schedule!r}")
    if schedule == "constant" or final is None:
        return float(initial)
    frac = min(step / max(n_steps, 1), 1.0)
    if schedule == "exponential":
        return float(initial * (final / initial) ** frac)
    return float(final + 0.5 * (initial - final) * (1 + np.cos(np.pi * frac)))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a resumed run) never sees a partial file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def to_jsonable(value):
    """numpy scalars/arrays → Python floats/lists (floats keep their exact repr in JSON)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


@dataclass(kw_only=True)
class RunContext:
    """Everything a task needs: the merged protocol, the seed, the output directory, checkpoints."""

    protocol: Protocol
    task: str
    seed: int
    out_dir: Path
    resume: bool = False
    progress: bool = True
    checkpoint_every: int = 10
    notes: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """Hash of the merged protocol and the seed: a checkpoint only resumes the same run."""
        blob = json.dumps({"sections": to_jsonable(self.protocol.sections), "seed": self.seed},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT

    def load_checkpoint(self) -> dict | None:
        """The saved task state when resuming this very run, else None."""
        if not self.resume or not self.checkpoint_path.is_file():
            return None
        data = json.loads(self.checkpoint_path.read_text(encoding="utf-8"))
        if data.get("fingerprint") != self.fingerprint:
            raise QepValueError(f"'--resume': the checkpoint in {self.out_dir} belongs to another protocol "
                                "or seed; use a fresh --out directory")
        return data["state"]

    def save_checkpoint(self, state: dict) -> None:
        payload = {"fingerprint": self.fingerprint, "task": self.task, "seed": self.seed,
                   "state": to_jsonable(state)}
        atomic_write_text(self.checkpoint_path, json.dumps(payload))

    def step_done(self, step: int, n_steps: int, state: Callable[[], dict]) -> None:
        """Call after completing step ``step`` (1-based); checkpoints when due and at the end."""
        if step % self.checkpoint_every == 0 or step == n_steps:
            self.save_checkpoint(state())

    def progress_bar(self, total: int, initial: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not self.progress,
                    dynamic_ncols=True)


def require_int(section: dict, key: str, default: int, minimum: int, where: str) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise QepValueError(f"'{where}.{key}' must be an integer ≥ {minimum}, not {value!r}")
    return value


def require_positive(section: dict, key: str, default: float, where: str) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise QepValueError(f"'{where}.{key}' must be a positive number, not {value!r}")
    return float(value)

