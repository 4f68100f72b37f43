"""Wake-ups for UWS blocking waits: a process-wide generation counter behind a condition.

:class:`~proxcompute.service.jobs.JobStore` calls :func:`notify_change` after every committed
phase change; :func:`wait_for_phase_change` blocks a request until the job's phase moves.
Waiters also poll, so changes made by another process sharing the job database are seen
within :data:`POLL_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from proxcompute.service.uws import FINAL_PHASES, Job

__all__ = ["POLL_SECONDS", "notify_change", "wait_for_phase_change"]

POLL_SECONDS = 0.25
"""How often a waiter re-reads the job when no change in this process woke it."""

_CHANGED = threading.Condition()
_generation = 0


def notify_change() -> None:
    """Wake every waiter of this process (called after a phase change is committed)."""
    global _generation
    with _CHANGED:
        _generation += 1
        _CHANGED.notify_all()


def wait_for_phase_change(read_job: Callable[[], Job], phase: str | None, timeout_s: float) -> Job:
    """Block until the job's phase differs from ``phase`` or ``timeout_s`` seconds pass.

    Parameters
    ----------
    read_job : callable
        Reads the job as it is now (raises if it no longer exists).
    phase : str or None
        The phase to wait out; None = the job's current phase.
    timeout_s : float
        Seconds to wait at most (negative means 0).

    Returns
    -------
    Job
        The job as it is when the wait ends: at once if it is already in another phase or in
        a final phase (UWS blocks only in active phases).
    """
    deadline = time.monotonic() + max(0.0, timeout_s)
    while True:
        with _CHANGED:
            gen = _generation
        job = read_job()
        if phase is None:
            phase = job.phase
        if job.phase != phase or job.phase in FINAL_PHASES:
            return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return job
        with _CHANGED:
            if _generation == gen:
                _CHANGED.wait(min(remaining, POLL_SECONDS))
