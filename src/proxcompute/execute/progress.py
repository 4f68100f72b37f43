"""Progress indication (rich) for work that can take more than a few seconds."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

__all__ = ["progress_bar", "progress_enabled"]


def progress_enabled() -> bool:
    """Progress bars are on unless ``PROXCOMPUTE_PROGRESS=0``."""
    return os.environ.get("PROXCOMPUTE_PROGRESS", "1") not in ("0", "false", "no")


@contextlib.contextmanager
def progress_bar(
    description: str, total: int, enabled: bool = True, transient: bool = False
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a rich progress bar on stderr when enabled.

    ``transient`` bars disappear when done (for query steps; ingest stages stay visible).
    """
    if not (enabled and progress_enabled()):
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    ) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)
