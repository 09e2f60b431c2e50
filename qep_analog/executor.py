"""One small executor interface: ``map`` over independent tasks.

The samples of a batch and their phases are independent; the learning layer submits them
through ``executor.map(function, tasks)`` so that a process pool or a distributed engine can
take the work without touching the physics. Tasks carry their own seeds, so results do not
depend on the order in which an executor runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    def map(self, function: Callable[[T], R], tasks: Iterable[T]) -> list[R]: ...


@dataclass(frozen=True)
class SerialExecutor:
    """Runs tasks one after another in this process (the default)."""

    def map(self, function: Callable[[T], R], tasks: Iterable[T]) -> list[R]:
        return [function(task) for task in tasks]


@dataclass(frozen=True)
class ProcessExecutor:
    """Runs tasks in a pool of ``workers`` processes (functions and tasks must pickle)."""

    workers: int = 2

    def map(self, function: Callable[[T], R], tasks: Iterable[T]) -> list[R]:
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(function, tasks))
