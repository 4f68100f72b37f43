"""Read a partition in two steps: a few columns first, the others for chosen rows only.

A crossmatch needs ``_healpix_29``, ra and dec of the right rows near its left rows but the
other output columns only of the rows that matched. :func:`read_split` reads the first set
(of the row groups a plan's ranges select), remembering each row's place in the files;
:meth:`SplitRead.fetch` then reads the other columns of the row groups that hold the chosen
rows, and takes those rows. Nothing is decoded twice: a column is read in one step or the
other. Parquet decodes whole row groups (16,384 rows here), so this pays when the chosen rows
sit in a minority of the row groups: a short target list against a large survey.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from proxcompute.execute.reader import footer, read_row_groups, selected_row_groups
from proxcompute.plan.nodes import PlanNode, Scan
from proxcompute.plan.source import StoredSource
from proxcompute.storage import PartitionPixel

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow.parquet as pq
    from upath import UPath

__all__ = ["SplitRead", "read_split", "splittable"]

_ROW = "__file_row"
"""Scratch column: each row's number in its partition's files, carried through the sort."""


@dataclass(frozen=True)
class _File:
    path: Path | UPath
    md: pq.FileMetaData
    first_row: int
    """Number of rows in the partition's files before this one."""
    group_starts: np.ndarray
    """First row of each row group in the file, and the file's row count last."""


@dataclass(frozen=True)
class SplitRead:
    """The first step of a split read; :meth:`fetch` is the second."""

    table: pa.Table
    """The columns read first, rows in ``_healpix_29`` order (as a Scan yields them)."""
    source: StoredSource
    files: tuple[_File, ...]
    file_rows: np.ndarray
    """Row number in the partition's files of each row of ``table``."""

    def fetch(self, columns: list[str], rows: np.ndarray) -> pa.Table:
        """``columns`` of the rows at positions ``rows`` of :attr:`table` (any order, repeats allowed).

        Only the row groups holding those rows are read.
        """
        wanted, back = np.unique(self.file_rows[np.asarray(rows, dtype=np.int64)], return_inverse=True)
        meta = self.source.meta
        pieces = []
        for f in self.files:
            lo, hi = np.searchsorted(wanted, [f.first_row, f.first_row + int(f.group_starts[-1])])
            if lo == hi:
                continue
            local = wanted[lo:hi] - f.first_row
            group = np.searchsorted(f.group_starts, local, side="right") - 1
            groups = np.unique(group)
            table = read_row_groups(f.path, f.md, groups.tolist(), meta.file_columns(columns))
            table = meta.finish_table(table, columns, f.path)  # no _healpix_29: nothing is reordered
            sizes = np.diff(f.group_starts)[groups]
            offset = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # each group's first row in `table`
            at = local - f.group_starts[group] + offset[np.searchsorted(groups, group)]
            pieces.append(table.take(pa.array(at, type=pa.int64())))
        if not pieces:
            return self.source.schema.empty_table().select(columns)
        table = pieces[0] if len(pieces) == 1 else pa.concat_tables(pieces)
        return table.take(pa.array(back.ravel(), type=pa.int64()))


def splittable(plan: PlanNode) -> bool:
    """Whether :func:`read_split` can read ``plan``: a plain Scan of a stored catalog."""
    return (
        isinstance(plan, Scan)
        and isinstance(plan.source, StoredSource)
        and not plan.regions
        and plan.predicate is None
        and plan.ranges is None
    )


def read_split(
    plan: PlanNode, pixel: PartitionPixel, first: list[str], ranges: np.ndarray | None = None
) -> SplitRead | None:
    """Read columns ``first`` of partition ``pixel`` of ``plan`` (see :func:`splittable`).

    With ``ranges`` (order-29), only the row groups whose ``_healpix_29`` statistics meet them
    (their rows are not filtered further: a superset). None when no row is read.
    """
    assert isinstance(plan, Scan) and isinstance(plan.source, StoredSource)
    meta = plan.source.meta
    files, pieces = [], []
    first_row = 0
    for path in meta.partition_files(pixel):
        md = footer(path)
        groups = selected_row_groups(md, ranges, None, meta)
        sizes = np.array([md.row_group(g).num_rows for g in range(md.num_row_groups)], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        files.append(_File(path, md, first_row, starts))
        if groups:
            table = read_row_groups(path, md, groups, meta.file_columns(first))
            rows = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in groups]) + first_row
            pieces.append(table.append_column(_ROW, pa.array(rows, type=pa.int64())))
        first_row += int(starts[-1])
    if not pieces:
        return None
    table = pieces[0] if len(pieces) == 1 else pa.concat_tables(pieces)
    table = meta.finish_table(table, [*first, _ROW], meta.partition_path(pixel))  # sorts if it must
    file_rows = table.column(_ROW).to_numpy()
    table = table.drop_columns([_ROW])
    if table.num_rows == 0:
        return None
    return SplitRead(table, plan.source, tuple(files), file_rows)
