"""Dask behind the executor seam: bitwise the serial results, on 1 or 2 workers, and through a worker's death."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from qep_analog.cli import main

pytest.importorskip("dask.distributed")

from qep_analog.distributed import DaskExecutor, make_executor  # noqa: E402
from qep_analog.errors import QepValueError  # noqa: E402
from qep_analog.executor import SerialExecutor  # noqa: E402

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
# a SIGKILLed worker leaves Dask's side of its sockets unclosed: that is the fault being tested, not ours
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture(scope="module")
def cluster():
    ex = DaskExecutor(workers=2)
    try:
        yield ex
    finally:
        ex.close()


def _slow_square(x: int) -> int:
    time.sleep(0.3)
    return x * x


def test_map_returns_in_task_order_and_survives_a_killed_worker(cluster):
    assert cluster.map(_slow_square, []) == []
    pids = list(cluster.worker_pids.values())
    assert len(pids) == 2 and os.getpid() not in pids
    killer = threading.Timer(0.4, os.kill, args=(pids[0], signal.SIGKILL))  # mid-map: tasks are running
    killer.start()
    try:
        assert cluster.map(_slow_square, range(12)) == [x * x for x in range(12)]
    finally:
        killer.cancel()


def test_chunks_follow_the_measured_task_cost(cluster):
    """Cheap tasks travel as one chunk per worker; expensive ones one each (Dask balances them)."""
    from qep_analog.distributed import CHUNK_SECONDS, FIRST_CHUNKS

    tasks = list(range(10))
    assert [len(c) for c in cluster._chunks(tasks, cost=0.2 * CHUNK_SECONDS)] == [5, 5]
    assert [len(c) for c in cluster._chunks(tasks, cost=CHUNK_SECONDS)] == [1] * 10
    assert sum(cluster._chunks(list(range(100)), cost=None), []) == list(range(100))  # order kept
    assert len(cluster._chunks(list(range(100)), cost=None)) == 2 * FIRST_CHUNKS
    cluster.map(_slow_square, range(4))
    key = (_slow_square.__module__, _slow_square.__qualname__)
    assert 0.3 <= cluster._cost[key] < 3.0  # seconds per task inside a worker (each sleeps 0.3 s)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "some", True])
def test_bad_chunks_per_worker_is_refused(bad):
    with pytest.raises(QepValueError, match="chunks_per_worker"):
        DaskExecutor(workers=1, chunks_per_worker=bad)


def _allocator_state() -> tuple[str | None, int]:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.getpid()


def test_workers_allocate_like_a_plain_process(cluster):
    """Dask's nanny would set MALLOC_TRIM_THRESHOLD_ (every large array mmap-ed: 40–60 % slower here).

    Our local workers start without it unless this process already carried it (a cluster made elsewhere
    exports it into os.environ); a worker that does carry it gets glibc's thresholds raised at start-up.
    """
    from qep_analog.distributed import _raise_malloc_thresholds

    inherited = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    states = cluster.client.run(_allocator_state)
    assert len(states) == 2
    assert all(value == inherited for value, _ in states.values())
    assert _raise_malloc_thresholds() == (os.uname().sysname == "Linux")  # glibc on this project's CI


def _refuse_three(x: int) -> int:
    if x == 3:
        raise QepValueError(f"bad sample {x}")
    return x


def test_a_task_that_raises_surfaces_as_the_serial_error(cluster):
    """The worker's exception comes back as itself (the CLI then prints its one line and exits 2)."""
    with pytest.raises(QepValueError, match="^bad sample 3$"):
        SerialExecutor().map(_refuse_three, range(6))
    with pytest.raises(QepValueError, match="^bad sample 3$"):
        cluster.map(_refuse_three, range(6))
    with pytest.raises(QepValueError, match="^bad sample 3$"):
        cluster.gather(cluster.submit_each(_refuse_three, range(6)))


@dataclasses.dataclass(frozen=True)
class _Box:
    values: np.ndarray


@dataclasses.dataclass(frozen=True)
class _Scaled:
    table: _Box  # the same object in every task of a map: shipped once per worker
    factor: _Box  # a new object every map (a model changed between steps): a new shared value each time
    index: int


def _scaled(task: _Scaled) -> float:
    return float(task.table.values[task.index] * task.factor.values[0])


def test_many_maps_with_new_shared_values_keep_their_dependencies(cluster):
    """More distinct shared values than the cache holds (16): evicting must never drop one in use."""
    table = _Box(np.arange(8.0))
    for step in range(40):
        factor = _Box(np.array([step + 1.0]))
        tasks = [_Scaled(table, factor, i) for i in range(8)]
        assert cluster.map(_scaled, tasks) == [i * (step + 1.0) for i in range(8)]
        frees = cluster.submit_each(_scaled, tasks)
        assert cluster.gather(frees) == [i * (step + 1.0) for i in range(8)]


def _worker_copies() -> int:
    from qep_analog.distributed import _LOCAL

    return len(_LOCAL)


@dataclasses.dataclass(frozen=True)
class _Step:
    model: _Box  # shipped once, its worker copy (and caches) kept
    theta: np.ndarray  # small, new every step: travels with the tasks
    index: int


def _step(task: _Step) -> float:
    return float(task.model.values[task.index] * task.theta[0])


def test_a_model_is_copied_once_per_worker_and_small_arrays_travel_inline():
    """θ (a small array, new every step) is not a shared value; the model's copy is made once per worker and
    survives Dask dropping and re-fetching its replica (keyed by its Dask key, not the received object)."""
    with DaskExecutor(workers=2) as ex:
        model = _Box(np.arange(8.0))
        for step in range(12):
            theta = np.array([step + 1.0])
            assert ex.map(_step, [_Step(model=model, theta=theta, index=i) for i in range(8)]) == \
                [i * (step + 1.0) for i in range(8)]
            if step == 5:  # idle past a cycle of Dask's memory manager (2 s): it drops the model's extra replica,
                time.sleep(2.5)  # and the next map fetches it again, as a new object
        assert len(ex._shared) == 1  # only the model was shipped as a shared value
        assert set(ex.client.run(_worker_copies).values()) <= {1}


def _train(tmp_path: Path, name: str, protocol: str, *extra: str) -> dict:
    out = tmp_path / name
    sets = ["--set", "training.steps=10", "--set", "training.eval_every=10", "--set", "data.n_test=6",
            "--set", "task.plot_resolution=2"]
    assert main(["train", str(PROTOCOLS / protocol), "--out", str(out), "--no-progress", *sets, *extra]) == 0
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("protocol", ["phase_sensor.toml", "ising_classifier.toml"])
def test_serial_one_and_two_workers_are_bitwise_equal(protocol: str, tmp_path: Path):
    serial = _train(tmp_path, "serial", protocol)
    one = _train(tmp_path, "one", protocol, "--workers", "1")
    two = _train(tmp_path, "two", protocol, "--workers", "2")
    for other in (one, two):
        assert other["theta"] == serial["theta"]
        assert other["history"] == serial["history"]


def test_the_gradient_of_a_batch_is_bitwise_equal_when_a_worker_dies_mid_batch(cluster):
    from qep_analog.learning.gradient import estimate_gradient
    from qep_analog.protocol import load_protocol
    from qep_analog.tasks.build import build_backend, build_data, build_gradient_config, build_model

    p = load_protocol(PROTOCOLS / "phase_sensor.toml")
    h, backend, config = build_model(p), build_backend(p), build_gradient_config(p)
    data = build_data(p, h)
    theta = 0.3 * np.random.default_rng(0).standard_normal(len(h.parameter_names))
    x, t = data.inputs[:40], data.targets[:40]
    serial = estimate_gradient(h, backend, theta, x, t, config, seed=7, executor=SerialExecutor())
    pid = next(iter(cluster.worker_pids.values()))
    killer = threading.Timer(0.05, os.kill, args=(pid, signal.SIGKILL))
    killer.start()
    try:
        distributed = estimate_gradient(h, backend, theta, x, t, config, seed=7, executor=cluster)
    finally:
        killer.cancel()
    np.testing.assert_array_equal(distributed.gradient, serial.gradient)
    assert distributed.crossings == serial.crossings and distributed.loss == serial.loss


def _phase_sensor_batch(n: int):
    from qep_analog.protocol import load_protocol
    from qep_analog.tasks.build import build_backend, build_data, build_gradient_config, build_model

    p = load_protocol(PROTOCOLS / "phase_sensor.toml")
    h, backend, config = build_model(p), build_backend(p), build_gradient_config(p)
    data = build_data(p, h)
    theta = 0.3 * np.random.default_rng(0).standard_normal(len(h.parameter_names))
    return h, backend, theta, data.inputs[:n], data.targets[:n], config


def _same(a, b) -> bool:
    return (np.array_equal(a.gradient, b.gradient) and np.array_equal(a.stderr, b.stderr)
            and np.array_equal(a.outputs, b.outputs) and a.crossings == b.crossings
            and a.preparations == b.preparations and a.samples_dropped == b.samples_dropped)


@pytest.mark.parametrize("variant", [{}, {"crossing_policy": "one-sided", "beta": 3.0, "overlap_threshold": 0.999},
                                     {"estimator": "one-sided"}, {"beta": 4.0, "overlap_threshold": 0.9999}])
def test_one_task_per_sample_and_phase_is_bitwise_the_serial_gradient(cluster, variant):
    """Free phases, nudged phases (a future of the free one as argument) and judgements as separate tasks."""
    from dataclasses import replace

    from qep_analog.learning.gradient import estimate_gradient

    h, backend, theta, x, t, config = _phase_sensor_batch(6)
    config = replace(config, **variant)
    serial = estimate_gradient(h, backend, theta, x, t, config, seed=5)
    assert cluster.phase_tasks(1) and not cluster.phase_tasks(4)  # auto: fewer than 2 samples per worker
    cluster.granularity = "phase"
    try:
        graph = estimate_gradient(h, backend, theta, x, t, config, seed=5, executor=cluster)
    finally:
        cluster.granularity = "auto"
    assert _same(graph, serial)
    if "overlap_threshold" in variant:  # the crossing variants exercise the halving rounds and the fallback
        assert serial.crossings


def test_phase_tasks_survive_a_killed_worker_bitwise(cluster):
    from qep_analog.learning.gradient import estimate_gradient

    h, backend, theta, x, t, config = _phase_sensor_batch(24)
    serial = estimate_gradient(h, backend, theta, x, t, config, seed=7)
    pid = next(iter(cluster.worker_pids.values()))
    killer = threading.Timer(0.05, os.kill, args=(pid, signal.SIGKILL))
    cluster.granularity = "phase"
    killer.start()
    try:
        graph = estimate_gradient(h, backend, theta, x, t, config, seed=7, executor=cluster)
    finally:
        killer.cancel()
        cluster.granularity = "auto"
    assert _same(graph, serial)


def test_a_killed_client_resumes_from_its_checkpoint_to_the_serial_result(tmp_path: Path):
    """SIGKILL the client (its local cluster goes with it) after step 2, resume on a new cluster."""
    import subprocess
    import sys

    killer = (Path(__file__).parent / "data" / "kill_after_step.py").read_text(encoding="utf-8")
    protocol = str(PROTOCOLS / "phase_sensor.toml")
    extra = ["--set", "training.steps=3", "--set", "training.checkpoint_every=1", "--set", "training.eval_every=3",
             "--set", "data.n_test=6", "--set", "task.plot_resolution=2"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["train", protocol, "--out", str(straight), "--no-progress", *extra]) == 0
    proc = subprocess.run([sys.executable, "-c", killer, protocol, str(killed), "3", *extra, "--workers", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert json.loads((killed / "checkpoint.json").read_text())["state"]["step_"] == 2
    resume = ["train", protocol, "--out", str(killed), "--resume", "--no-progress", *extra, "--workers", "2"]
    assert main(resume) == 0
    a, b = (json.loads((d / "results.json").read_text()) for d in (killed, straight))
    assert a["theta"] == b["theta"] and a["history"] == b["history"]


def test_bad_execution_settings_are_refused(tmp_path: Path, capsys):
    with pytest.raises(QepValueError, match="engine"):
        make_executor(engine="mpi")
    with pytest.raises(QepValueError, match="workers"):
        DaskExecutor(workers=0)
    assert isinstance(make_executor(), SerialExecutor)
    protocol = str(PROTOCOLS / "phase_sensor.toml")
    assert main(["train", protocol, "--out", str(tmp_path / "a"), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert main(["train", protocol, "--out", str(tmp_path / "b"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "scheduler" in err and "\n" not in err and not (tmp_path / "b").exists()


def test_workers_on_a_serial_task_warns_once_and_runs(tmp_path: Path, capsys):
    out = tmp_path / "walk"
    assert main(["train", str(PROTOCOLS / "sensitivity.toml"), "--out", str(out), "--no-progress", "--workers", "2",
                 "--set", "training.steps=2", "--set", "task.plot_resolution=2"]) == 0
    assert capsys.readouterr().err.count("warning") == 1


def test_gradient_command_on_workers_prints_the_serial_result(capsys):
    args = ["gradient", str(PROTOCOLS / "tfim_gradient.toml"), "--json", "--estimator", "symmetric", "--shots", "50"]
    assert main(args) == 0
    serial = json.loads(capsys.readouterr().out)
    assert main([*args, "--workers", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == serial


def test_lab_counts_on_workers_writes_the_serial_counts(tmp_path: Path):
    bundle = tmp_path / "b"
    assert main(["export", str(PROTOCOLS / "rydberg_qep_step.toml"), str(bundle)]) == 0
    assert main(["lab-counts", str(bundle), str(tmp_path / "serial"), "--seed", "4"]) == 0
    assert main(["lab-counts", str(bundle), str(tmp_path / "dask"), "--seed", "4", "--workers", "2"]) == 0
    serial = {p.name: p.read_text() for p in sorted((tmp_path / "serial").iterdir())}
    assert serial and serial == {p.name: p.read_text() for p in sorted((tmp_path / "dask").iterdir())}
