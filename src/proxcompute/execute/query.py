"""Run plans with relational nodes (SQL's additions): per partition, then one merge.

A plan is cut at its lowest merge node (``Limit``, ``Sort``, ``TopN``, ``Distinct``,
``SqlAggregate``, ``SqlMerge``): below it everything runs partition by partition (the
catalog plan and the row operators ``SqlMap``/``Rename``), the merge node's per-partition
part runs in the same task, and its final part, then every node above it, runs once on
the driver. How the partition work runs is decided here (:func:`strategy`):

``stream``
    a ``Limit`` over row-by-row work: partitions in storage order, a few at a time, stopping
    once enough rows are out (:func:`iter_tables`; a catalog plan without row operators and
    no client reads row group by row group, as :func:`~proxcompute.execute.head` does);
``top-n-statistics``
    ``TopN`` by a stored numeric column, no cluster: row groups read best-first by their
    statistics until no other can contribute (:mod:`proxcompute.execute.topn`);
``single-scan``
    no cluster, nobody observing, more than a few partitions and a merge that can take all
    rows at once: the reader reads every partition (threads, pruning, footer cache), the
    rows are joined into one Arrow table and DuckDB runs the per-partition part once with a
    thread per core (no per-partition task and engine overhead); a generic ``Aggregate``
    too (:mod:`proxcompute.execute.aggregate_scan`). When an aggregate or ``DISTINCT`` sits
    on a plain scan (every row group of the selected partitions, no filter), DuckDB reads
    those files itself, decoding and aggregating in one pipeline
    (:mod:`proxcompute.execute.file_scan`);
``aggregate``
    a generic ``Aggregate`` otherwise: DuckDB partial states per partition, merged exactly as
    they finish (:mod:`proxcompute.execute.aggregate_scan`);
``partitions``
    one task per partition (in-process, local threads or Dask, see
    :func:`~proxcompute.execute.map_partitions`), then the merge.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from proxcompute.execute import topn
from proxcompute.execute.aggregate_scan import aggregate_all_rows, aggregate_sql, duckdb_partial_partition
from proxcompute.execute.file_scan import plain_file_scan
from proxcompute.execute.partition import (
    PART,
    PartitionJob,
    apply_row_operator,
    concat,
    run_partition,
    run_sql_located,
)
from proxcompute.execute.run import (
    IN_PROCESS_MAX_PARTITIONS,
    _observer,
    compute_table,
    count,
    head,
    iter_completed,
    map_partitions,
    stored_count,
)
from proxcompute.execute.scheduler import current_client
from proxcompute.ops.aggregate import MergedState, partial_aggregate
from proxcompute.ops.filters import apply_filters
from proxcompute.ops.sql_engine import distinct_table, run_sql, sort_table
from proxcompute.plan.aggregate import Aggregate
from proxcompute.plan.nodes import Filter, PlanNode, Project, find_scan, output_schema
from proxcompute.plan.optimizer import OptFlags, optimize
from proxcompute.plan.relational import (
    Distinct,
    Limit,
    MergeOperator,
    RowOperator,
    Sort,
    SqlAggregate,
    SqlMerge,
    TopN,
    catalog_plan,
)

__all__ = ["STREAM_CHUNK_PARTITIONS", "compute_query", "iter_tables", "strategy"]

STREAM_CHUNK_PARTITIONS = 8
"""Partitions computed together when streaming results in storage order."""

PARTIALS = "__partials"

MERGE_NODES = (MergeOperator, Aggregate)
"""Nodes that need every partition's rows (a per-partition part, then one merge)."""


def _partial(node: MergeOperator, table: pa.Table, threads: int = 1) -> pa.Table:
    if isinstance(node, TopN):
        return sort_table(table, node.keys, node.n + node.offset, threads=threads)
    if isinstance(node, Distinct):
        return distinct_table(table, threads=threads)
    if isinstance(node, SqlAggregate):
        return run_sql_located(node.partial_sql, {PART: table}, node.pieces, threads)
    return table  # Sort, SqlMerge and Limit need the rows themselves


def _final(node: MergeOperator, table: pa.Table, threads: int = 1) -> pa.Table:
    if isinstance(node, TopN):
        return sort_table(table, node.keys, node.n + node.offset, threads=threads).slice(node.offset, node.n)
    if isinstance(node, Sort):
        return sort_table(table, node.keys, threads=threads)
    if isinstance(node, Distinct):
        return distinct_table(table, threads=threads)
    if isinstance(node, SqlAggregate):
        return run_sql(node.final_sql, {PARTIALS: table}, threads=threads)
    if isinstance(node, SqlMerge):
        return run_sql(node.sql, {PARTIALS: table}, threads=threads)
    if isinstance(node, Limit):
        return table.slice(node.offset, node.n) if node.n is not None else table.slice(node.offset)
    raise TypeError(f"cannot execute plan node {type(node).__name__}")  # pragma: no cover


def _apply(node: PlanNode, table: pa.Table, threads: int = 1) -> pa.Table:
    """A node above the merge, on the one merged table."""
    if isinstance(node, Aggregate):
        state = MergedState.for_node(node.aggregation())
        state.merge(partial_aggregate(table, node.aggregation()))
        return state.finalize()
    if isinstance(node, MergeOperator):
        return _final(node, _partial(node, table, threads), threads)
    if isinstance(node, RowOperator):
        return apply_row_operator(node, table, threads=threads)
    if isinstance(node, Project):
        return table.select(list(node.columns))
    if isinstance(node, Filter):
        return apply_filters(table, predicate=node.predicate)
    raise TypeError(f"cannot execute plan node {type(node).__name__} above a merge")  # pragma: no cover


def partial_partition(plan: PlanNode, pixel: Any, node: MergeOperator) -> pa.Table:
    """One partition's rows of ``plan`` with ``node``'s per-partition part applied (a task)."""
    return _partial(node, run_partition(plan, pixel))


def _split(plan: PlanNode) -> tuple[list[PlanNode], MergeOperator | None, PlanNode]:
    """(nodes above the lowest merge node, top first; that node; the partition-wise plan below)."""
    path, node, lowest = [], plan, None
    while node.children:
        if isinstance(node, MERGE_NODES):
            lowest = len(path)
        path.append(node)
        (node,) = node.children
    if lowest is None:
        return [], None, plan
    merge = path[lowest]
    return path[:lowest], merge, merge.children[0]


def _empty_partials(merge: MergeOperator, below: PlanNode) -> pa.Table:
    if isinstance(merge, SqlAggregate):
        return merge.partial_schema.empty_table()
    return output_schema(below).empty_table()


def _row_operators(plan: PlanNode) -> list[RowOperator]:
    out, node = [], plan
    while node.children:
        if isinstance(node, RowOperator):
            out.append(node)
        (node,) = node.children
    return out


def strategy(plan: PlanNode, client: Any = None) -> str:
    """How :func:`compute_query` runs the (optimized) ``plan``: ``stream``, ``top-n-statistics``,
    ``single-scan``, ``partitions``, ``aggregate`` (the generic aggregate's own executor,
    :func:`~proxcompute.execute.aggregate_table`) or ``count`` (a ``COUNT(*)`` aggregate,
    answered by :func:`~proxcompute.execute.count`: from the stored row counts (properties,
    Parquet footers) when nothing filters, in milliseconds at any size)."""
    _, merge, below = _split(plan)
    local = client is None and current_client() is None and _observer.get() is None
    if isinstance(merge, Aggregate):
        only_count = not merge.keys and all(a.func == "count" and a.column is None for a in merge.aggregates)
        # an observed job that must read rows counts per partition (it reports progress as
        # they finish); one answered from stored row counts has nothing to wait for
        if only_count and (_observer.get() is None or stored_count(below) is not None):
            return "count"
    if isinstance(merge, Limit):
        return "stream"
    if merge is None:
        return "partitions"
    scan = find_scan(below)
    base = catalog_plan(below)
    if local and topn.applies(merge):
        return "top-n-statistics"
    single = (
        local
        and len(scan.partitions) > IN_PROCESS_MAX_PARTITIONS
        and type(scan.source).__name__ == "StoredSource"
        and all(isinstance(n, (Project, RowOperator)) for n in _nodes_between(below, base))
    )
    if single:
        return "single-scan"
    return "aggregate" if isinstance(merge, Aggregate) else "partitions"


def _nodes_between(top: PlanNode, bottom: PlanNode) -> list[PlanNode]:
    out, node = [], top
    while node is not bottom:
        out.append(node)
        (node,) = node.children
    return out


def compute_query(plan: PlanNode, *, client: Any = None, flags: OptFlags | None = None) -> pa.Table:
    """The result of ``plan`` (relational nodes or not) as one Arrow table."""
    optimized = optimize(plan, flags)
    above, merge, below = _split(optimized)
    how = strategy(optimized, client)
    if merge is None:
        return compute_table(optimized, client=client, flags=OptFlags.none())
    if how == "count":
        n = count(below, client=client)
        table = pa.table({a.name: pa.array([n], type=pa.int64()) for a in merge.aggregates})
    elif how == "aggregate":
        state = MergedState.for_node(merge.aggregation())
        job = PartitionJob(duckdb_partial_partition, merge)
        for _, partial in iter_completed(job, find_scan(below).partitions, client=client, label="sql"):
            state.merge(partial)
        table = state.finalize()
    elif how == "stream":
        parts = list(_stream(below, merge, client, STREAM_CHUNK_PARTITIONS))
        table = pa.concat_tables(parts, promote_options="default") if len(parts) > 1 else parts[0]
    elif how == "top-n-statistics":
        table = topn.top_n_by_statistics(merge)
    elif how == "single-scan":
        table = _single_scan(merge, below)
    else:
        pixels = find_scan(below).partitions
        job = PartitionJob(partial_partition, below, (merge,))
        parts = [t for t in map_partitions(job, pixels, client=client, label="sql") if t.num_rows]
        partials = pa.concat_tables(parts, promote_options="default") if parts else _empty_partials(merge, below)
        table = _final(merge, partials)
    for node in reversed(above):
        table = _apply(node, table)
    return table


def _single_scan(merge: MergeOperator | Aggregate, below: PlanNode) -> pa.Table:
    """``merge`` over all rows of ``below`` at once, with a thread per core: DuckDB reading the
    files itself when the scan is plain (:mod:`proxcompute.execute.file_scan`), else over the
    Arrow tables the reader read."""
    threads = os.cpu_count() or 1
    files = plain_file_scan(below) if isinstance(merge, (Aggregate, SqlAggregate, Distinct)) else None
    if files is not None:
        if isinstance(merge, Aggregate):
            out = files.run(aggregate_sql(merge, "__rows"), "__rows", threads)
            if out is not None:
                return out.cast(merge.output_arrow_schema())
        elif isinstance(merge, SqlAggregate):
            partials = files.run(merge.partial_sql, PART, threads)
            if partials is not None:
                return _final(merge, partials, threads)
        else:
            rows = files.run('SELECT DISTINCT * FROM "__t"', "__t", threads)
            if rows is not None:
                return rows
    base = catalog_plan(below)
    rows = compute_table(base, client=None, flags=OptFlags.none())
    for node in reversed(_nodes_between(below, base)):
        rows = _apply(node, rows, threads)
    if isinstance(merge, Aggregate):
        return aggregate_all_rows(merge, rows, threads=threads)
    return _final(merge, _partial(merge, rows, threads), threads)


def _streamable(above: list[PlanNode], merge: MergeOperator | None) -> bool:
    return (merge is None or isinstance(merge, Limit)) and not any(isinstance(n, MERGE_NODES) for n in above)


def iter_tables(
    plan: PlanNode, *, client: Any = None, optimized: bool = False, chunk_partitions: int = STREAM_CHUNK_PARTITIONS
) -> Iterator[pa.Table]:
    """The result of ``plan`` as Arrow tables, streamed when it is row by row.

    A plan whose only merge node is a ``Limit`` (or none) is computed ``chunk_partitions``
    partitions at a time, in storage order, and the stream stops once the limit's rows are
    out, so a large result never sits in memory. Any other plan is computed, then yielded.
    At least one (possibly empty) table is yielded.
    """
    plan = plan if optimized else optimize(plan)
    above, merge, below = _split(plan)
    if not _streamable(above, merge):
        yield compute_query(plan, client=client, flags=OptFlags.none())
        return
    for table in _stream(below, merge, client, chunk_partitions):
        for node in reversed(above):
            table = _apply(node, table)
        yield table


def _stream(below: PlanNode, limit: Limit | None, client: Any, chunk_partitions: int) -> Iterator[pa.Table]:
    skip = limit.offset if limit is not None else 0
    want = limit.n if limit is not None else None
    if want is not None and client is None and not _row_operators(below) and current_client() is None:
        yield head(below, want + skip, flags=OptFlags.none()).slice(skip)  # row group by row group
        return
    pixels = list(find_scan(below).partitions)
    seen = 0
    job = PartitionJob(run_partition, below)
    empty = True
    for start in range(0, len(pixels), chunk_partitions):
        for table in map_partitions(job, pixels[start : start + chunk_partitions], client=client, label="sql"):
            if skip:
                drop = min(skip, table.num_rows)
                table, skip = table.slice(drop), skip - drop
            if want is not None:
                table = table.slice(0, max(0, want - seen))
            seen += table.num_rows
            if table.num_rows:
                empty = False
                yield table
            if want is not None and seen >= want:
                return
    if empty:
        yield concat([], below)
