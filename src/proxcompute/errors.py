"""One exception tree for proxcompute.

Every error a user can cause derives from :class:`ProxError`; the CLI prints these
without a traceback and exits non-zero. Anything else is a bug.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CatalogExistsError",
    "ColumnNotFoundError",
    "CorruptPartitionError",
    "CostRatesError",
    "IngestError",
    "InputError",
    "InvalidCoordinatesError",
    "InvalidOrderError",
    "InvalidRegionError",
    "PlanError",
    "ProxError",
    "RemoteAccessError",
    "ResultTruncatedWarning",
    "SqlError",
    "StorageError",
    "UserFunctionError",
    "WorkerLostError",
]


class ProxError(Exception):
    """Base class of every error a user can cause."""


class ResultTruncatedWarning(UserWarning):
    """A result was cut at ``maxrec`` / ``MAXREC`` rows; more rows match (the TAP OVERFLOW condition).

    The one truncation warning: ``proxcompute.sql`` (as ``SqlTruncatedWarning``) and
    ``proxcompute.client`` both emit it, so one filter silences both.
    """


class StorageError(ProxError):
    """A catalog on disk is missing, incomplete or unreadable."""


class CorruptPartitionError(StorageError):
    """A partition file cannot be read; the message names the file."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read partition file {self.path}: {reason}")

    def __reduce__(self):  # picklable across Dask workers
        return (type(self), (self.path, self.reason))


class RemoteAccessError(StorageError):
    """A remote catalog (``https://``, ``s3://``) cannot be reached or read: refused
    connection, access denied, a server error. The message names the URL and the reason."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = str(url)
        self.reason = reason
        super().__init__(f"cannot read {self.url}: {reason}")

    def __reduce__(self):  # picklable across Dask workers
        return (type(self), (self.url, self.reason))


class CatalogExistsError(StorageError):
    """The output directory exists and overwriting was not requested."""


class CostRatesError(ProxError):
    """A cost rates file cannot be read or holds bad values (the message names the file)."""


class InputError(ProxError):
    """An ingest input file is missing, unreadable or of an unknown format."""


class IngestError(ProxError):
    """Ingest cannot proceed (bad options, failed stage)."""


class InvalidCoordinatesError(ProxError):
    """Coordinates that are NaN, infinite, or with |dec| > 90."""


class InvalidRegionError(ProxError):
    """A search region with impossible parameters (radius <= 0, |dec| > 90, ...)."""


class PlanError(ProxError):
    """A computation cannot be planned (unknown column, bad expression, ...)."""


class ColumnNotFoundError(PlanError, KeyError):
    """A column name that the catalog or input does not have."""

    def __init__(self, column: str, available: Iterable[str], what: str = "catalog") -> None:
        self.column = column
        self.available = list(available)
        self.what = what
        same_case = [a for a in self.available if a.lower() == column.lower()]
        close = same_case or difflib.get_close_matches(column, self.available, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(self.available[:30]) + (" ..." if len(self.available) > 30 else "")
        msg = f"column {column!r} not found in the {what}.{hint} Available columns: {shown}"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would add quotes
        return self.args[0]

    def __reduce__(self):  # picklable across Dask workers
        return (type(self), (self.column, self.available, self.what))


class SqlError(PlanError):
    """An SQL/ADQL query that cannot run, with the phase that refused it and where.

    ``phase`` is one of ``syntax``, ``unknown table``, ``unknown column``, ``unknown function``,
    ``unsupported``, ``forbidden``, ``type`` or ``limit``; ``line`` and ``column`` (1-based) point
    into the query text when the problem has a position.
    """

    def __init__(self, phase: str, message: str, line: int | None = None, column: int | None = None) -> None:
        self.phase = phase
        self.message = message
        self.line = line
        self.column = column
        where = f" at line {line}, column {column}" if line is not None and column is not None else ""
        super().__init__(f"SQL {phase} error{where}: {message}")

    def __reduce__(self):  # picklable across Dask workers
        return (type(self), (self.phase, self.message, self.line, self.column))


class InvalidOrderError(PlanError, ValueError):
    """A HEALPix order outside 0..29 (or not an integer)."""


class UserFunctionError(ProxError):
    """A user function (``map_partitions``, a pipeline ``map`` step) failed on a partition.

    ``partition`` names it (``Norder=../Npix=..``); the message ends with the user's own
    traceback, kept as text so the error pickles across Dask workers.
    """

    def __init__(self, message: str, partition: str = "", user_traceback: str = "") -> None:
        self.message = message
        self.partition = partition
        self.user_traceback = user_traceback
        where = f" in partition {partition}" if partition else ""
        tb = f"\n{user_traceback.rstrip()}" if user_traceback else ""
        super().__init__(f"user function failed{where}: {message}{tb}")

    def __reduce__(self):  # picklable across Dask workers
        return (type(self), (self.message, self.partition, self.user_traceback))


class WorkerLostError(ProxError):
    """A cluster worker died while holding a task, and Dask stopped retrying the task.

    When a worker process dies (killed, out of memory, a crash in native code), Dask runs the
    tasks it held again on the other workers; a task that was on ``allowed_failures + 1``
    dying workers (``distributed.scheduler.allowed-failures``, 3 by default) is given up. The
    computation then fails with this error instead of returning fewer rows. ``task`` names
    the work (``crossmatch of partition Norder=../Npix=..``), ``worker`` the address of the
    last worker that died with it. Dask counts every task a dying worker held, so the task
    named may have been the victim of another task on the same worker.
    """

    def __init__(self, task: str, worker: str = "", attempts: int = 0) -> None:
        self.task = task
        self.worker = worker
        self.attempts = attempts
        tries = f" {attempts} time(s)" if attempts else ""
        last = f" (last {worker})" if worker else ""
        super().__init__(
            f"worker lost: the cluster workers holding the {task} died{tries}{last}, and Dask stopped "
            "retrying it (distributed.scheduler.allowed-failures). No partial result was returned or "
            "published. Workers that die every time have usually run out of memory (in this task or "
            "another on the same worker): give the workers more memory, or use smaller partitions"
        )

    def __reduce__(self):  # picklable across Dask workers
        return (type(self), (self.task, self.worker, self.attempts))
