"""UWS 1.1 job layer: the persistent job store.

Jobs as values (phases, :class:`Job`, :class:`JobOutcome`, errors, UWS times) are
:mod:`proxcompute.service.uws` (re-exported here); the threaded runner is
:mod:`proxcompute.service.job_runner`.

The database row is the single source of truth for a job. Every phase change is one atomic
compare-and-set ``UPDATE ... WHERE phase IN (...)``, so concurrent RUN, ABORT, timeouts and
worker completions can never produce an impossible phase sequence (a worker that finishes
after its job was aborted finds the job no longer EXECUTING and discards its result).

Phases (UWS 1.1 §2.1.3) and the transitions allowed here::

    PENDING   -> QUEUED (RUN), ABORTED (ABORT)
    QUEUED    -> EXECUTING (worker start), ABORTED (ABORT), ERROR (refused/restart/shutdown)
    EXECUTING -> COMPLETED, ERROR, ABORTED

This module is plain Python: no HTTP framework. The HTTP layer maps :class:`JobNotFound` to
404 and :class:`PhaseError` to 400 (both are :class:`~proxcompute.errors.ProxError`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from proxcompute.errors import ProxError
from proxcompute.service.job_events import notify_change, wait_for_phase_change
from proxcompute.service.job_table import (
    add_missing_columns,
    jobs_table,
    metadata,
    owner_clause,
    row_to_job,
    sqlite_on_connect,
)
from proxcompute.service.uws import (  # noqa: F401 - re-exported: the job model lives in uws
    ABORTED,
    ACTIVE_PHASES,
    ALLOWED_FROM,
    COMPLETED,
    ERROR,
    EXECUTING,
    FINAL_PHASES,
    PENDING,
    PHASES,
    QUEUED,
    RESTART_MESSAGE,
    SHUTDOWN_MESSAGE,
    VERBS,
    Job,
    JobError,
    JobNotFound,
    JobOutcome,
    PhaseError,
    from_db_time,
    parse_uws_time,
    remove_job_files,
    to_db_time,
    utcnow,
    uws_time,
)

__all__ = [
    "ACTIVE_PHASES",
    "FINAL_PHASES",
    "PHASES",
    "Job",
    "JobError",
    "JobNotFound",
    "JobOutcome",
    "JobStore",
    "PhaseError",
    "parse_uws_time",
    "remove_job_files",
    "utcnow",
    "uws_time",
]

log = logging.getLogger(__name__)

_T = jobs_table


def _new_job_id() -> str:
    """Random URL-safe id of 12 characters that does not start with ``-`` or ``_``."""
    while True:
        jid = secrets.token_urlsafe(9)
        if jid[0].isalnum():
            return jid


def _norm_params(params: Mapping[str, Any]) -> dict[str, str]:
    return {str(k).upper(): "" if v is None else str(v) for k, v in params.items()}


def _check_duration(seconds: int) -> int:
    if isinstance(seconds, bool) or int(seconds) != seconds or seconds < 0:
        raise ValueError(f"execution duration must be a whole number of seconds >= 0, got {seconds!r}")
    return int(seconds)


# --------------------------------------------------------------------------------------------
# store


class JobStore:
    """Jobs persisted through SQLAlchemy Core (SQLite by default, or PostgreSQL).

    Parameters
    ----------
    db_url : str
        SQLAlchemy URL, e.g. ``sqlite:////srv/tap/jobs.sqlite`` or
        ``postgresql+psycopg://user@host/db``. ``sqlite://`` (in memory) works for tests.

    Notes
    -----
    The ``jobs`` table is created on first use. All methods are thread-safe; every phase
    change is a single compare-and-set UPDATE (:meth:`transition`).
    """

    def __init__(self, db_url: str) -> None:
        self.url = sa.make_url(db_url)
        kwargs: dict[str, Any] = {}
        self._serial: threading.Lock | None = None
        if self.url.get_backend_name() == "sqlite":
            memory = self.url.database in (None, "", ":memory:")
            if not memory and not self.url.database.startswith("file:"):
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
            kwargs["connect_args"] = connect_args
            if memory:
                kwargs["poolclass"] = StaticPool
                self._serial = threading.Lock()  # one shared connection: serialise its use
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
        except ModuleNotFoundError as exc:  # a PostgreSQL URL without its driver installed
            raise ProxError(
                f"the job database {self.url.render_as_string(hide_password=True)} needs the "
                f"{exc.name} package: pip install 'proxcompute[postgres]'"
            ) from None
        if self.url.get_backend_name() == "sqlite":
            sa.event.listen(self.engine, "connect", sqlite_on_connect)
        metadata.create_all(self.engine)
        add_missing_columns(self.engine)  # a table made by an older release

    # -- plumbing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _begin(self):
        lock = self._serial or contextlib.nullcontext()
        with lock, self.engine.begin() as conn:
            yield conn

    def transaction(self):
        """A transaction on the job database (a context manager giving a connection).

        For the service's other tables kept in the same database (the portal's sessions);
        safe from any thread, including on an in-memory SQLite database.
        """
        return self._begin()

    def _fetch(self, conn, job_id: str, owner: Any = ...) -> Job | None:
        q = sa.select(_T).where(_T.c.id == job_id)
        if owner is not ...:
            q = q.where(owner_clause(owner))
        row = conn.execute(q).first()
        return None if row is None else row_to_job(row)

    def dispose(self) -> None:
        """Close the database connections."""
        self.engine.dispose()

    # -- creation and lookup ------------------------------------------------------------------

    def create(
        self,
        owner: str | None,
        parameters: Mapping[str, Any],
        *,
        queue: str,
        execution_duration: int,
        destruction: datetime | None,
        uploads: Mapping[str, str] | None = None,
        quote: datetime | None = None,
    ) -> Job:
        """Create a job in phase PENDING.

        Parameters
        ----------
        owner : str or None
            Authenticated user, or None for anonymous.
        parameters : Mapping
            Parameter name -> value; names are upper-cased, values turned into strings, order
            kept. ``RUNID`` (if present) becomes the job's runId.
        queue : str
            Queue name (the runner's pool to run in).
        execution_duration : int
            Seconds the job may run; 0 = unlimited.
        destruction : datetime or None
            When the job and its files are deleted.
        uploads : Mapping, optional
            Upload table name -> local file path (removed with the job).
        quote : datetime, optional
            When the service expects the job to complete if run now (UWS quote).

        Returns
        -------
        Job
        """
        params = _norm_params(parameters)
        values = {
            "owner": owner,
            "run_id": params.get("RUNID"),
            "phase": PENDING,
            "queue": queue,
            "parameters": json.dumps(params),
            "creation_time": to_db_time(utcnow()),
            "execution_duration": _check_duration(execution_duration),
            "destruction": to_db_time(destruction),
            "overflow": False,
            "uploads": json.dumps(dict(uploads or {})),
            "quote": to_db_time(quote),
        }
        for attempt in range(5):
            jid = _new_job_id()
            try:
                with self._begin() as conn:
                    conn.execute(sa.insert(_T).values(id=jid, **values))
                    job = self._fetch(conn, jid)
                break
            except sa.exc.IntegrityError:  # id collision: astronomically unlikely
                if attempt == 4:
                    raise
        assert job is not None
        log.debug("created job %s (owner %r, queue %r)", jid, owner, queue)
        return job

    def get(self, job_id: str, owner: str | None) -> Job:
        """Return the job ``job_id`` if ``owner`` owns it.

        Parameters
        ----------
        job_id : str
            Job id.
        owner : str or None
            The requesting user; None (anonymous) sees only anonymous jobs.

        Returns
        -------
        Job

        Raises
        ------
        JobNotFound
            If there is no such job or it belongs to someone else.
        """
        with self._begin() as conn:
            job = self._fetch(conn, job_id, owner)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def get_any(self, job_id: str) -> Job:
        """Return job ``job_id`` whoever owns it (for the runner; never for a user request).

        Raises
        ------
        JobNotFound
            If there is no such job.
        """
        with self._begin() as conn:
            job = self._fetch(conn, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list(
        self,
        owner: str | None,
        phases: Iterable[str] | None = None,
        after: datetime | None = None,
        last: int | None = None,
    ) -> list[Job]:
        """List the jobs of ``owner`` with the UWS 1.1 job-list filters.

        Parameters
        ----------
        owner : str or None
            Whose jobs (None = anonymous jobs).
        phases : iterable of str, optional
            ``PHASE`` filter (repeatable: any of these phases).
        after : datetime, optional
            ``AFTER``: only jobs created strictly after this instant.
        last : int, optional
            ``LAST``: only the ``last`` most recently created of the jobs matching the other
            filters, most recent first.

        Returns
        -------
        list of Job
            By creation time, oldest first; most recent first when ``last`` is given.
        """
        q = sa.select(_T).where(owner_clause(owner))
        if phases is not None:
            q = q.where(_T.c.phase.in_(list(phases)))
        if after is not None:
            q = q.where(_T.c.creation_time > to_db_time(after))
        if last is not None:
            if last < 0:
                raise ValueError(f"LAST must be >= 0, got {last}")
            q = q.order_by(_T.c.creation_time.desc(), _T.c.id.desc()).limit(last)
        else:
            q = q.order_by(_T.c.creation_time, _T.c.id)
        with self._begin() as conn:
            return [row_to_job(r) for r in conn.execute(q)]

    def active_count(self, owner: str | None) -> int:
        """Number of ``owner``'s jobs in QUEUED or EXECUTING (for per-user quotas)."""
        q = (
            sa.select(sa.func.count())
            .select_from(_T)
            .where(owner_clause(owner), _T.c.phase.in_([QUEUED, EXECUTING]))
        )
        with self._begin() as conn:
            return int(conn.execute(q).scalar_one())

    def expired(self, now: datetime | None = None) -> list[Job]:
        """All jobs (any owner) whose destruction time is at or before ``now``."""
        now = utcnow() if now is None else now
        q = sa.select(_T).where(_T.c.destruction.is_not(None), _T.c.destruction <= to_db_time(now))
        with self._begin() as conn:
            return [row_to_job(r) for r in conn.execute(q.order_by(_T.c.destruction))]

    def stale(self) -> list[Job]:
        """All jobs (any owner) in QUEUED or EXECUTING."""
        q = sa.select(_T).where(_T.c.phase.in_([QUEUED, EXECUTING])).order_by(_T.c.creation_time)
        with self._begin() as conn:
            return [row_to_job(r) for r in conn.execute(q)]

    # -- changes outside the phase machine ----------------------------------------------------

    def _conditional_update(
        self, job_id: str, owner: Any, values: dict[str, Any], phases: Sequence[str] | None, what: str
    ) -> Job:
        """UPDATE a job if it exists, is owned by ``owner`` and (optionally) is in ``phases``."""
        cond = [_T.c.id == job_id]
        if owner is not ...:
            cond.append(owner_clause(owner))
        if phases is not None:
            cond.append(_T.c.phase.in_(list(phases)))
        with self._begin() as conn:
            res = conn.execute(sa.update(_T).where(*cond).values(**values))
            job = self._fetch(conn, job_id, owner)
        if job is None:
            raise JobNotFound(job_id)
        if res.rowcount != 1:
            raise PhaseError(f"cannot {what} a job in phase {job.phase}")
        return job

    def set_parameters(
        self,
        job_id: str,
        owner: str | None,
        params: Mapping[str, Any],
        *,
        uploads: Mapping[str, str] | None = None,
    ) -> Job:
        """Add or replace parameters (and uploads) of a PENDING job.

        Existing parameters keep their position; new ones are appended. ``RUNID`` updates
        the runId.

        Raises
        ------
        JobNotFound
            No such job for this owner.
        PhaseError
            The job is not PENDING.
        """
        new = _norm_params(params)
        for _ in range(50):
            job = self.get(job_id, owner)
            if job.phase != PENDING:
                raise PhaseError(f"cannot change the parameters of a job in phase {job.phase}")
            merged = dict(job.parameters)
            merged.update(new)
            merged_up = dict(job.uploads)
            merged_up.update(uploads or {})
            cond = [
                _T.c.id == job_id,
                _T.c.phase == PENDING,
                _T.c.parameters == json.dumps(job.parameters),
                _T.c.uploads == json.dumps(job.uploads),
            ]
            values = {
                "parameters": json.dumps(merged),
                "uploads": json.dumps(merged_up),
                "run_id": merged.get("RUNID"),
            }
            with self._begin() as conn:
                res = conn.execute(sa.update(_T).where(*cond).values(**values))
                if res.rowcount == 1:
                    out = self._fetch(conn, job_id)
                    assert out is not None
                    return out
            # lost a race with another update: re-read and retry
        raise PhaseError(f"could not update the parameters of job {job_id}: too much contention")

    def set_execution_duration(self, job_id: str, owner: str | None, seconds: int) -> Job:
        """Set executionDuration (seconds, 0 = unlimited) of a PENDING or QUEUED job.

        The caller applies server limits first (UWS lets the service override the request).

        Raises
        ------
        JobNotFound, PhaseError, ValueError
        """
        seconds = _check_duration(seconds)
        return self._conditional_update(
            job_id,
            owner,
            {"execution_duration": seconds},
            (PENDING, QUEUED),
            "change the execution duration of",
        )

    def set_destruction(self, job_id: str, owner: str | None, when: datetime) -> Job:
        """Set the destruction time of a job in any phase.

        Raises
        ------
        JobNotFound
        """
        return self._conditional_update(job_id, owner, {"destruction": to_db_time(when)}, None, "change")

    def set_progress(self, job_id: str, done: int, total: int, rows: int | None = None) -> None:
        """Record progress of an EXECUTING job (partitions done / total, rows of those done); else ignored."""
        values = {"progress_done": int(done), "progress_total": int(total)}
        if rows is not None:
            values["progress_rows"] = int(rows)
        with self._begin() as conn:
            conn.execute(sa.update(_T).where(_T.c.id == job_id, _T.c.phase == EXECUTING).values(**values))

    def delete(self, job_id: str, owner: str | None, *, remove_files: bool = True) -> Job:
        """Delete a job's row and (by default) its files; return the job as it was.

        Does not stop a running job: use :meth:`JobRunner.delete` for that (a worker that
        finishes a deleted job discards its result).

        Raises
        ------
        JobNotFound
        """
        with self._begin() as conn:
            job = self._fetch(conn, job_id, owner)
            if job is None:
                raise JobNotFound(job_id)
            conn.execute(sa.delete(_T).where(_T.c.id == job_id))
        notify_change()
        if remove_files:
            remove_job_files(job)
        log.debug("deleted job %s", job_id)
        return job

    # -- the phase machine --------------------------------------------------------------------

    def transition(
        self,
        job_id: str,
        to_phase: str,
        *,
        expect: Iterable[str] | None = None,
        owner: Any = ...,
        error_message: str | None = None,
        outcome: JobOutcome | None = None,
    ) -> Job:
        """Move a job to ``to_phase`` if (and only if) it is in one of ``expect``.

        One atomic compare-and-set UPDATE: the single source of truth for phases. Entering
        EXECUTING sets startTime; entering COMPLETED, ERROR or ABORTED sets endTime.

        Parameters
        ----------
        job_id : str
            Job id.
        to_phase : str
            QUEUED, EXECUTING, COMPLETED, ERROR or ABORTED.
        expect : iterable of str, optional
            Phases the job may be in; default: every phase ``to_phase`` may be reached from.
            Must be a subset of those.
        owner : str or None, optional
            If given, the job must belong to this owner (else :class:`JobNotFound`).
        error_message : str, optional
            Stored with ERROR.
        outcome : JobOutcome, optional
            Stored with COMPLETED.

        Returns
        -------
        Job
            The job after the change.

        Raises
        ------
        JobNotFound
            No such job (for this owner).
        PhaseError
            The job is not in an expected phase, e.g. "cannot RUN a job in phase COMPLETED".
        ValueError
            A transition that UWS does not allow was asked for.
        """
        allowed = ALLOWED_FROM.get(to_phase)
        if allowed is None:
            raise ValueError(f"no transition into phase {to_phase!r}")
        exp = allowed if expect is None else frozenset(expect)
        if not exp <= allowed:
            bad = ", ".join(sorted(exp - allowed))
            raise ValueError(f"transition {bad} -> {to_phase} is not allowed")
        now = to_db_time(utcnow())
        values: dict[str, Any] = {"phase": to_phase}
        if to_phase == EXECUTING:
            values["start_time"] = now
        if to_phase in FINAL_PHASES:
            values["end_time"] = now
        if to_phase == ERROR:
            values["error_message"] = error_message or "unknown error"
        if to_phase == COMPLETED:
            if outcome is None:
                raise ValueError("COMPLETED needs an outcome")
            values.update(
                result_path=str(outcome.path),
                result_mime=outcome.mime,
                result_size=int(outcome.size),
                result_rows=None if outcome.rows is None else int(outcome.rows),
                overflow=bool(outcome.overflow),
            )
        job = self._conditional_update(job_id, owner, values, sorted(exp), VERBS[to_phase])
        notify_change()
        log.debug("job %s -> %s", job_id, to_phase)
        return job

    def finish(self, job_id: str, outcome: JobOutcome) -> Job:
        """EXECUTING -> COMPLETED with the result; :class:`PhaseError` if no longer EXECUTING."""
        return self.transition(job_id, COMPLETED, expect=(EXECUTING,), outcome=outcome)

    def fail(self, job_id: str, message: str, *, expect: Iterable[str] = (QUEUED, EXECUTING)) -> Job:
        """Move a QUEUED or EXECUTING job to ERROR with ``message``."""
        return self.transition(job_id, ERROR, expect=expect, error_message=message)

    # -- blocking wait ------------------------------------------------------------------------

    def wait_for_change(self, job_id: str, owner: str | None, phase: str | None, timeout: float) -> Job:
        """Block until the job's phase differs from ``phase`` or ``timeout`` seconds pass.

        Returns at once if the job is already in another phase or in a final phase (UWS
        blocks only in active phases). Changes made by this process wake the waiter at once;
        changes by other processes are seen within 0.25 s.

        Parameters
        ----------
        job_id : str
            Job id.
        owner : str or None
            The requesting user.
        phase : str or None
            The phase to wait out; None = the job's current phase.
        timeout : float
            Seconds (the HTTP layer caps this at ~10 s; negative means 0).

        Returns
        -------
        Job
            The job as it is when the wait ends.

        Raises
        ------
        JobNotFound
            If the job does not exist (or is deleted during the wait).
        """
        return wait_for_phase_change(lambda: self.get(job_id, owner), phase, timeout)
