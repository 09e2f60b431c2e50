"""What every ``qep-analog train`` task shares: the run context (the driver's checkpointer) and :func:`drive`.

A task module is ``run(ctx: RunContext) -> dict``: it builds a task object (parameters,
``gradient``, ``evaluate``, …; see :mod:`qep_analog.learning.driver`), hands it to :func:`drive`,
which runs the one training loop with the protocol's ``[training]`` keys, and formats the result
(``history``, ``final``, ``theta``, ``plot``). The context writes atomic checkpoints (temp file +
``os.replace``) when the driver asks, from which ``--resume`` continues bit for bit: every random
draw of step s is seeded by (seed, s), so nothing but the checkpointed state carries over.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.executor import Executor, SerialExecutor
from qep_analog.learning.driver import Driver, TrainingConfig
from qep_analog.protocol import Protocol

CHECKPOINT = "checkpoint.json"


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
    """numpy scalars/arrays → Python floats/lists (floats keep their exact repr in JSON); a non-finite
    float becomes None, so that every file written is strict JSON."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
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
    executor: Executor = field(default_factory=SerialExecutor)
    notes: list[str] = field(default_factory=list)

    @property
    def run_sections(self) -> dict:
        """The sections that decide the result: everything but ``[execution]`` (where the work runs)."""
        return {k: v for k, v in to_jsonable(self.protocol.sections).items() if k != "execution"}

    @property
    def fingerprint(self) -> str:
        """Hash of the merged protocol and the seed: a checkpoint only resumes the same run (on any
        number of workers: ``[execution]`` is not part of it)."""
        blob = json.dumps({"sections": self.run_sections, "seed": self.seed}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT

    def load(self) -> dict | None:
        """The saved driver state when resuming this very run, else None."""
        if not self.resume or not self.checkpoint_path.is_file():
            return None
        try:
            data = json.loads(self.checkpoint_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise QepValueError(f"'--resume': {self.checkpoint_path} is corrupt (not JSON); "
                                "delete it or use a fresh --out directory") from None
        if not isinstance(data, dict) or not isinstance(data.get("state"), dict):
            raise QepValueError(f"'--resume': {self.checkpoint_path} is not a qep-analog checkpoint")
        if data.get("fingerprint") != self.fingerprint:
            differs = _differences(data.get("sections"), self.run_sections)
            why = f" (differs in {', '.join(differs[:4])})" if differs else ""
            if data.get("seed") not in (None, self.seed):
                why = f" (seed {data.get('seed')}, not {self.seed})"
            raise QepValueError(f"'--resume': the checkpoint in {self.out_dir} belongs to another protocol, "
                                f"override or seed{why}; use a fresh --out directory")
        return data["state"]

    def save(self, state: dict) -> None:
        payload = {"fingerprint": self.fingerprint, "task": self.task, "seed": self.seed,
                   "sections": self.run_sections, "state": to_jsonable(state)}
        atomic_write_text(self.checkpoint_path, json.dumps(payload, allow_nan=False))


def _differences(saved, current, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two section trees (for the resume message)."""
    if not isinstance(saved, dict) or not isinstance(current, dict):
        return [prefix.rstrip(".")] if saved != current and prefix else []
    out = []
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            sub = _differences(saved.get(key), current.get(key), f"{prefix}{key}.")
            out.extend(sub or [f"{prefix}{key}"])
    return out


def drive(ctx: RunContext, task, **defaults) -> Driver:
    """Run ``task`` with the one :class:`~qep_analog.learning.driver.Driver`, the protocol's
    ``[training]`` keys over the task's ``defaults``, checkpoints and a progress bar."""
    config = training_config(ctx, **defaults)
    name = ctx.protocol.section("protocol").get("name", "")
    driver = Driver(task=task, config=config, checkpointer=ctx, progress=ctx.progress,
                    description=f"{ctx.task} ({name})" if name else ctx.task)
    return driver.fit()


def training_config(ctx: RunContext, **defaults) -> TrainingConfig:
    """The protocol's ``[training]`` table as a validated :class:`TrainingConfig` (seed from ``--seed``)."""
    section = dict(ctx.protocol.section("training"), seed=ctx.seed)
    try:
        return TrainingConfig.from_section(section, **defaults)
    except QepValueError as exc:
        raise QepValueError(f"{ctx.protocol.source}: {exc}") from None


def require_int(section: dict, key: str, default: int, minimum: int, where: str) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise QepValueError(f"'{where}.{key}' must be an integer ≥ {minimum}, not {value!r}")
    return value


def check_section_types(section, name: str, keys: dict) -> None:
    """A protocol table ``[name]``: a table, every key known, every value of its type (bools refused for numbers),
    floats finite. Each failure is one QepValueError naming ``name.key``."""
    from collections.abc import Mapping

    if not isinstance(section, Mapping):
        raise QepValueError(f"[{name}] must be a table")
    for key, value in section.items():
        if key not in keys:
            raise QepValueError(f"unknown key '{name}.{key}'; allowed: {sorted(keys)}")
        if isinstance(value, bool) or not isinstance(value, keys[key]):
            raise QepValueError(f"'{name}.{key}' has the wrong type: {value!r}")
        if isinstance(value, float) and not np.isfinite(value):
            raise QepValueError(f"'{name}.{key}' must be finite, not {value}")
