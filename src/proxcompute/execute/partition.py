"""Run a plan on one partition, in whatever process holds the task.

The executor interprets any plan tree, optimized or not: a Scan reads the partition (with
its pushed ranges, regions, predicate and columns), and the nodes above it filter and
project the Arrow tables it yields. Functions here are plain and picklable, so the same
code runs in-process, on Dask threads, or on distributed workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from proxcompute.errors import SqlError
from proxcompute.execute.reader import iter_partition
from proxcompute.ops.filters import apply_filters, count_matches
from proxcompute.ops.sql_engine import locate_error, run_sql
from proxcompute.plan.nodes import (
    Filter,
    PlanNode,
    Project,
    RegionFilter,
    Scan,
    output_schema,
    replace_source,
)
from proxcompute.plan.relational import Rename, RowOperator, SqlMap
from proxcompute.plan.source import MemorySource
from proxcompute.storage import DEFAULT_ROW_GROUP_ROWS, PartitionPixel, write_partition_file
from proxcompute.storage.atomic import atomic_write

__all__ = [
    "NODE_RUNNERS",
    "PartitionJob",
    "count_partition",
    "iter_pieces",
    "progress_marker",
    "run_partition",
    "write_partition",
]


NODE_RUNNERS: dict[type, Callable[[Any, PartitionPixel], pa.Table]] = {}
"""Runners of plan nodes that work on a whole partition, registered by the module that runs
them: ``runner(node, pixel) -> pa.Table``."""


def iter_pieces(plan: PlanNode, pixel: PartitionPixel, *, chunked: bool = False) -> Iterator[pa.Table]:
    """Yield the result rows of ``plan`` in partition ``pixel`` as Arrow tables (storage order)."""
    if isinstance(plan, Scan):
        src = plan.source
        for table in iter_partition(
            src, pixel, plan.read_columns(), ranges=plan.ranges, predicate=plan.predicate, chunked=chunked
        ):
            yield apply_filters(
                table,
                ranges=plan.ranges,
                regions=plan.regions,
                predicate=plan.predicate,
                ra_column=src.ra_column,
                dec_column=src.dec_column,
                columns=plan.output_columns(),
            )
        return
    runner = NODE_RUNNERS.get(type(plan))
    if runner is not None:  # nodes that need a whole partition at once (a user function)
        yield runner(plan, pixel)
        return
    for table in iter_pieces(plan.children[0], pixel, chunked=chunked):
        if isinstance(plan, RegionFilter):
            src = plan.source
            yield apply_filters(
                table, regions=[plan.region], ra_column=src.ra_column, dec_column=src.dec_column
            )
        elif isinstance(plan, Filter):
            yield apply_filters(table, predicate=plan.predicate)
        elif isinstance(plan, Project):
            yield table.select(list(plan.columns))
        elif isinstance(plan, RowOperator):
            yield apply_row_operator(plan, table)
        else:  # pragma: no cover - new node types must teach the executor
            raise TypeError(f"cannot execute plan node {type(plan).__name__}")


PART = "__part"
"""The table name the per-partition SQL of ``SqlMap``/``SqlAggregate`` reads."""


def run_sql_located(sql: str, tables: dict[str, pa.Table], pieces: tuple = (), threads: int = 1) -> pa.Table:
    """``run_sql``; an error that depends on the data (``CAST('x' AS DOUBLE)``) is located by
    running each piece of the query on the same rows."""
    try:
        return run_sql(sql, tables, threads=threads)
    except SqlError as exc:
        raise locate_error(exc, list(pieces), tables) from None


def apply_row_operator(node: RowOperator, table: pa.Table, *, threads: int = 1) -> pa.Table:
    """A row operator on rows of one partition (or of all of them, in the single scan)."""
    if isinstance(node, Rename):
        mapping = dict(node.names)
        return table.rename_columns([mapping.get(c, c) for c in table.column_names])
    if isinstance(node, SqlMap):
        return run_sql_located(node.sql, {PART: table}, node.pieces, threads)
    raise TypeError(f"cannot execute plan node {type(node).__name__}")  # pragma: no cover


def concat(pieces: list[pa.Table], plan: PlanNode) -> pa.Table:
    """One table from pieces (the empty table of the plan's schema when there are none)."""
    pieces = [p for p in pieces if p.num_rows] or pieces[:1]
    if not pieces:
        return output_schema(plan).empty_table()
    if len(pieces) == 1:
        return pieces[0]
    return pa.concat_tables(pieces, promote_options="default")


def run_partition(plan: PlanNode, pixel: PartitionPixel) -> pa.Table:
    """The result rows of ``plan`` in one partition."""
    return concat(list(iter_pieces(plan, pixel)), plan)


def count_partition(plan: PlanNode, pixel: PartitionPixel) -> int:
    """Number of result rows of ``plan`` in one partition."""
    if isinstance(plan, Scan):  # fully pushed down: count the mask, build no table
        src = plan.source
        tables = iter_partition(src, pixel, plan.read_columns(), ranges=plan.ranges, predicate=plan.predicate)
        return sum(
            count_matches(
                t,
                ranges=plan.ranges,
                regions=plan.regions,
                predicate=plan.predicate,
                ra_column=src.ra_column,
                dec_column=src.dec_column,
            )
            for t in tables
        )
    return sum(t.num_rows for t in iter_pieces(plan, pixel))


PROGRESS_DIR = "_progress"
"""Under a resumable staging directory: one marker per finished partition (its row count)."""


def progress_marker(staging: str | os.PathLike, pixel: PartitionPixel) -> str:
    """Path of the marker recording that ``pixel`` was written to ``staging``."""
    return os.path.join(staging, PROGRESS_DIR, f"Norder={pixel.order}_Npix={pixel.pixel}.rows")


def write_partition(
    plan: PlanNode, pixel: PartitionPixel, staging: str | os.PathLike, mark: bool = False
) -> int:
    """Write the result rows of one partition under ``staging``; returns the row count (0: no file).

    With ``mark``, a marker recording the row count is written after the partition file (both
    atomically), so an interrupted write can resume without redoing this partition.
    """
    table = run_partition(plan, pixel)
    rows = 0
    if table.num_rows:
        # the staging directory exists unless the write was aborted: never recreate it
        rows = write_partition_file(staging, pixel, table, row_group_rows=DEFAULT_ROW_GROUP_ROWS, create_root=False)
    if mark:
        marker = progress_marker(staging, pixel)
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        with atomic_write(marker, "w") as fh:
            fh.write(str(rows))
    return rows


@dataclass(frozen=True)
class PartitionJob:
    """``work(plan, pixel, *extra)`` as a picklable callable of one partition.

    Called with a pixel, or with ``(pixel, table)`` when an in-memory partition's rows
    travel with the task (see :meth:`for_other_processes`).
    """

    work: Callable[..., Any]
    plan: PlanNode
    extra: tuple = ()

    def __call__(self, item: PartitionPixel | tuple[PartitionPixel, pa.Table]) -> Any:
        if isinstance(item, tuple):
            pixel, data = item
            src = self.plan.source
            assert isinstance(src, MemorySource)
            return self.work(replace_source(self.plan, src.with_partition(pixel, data)), pixel, *self.extra)
        return self.work(self.plan, item, *self.extra)

    def for_other_processes(self, pixels: Sequence[PartitionPixel]) -> tuple[PartitionJob, list[Any]]:
        """The job and its items for workers in other processes.

        A stored catalog needs only pixels. An in-memory one ships each partition's rows
        with its task (compact copies) and a plan without the table, so no task pickles
        the whole catalog.
        """
        src = self.plan.source
        if not isinstance(src, MemorySource):
            return self, list(pixels)
        job = replace(self, plan=replace_source(self.plan, src.detached()))
        return job, [(p, src.compact_partition(p)) for p in pixels]
