"""Dask distributed behind the :class:`~qep_analog.executor.Executor` seam: the same ``map``, on a cluster.

``DaskExecutor(workers=k)`` starts a ``LocalCluster`` of k single-threaded worker processes;
``DaskExecutor(scheduler="tcp://host:8786")`` connects to a running scheduler (``dask scheduler`` and
``dask worker tcp://…`` on other machines, or dask-jobqueue on SLURM). Results do not depend on where or
in which order tasks run: every task carries its own seed, and results come back in task order.

Large constant inputs (a model's operator tables are ~1.5 MB for the phase sensor) are shipped once per
worker, not once per task: a field whose value is the *same object* in every task of a ``map`` and
pickles to at least ``scatter_bytes`` (default 0: every such field; numpy arrays under
``INLINE_ARRAY_BYTES`` such as θ, new at every step, travel with the tasks) is sent once, as the result of a
task that returns it (workers
fetch it from each other, and Dask recomputes it if its holder dies, which scattered data would not
survive), cached for the executor's lifetime; each task travels without it. Workers pin BLAS, OpenMP and
numba to one thread (environment and a worker plugin), as the serial path does, so that results are
bitwise identical to a serial run. A lost worker's tasks are retried elsewhere by Dask itself. Tasks
travel in consecutive chunks sized from what one task cost in the previous map (``chunks_per_worker``
"auto"): cheap tasks as one chunk per worker thread, because Dask's per-task cost (a few ms) is
comparable to one phase-sensor sample; expensive ones one each, so that Dask balances unequal tasks.
Messages are sent unbatched (``low_latency``): a training step is one small graph and a wait.

Granularity (``granularity``): a QEP batch runs as chunks of whole samples when there are at least two
samples per worker thread, and otherwise as one task per (sample, phase) (``submit_each``/``gather``): the
free phases first, each nudged phase a task that takes its free phase's future (the free state stays on the
cluster and warm-starts the nudged one), and one task per sample that judges crossings and measures; see
``learning.gradient._qep_phase_graph``. Both give the serial result bit for bit.

Dask is imported only when a ``DaskExecutor`` is made: the serial default never imports it.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.executor import SerialExecutor

T = TypeVar("T")
R = TypeVar("R")

ENGINES = ("serial", "dask")
GRANULARITIES = ("auto", "sample", "phase")
MAX_WORKERS = 4096
CHUNK_SECONDS = 0.05  # the shortest chunk "auto" makes: Dask's per-task cost is a few ms
FIRST_CHUNKS = 8  # chunks per worker thread while a function's task cost is unknown
INLINE_ARRAY_BYTES = 1 << 20  # arrays below this travel with each task instead of once per worker
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "NUMBA_NUM_THREADS": "1", "MKL_DYNAMIC": "FALSE"}


def _pin_threads() -> None:
    """Worker start-up: one BLAS/OpenMP thread for this process (threadpoolctl), as the serial CLI does.

    Also undoes what Dask's nanny does to glibc's allocator: it starts workers with
    ``MALLOC_TRIM_THRESHOLD_=65536``, which switches off glibc's dynamic mmap threshold, so every array
    above 128 kB is mmap-ed and unmapped again (page faults on each Lanczos vector). Measured here: the
    phase-sensor batch ran 40–60 % slower inside such a worker than in a plain process. Local clusters are
    started without the variable (see ``DaskExecutor``); on workers started elsewhere (``dask worker``) the
    thresholds are raised to glibc's own dynamic ceiling (32 MiB mmap, 64 MiB trim) with ``mallopt``.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    if "MALLOC_TRIM_THRESHOLD_" in os.environ:
        _raise_malloc_thresholds()


def _raise_malloc_thresholds() -> bool:
    """glibc ``mallopt(M_MMAP_THRESHOLD, 32 MiB)`` and ``mallopt(M_TRIM_THRESHOLD, 64 MiB)``; False elsewhere."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 64 << 20))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to undo
        return False


def _identity(value):
    return value


_LOCAL: dict[str, Any] = {}  # worker side: Dask key of a shared value -> its realigned copy


def _realigned(value):
    """A copy of a value Dask delivered, with every array in memory numpy allocated itself.

    Arrays that arrive in Dask's out-of-band frames can sit at any address (measured: complex arrays at odd
    addresses, ``flags.aligned`` False); numpy then takes its unaligned loops, whose rounding differs from the
    aligned ones by ~1e-16 relative, and a gradient stops being bitwise the serial one. ``copy.deepcopy``
    gives each array fresh, aligned memory.
    """
    return copy.deepcopy(value)


def _local(key: str, value):
    """The realigned copy of a shared value, made once per worker and kept under its Dask key.

    Keyed by the key, not the received object: Dask's memory manager drops extra replicas of a value every
    few seconds and the worker fetches it again as a new object; the copy (and the caches a model builds on
    it, ~1.5 MB of operator tables for the phase sensor) must survive that. Least recently used out first.
    """
    if key in _LOCAL:
        _LOCAL[key] = _LOCAL.pop(key)
    else:
        if len(_LOCAL) >= 16:
            _LOCAL.pop(next(iter(_LOCAL)))
        _LOCAL[key] = _realigned(value)
    return _LOCAL[key]


def _rebuild(task, shared: Mapping[str, tuple[str, Any]]):
    """The task with its shared fields put back: ``shared`` = {field: (Dask key, value)}."""
    return dataclasses.replace(task, **{k: _local(*kv) for k, kv in shared.items()}) if shared else task


def _rebuild_and_call_one(function: Callable, task, shared: Mapping[str, Any], *args):
    """Worker side: put the shared fields back into one task and call ``function(task, *args)``.

    ``args`` may hold results of earlier tasks (made elsewhere): they are realigned copies, which also keeps
    the task from mutating a value another task will read.
    """
    return function(_rebuild(task, shared), *[_realigned(a) for a in args])


def _rebuild_and_call(function: Callable, chunk: list, shared: Mapping[str, Any]) -> tuple[list, float]:
    """Worker side: put the shared fields back into each task of the chunk and run them in order.

    Returns the results and the chunk's wall time inside the worker (what the next map's chunking uses).
    """
    start = time.perf_counter()
    results = [function(_rebuild(_realigned(task), shared)) for task in chunk]
    return results, time.perf_counter() - start


def _low_latency(dask_worker=None, dask_scheduler=None) -> None:
    """Send each message at once instead of batching it for 2–10 ms (Dask's ``BatchedSend`` interval).

    Dask batches the messages of a stream: after one send, the next waits up to the stream's interval
    (client → scheduler 10 ms, scheduler → worker 5 ms, worker → scheduler 2 ms). A training loop sends
    one small graph per step and waits for it, so the batching is pure latency: measured here, the round
    trip of a 2-chunk map went from 12 to 9 ms without it. The intervals are attributes of Dask's stream
    objects (not configuration); if a Dask version lacks them, nothing changes.
    """
    streams = []
    if dask_worker is not None:
        streams.append(getattr(dask_worker, "batched_stream", None))
    if dask_scheduler is not None:
        streams += list(getattr(dask_scheduler, "stream_comms", {}).values())
        streams += list(getattr(dask_scheduler, "client_comms", {}).values())
    for stream in streams:
        if stream is not None and hasattr(stream, "interval"):
            stream.interval = 0.0


class DaskExecutor:
    """``map`` over a Dask cluster; use as a context manager (closes what it started).

    Example::

        with DaskExecutor(workers=2) as ex:
            results = ex.map(square, range(10))
    """

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None, scatter_bytes: int = 0,
                 chunks_per_worker: int | str | None = "auto", granularity: str = "auto",
                 low_latency: bool = True, silence_logs: bool = True):
        if (workers is None) == (scheduler is None):
            raise QepValueError("DaskExecutor needs exactly one of 'workers' (a local cluster) or 'scheduler'")
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool)
                                    or not 1 <= workers <= MAX_WORKERS):
            raise QepValueError(f"'workers' must be an integer in [1, {MAX_WORKERS}], not {workers!r}")
        if scheduler is not None and (not isinstance(scheduler, str) or "://" not in scheduler):
            raise QepValueError(f"'scheduler' must be an address like tcp://host:8786, not {scheduler!r}")
        if not (chunks_per_worker is None or chunks_per_worker == "auto"
                or (isinstance(chunks_per_worker, int) and not isinstance(chunks_per_worker, bool)
                    and chunks_per_worker >= 1)):
            raise QepValueError("'chunks_per_worker' must be 'auto', None or an integer >= 1, "
                                f"not {chunks_per_worker!r}")
        if granularity not in GRANULARITIES:
            raise QepValueError(f"'granularity' must be one of {GRANULARITIES}, not {granularity!r}")
        from dask.distributed import Client, LocalCluster

        self.workers, self.scheduler, self.scatter_bytes = workers, scheduler, scatter_bytes
        self.chunks_per_worker, self.granularity = chunks_per_worker, granularity
        self._cluster = None
        self._nthreads: tuple[int, float] | None = None  # (threads, when asked)
        self._shared: dict[int, tuple[Any, Any]] = {}  # id(object) -> (object, future): keeps the object alive
        try:
            if workers is not None:
                for key, value in _ONE_THREAD.items():  # the spawned worker processes inherit these
                    os.environ.setdefault(key, value)
                import logging

                import dask

                # non-daemonic workers: quimb/cotengra may start their own process pools inside a task;
                # no MALLOC_TRIM_THRESHOLD_ (see _pin_threads): the workers allocate like a plain process;
                # no statistical profiler (a thread sampling every task's stack every 10 ms, taking the GIL);
                # fewer housekeeping wake-ups: each of the 2k + 1 event loops checks its own health every
                # 20 ms and polls psutil every 0.1–0.5 s, which cost an idle 2-worker cluster 55–65 ms of
                # CPU per second here, against 14 ms with the intervals below (CPU a 2-core machine lacks)
                dask.config.set({"distributed.worker.daemon": False,
                                 "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                                 "distributed.worker.profile.enabled": False,
                                 "distributed.admin.tick.interval": "500ms",
                                 "distributed.admin.system-monitor.interval": "2s",
                                 "distributed.admin.system-monitor.disk": False,
                                 "distributed.worker.memory.monitor-interval": "1s"})
                self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                             dashboard_address=":0",
                                             silence_logs=logging.ERROR if silence_logs else logging.INFO)
                self.client = Client(self._cluster)
            else:
                self.client = Client(scheduler, timeout="10s")
        except OSError as exc:
            self.close()
            raise QepValueError(f"cannot reach the Dask scheduler {scheduler or '(local)'}: {exc}") from None
        self.client.run(_pin_threads)
        self.client.register_worker_callbacks(_pin_threads)
        self._cost: dict[tuple[str, str], float] = {}  # function -> in-worker seconds per task (last map)
        if low_latency:
            self._low_latency()

    def _low_latency(self) -> None:
        """No message batching on the client's, the scheduler's and the workers' streams (see ``_low_latency``)."""
        comm = getattr(self.client, "scheduler_comm", None)
        if comm is not None and hasattr(comm, "interval"):
            comm.interval = 0.0
        self.client.run(_low_latency)
        self.client.register_worker_callbacks(_low_latency)  # workers that join later (or restart)
        try:  # a remote scheduler may not have qep_analog installed (it needs none), or may refuse to run code
            self.client.run_on_scheduler(_low_latency)
        except Exception:  # noqa: BLE001 - only a latency tweak: the cluster works the same without it
            pass

    # -------------------------------------------------------------- the seam
    def map(self, function: Callable[[T], R], tasks: Iterable[T]) -> list[R]:
        tasks = list(tasks)
        if not tasks:
            return []
        shared = self._shared_fields(tasks)
        light = [dataclasses.replace(t, **dict.fromkeys(shared)) for t in tasks] if shared else tasks
        key = (getattr(function, "__module__", ""), getattr(function, "__qualname__", repr(function)))
        chunks = self._chunks(light, self._cost.get(key))
        futures = self.client.map(_rebuild_and_call, [function] * len(chunks), chunks, [shared] * len(chunks),
                                  pure=False)
        try:
            done = self.client.gather(futures)
        finally:
            for f in futures:
                f.release()
        self._cost[key] = sum(seconds for _, seconds in done) / len(tasks)
        return [result for results, _ in done for result in results]

    # ------------------------------------------------ chained tasks (one per (sample, phase))
    def phase_tasks(self, samples: int) -> bool:
        """Whether a QEP batch of ``samples`` should run as one task per (sample, phase).

        "auto": when there are fewer samples than two per worker thread, the phases are the parallelism
        left (a 51-atom MPS batch of one sample runs its ±β phases on two workers); otherwise whole samples
        in chunks, which pays one scheduler round trip per step instead of three.
        """
        if self.granularity != "auto":
            return self.granularity == "phase"
        return samples < 2 * self._threads()

    def submit_each(self, function: Callable, tasks: Iterable, *args: Iterable) -> list:
        """Futures of ``function(task, *a)`` for each task and the matching items of ``args``.

        Items of ``args`` may be futures of earlier calls: Dask passes their values, on the worker that
        holds them or after moving them there, and recomputes them if their worker died.
        """
        tasks = list(tasks)
        shared = self._shared_fields(tasks) if tasks else {}
        light = [dataclasses.replace(t, **dict.fromkeys(shared)) for t in tasks] if shared else tasks
        return self.client.map(_rebuild_and_call_one, [function] * len(light), light, [shared] * len(light),
                               *[list(a) for a in args], pure=False)

    def gather(self, futures: list) -> list:
        """The values of ``futures``, in order (an exception of a task is raised here, as in serial)."""
        return self.client.gather(futures)

    def _threads(self) -> int:
        """Worker threads on the cluster, asked of the scheduler at most every 2 s (an RPC costs ~0.6 ms)."""
        now = time.monotonic()
        if self._nthreads is None or now - self._nthreads[1] > 2.0:
            self._nthreads = (max(sum(self.client.nthreads().values()), 1), now)
        return self._nthreads[0]

    def _chunks(self, tasks: list, cost: float | None = None) -> list[list]:
        """Consecutive runs of tasks, in order (so results are those of the serial map).

        ``chunks_per_worker`` = k: k chunks per worker thread; None: one task each. "auto" sizes them from
        ``cost``, the seconds one task of this function took inside a worker in the previous map: each
        thread gets k = ⌊cost·⌈n/threads⌉ / CHUNK_SECONDS⌋ chunks (at least 1, at most one task each), so a
        chunk runs ≥ CHUNK_SECONDS and Dask's per-task cost (a few ms) stays a few per cent of it. Cheap
        tasks (a 10 ms phase-sensor sample) travel as one chunk per thread, one round trip per map;
        expensive ones (a 1–2 s MPS sample, a noisy sequence) one task each, which Dask hands to whichever
        worker is free, so unequal tasks balance. With no cost known yet (the first map) at most
        ``FIRST_CHUNKS`` chunks per thread.
        """
        threads = self._threads()
        per_thread = -(-len(tasks) // threads)
        k = self.chunks_per_worker
        if k is None:
            return [[t] for t in tasks]
        if k == "auto":
            k = FIRST_CHUNKS if cost is None else int(cost * per_thread / CHUNK_SECONDS)
            k = min(max(k, 1), per_thread)
        n = min(threads * k, len(tasks))
        bounds = [round(i * len(tasks) / n) for i in range(n + 1)]
        return [tasks[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def _shared_fields(self, tasks: list) -> dict[str, Any]:
        """{field: (Dask key, future)} for fields that hold the same object in every task (shipped once)."""
        first = tasks[0]
        if not dataclasses.is_dataclass(first):
            return {}
        out = {}
        for f in dataclasses.fields(first):
            value = getattr(first, f.name)
            if value is None or isinstance(value, (int, float, str, bool)):
                continue
            if isinstance(value, np.ndarray) and value.nbytes < INLINE_ARRAY_BYTES:
                continue  # θ: new every step and small; as a shared value it cost a task and a fetch per map
            if any(getattr(t, f.name) is not value for t in tasks[1:]):
                continue
            key = id(value)
            if key in self._shared:  # least recently used last out: fields of this call are never evicted
                self._shared[key] = self._shared.pop(key)
            else:
                if len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)) < self.scatter_bytes:
                    continue
                if len(self._shared) >= 16:  # keep the cache small: the least recently used out
                    _, old = self._shared.pop(next(iter(self._shared)))
                    old.release()
                # a task that returns the value, not client.scatter: if the worker holding it dies, Dask
                # recomputes it from the task (scattered data would be lost with the worker)
                self._shared[key] = (value, self.client.submit(_identity, value, pure=False))
            future = self._shared[key][1]
            out[f.name] = (future.key, future)  # the worker caches the value's copy under its key
        return out

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        for _, future in self._shared.values():
            future.release()
        self._shared.clear()
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def worker_pids(self) -> dict[str, int]:
        """{worker address: process id} (for tests and diagnostics)."""
        return self.client.run(os.getpid)


def make_executor(*, engine: str = "serial", workers: int | None = None, scheduler: str | None = None):
    """The executor for ``[execution]`` / ``--workers`` / ``--scheduler``: serial unless asked otherwise."""
    if engine not in ENGINES:
        raise QepValueError(f"'execution.engine' must be one of {ENGINES}, not {engine!r}")
    if engine == "serial" and workers is None and scheduler is None:
        return SerialExecutor()
    if scheduler is not None:
        return DaskExecutor(scheduler=scheduler)
    return DaskExecutor(workers=workers if workers is not None else 2)
