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
import platform
import shlex
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

from qep_analog import __version__
from qep_analog.errors import QepValueError
from qep_analog.protocol import validate
from qep_analog.tasks import ALL_TASKS, TASKS
from qep_analog.tasks.common import RunContext

_PACKAGES = ("numpy", "scipy", "pulser-core", "pulser-simulation", "qutip", "matplotlib", "threadpoolctl")


def package_versions() -> dict:
    versions = {"python": platform.python_version(), "qep_analog": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise QepValueError(f"protocol file '{path}' does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise QepValueError(f"{path}: not valid TOML: {exc}") from None


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


OSCILLATOR_TASKS = ("oscillator", "oscillator-regression")


def is_oscillator(raw: Mapping) -> bool:
    head = raw.get("protocol")
    return "oscillator" in raw or (isinstance(head, Mapping) and head.get("task") in OSCILLATOR_TASKS)


def resolve(raw: Mapping, source: str, *, full: bool, overrides: Sequence[str] = ()) -> tuple[str, dict]:
    """(task, merged sections) after ``[full]`` (if ``full``) and ``--set`` overrides, validated."""
    import qep_analog.learning.oscillator  # noqa: F401  (registers the [oscillator] section)

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
    if is_oscillator(merged):
        return "oscillator", merged
    task = merged.get("protocol", {}).get("task")
    if task not in ALL_TASKS:
        raise QepValueError(f"{source}: 'protocol.task' must be one of {list(ALL_TASKS)}, not {task!r}")
    return task, merged


def run_training(protocol_path: str | Path, *, out_dir: str | Path | None = None, seed: int | None = None,
                 resume: bool = False, full: bool = False, overrides: Sequence[str] = (),
                 progress: bool = True, threads: int = 1, command: str | None = None) -> dict:
    """Run the protocol's task and write results.json, report.md and plots; return the results."""
    from threadpoolctl import threadpool_limits

    from qep_analog.protocol import Protocol
    from qep_analog.report import write_outputs

    path = Path(protocol_path)
    raw = read_toml(path)
    task, sections = resolve(raw, str(path), full=full, overrides=overrides)
    training = sections.get("training", {}) if isinstance(sections.get("training"), Mapping) else {}
    if seed is None:
        seed = int(training.get("seed", 0)) if task != "oscillator" else 0
    out = Path(out_dir) if out_dir is not None else Path("runs") / (path.stem + ("-full" if full else ""))
    out.mkdir(parents=True, exist_ok=True)
    every = training.get("checkpoint_every", 10) if task != "oscillator" else 10
    if not isinstance(every, int) or every < 1:
        raise QepValueError(f"'training.checkpoint_every' must be an integer ≥ 1, not {every!r}")
    protocol = Protocol(sections=sections, source=str(path))
    ctx = RunContext(protocol=protocol, task=task, seed=int(seed), out_dir=out, resume=resume,
                     progress=progress, checkpoint_every=every)
    resumed_from = None
    if resume and ctx.checkpoint_path.is_file() and task != "oscillator":
        resumed_from = "checkpoint"
    started = time.time()
    with threadpool_limits(limits=threads):
        if task == "oscillator":
            from qep_analog.tasks.oscillator import run_oscillator

            outcome = run_oscillator(ctx, {k: v for k, v in sections.items() if k != "full"})
        else:
            outcome = TASKS[task](ctx)
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


def command_line(argv: Sequence[str] | None = None) -> str:
    args = sys.argv[1:] if argv is None else list(argv)
    return "qep-analog " + " ".join(shlex.quote(a) for a in args)
