"""Run a UWS job's work in a child process at a lower CPU priority.

Why: a full-table job run on threads of the service process takes both cores and shares the
GIL with the request threads, so a 1' sync cone (which never queues behind the job's tasks:
it runs in its request thread) waited for CPU and for the GIL, 3-25x its idle time. A child
process has its own GIL, and its ``nice`` value lets the kernel give the cores to the
service's requests first; the job still gets whatever CPU they leave.

The child is forked from a ``forkserver`` that has imported the query engine once
(:data:`PRELOAD`), so a job starts in milliseconds and with a clean process (no threads, locks
or connections of the server copied into it). The work travels with ``cloudpickle``; the child
reports progress and its outcome over a pipe. Cancelling (ABORT, time limit, deletion,
shutdown) tells the child to stop (its computation checks between partition tasks and cleans
up as in-process work does) and kills it if it has not ended ``grace_seconds`` later; a child
whose service died exits at once, as a job on the service's threads died with it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from proxcompute.errors import ProxError

__all__ = ["PRELOAD", "WorkerFailed", "run_in_worker"]

log = logging.getLogger(__name__)

PRELOAD = ["proxcompute.service.job_exec"]
"""Modules the forkserver imports once, so that every job's child starts with them loaded."""

POLL_SECONDS = 0.1
"""How often the waiting thread looks at the cancel flag while the child works."""

_context_lock = threading.Lock()


class WorkerFailed(ProxError):
    """The child failed: its message is the error the job ends with (as in-process work's)."""


def _context() -> multiprocessing.context.BaseContext:
    with _context_lock:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)  # used when the forkserver starts (once per process)
        return ctx


def _lower_priority(nice: int) -> None:
    """Run this process at ``nice`` (CPU) and at the lowest best-effort I/O priority."""
    if nice > 0:
        os.nice(nice)
    try:
        import psutil

        psutil.Process().ionice(psutil.IOPRIO_CLASS_BE, 7)
    except (AttributeError, OSError, ValueError):  # no ioprio on this platform or scheduler
        pass


def _child(conn: Any, blob: bytes, nice: int) -> None:
    """The child's main: run ``fn(payload, progress, cancel)``, send its outcome, exit."""
    import cloudpickle

    _lower_priority(nice)
    cancel = threading.Event()
    finished = threading.Event()
    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        with send_lock:
            conn.send(message)

    def watch() -> None:
        try:
            while True:
                if conn.recv() == "cancel":
                    cancel.set()  # stop at the next task boundary, cleaning up as usual
        except (EOFError, OSError):
            if not finished.is_set():  # the service died: nobody wants the result, as with a thread
                os._exit(3)

    threading.Thread(target=watch, name="job-cancel-watch", daemon=True).start()
    try:
        fn, payload = cloudpickle.loads(blob)
        result = fn(payload, lambda *args: send(("progress", *args)), cancel)
        message: tuple = ("done", result)
    except ProxError as exc:
        message = ("error", str(exc) or type(exc).__name__)
    except BaseException as exc:
        if not cancel.is_set():
            log.exception("a job's worker process crashed")
        message = ("error", f"internal error: {type(exc).__name__}: {exc}")
    finished.set()
    with contextlib.suppress(OSError):
        send(message)
    conn.close()


def run_in_worker(
    fn: Callable[[Any, Callable[..., None], threading.Event], Any],
    payload: Any,
    progress: Callable[..., None] | None,
    cancel: threading.Event,
    *,
    nice: int = 10,
    grace_seconds: float = 5.0,
    name: str = "proxcompute-job",
) -> Any:
    """``fn(payload, progress, cancel)`` in a child process at CPU priority ``nice``; its result.

    Parameters
    ----------
    fn : callable
        A function the child can unpickle (module level, or a closure cloudpickle can send).
        It gets a ``threading.Event`` of its own, set when this side's ``cancel`` is.
    payload : object
        Its argument (sent with cloudpickle).
    progress : callable, optional
        Called here with the arguments of the child's ``progress(...)`` calls, in order.
    cancel : threading.Event
        Set it to stop the child: it is told at once, and killed ``grace_seconds`` later if
        it has not ended. The call then returns or raises promptly; its outcome is moot.
    nice : int
        Added to the child's nice value (0: the service's priority).
    grace_seconds : float
        How long a cancelled child may take to stop on its own.
    name : str
        The child's process name (shown by ``ps`` and in logs).

    Returns
    -------
    object
        What ``fn`` returned (pickled back).

    Raises
    ------
    WorkerFailed
        ``fn`` raised (message: a :class:`~proxcompute.errors.ProxError`'s text, else
        ``"internal error: <type>: <msg>"``, as for work run in-process), or the child died
        (killed, out of memory) without an outcome.
    """
    import cloudpickle

    ctx = _context()
    blob = cloudpickle.dumps((fn, payload))
    here, there = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=_child, args=(there, blob, int(nice)), name=name, daemon=True)
    proc.start()
    there.close()
    told_at: float | None = None
    outcome: tuple | None = None
    try:
        while outcome is None:
            if cancel.is_set() and told_at is None:
                told_at = time.monotonic()
                with contextlib.suppress(OSError):
                    here.send("cancel")
            if told_at is not None and time.monotonic() - told_at > grace_seconds and proc.is_alive():
                log.info("killing %s (pid %s): it did not stop %.0f s after cancellation", name, proc.pid,
                         grace_seconds)  # fmt: skip
                proc.kill()
            try:
                if not here.poll(POLL_SECONDS):
                    continue
                message = here.recv()
            except (EOFError, OSError):  # the child ended without an outcome
                break
            if message[0] == "progress":
                if progress is not None:
                    progress(*message[1:])
            else:
                outcome = message
        proc.join(grace_seconds)  # the outcome is in: the child is ending (tasks still running end it later)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
        here.close()
    if outcome is None:
        code = proc.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        raise WorkerFailed(f"internal error: the job's worker process {how} before it finished "
                           "(out of memory, or killed)")  # fmt: skip
    if outcome[0] == "error":
        raise WorkerFailed(outcome[1])
    return outcome[1]
