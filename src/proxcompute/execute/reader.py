"""Read one partition for a Scan: prune row groups, read needed columns, slice by ranges.

Row groups are kept when their ``_healpix_29`` statistics meet the Scan's ranges *and* the
column statistics say the predicate may hold (:func:`proxcompute.ops.may_match`). Parquet
footers are cached per file (keyed by path, size and mtime), so a warm process opens a
partition without re-parsing its footer.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from proxcompute.errors import CorruptPartitionError
from proxcompute.ops.expr import Expr
from proxcompute.ops.stats import ColumnStats, may_match
from proxcompute.plan.source import MemorySource, Source, StoredSource
from proxcompute.sky import INDEX_COLUMN
from proxcompute.storage import CatalogMeta, PartitionPixel, select_row_groups
from proxcompute.storage.location import open_input
from proxcompute.storage.reader import (
    leaf_columns,
    open_partition_file,
    read_error,
    remote_footer,
    without_metadata,
)

if TYPE_CHECKING:
    from upath import UPath

__all__ = [
    "SOURCE_READERS",
    "clear_footer_cache",
    "footer",
    "iter_partition",
    "read_row_groups",
    "register_derived_source",
    "selected_row_groups",
    "stored_partition_rows",
]

SOURCE_READERS: dict[type, Callable[..., Iterator[pa.Table]]] = {}
"""Readers of derived sources (e.g. a crossmatch), registered by the module that runs them:
``reader(source, pixel, columns, ranges=..., predicate=..., chunked=...)``."""


def register_derived_source(source_type: type, partition: Callable[..., pa.Table]) -> None:
    """Read ``source_type`` sources with ``partition(source, pixel, ranges) -> Table``.

    The derived source computes its partition's rows (a crossmatch, a join), already restricted
    to ``ranges``; the reader selects ``columns`` and yields the table when it has rows (the
    caller applies the predicate).
    """

    def read(
        source: Any,
        pixel: PartitionPixel,
        columns: list[str],
        *,
        ranges: np.ndarray | None = None,
        predicate: Expr | None = None,
        chunked: bool = False,
    ) -> Iterator[pa.Table]:
        table = partition(source, pixel, ranges)
        if table.num_rows:
            yield table.select(columns)

    SOURCE_READERS[source_type] = read

_FOOTER_CACHE_SIZE = 1024
_footers: OrderedDict[tuple[str, int, int], pq.FileMetaData] = OrderedDict()
_lock = threading.Lock()


def clear_footer_cache() -> None:
    """Forget every cached Parquet footer."""
    with _lock:
        _footers.clear()


def footer(path: Path | UPath) -> pq.FileMetaData:
    """The Parquet footer of ``path``, cached while the file's size and mtime are unchanged.

    A remote file's footer is cached per process (:func:`proxcompute.storage.remote_footer`;
    reopening the catalog drops it when the catalog's properties changed).

    Raises
    ------
    CorruptPartitionError
        The file is missing or its footer is unreadable.
    RemoteAccessError
        A remote file cannot be fetched.
    """
    if not isinstance(path, Path):
        return remote_footer(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CorruptPartitionError(str(path), "file is missing") from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _lock:
        md = _footers.get(key)
        if md is not None:
            _footers.move_to_end(key)
            return md
    md = open_partition_file(path).metadata
    with _lock:
        _footers[key] = md
        while len(_footers) > _FOOTER_CACHE_SIZE:
            _footers.popitem(last=False)
    return md


def stored_partition_rows(source: Source, pixel: PartitionPixel) -> int | None:
    """Rows stored in one partition, from its Parquet footers (cached; no row group is read).

    None for a derived source (a crossmatch, a join), whose rows exist only once computed.
    """
    if isinstance(source, MemorySource):
        return source.partition_rows(pixel)
    if not isinstance(source, StoredSource):
        return None
    return sum(footer(path).num_rows for path in source.meta.partition_files(pixel))


def _row_group_stats(md: pq.FileMetaData, rg: int, columns: dict[str, int]) -> dict[str, ColumnStats]:
    out = {}
    group = md.row_group(rg)
    for name, j in columns.items():
        col = group.column(j)
        s = col.statistics
        if s is None:
            continue
        lo, hi = (s.min, s.max) if s.has_min_max else (None, None)
        nulls = s.null_count if s.has_null_count else None
        is_float = col.physical_type in ("FLOAT", "DOUBLE")
        out[name] = ColumnStats(lo, hi, nulls, group.num_rows, is_float)
    return out


def selected_row_groups(
    md: pq.FileMetaData,
    ranges: np.ndarray | None,
    predicate: Expr | None,
    meta: CatalogMeta | None = None,
) -> list[int]:
    """Row groups that may hold rows in ``ranges`` satisfying ``predicate``.

    ``meta`` says which stored column is the spatial index and at which order (default
    ``_healpix_29``)."""
    if meta is None:
        rgs = select_row_groups(md, ranges)
    else:
        rgs = select_row_groups(md, ranges, meta.index_column, meta.index_order)
    if predicate is None or not rgs:
        return rgs
    leaves = leaf_columns(md)  # statistics are per leaf column: look columns up by path
    cols = {c: leaves[c] for c in predicate.columns() if c in leaves}
    return [rg for rg in rgs if may_match(predicate, _row_group_stats(md, rg, cols))]


def _read(
    path: Path | UPath, md: pq.FileMetaData, rgs: list[int], columns: list[str], threads: bool
) -> pa.Table:
    try:
        if isinstance(path, Path):
            pf = pq.ParquetFile(path, metadata=md)
        else:  # one ranged request per run of neighbouring column chunks
            pf = pq.ParquetFile(open_input(path), metadata=md, pre_buffer=True)
        table = pf.read_row_groups(rgs, columns=columns, use_threads=threads)
    except (OSError, pa.ArrowException) as exc:
        raise read_error(path, exc) from None
    return without_metadata(table)


def read_row_groups(path: Path | UPath, md: pq.FileMetaData, rgs: list[int], columns: list[str]) -> pa.Table:
    """Stored ``columns`` of row groups ``rgs`` of one partition file, as stored (not finished).

    Raises
    ------
    CorruptPartitionError
        The file cannot be read.
    RemoteAccessError
        A remote file cannot be fetched.
    """
    return _read(path, md, rgs, columns, threads=len(rgs) > 1)


def iter_partition(
    source: Source,
    pixel: PartitionPixel,
    columns: list[str],
    *,
    ranges: np.ndarray | None = None,
    predicate: Expr | None = None,
    chunked: bool = False,
) -> Iterator[pa.Table]:
    """Yield the partition's candidate rows: ``columns`` of the row groups that may match.

    Rows are *not* yet filtered (the caller applies ranges, regions and predicate). With
    ``chunked`` one table per row group is yielded (for ``head``); otherwise one table.
    An empty partition read yields nothing.
    """
    if ranges is not None and INDEX_COLUMN not in columns:
        columns = [*columns, INDEX_COLUMN]
    if isinstance(source, MemorySource):
        table = source.partition_table(pixel).select(columns)
        if table.num_rows:
            yield table
        return
    derived = SOURCE_READERS.get(type(source))
    if derived is not None:
        yield from derived(source, pixel, columns, ranges=ranges, predicate=predicate, chunked=chunked)
        return
    if not isinstance(source, StoredSource):  # pragma: no cover - new source types must add a reader
        raise TypeError(f"cannot read partitions of {type(source).__name__}")
    meta = source.meta
    read_cols = meta.file_columns(columns)
    pieces = []
    for path in meta.partition_files(pixel):
        md = footer(path)
        rgs = selected_row_groups(md, ranges, predicate, meta)
        if not rgs:
            continue
        if chunked:
            for rg in rgs:
                yield meta.finish_table(_read(path, md, [rg], read_cols, threads=False), columns, path)
        else:
            table = _read(path, md, rgs, read_cols, threads=len(rgs) > 1)
            pieces.append(meta.finish_table(table, columns, path))
    if len(pieces) == 1:
        yield pieces[0]
    elif pieces:  # the files of a directory partition: sorted each, not together
        yield meta.finish_table(pa.concat_tables(pieces), columns, meta.partition_path(pixel))
