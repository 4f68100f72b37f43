"""Read one partition of a join: the left rows, and the right rows holding their keys.

The right rows are located by ``_healpix_29`` cells (from the right's index catalog, or from
an in-memory :class:`~proxcompute.ops.join.KeyMap` built once per process), so only the right
partitions and row groups holding the keys are read, wherever they are on the sky.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from proxcompute.execute.partition import concat, run_partition
from proxcompute.execute.reader import register_derived_source
from proxcompute.ops.filters import filter_by_ranges
from proxcompute.ops.join import KeyMap, exact_keys, join_tables
from proxcompute.plan.ids import cells_to_ranges, coarsen_ranges, located_ranges, restrict_to_ranges
from proxcompute.plan.join import JoinSource
from proxcompute.plan.nodes import Project, find_scan
from proxcompute.plan.optimizer import optimize
from proxcompute.sky import INDEX_COLUMN
from proxcompute.storage import PartitionPixel
from proxcompute.storage.index import lookup, read_index_meta

__all__ = ["join_partition", "keymap"]


def keymap(source: JoinSource) -> KeyMap:
    """The right side's keys and cells, read once per process (two columns of every partition)."""
    with source._lock:
        if source._keymap is None:
            plan = optimize(Project(source.right, (source.args.right_on, INDEX_COLUMN)))
            table = concat([run_partition(plan, p) for p in find_scan(plan).partitions], plan)
            source._keymap = KeyMap(table.column(source.args.right_on), table.column(INDEX_COLUMN).to_numpy())
        return source._keymap


def _right_ranges(source: JoinSource, keys: pa.Array) -> np.ndarray:
    if source.index is not None:
        meta = read_index_meta(source.index)
        return located_ranges(lookup(meta, exact_keys(keys, meta.schema.field(meta.column).type).to_pylist()))
    return cells_to_ranges(keymap(source).cells_for(keys))


def join_partition(source: JoinSource, pixel: PartitionPixel, ranges: np.ndarray | None = None) -> pa.Table:
    """The join output rows of left partition ``pixel`` (left order, then right order)."""
    left = run_partition(source.left, pixel)
    if ranges is not None and left.num_rows:
        left = filter_by_ranges(left, ranges)
    if left.num_rows == 0:
        return source.schema.empty_table()
    keys = pc.unique(left.column(source.args.left_on)).drop_null()
    right = None
    if len(keys):
        cells = _right_ranges(source, keys)
        if len(cells):
            plan = optimize(restrict_to_ranges(source.right, coarsen_ranges(cells)))
            right = concat([run_partition(plan, p) for p in find_scan(plan).partitions], plan)
    return join_tables(left, right, source.args, source.schema)


register_derived_source(JoinSource, join_partition)
