"""TOP n ORDER BY a stored column without reading every row: row groups by their statistics.

Row groups of the touched partitions (pruned by the scan's ranges and predicate, footers
cached) are read in the order of their minimum of the first sort key; once ``n + offset``
candidate rows are held, a row group whose minimum is above the current ``n + offset``-th
key cannot contribute and the scan stops. (DuckDB does the same with its dynamic top-n
filter; this keeps the plan on our reader.) Applies to an ascending first key with nulls
last over a stored scan; everything else runs as a per-partition ``TopN``.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc

from proxcompute.execute.reader import _read, footer, selected_row_groups
from proxcompute.ops.filters import apply_filters
from proxcompute.ops.sql_engine import sort_table
from proxcompute.plan.nodes import PlanNode, Scan
from proxcompute.plan.relational import TopN
from proxcompute.plan.source import StoredSource

__all__ = ["MAX_STATISTICS_TOP_N", "applies", "top_n_by_statistics"]

MAX_STATISTICS_TOP_N = 100_000
"""Largest ``n + offset`` answered from row-group statistics (the candidates stay in memory)."""


def applies(node: PlanNode) -> bool:
    """Whether :func:`top_n_by_statistics` can answer ``node``."""
    if not isinstance(node, TopN) or not isinstance(node.child, Scan):
        return False
    scan, key = node.child, node.keys[0]
    if not isinstance(scan.source, StoredSource) or key.descending or key.nulls_first:
        return False
    field = scan.source.schema.field(key.column) if key.column in scan.source.schema.names else None
    kind = field.type if field is not None else None
    numeric = kind is not None and (pa.types.is_integer(kind) or pa.types.is_floating(kind))
    return numeric and 0 < node.n + node.offset <= MAX_STATISTICS_TOP_N


def _key_index(md, column: str) -> int | None:
    names = [md.schema.column(i).path for i in range(md.num_columns)]
    return names.index(column) if column in names else None


def top_n_by_statistics(node: TopN) -> pa.Table:
    """The rows of ``node`` (see :func:`applies`), reading row groups best-first."""
    scan: Scan = node.child  # type: ignore[assignment]
    src: StoredSource = scan.source  # type: ignore[assignment]
    key = node.keys[0].column
    k = node.n + node.offset
    groups = []
    for pixel in scan.partitions:
        path = src.partition_path(pixel)
        md = footer(path)
        j = _key_index(md, key)
        for rg in selected_row_groups(md, scan.ranges, scan.predicate):
            st = md.row_group(rg).column(j).statistics if j is not None else None
            lo = st.min if st is not None and st.has_min_max else None
            lo = -math.inf if lo is None or (isinstance(lo, float) and math.isnan(lo)) else lo
            groups.append((lo, str(path), rg, path, md))
    groups.sort(key=lambda g: (g[0], g[1], g[2]))
    columns = scan.read_columns()
    best: pa.Table | None = None
    threshold = None
    for lo, _, rg, path, md in groups:
        if threshold is not None and lo > threshold:
            break
        table = _read(path, md, [rg], columns, threads=False)
        table = apply_filters(
            table, ranges=scan.ranges, regions=scan.regions, predicate=scan.predicate,
            ra_column=src.ra_column, dec_column=src.dec_column, columns=scan.output_columns(),
        )  # fmt: skip
        if not table.num_rows:
            continue
        best = table if best is None else pa.concat_tables([best, table])
        if best.num_rows >= k:  # the k-th smallest key (Arrow, like DuckDB, puts NaN and nulls last)
            idx = pc.select_k_unstable(best, k, sort_keys=[(key, "ascending")])
            value = pc.max(best.column(key).take(idx)).as_py()
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                threshold = value
                best = best.filter(pc.less_equal(best.column(key), value))  # ties kept
    if best is None:
        from proxcompute.plan.nodes import output_schema

        return output_schema(scan).empty_table()
    return sort_table(best, node.keys, k).slice(node.offset, node.n)
