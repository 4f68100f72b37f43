"""UWS 1.1 job layer, part 1: jobs, their phases and the persistent job store.

The threaded runner is :mod:`proxcompute.service.job_runner`.

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
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from proxcompute.errors import ProxError

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

PENDING = "PENDING"
QUEUED = "QUEUED"
EXECUTING = "EXECUTING"
COMPLETED = "COMPLETED"
ERROR = "ERROR"
ABORTED = "ABORTED"

#: Every phase UWS 1.1 defines (we only ever store the first six).
PHASES = (PENDING, QUEUED, EXECUTING, COMPLETED, ERROR, ABORTED, "HELD", "SUSPENDED", "ARCHIVED", "UNKNOWN")
#: Phases in which a job may still change on its own (a blocking WAIT blocks only in these).
ACTIVE_PHASES = frozenset({PENDING, QUEUED, EXECUTING})
#: Phases a job never leaves.
FINAL_PHASES = frozenset({COMPLETED, ERROR, ABORTED, "ARCHIVED"})

#: to_phase -> the phases it may be reached from.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    QUEUED: frozenset({PENDING}),
    EXECUTING: frozenset({QUEUED}),
    COMPLETED: frozenset({EXECUTING}),
    ERROR: frozenset({QUEUED, EXECUTING}),
    ABORTED: frozenset({PENDING, QUEUED, EXECUTING}),
}
# the verb used in "cannot <verb> a job in phase X"
_VERB = {QUEUED: "RUN", ABORTED: "ABORT", EXECUTING: "start", COMPLETED: "complete", ERROR: "fail"}

RESTART_MESSAGE = "the service restarted while this job was running; resubmit it"
SHUTDOWN_MESSAGE = "the service shut down while this job was running; resubmit it"

# Condition notified (after commit) on every phase change made in this process. Waiters also
# poll, so changes made by another process sharing the database are seen within _POLL seconds.
_CHANGED = threading.Condition()
_generation = 0
_POLL = 0.25


def _notify_change() -> None:
    global _generation
    with _CHANGED:
        _generation += 1
        _CHANGED.notify_all()


# --------------------------------------------------------------------------------------------
# errors


class JobError(ProxError):
    """Base class of the job layer's user-facing errors."""


class JobNotFound(JobError, LookupError):
    """No such job, or it belongs to someone else (deliberately indistinguishable); HTTP 404."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job {job_id!r}")

    def __reduce__(self):
        return (type(self), (self.job_id,))


class PhaseError(JobError):
    """The request is not possible in the job's current phase; HTTP 400."""


# --------------------------------------------------------------------------------------------
# time helpers


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def _as_utc(dt: datetime) -> datetime:
    """Aware UTC version of ``dt`` (naive datetimes are taken to be UTC already)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _to_db(dt: datetime | None) -> datetime | None:
    """Naive UTC datetime as stored in the database (portable between SQLite and PostgreSQL)."""
    return None if dt is None else _as_utc(dt).replace(tzinfo=None)


def _from_db(dt: datetime | None) -> datetime | None:
    return None if dt is None else _as_utc(dt)


def uws_time(dt: datetime) -> str:
    """Format a timestamp the way UWS clients accept it: UTC, milliseconds, ``Z``.

    Parameters
    ----------
    dt : datetime
        Aware datetime (any zone), or naive UTC.

    Returns
    -------
    str
        E.g. ``"2026-11-21T23:40:50.123Z"``; never ``+00:00``, which pyvo (astropy ``Time``)
        rejects.
    """
    u = _as_utc(dt)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


def parse_uws_time(text: str) -> datetime:
    """Parse an ISO-8601 timestamp sent by a client (e.g. a ``DESTRUCTION`` value).

    Accepts ``...Z``, ``...+00:00`` or any other offset, with or without fractional seconds
    (pyvo sends ``%Y-%m-%dT%H:%M:%S.%fZ``), and a space instead of ``T``. A value without an
    offset is taken as UTC.

    Parameters
    ----------
    text : str
        The timestamp.

    Returns
    -------
    datetime
        Aware UTC datetime.

    Raises
    ------
    ValueError
        If ``text`` is not an ISO-8601 timestamp.
    """
    s = text.strip()
    if s[-1:] in ("z", "Z"):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(
            f"invalid timestamp {text!r}: expected ISO 8601 such as 2026-11-21T23:40:50.123Z"
        ) from None
    return _as_utc(dt)


# --------------------------------------------------------------------------------------------
# value types


@dataclass(frozen=True)
class JobOutcome:
    """What a successful ``execute`` returns: where the result is and what it is.

    Attributes
    ----------
    path : str
        Result file (or directory) on local disk.
    mime : str
        Content type to serve it with (echoed as ``mime-type`` in the job document).
    size : int
        Size in bytes.
    rows : int | None
        Number of rows written, if known.
    overflow : bool
        True if the result was truncated at MAXREC.
    """

    path: str
    mime: str
    size: int
    rows: int | None = None
    overflow: bool = False


@dataclass(frozen=True)
class Job:
    """One job as stored. Immutable snapshot; fetch again to see changes.

    ``parameters`` maps upper-case parameter names to string values in the order they were
    first given; ``uploads`` maps upload table names to local file paths. Treat both as
    read-only. All datetimes are aware UTC.
    """

    id: str
    owner: str | None
    run_id: str | None
    phase: str
    queue: str
    parameters: dict[str, str]
    creation_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    execution_duration: int
    destruction: datetime | None
    quote: datetime | None = None
    error_message: str | None = None
    result_path: str | None = None
    result_mime: str | None = None
    result_size: int | None = None
    result_rows: int | None = None
    overflow: bool = False
    progress_done: int | None = None
    progress_total: int | None = None
    uploads: dict[str, str] = field(default_factory=dict)

    @property
    def is_active(self) -> bool:
        """True in PENDING, QUEUED and EXECUTING."""
        return self.phase in ACTIVE_PHASES

    @property
    def is_final(self) -> bool:
        """True in COMPLETED, ERROR and ABORTED."""
        return self.phase in FINAL_PHASES


# --------------------------------------------------------------------------------------------
# schema

metadata = sa.MetaData()
jobs_table = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.Text, nullable=True, index=True),
    sa.Column("run_id", sa.Text, nullable=True),
    sa.Column("phase", sa.String(16), nullable=False, index=True),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("parameters", sa.Text, nullable=False),  # JSON object, insertion-ordered
    sa.Column("creation_time", sa.DateTime, nullable=False, index=True),  # naive UTC
    sa.Column("start_time", sa.DateTime, nullable=True),
    sa.Column("end_time", sa.DateTime, nullable=True),
    sa.Column("execution_duration", sa.Integer, nullable=False),
    sa.Column("destruction", sa.DateTime, nullable=True, index=True),
    sa.Column("quote", sa.DateTime, nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("result_path", sa.Text, nullable=True),
    sa.Column("result_mime", sa.Text, nullable=True),
    sa.Column("result_size", sa.BigInteger, nullable=True),
    sa.Column("result_rows", sa.BigInteger, nullable=True),
    sa.Column("overflow", sa.Boolean, nullable=False, default=False),
    sa.Column("progress_done", sa.Integer, nullable=True),
    sa.Column("progress_total", sa.Integer, nullable=True),
    sa.Column("uploads", sa.Text, nullable=False),  # JSON object name -> path
)
_T = jobs_table


def _row_to_job(row: Any) -> Job:
    m = row._mapping
    return Job(
        id=m["id"],
        owner=m["owner"],
        run_id=m["run_id"],
        phase=m["phase"],
        queue=m["queue"],
        parameters=json.loads(m["parameters"]),
        creation_time=_from_db(m["creation_time"]),
        start_time=_from_db(m["start_time"]),
        end_time=_from_db(m["end_time"]),
        execution_duration=int(m["execution_duration"]),
        destruction=_from_db(m["destruction"]),
        quote=_from_db(m["quote"]),
        error_message=m["error_message"],
        result_path=m["result_path"],
        result_mime=m["result_mime"],
        result_size=m["result_size"],
        result_rows=m["result_rows"],
        overflow=bool(m["overflow"]),
        progress_done=m["progress_done"],
        progress_total=m["progress_total"],
        uploads=json.loads(m["uploads"]),
    )


def _owner_clause(owner: str | None):
    return _T.c.owner.is_(None) if owner is None else _T.c.owner == owner


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
            sa.event.listen(self.engine, "connect", _sqlite_on_connect)
        metadata.create_all(self.engine)

    # -- plumbing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _begin(self):
        lock = self._serial or contextlib.nullcontext()
        with lock, self.engine.begin() as conn:
            yield conn

    def _fetch(self, conn, job_id: str, owner: Any = ...) -> Job | None:
        q = sa.select(_T).where(_T.c.id == job_id)
        if owner is not ...:
            q = q.where(_owner_clause(owner))
        row = conn.execute(q).first()
        return None if row is None else _row_to_job(row)

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
            "creation_time": _to_db(utcnow()),
            "execution_duration": _check_duration(execution_duration),
            "destruction": _to_db(destruction),
            "overflow": False,
            "uploads": json.dumps(dict(uploads or {})),
            "quote": _to_db(quote),
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
        q = sa.select(_T).where(_owner_clause(owner))
        if phases is not None:
            q = q.where(_T.c.phase.in_(list(phases)))
        if after is not None:
            q = q.where(_T.c.creation_time > _to_db(after))
        if last is not None:
            if last < 0:
                raise ValueError(f"LAST must be >= 0, got {last}")
            q = q.order_by(_T.c.creation_time.desc(), _T.c.id.desc()).limit(last)
        else:
            q = q.order_by(_T.c.creation_time, _T.c.id)
        with self._begin() as conn:
            return [_row_to_job(r) for r in conn.execute(q)]

    def active_count(self, owner: str | None) -> int:
        """Number of ``owner``'s jobs in QUEUED or EXECUTING (for per-user quotas)."""
        q = (
            sa.select(sa.func.count())
            .select_from(_T)
            .where(_owner_clause(owner), _T.c.phase.in_([QUEUED, EXECUTING]))
        )
        with self._begin() as conn:
            return int(conn.execute(q).scalar_one())

    def expired(self, now: datetime | None = None) -> list[Job]:
        """All jobs (any owner) whose destruction time is at or before ``now``."""
        now = utcnow() if now is None else now
        q = sa.select(_T).where(_T.c.destruction.is_not(None), _T.c.destruction <= _to_db(now))
        with self._begin() as conn:
            return [_row_to_job(r) for r in conn.execute(q.order_by(_T.c.destruction))]

    def stale(self) -> list[Job]:
        """All jobs (any owner) in QUEUED or EXECUTING."""
        q = sa.select(_T).where(_T.c.phase.in_([QUEUED, EXECUTING])).order_by(_T.c.creation_time)
        with self._begin() as conn:
            return [_row_to_job(r) for r in conn.execute(q)]

    # -- changes outside the phase machine ----------------------------------------------------

    def _conditional_update(
        self, job_id: str, owner: Any, values: dict[str, Any], phases: Sequence[str] | None, what: str
    ) -> Job:
        """UPDATE a job if it exists, is owned by ``owner`` and (optionally) is in ``phases``."""
        cond = [_T.c.id == job_id]
        if owner is not ...:
            cond.append(_owner_clause(owner))
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
        return self._conditional_update(job_id, owner, {"destruction": _to_db(when)}, None, "change")

    def set_progress(self, job_id: str, done: int, total: int) -> None:
        """Record progress (e.g. partitions done / total) of an EXECUTING job; else ignored."""
        with self._begin() as conn:
            conn.execute(
                sa.update(_T)
                .where(_T.c.id == job_id, _T.c.phase == EXECUTING)
                .values(progress_done=int(done), progress_total=int(total))
            )

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
        _notify_change()
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
        now = _to_db(utcnow())
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
        job = self._conditional_update(job_id, owner, values, sorted(exp), _VERB[to_phase])
        _notify_change()
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
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            with _CHANGED:
                gen = _generation
            job = self.get(job_id, owner)
            if phase is None:
                phase = job.phase
            if job.phase != phase or job.phase in FINAL_PHASES:
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return job
            with _CHANGED:
                if _generation == gen:
                    _CHANGED.wait(min(remaining, _POLL))


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
    except Exception:  # e.g. in-memory databases have no WAL; harmless
        pass
    finally:
        cur.close()


# --------------------------------------------------------------------------------------------
# files


def _remove_path(path: str | os.PathLike | None) -> None:
    if not path:
        return
    p = Path(path)
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove %s: %s", p, exc)


def remove_job_files(job: Job, results_dir: str | os.PathLike | None = None) -> None:
    """Remove a job's result and upload files.

    Also removes, as a whole, any directory that holds them and is named after the job id
    (e.g. ``results/<job id>/result.vot``), and ``results_dir/<job id>`` if ``results_dir``
    is given. Missing files are ignored.
    """
    paths = [job.result_path, *job.uploads.values()]
    dirs: set[Path] = set()
    for p in paths:
        if not p:
            continue
        _remove_path(p)
        parent = Path(p).parent
        if parent.name == job.id:
            dirs.add(parent)
    if results_dir is not None:
        dirs.add(Path(results_dir) / job.id)
    for d in dirs:
        _remove_path(d)
