"""Read the rows of one partition file that a position test selects, touching as little as it can.

The margin of a partition is a few rows from each neighbour: reading whole neighbour files
would cost ~100x the bytes. :func:`read_selected_rows` reads ``_healpix_29``, ra and dec of
the row groups whose ``_healpix_29`` statistics intersect the candidate ranges, asks the
caller's test which rows to keep, then reads the other columns only of the row groups that
hold kept rows. The test itself (which rows lie within the margin) belongs to
:mod:`proxcompute.ops.margin`; storage only knows ranges and row indices.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from proxcompute.sky.healpix import INDEX_COLUMN
from proxcompute.storage.location import as_location, is_remote, open_input
from proxcompute.storage.reader import read_error, remote_footer, select_row_groups

__all__ = ["RowTest", "read_selected_rows"]

RowTest = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``test(healpix29, ra, dec) -> indices of the rows to keep`` (ascending)."""


def read_selected_rows(
    path: str | os.PathLike,
    ranges: np.ndarray,
    test: RowTest,
    *,
    ra_column: str,
    dec_column: str,
    columns: list[str] | None = None,
) -> pa.Table | None:
    """The rows of the Parquet file ``path`` that ``test`` keeps, among the row groups whose
    ``_healpix_29`` statistics intersect ``ranges`` (an ``(n, 2)`` array of half-open
    intervals); ``columns`` (default: all) in the file's types. None when no row is kept.

    Raises
    ------
    CorruptPartitionError
        The file cannot be read (the message names it).
    """
    path = as_location(path)
    try:
        if is_remote(path):  # ranged reads, coalesced; the footer from the per-process cache
            pf = pq.ParquetFile(open_input(path), metadata=remote_footer(path), pre_buffer=True)
        else:
            pf = pq.ParquetFile(path, pre_buffer=False)  # local files: ~30% faster decode without it
        md = pf.metadata
        rgs = select_row_groups(md, ranges)
        if not rgs:
            return None
        coord_cols = list(dict.fromkeys([INDEX_COLUMN, ra_column, dec_column]))
        coords = pf.read_row_groups(rgs, columns=coord_cols, use_threads=False)
        idx = test(
            coords.column(INDEX_COLUMN).to_numpy(),
            coords.column(ra_column).to_numpy(),
            coords.column(dec_column).to_numpy(),
        )
        if idx.size == 0:
            return None
        names = columns if columns is not None else pf.schema_arrow.names
        others = [c for c in names if c not in coord_cols]
        taken = coords.take(pa.array(idx))
        picked: dict[str, pa.ChunkedArray] = {c: taken.column(c) for c in coord_cols}
        if others:
            sizes = np.array([md.row_group(i).num_rows for i in rgs], dtype=np.int64)
            bounds = np.concatenate(([0], np.cumsum(sizes)))
            which = np.searchsorted(bounds, idx, side="right") - 1
            need = np.unique(which)
            # position of each selected row inside the concatenation of the needed groups
            need_bounds = np.concatenate(([0], np.cumsum(sizes[need])))
            local = idx - bounds[which] + need_bounds[np.searchsorted(need, which)]
            rest = pf.read_row_groups([rgs[i] for i in need], columns=others, use_threads=False)
            rest = rest.take(pa.array(local))
            for c in others:
                picked[c] = rest.column(c)
    except (OSError, pa.ArrowException) as exc:
        raise read_error(path, exc) from None
    schema = pf.schema_arrow.remove_metadata()
    fields = [schema.field(c) for c in names]
    return pa.Table.from_arrays([picked[c] for c in names], schema=pa.schema(fields))
