"""UWS 1.1 jobs as values: phases, the job record, its outcome, errors, UWS times, job files.

Plain Python (no database, no HTTP): :mod:`proxcompute.service.jobs` stores jobs,
:mod:`proxcompute.service.job_runner` runs them, the HTTP layer maps :class:`JobNotFound`
to 404 and :class:`PhaseError` to 400 (both are :class:`~proxcompute.errors.ProxError`).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from proxcompute.errors import ProxError

__all__ = [
    "ABORTED",
    "ACTIVE_PHASES",
    "ALLOWED_FROM",
    "COMPLETED",
    "ERROR",
    "EXECUTING",
    "FINAL_PHASES",
    "PENDING",
    "PHASES",
    "QUEUED",
    "RESTART_MESSAGE",
    "SHUTDOWN_MESSAGE",
    "VERBS",
    "Job",
    "JobError",
    "JobNotFound",
    "JobOutcome",
    "PhaseError",
    "from_db_time",
    "parse_uws_time",
    "remove_job_files",
    "remove_path",
    "to_db_time",
    "utcnow",
    "uws_time",
]

log = logging.getLogger("proxcompute.service.jobs")

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
VERBS = {QUEUED: "RUN", ABORTED: "ABORT", EXECUTING: "start", COMPLETED: "complete", ERROR: "fail"}

RESTART_MESSAGE = "the service restarted while this job was running; resubmit it"
SHUTDOWN_MESSAGE = "the service shut down while this job was running; resubmit it"

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


def to_db_time(dt: datetime | None) -> datetime | None:
    """Naive UTC datetime as stored in the database (portable between SQLite and PostgreSQL)."""
    return None if dt is None else _as_utc(dt).replace(tzinfo=None)


def from_db_time(dt: datetime | None) -> datetime | None:
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
    progress_rows: int | None = None
    uploads: dict[str, str] = field(default_factory=dict)

    @property
    def is_active(self) -> bool:
        """True in PENDING, QUEUED and EXECUTING."""
        return self.phase in ACTIVE_PHASES

    @property
    def is_final(self) -> bool:
        """True in COMPLETED, ERROR and ABORTED."""
        return self.phase in FINAL_PHASES

    def progress_rates(self, now: datetime | None = None) -> tuple[float | None, float | None]:
        """``(rows_per_second, seconds_left)`` of an EXECUTING job from its progress so far.

        The rate counts the stored rows of the partitions done since the job started; the
        time left assumes the remaining partitions go at the pace of those done. Either is
        None until it can be known (no partition done yet, or the job is not executing).
        """
        if self.phase != EXECUTING or self.start_time is None or not self.progress_done:
            return None, None
        elapsed = ((now or datetime.now(UTC)) - self.start_time).total_seconds()
        if elapsed <= 0:
            return None, None
        rate = self.progress_rows / elapsed if self.progress_rows else None
        total = self.progress_total or 0
        left = max(total - self.progress_done, 0) * elapsed / self.progress_done
        return rate, left


# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# files


def remove_path(path: str | os.PathLike | None) -> None:
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
        remove_path(p)
        parent = Path(p).parent
        if parent.name == job.id:
            dirs.add(parent)
    if results_dir is not None:
        dirs.add(Path(results_dir) / job.id)
    for d in dirs:
        remove_path(d)
