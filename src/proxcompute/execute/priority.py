"""Short queries first: big local computations give way between partitions while small ones run.

A plan's cost decides (:func:`~proxcompute.execute.run.iter_completed`): a computation of
at most :data:`~proxcompute.execute.run.IN_PROCESS_MAX_PARTITIONS` partitions runs in the
calling thread and is *short*; a bigger one runs on the local thread pool and, before each
partition task starts, waits while a short query is running (at most
:data:`MAX_YIELD_SECONDS` each time, so a stream of short queries cannot starve it). On a
machine with a few cores, a 1' cone then waits for the partition tasks already running, not
for the whole scan queued behind them (the TAP service's sync cones during async jobs).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["MAX_YIELD_SECONDS", "active_short_queries", "short_query", "wait_for_short_queries", "yielding"]

MAX_YIELD_SECONDS = 0.5
"""Longest a partition task of a big computation waits for short queries before it starts."""

_cond = threading.Condition()
_short = 0
_local = threading.local()  # .in_big_task: this thread runs a task of a big computation


@contextlib.contextmanager
def short_query() -> Iterator[None]:
    """Mark the calling thread's computation as short for the duration of the block.

    A no-op inside a task of a big computation (whose small sub-computations must not make
    its sibling tasks wait)."""
    global _short
    if getattr(_local, "in_big_task", False):
        yield
        return
    with _cond:
        _short += 1
    try:
        yield
    finally:
        with _cond:
            _short -= 1
            if _short == 0:
                _cond.notify_all()


def active_short_queries() -> int:
    """Short queries running now."""
    with _cond:
        return _short


def wait_for_short_queries(timeout: float | None = None) -> None:
    """Return when no short query runs, or after ``timeout`` seconds (:data:`MAX_YIELD_SECONDS`)."""
    with _cond:
        _cond.wait_for(lambda: _short == 0, timeout=MAX_YIELD_SECONDS if timeout is None else timeout)


def yielding(job: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``job``, waiting for short queries before it starts (for the tasks of a big computation)."""

    def run(item: Any) -> Any:
        wait_for_short_queries()
        _local.in_big_task = True
        try:
            return job(item)
        finally:
            _local.in_big_task = False

    return run
