"""Progress indication (rich) for work that can take more than a few seconds."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

__all__ = ["progress_bar", "progress_enabled"]


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
