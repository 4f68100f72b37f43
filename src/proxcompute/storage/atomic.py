"""Atomic file writes: the one home of "write a temporary sibling, then rename it onto the target".

A reader sees either the old file or the complete new one, never a half-written file; a write
that fails (an exception, a full disk) leaves nothing behind. The temporary name is unique per
call (a cancelled task still finishing never collides with its retry) and starts with a dot,
so directory listings and globs of the target's pattern do not see it.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_write(d / "a.txt", "w") as fh:
...     _ = fh.write("done")
>>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
('done', ['a.txt'])
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "atomic_write_json", "temp_path"]


def temp_path(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A unique temporary sibling of ``path`` (``.<name>.<random><suffix>``), to rename onto it."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed onto ``path``, on error removed.

    For writers that take a path (``pyarrow.parquet.write_table``, ``DataFrame.to_csv``).
    The parent directory must exist.
    """
    path = Path(path)
    tmp = temp_path(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, fsync: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success.

    Parameters
    ----------
    path : path-like
        The file to (re)place.
    mode : str
        ``"wb"`` or ``"w"``.
    fsync : bool
        Flush the data to disk before the rename (for markers that vouch for other files).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes a new file: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_json(path: str | os.PathLike, data: Any, *, fsync: bool = True) -> None:
    """Write ``data`` as compact JSON to ``path`` atomically (flushed to disk by default)."""
    with atomic_write(path, "w", fsync=fsync) as fh:
        json.dump(data, fh, separators=(",", ":"))
