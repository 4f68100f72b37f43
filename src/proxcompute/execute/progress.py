"""Progress indication (rich) for work that can take more than a few seconds."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

__all__ = ["progress_bar", "progress_enabled", "rows_rate_text"]


def progress_enabled() -> bool:
    """Progress bars are on unless ``PROXCOMPUTE_PROGRESS=0``, or in a Jupyter kernel without ipywidgets.

    rich draws live bars in notebooks through ipywidgets; without it, it only warns and
    leaves empty outputs, so no bar is better.
    """
    if os.environ.get("PROXCOMPUTE_PROGRESS", "1") in ("0", "false", "no"):
        return False
    return not (_in_jupyter_kernel() and not _has_ipywidgets())


def _in_jupyter_kernel() -> bool:
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:  # IPython absent or broken: not a kernel we can draw in
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _has_ipywidgets() -> bool:
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


@contextlib.contextmanager
def progress_bar(
    description: str, total: int, enabled: bool = True, transient: bool = False
) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, rows=0)``; draws a rich progress bar on stderr when enabled.

    The bar shows tasks done / total, the rows per second of the rows reported with
    ``advance`` (once any are), the time elapsed and an estimate of the time left.
    ``transient`` bars disappear when done (for query steps; ingest stages stay visible).
    """
    if not (enabled and progress_enabled()):
        yield lambda n=1, rows=0: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=sys.stderr)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("elapsed,"),
        TimeRemainingColumn(),
        TextColumn("left"),
        console=console,
        transient=transient,
    ) as prog:
        task = prog.add_task(description, total=total, rate="")
        state = {"rows": 0}

        def advance(n: int = 1, rows: int = 0) -> None:
            state["rows"] += int(rows)
            elapsed = prog.tasks[task].elapsed or 0.0
            rate = rows_rate_text(state["rows"], elapsed)
            prog.update(task, advance=n, rate=rate)

        yield advance


def rows_rate_text(rows: int, seconds: float) -> str:
    """``"12.3M rows/s"`` for ``rows`` done in ``seconds``; empty before any row or time.

    Examples
    --------
    >>> rows_rate_text(12_300_000, 1.0), rows_rate_text(0, 1.0), rows_rate_text(1500, 2.0)
    ('12.3M rows/s', '', '750 rows/s')
    """
    if rows <= 0 or seconds <= 0:
        return ""
    rate = rows / seconds
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= scale:
            return f"{rate / scale:.1f}{suffix} rows/s"
    return f"{rate:.0f} rows/s"
