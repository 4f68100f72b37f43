"""UWS 1.1 job layer, part 2: run jobs from the :class:`~proxcompute.service.jobs.JobStore`.

One bounded thread pool per queue; time limits, aborts, the destruction sweep and restart
recovery. Every phase change goes through the store's compare-and-set transitions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from proxcompute.errors import ProxError
from proxcompute.service.jobs import (
    ABORTED,
    COMPLETED,
    EXECUTING,
    PENDING,
    QUEUED,
    RESTART_MESSAGE,
    SHUTDOWN_MESSAGE,
    Job,
    JobNotFound,
    JobOutcome,
    JobStore,
    PhaseError,
    _check_duration,
    remove_job_files,
)
from proxcompute.service.uws import remove_path

__all__ = ["ExecuteFn", "JobRunner"]

log = logging.getLogger(__name__)

ExecuteFn = Callable[[Job, Callable[[int, int], None], threading.Event], JobOutcome]


@dataclass
class _Running:
    job_id: str
    queue: str
    limit: int  # seconds, 0 = unlimited
    deadline: float | None  # monotonic
    cancel: threading.Event


class JobRunner:
    """Run jobs on background threads: one bounded thread pool per queue.

    Parameters
    ----------
    store : JobStore
        Where jobs live.
    execute : callable
        ``execute(job, progress, cancel) -> JobOutcome``. ``progress(done, total, rows=None)``
        records progress (partitions done / total, stored rows of those done); ``cancel`` is set when the job is aborted, times out, is deleted or the
        runner shuts down: execute should then stop soon (raising or returning; either way
        its result is discarded) and delete any partial output it wrote. A
        :class:`~proxcompute.errors.ProxError` becomes ERROR with ``str(exc)``; any other
        exception ERROR "internal error: <type>: <msg>" (traceback logged).
    queues : dict of str to int
        Queue name -> execution-duration limit in seconds (0 = unlimited). A job runs at most
        ``min(job.execution_duration, limit)`` (0s ignored) before it is ended in ERROR.
    workers_per_queue : dict of str to int, optional
        Threads per queue (default 2 each).
    sweep_seconds : float
        How often to delete jobs past their destruction time.
    results_dir : path, optional
        If given, ``results_dir/<job id>`` is taken to be the job's private result directory
        (``execute`` should write there): it is removed once the worker has returned from a
        job that did not complete (abort, timeout, error, deletion), so partial output never
        outlives a cancelled job, and with the job on deletion or destruction.
    recover : bool
        Mark jobs left QUEUED/EXECUTING by a previous process ERROR on start. Correct when one
        runner serves the database (one server process), which is the supported set-up.
    """

    def __init__(
        self,
        store: JobStore,
        execute: ExecuteFn,
        *,
        queues: dict[str, int],
        workers_per_queue: dict[str, int] | None = None,
        sweep_seconds: float = 5.0,
        results_dir: str | os.PathLike | None = None,
        recover: bool = True,
    ) -> None:
        if not queues:
            raise ValueError("at least one queue is needed")
        self.store = store
        self.execute = execute
        self.queues = {q: _check_duration(s) for q, s in queues.items()}
        workers = workers_per_queue or {}
        self.sweep_seconds = float(sweep_seconds)
        self.results_dir = results_dir
        self._pools = {
            q: ThreadPoolExecutor(max_workers=max(1, int(workers.get(q, 2))), thread_name_prefix=f"uws-{q}")
            for q in self.queues
        }
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._cancels: dict[str, threading.Event] = {}  # scheduled (QUEUED or EXECUTING) here
        self._running: dict[str, _Running] = {}
        self._closed = False
        if recover:
            self.recover()
        self._monitor = threading.Thread(target=self._monitor_loop, name="uws-monitor", daemon=True)
        self._monitor.start()

    # -- public API ---------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Mark every QUEUED or EXECUTING job not scheduled by this runner ERROR (restart)."""
        ids = []
        for job in self.store.stale():
            with self._lock:
                if job.id in self._cancels:
                    continue
            with contextlib.suppress(JobNotFound, PhaseError):
                self.store.fail(job.id, RESTART_MESSAGE)
                ids.append(job.id)
        if ids:
            log.warning("marked %d job(s) interrupted by a restart as ERROR: %s", len(ids), ", ".join(ids))
        return ids

    def run(self, job_id: str, owner: str | None) -> Job:
        """PHASE=RUN: move a PENDING job to QUEUED (before returning) and schedule it.

        Returns
        -------
        Job
            The job, QUEUED (or later, if a worker already picked it up).

        Raises
        ------
        JobNotFound
            No such job for this owner.
        PhaseError
            The job is not PENDING, or its queue does not exist.
        RuntimeError
            The runner is shut down.
        """
        job = self.store.get(job_id, owner)
        if job.queue not in self._pools:
            known = ", ".join(sorted(self._pools))
            raise PhaseError(f"cannot RUN a job in unknown queue {job.queue!r} (queues: {known})")
        with self._lock:
            if self._closed:
                raise RuntimeError("the job runner is shut down")
            job = self.store.transition(job_id, QUEUED, expect=(PENDING,), owner=owner)
            self._cancels[job_id] = threading.Event()
            self._pools[job.queue].submit(self._work, job_id)
        return job

    def abort(self, job_id: str, owner: str | None) -> Job:
        """PHASE=ABORT: PENDING/QUEUED/EXECUTING -> ABORTED and signal the worker to stop.

        Raises
        ------
        JobNotFound
            No such job for this owner.
        PhaseError
            The job is already COMPLETED, ERROR or ABORTED.
        """
        job = self.store.transition(job_id, ABORTED, owner=owner)
        self._cancel(job_id)
        return job

    def delete(self, job_id: str, owner: str | None) -> Job:
        """Stop the job if it is active, then delete it and its files.

        Raises
        ------
        JobNotFound
        """
        job = self.store.get(job_id, owner)
        if job.phase in (PENDING, QUEUED, EXECUTING):
            with contextlib.suppress(PhaseError):
                self.store.transition(job_id, ABORTED, owner=owner)
        self._cancel(job_id)
        job = self.store.delete(job_id, owner)
        remove_job_files(job, self.results_dir)
        return job

    def sweep(self, now: datetime | None = None) -> list[str]:
        """Delete every job past its destruction time (stopping it first); return their ids."""
        gone = []
        for job in self.store.expired(now):
            try:
                if job.phase in (PENDING, QUEUED, EXECUTING):
                    with contextlib.suppress(PhaseError):
                        self.store.transition(job.id, ABORTED)
                self._cancel(job.id)
                gone_job = self.store.delete(job.id, job.owner, remove_files=False)
            except JobNotFound:
                continue
            remove_job_files(gone_job, self.results_dir)
            gone.append(job.id)
        if gone:
            log.info("destroyed %d expired job(s)", len(gone))
        return gone

    def shutdown(self, wait: bool = True) -> None:
        """Stop the runner: jobs still queued or running here end in ERROR and are cancelled.

        Parameters
        ----------
        wait : bool
            Wait for the worker threads to return (after their ``execute`` notices
            ``cancel``).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = list(self._cancels)
            self._wake.notify_all()
        for jid in pending:
            with contextlib.suppress(JobNotFound, PhaseError):
                self.store.fail(jid, SHUTDOWN_MESSAGE)
            self._cancel(jid)
        for pool in self._pools.values():
            pool.shutdown(wait=wait, cancel_futures=True)
        if wait and self._monitor.is_alive() and threading.current_thread() is not self._monitor:
            self._monitor.join()

    def __enter__(self) -> JobRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown(wait=True)

    # -- internals ----------------------------------------------------------------------------

    def _cancel(self, job_id: str) -> None:
        with self._lock:
            ev = self._cancels.get(job_id)
        if ev is not None:
            ev.set()

    def _limit(self, job: Job) -> int:
        q = self.queues.get(job.queue, 0)
        limits = [x for x in (job.execution_duration, q) if x > 0]
        return min(limits) if limits else 0

    def _timeout_message(self, run: _Running) -> str:
        msg = f"execution time limit of {run.limit} s exceeded (queue {run.queue!r})"
        queue_limit = self.queues.get(run.queue, 0)
        if queue_limit and run.limit >= queue_limit:  # the queue's limit is what stopped it
            longer = [(s, q) for q, s in self.queues.items() if s == 0 or s > run.limit]
            if longer:
                best = min(longer, key=lambda sq: (sq[0] == 0, sq[0]))[1]
                msg += f"; resubmit with QUEUE={best}"
        else:  # the job's own executionDuration did
            msg += "; resubmit with a larger EXECUTIONDURATION"
        return msg

    def _progress_fn(self, job_id: str) -> tuple[Callable[..., None], Callable[[], None]]:
        state = {"last": 0.0, "pending": None}

        def flush() -> None:
            if state["pending"] is not None:
                done, total, rows = state["pending"]
                state["pending"] = None
                self.store.set_progress(job_id, done, total, rows)

        def progress(done: int, total: int, rows: int | None = None) -> None:
            state["pending"] = (done, total, rows)
            now = time.monotonic()
            if done >= total or now - state["last"] >= 0.25:
                state["last"] = now
                try:
                    flush()
                except Exception:  # progress must never break the query
                    log.exception("could not record progress of job %s", job_id)

        return progress, flush

    def _work(self, job_id: str) -> None:
        with self._lock:
            cancel = self._cancels.get(job_id)
        if cancel is None or cancel.is_set():
            self._forget(job_id)
            return
        try:
            try:
                job = self.store.transition(job_id, EXECUTING, expect=(QUEUED,))
            except (JobNotFound, PhaseError):
                return  # aborted, deleted or failed while queued
            limit = self._limit(job)
            run = _Running(job_id, job.queue, limit, time.monotonic() + limit if limit else None, cancel)
            with self._lock:
                self._running[job_id] = run
                self._wake.notify_all()
            self._execute(job, cancel)
        except Exception:  # the store itself failed: leave a trace, never kill the pool thread
            log.exception("job %s: unexpected failure in the job runner", job_id)
            with contextlib.suppress(Exception):
                self.store.fail(job_id, "internal error: the job runner failed; see the server log")
        finally:
            self._forget(job_id)
            self._discard_unfinished(job_id)

    def _discard_unfinished(self, job_id: str) -> None:
        """After the worker returned: drop ``results_dir/<id>`` unless the job COMPLETED."""
        if self.results_dir is None:
            return
        try:
            if self.store.get_any(job_id).phase == COMPLETED:
                return
        except JobNotFound:
            pass
        except Exception:
            log.exception("job %s: could not check its phase", job_id)
            return
        remove_path(Path(self.results_dir) / job_id)

    def _execute(self, job: Job, cancel: threading.Event) -> None:
        progress, flush = self._progress_fn(job.id)
        try:
            outcome = self.execute(job, progress, cancel)
        except ProxError as exc:
            message = str(exc) or type(exc).__name__
            if not cancel.is_set():
                log.info("job %s failed: %s", job.id, message)
            self._end_error(job.id, message)
            return
        except Exception as exc:
            if cancel.is_set():
                log.info("job %s stopped after cancellation: %s: %s", job.id, type(exc).__name__, exc)
            else:
                log.exception("job %s crashed", job.id)
            self._end_error(job.id, f"internal error: {type(exc).__name__}: {exc}")
            return
        with contextlib.suppress(Exception):
            flush()
        try:
            self.store.finish(job.id, outcome)
        except (JobNotFound, PhaseError):
            # aborted, timed out or deleted meanwhile: the result is not wanted
            log.info("job %s: discarding the result of a job no longer executing", job.id)
            remove_path(outcome.path)

    def _end_error(self, job_id: str, message: str) -> None:
        with contextlib.suppress(JobNotFound, PhaseError):
            self.store.fail(job_id, message, expect=(EXECUTING,))

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._cancels.pop(job_id, None)
            self._running.pop(job_id, None)
            self._wake.notify_all()

    def _monitor_loop(self) -> None:
        """Enforce execution durations and sweep expired jobs, until shutdown."""
        next_sweep = time.monotonic()
        while True:
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                overdue = [r for r in self._running.values() if r.deadline is not None and r.deadline <= now]
                for r in overdue:
                    del self._running[r.job_id]
            for r in overdue:
                try:
                    self.store.fail(r.job_id, self._timeout_message(r), expect=(EXECUTING,))
                    log.info("job %s exceeded its %d s limit", r.job_id, r.limit)
                except (JobNotFound, PhaseError):
                    continue  # finished in time after all, or aborted/deleted
                except Exception:
                    log.exception("could not end overdue job %s", r.job_id)
                    continue
                r.cancel.set()
            now = time.monotonic()
            if now >= next_sweep:
                try:
                    self.sweep()
                except Exception:
                    log.exception("destruction sweep failed")
                next_sweep = time.monotonic() + self.sweep_seconds
            with self._lock:
                if self._closed:
                    return
                deadlines = [r.deadline for r in self._running.values() if r.deadline is not None]
                wake_at = min([next_sweep, *deadlines])
                self._wake.wait(max(0.0, min(wake_at - time.monotonic(), self.sweep_seconds)))
