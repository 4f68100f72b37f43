"""Lost cluster workers as proxcompute errors: a dead worker never shortens a result.

When a worker process dies, Dask reruns its tasks on the other workers (the result is then
the same as without the death); a task whose workers died more than
``distributed.scheduler.allowed-failures`` times fails with Dask's ``KilledWorker``. Every
place that collects Dask futures reads them through :func:`task_result`, which turns that
into a :class:`~proxcompute.errors.WorkerLostError` naming the work, so the CLI prints one
line and a TAP job ends in ERROR with the message, instead of a traceback.
"""

from __future__ import annotations

from typing import Any

from proxcompute.errors import WorkerLostError

__all__ = ["task_result", "worker_lost"]


def worker_lost(exc: BaseException, task: str) -> WorkerLostError | None:
    """The :class:`~proxcompute.errors.WorkerLostError` for ``exc`` if it is Dask's ``KilledWorker``, else None.

    Parameters
    ----------
    exc
        The exception a Dask future raised.
    task
        What the task was doing, for the message (``"crossmatch of partition Norder=3/Npix=17"``).
    """
    from distributed import KilledWorker

    if not isinstance(exc, KilledWorker):
        return None
    last = exc.last_worker
    address = str(getattr(last, "address", last) or "")
    attempts = int(exc.allowed_failures) + 1 if isinstance(exc.allowed_failures, int) else 0
    return WorkerLostError(task, worker=address, attempts=attempts)


def task_result(future: Any, task: str) -> Any:
    """``future.result()``, with a lost worker raised as :class:`~proxcompute.errors.WorkerLostError`.

    Any other exception of the task (a :class:`~proxcompute.errors.ProxError` from a worker)
    is raised unchanged.
    """
    try:
        return future.result()
    except Exception as exc:
        lost = worker_lost(exc, task)
        if lost is None:
            raise
        raise lost from None
