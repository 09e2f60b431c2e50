"""``qep-analog train``: run a protocol's task end to end, with checkpoints, results and a report.

    qep-analog train protocols/phase_sensor.toml --out runs/phase_sensor [--seed S] [--resume] [--full]

Protocol handling (see README "Writing a protocol"):

* the TOML is validated on load (unknown key, wrong type → one line naming the key, exit 2);
* ``[protocol] task`` picks the task (:data:`qep_analog.tasks.ALL_TASKS`);
* ``[full]`` holds per-section overrides for the paper-size run, applied with ``--full``
  (always validated, so a typo there fails at once);
* ``--set section.key=value`` overrides single keys (TOML values), e.g. the honest measurement
  mode of the phase sensor: ``--set gradient.measurement=grouped``.

The run writes to ``--out``: ``checkpoint.json`` (atomic, every ``training.checkpoint_every``
steps), ``results.json``, ``report.md`` and PNG plots. BLAS/OpenMP threads are pinned
(``threads``, default 1) so that a resumed run reproduces an uninterrupted one bit for bit.
"""

from __future__ import annotations

import copy
import os
import platform
import shlex
import shutil
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

from qep_analog import __version__
from qep_analog.errors import QepValueError
from qep_analog.protocol import read_toml, validate
from qep_analog.tasks import PARALLEL_TASKS, TASKS
from qep_analog.tasks.common import RunContext, training_config

_PACKAGES = ("numpy", "scipy", "pulser-core", "pulser-simulation", "qutip", "matplotlib", "threadpoolctl")


def package_versions() -> dict:
    versions = {"python": platform.python_version(), "qep_analog": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def parse_override(text: str) -> tuple[list[str], object]:
    """``section.key=value`` (or a deeper ``a.b.c=value``) → (path, value); TOML value, else a string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise QepValueError(f"'--set' expects section.key=value, not {text!r}")
    lhs, raw = text.split("=", 1)
    path = [part.strip() for part in lhs.split(".")]
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def merge_sections(sections: Mapping, overrides: Mapping, where: str = "full") -> dict:
    """Deep merge: tables in ``overrides`` update tables in ``sections`` key by key."""
    out = copy.deepcopy(dict(sections))
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            current = out.get(key, {})
            if not isinstance(current, Mapping):
                raise QepValueError(f"'{where}.{key}' is a table but the protocol's '{key}' is not")
            out[key] = merge_sections(current, value, f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve(raw: Mapping, source: str, *, full: bool, overrides: Sequence[str] = ()) -> tuple[str, dict]:
    """(task, merged sections) after ``[full]`` (if ``full``) and ``--set`` overrides, validated."""
    if "device" in raw:  # the device layer owns [device] (imports pulser, so only when needed)
        from qep_analog.device.bundle import register_protocol_section

        register_protocol_section()

    sections = copy.deepcopy(dict(raw))
    full_tables = sections.pop("full", {}) or {}
    sets: dict = {}
    for text in overrides:
        path, value = parse_override(text)
        node = sets
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    validate(raw, source)  # the file as written, [full] included
    validate(merge_sections(sections, full_tables), f"{source} [full]")
    merged = merge_sections(sections, full_tables) if full else sections
    merged = merge_sections(merged, sets, "--set")
    validate(merged, f"{source} (with --set)" if sets else source)
    task = merged.get("protocol", {}).get("task")
    if task is None:
        raise QepValueError(f"{source}: the key 'protocol.task' is missing; set it to one of {list(TASKS)}")
    if task not in TASKS:
        raise QepValueError(f"{source}: 'protocol.task' must be one of {list(TASKS)}, not {task!r}")
    return task, merged


def run_training(protocol_path: str | Path, *, out_dir: str | Path | None = None, seed: int | None = None,
                 resume: bool = False, full: bool = False, overrides: Sequence[str] = (),
                 progress: bool = True, threads: int = 1, command: str | None = None,
                 workers: int | None = None, scheduler: str | None = None) -> dict:
    """Run the protocol's task and write results.json, report.md and plots; return the results.

    ``workers``/``scheduler`` (or the protocol's ``[execution]``) run each step's independent work on
    Dask (:mod:`qep_analog.distributed`); the results are bitwise those of the serial run.

    Everything that can be checked before the run (the protocol, the overrides, the ``[training]``
    keys, the output directory) is checked before anything is written; a run that fails removes
    the output directory it created.
    """
    from threadpoolctl import threadpool_limits

    from qep_analog.protocol import Protocol
    from qep_analog.report import write_outputs

    path = Path(protocol_path)
    raw = read_toml(path)
    task, sections = resolve(raw, str(path), full=full, overrides=overrides)
    if seed is not None and not 0 <= seed < 2**63:
        raise QepValueError(f"'--seed' must be an integer in [0, 2^63), not {seed}")
    training = sections.get("training", {}) if isinstance(sections.get("training"), Mapping) else {}
    if seed is None:
        seed = training.get("seed", 0)
    out = Path(out_dir) if out_dir is not None else Path("runs") / (path.stem + ("-full" if full else ""))
    if out.exists() and not out.is_dir():
        raise QepValueError(f"'--out' {out} exists and is not a directory")
    protocol = Protocol(sections=sections, source=str(path))
    ctx = RunContext(protocol=protocol, task=task, seed=int(seed), out_dir=out, resume=resume, progress=progress)
    training_config(ctx)  # the [training] keys, checked before anything is written
    execution = _execution(sections.get("execution", {}), workers, scheduler)
    if execution["engine"] == "dask" and task not in PARALLEL_TASKS:
        print(f"qep-analog: warning: task {task!r} has no independent work per step to distribute; "
              "running serially", file=sys.stderr)
        execution = {"engine": "serial", "workers": None, "scheduler": None}
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QepValueError(f"'--out' {out} cannot be created ({exc.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise QepValueError(f"'--out' {out} is not writable")
    resumed_from = None
    if resume and ctx.checkpoint_path.is_file():
        resumed_from = "checkpoint"
    elif resume:
        print(f"qep-analog: note: no checkpoint in {out}; starting afresh", file=sys.stderr)
    started = time.time()
    try:
        from qep_analog.distributed import make_executor

        ctx.executor = make_executor(**execution)
        with threadpool_limits(limits=threads):
            outcome = TASKS[task](ctx)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        close = getattr(ctx.executor, "close", None)
        if close is not None:
            close()
    head = sections.get("protocol", {}) if isinstance(sections.get("protocol"), Mapping) else {}
    results = {
        "protocol_name": head.get("name", path.stem), "description": head.get("description", ""),
        "task": task, "source": str(path), "out_dir": str(out), "full": bool(full),
        "overrides": list(overrides), "seed": int(seed),
        "config": sections, "versions": package_versions(), "threads": threads,
        "command": command or "", "resumed": resumed_from is not None,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_time_s": time.time() - started, **outcome,
    }
    results["notes"] = list(results.get("notes", [])) + list(ctx.notes)
    if resumed_from:
        results["notes"].append("resumed from a checkpoint: wall_time_s covers this invocation only")
    results["files"] = write_outputs(out, results)
    return results


def _execution(section: Mapping, workers: int | None, scheduler: str | None) -> dict:
    """engine/workers/scheduler from ``[execution]`` with ``--workers``/``--scheduler`` over it."""
    engine = section.get("engine", "serial")
    workers = section.get("workers") if workers is None else workers
    scheduler = section.get("scheduler") if scheduler is None else scheduler
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 4096):
        raise QepValueError(f"'--workers' (execution.workers) must be an integer in [1, 4096], not {workers!r}")
    if workers is not None and scheduler is not None:
        raise QepValueError("give either '--workers' (a local cluster) or '--scheduler' (a running one), not both")
    if workers is not None or scheduler is not None:
        engine = "dask"
    if engine not in ("serial", "dask"):
        raise QepValueError(f"'execution.engine' must be 'serial' or 'dask', not {engine!r}")
    return {"engine": engine, "workers": workers, "scheduler": scheduler}


def command_line(argv: Sequence[str] | None = None) -> str:
    args = sys.argv[1:] if argv is None else list(argv)
    return "qep-analog " + " ".join(shlex.quote(a) for a in args)
