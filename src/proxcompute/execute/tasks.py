"""Run many independent tasks on a Dask client with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from proxcompute.execute.faults import task_result
from proxcompute.execute.progress import progress_bar

__all__ = ["map_tasks"]


def map_tasks(
    func: Callable[..., Any],
    items: Sequence[Any] | Iterable[Any],
    *,
    client,
    description: str,
    show_progress: bool = True,
    rows_of: Callable[[Any], int] | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Apply ``func(item, **kwargs)`` to every item on ``client``; results in input order.

    ``rows_of(result)``, when given, is the rows a finished task handled: the progress bar
    then shows rows per second next to the tasks done and the time left.

    The first task that fails cancels the rest and its exception is raised unchanged
    (so a :class:`~proxcompute.errors.ProxError` from a worker reaches the user as is); a
    task given up after its workers died is a :class:`~proxcompute.errors.WorkerLostError`.
    """
    from distributed import as_completed

    items = list(items)
    if not items:
        return []
    futures = client.map(func, items, pure=False, **kwargs)
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(items)
    with progress_bar(description, total=len(items), enabled=show_progress) as advance:
        try:
            for fut in as_completed(futures, loop=client.loop):
                i = index[fut.key]
                result = results[i] = task_result(fut, f"{description} task for {_short(items[i])}")
                advance(1, rows_of(result) if rows_of is not None else 0)
        except BaseException:
            client.cancel(futures)
            raise
    return results


def _short(item: Any, limit: int = 120) -> str:
    text = str(item)
    return text if len(text) <= limit else text[: limit - 3] + "..."
