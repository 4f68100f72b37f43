"""The cost model: how long a plan will take, from what planning knows, before reading rows.

:func:`estimate_cost` follows the path :func:`~proxcompute.execute.compute_query` will take
(:func:`~proxcompute.execute.strategy`) and counts the work of each operator on it:
partitions touched, row groups read, rows and values decoded, rows through a region, a
predicate, an aggregate, a crossmatch (left rows, right rows read), a gathered DuckDB query,
and the values written out when the result's size is known. Each count is multiplied by its
rate (:class:`~proxcompute.execute.cost_rates.CostRates`, measured on the machine by
``proxcompute calibrate``) and divided among the worker threads that share it (one in the
calling thread for a plan of at most
:data:`~proxcompute.execute.run.IN_PROCESS_MAX_PARTITIONS` partitions, else the machine's
cores or the cluster's threads).

What is read comes from metadata only (:mod:`.cost_reads`: footers of a few partitions,
the catalog's point map or ``hats_nrows`` for many); ``COUNT(*)`` answered from the stored
row counts costs one query overhead.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from proxcompute.execute.cost_rates import DEFAULT_RATES, CostRates
from proxcompute.execute.cost_reads import FOOTER_PARTITIONS, Reads, covered, scan_reads
from proxcompute.execute.file_scan import conjunction_sql, plain_file_scan
from proxcompute.execute.query import MERGE_NODES, _split, strategy
from proxcompute.execute.run import IN_PROCESS_MAX_PARTITIONS, TaskObserver, observe, stored_count
from proxcompute.execute.scheduler import current_client
from proxcompute.ops.expr import And
from proxcompute.plan.aggregate import Aggregate
from proxcompute.plan.crossmatch import CrossmatchSource
from proxcompute.plan.gather import GatherSource
from proxcompute.plan.join import JoinSource
from proxcompute.plan.map_partitions import MapPartitions
from proxcompute.plan.nodes import Filter, PlanNode, Project, RegionFilter, Scan, find_scan
from proxcompute.plan.optimizer import optimize
from proxcompute.plan.relational import Distinct, Limit, Sort, SqlAggregate, TopN

__all__ = ["FOOTER_PARTITIONS", "CostEstimate", "estimate_cost", "worker_threads"]


@dataclass(frozen=True)
class CostEstimate:
    """The estimated wall time of a plan, with its breakdown by operator.

    Attributes
    ----------
    seconds
        Estimated wall time, in seconds.
    breakdown
        ``(operator, seconds)`` pairs, largest first; they add up to ``seconds``.
    strategy
        How the plan runs (:func:`~proxcompute.execute.strategy`).
    workers
        Worker threads assumed for the work done in parallel.
    partitions
        Partitions the plan touches.
    rows_read
        Rows the reader (or DuckDB) is expected to decode.
    rates
        Where the rates came from (``CostRates.measured_on``).

    Examples
    --------
    >>> est = CostEstimate(0.25, (("scan", 0.2), ("open/plan", 0.05)), "partitions", 2, 18, 10_000_000, "defaults")
    >>> est.summary()
    'estimated 250 ms: scan 200 ms, open/plan 50 ms'
    """

    seconds: float
    breakdown: tuple[tuple[str, float], ...]
    strategy: str
    workers: int
    partitions: int
    rows_read: int
    rates: str

    def summary(self) -> str:
        """One line: ``estimated 2.3 s: crossmatch 1.9 s, scan 0.3 s, ...``."""
        parts = ", ".join(f"{name} {_fmt(s)}" for name, s in self.breakdown if s >= 0.0005 or len(self.breakdown) == 1)
        return f"estimated {_fmt(self.seconds)}" + (f": {parts}" if parts else "")

    def __str__(self) -> str:
        return self.summary()


def _fmt(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 100:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def worker_threads(client: Any = None) -> int:
    """Threads that run partition tasks: the client's (or the current cluster's), else the cores."""
    client = client if client is not None else current_client()
    if client is not None:
        try:
            workers = client.scheduler_info().get("workers", {})
            n = sum(int(w.get("nthreads", 1)) for w in workers.values())
            if n > 0:
                return n
        except Exception:  # a client that cannot answer: count the local cores
            pass
    return os.cpu_count() or 1


class _Work:
    """Seconds per operator, each already divided by the threads that share it."""

    def __init__(self, rates: CostRates) -> None:
        self.rates = rates
        self.seconds: dict[str, float] = {}
        self.rows_read = 0.0

    def add(self, operator: str, units: float, rate: str, width: int = 1) -> None:
        if units <= 0:
            return
        s = units * getattr(self.rates, rate) / max(1, width)
        self.seconds[operator] = self.seconds.get(operator, 0.0) + s


def _predicate_terms(predicate: Any) -> int:
    if predicate is None:
        return 0
    return len(predicate.terms) if isinstance(predicate, And) else 1


# -- operators --------------------------------------------------------------------------


def _width(partitions: int, workers: int, local: bool) -> int:
    if local and partitions <= IN_PROCESS_MAX_PARTITIONS:
        return 1  # run in the calling thread
    return max(1, min(workers, partitions))


def _catalog_work(plan: PlanNode, work: _Work, workers: int, local: bool) -> tuple[float, int, int]:
    """Work of a catalog plan run partition by partition; returns (output rows, columns, partitions)."""
    scan = find_scan(plan)
    src = scan.source
    if isinstance(src, CrossmatchSource):
        out_rows, parts = _crossmatch_work(src, scan, work, workers, local)
    elif isinstance(src, JoinSource):
        out_rows, parts = _join_work(src, scan, work, workers, local)
    elif isinstance(src, GatherSource):
        out_rows, parts = _gather_work(src, work, workers), 1
    else:
        reads = scan_reads(scan)
        w = _width(reads.partitions, workers, local)
        _add_reads(work, reads, w)
        work.add("region", reads.rows_kept * len(scan.regions), "region_row_s", w)
        work.add("filter", reads.rows_kept * _predicate_terms(scan.predicate), "filter_row_s", w)
        out_rows, parts = reads.rows_kept, reads.partitions
    w = _width(parts, workers, local)
    node = plan
    while not isinstance(node, Scan):  # nodes left above the scan after optimization
        if isinstance(node, RegionFilter):
            work.add("region", out_rows, "region_row_s", w)
        elif isinstance(node, Filter):
            work.add("filter", out_rows * _predicate_terms(node.predicate), "filter_row_s", w)
        elif isinstance(node, MapPartitions):
            work.add("user function", out_rows, "user_row_s", w)
        (node,) = node.children
    return out_rows, len(plan.output_columns()), parts


def _add_reads(work: _Work, reads: Reads, width: int) -> None:
    work.add("partitions", reads.partitions, "partition_s", width)
    work.add("scan", reads.row_groups, "row_group_s", width)
    work.add("scan", reads.rows_decoded, "scan_row_s", width)
    work.add("scan", reads.rows_decoded * reads.columns, "scan_cell_s", width)
    work.rows_read += reads.rows_decoded


def _crossmatch_work(src: CrossmatchSource, scan: Scan, work: _Work, workers: int, local: bool) -> tuple[float, int]:
    keep = set(scan.partitions)
    left_scan = find_scan(src.left)
    left_scan = Scan(left_scan.source, left_scan.columns, left_scan.regions, left_scan.predicate,
                     tuple(p for p in left_scan.partitions if p in keep), left_scan.ranges)  # fmt: skip
    left = scan_reads(left_scan)
    w = _width(left.partitions, workers, local)
    _add_reads(work, left, w)
    work.add("filter", left.rows_kept * _predicate_terms(left_scan.predicate), "filter_row_s", w)
    # right rows read: each right partition's rows in the sky the kept left partitions cover
    right_scan = find_scan(src.right.plan)
    rpix = tuple(right_scan.partitions)
    if left_scan.partitions and rpix:
        cover = np.array(sorted(p.healpix29_range for p in left_scan.partitions), dtype=np.int64)
        ranges = cover if right_scan.ranges is None else _intersect(cover, right_scan.ranges)
        touched = [p for p, c in zip(rpix, covered(ranges, *_bounds(rpix)), strict=True) if c > 0]
        right = scan_reads(Scan(right_scan.source, right_scan.columns, right_scan.regions,
                                 right_scan.predicate, tuple(touched), ranges))  # fmt: skip
        _add_reads(work, right, w)
        right_rows = right.rows_kept
        if src.right.margin_plan is not None:  # the margin's rows: a thin ring, read with each partition
            mscan = find_scan(src.right.margin_plan)
            mp = tuple(p for p in mscan.partitions if p in set(touched))
            if mp:
                margin = scan_reads(Scan(mscan.source, mscan.columns, mscan.regions, mscan.predicate, mp, None))
                _add_reads(work, margin, w)
                right_rows += margin.rows_decoded
        work.add("crossmatch", right_rows, "crossmatch_right_row_s", w)
    work.add("crossmatch", left.rows_kept, "crossmatch_left_row_s", w)
    return left.rows_kept, left.partitions


def _bounds(pixels: tuple) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([p.healpix29_range[0] for p in pixels], dtype=np.float64)
    hi = np.array([p.healpix29_range[1] for p in pixels], dtype=np.float64)
    return lo, hi


def _intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of two sorted lists of disjoint ``[lo, hi)`` ranges."""
    out, i, j = [], 0, 0
    b = np.asarray(b).reshape(-1, 2)
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _join_work(src: JoinSource, scan: Scan, work: _Work, workers: int, local: bool) -> tuple[float, int]:
    keep = set(scan.partitions)
    ls = find_scan(src.left)
    left = scan_reads(Scan(ls.source, ls.columns, ls.regions, ls.predicate,
                            tuple(p for p in ls.partitions if p in keep), ls.ranges))  # fmt: skip
    w = _width(left.partitions, workers, local)
    _add_reads(work, left, w)
    # each left row's key is looked up among the right's rows: about one right row read per left row
    right_cols = len(src.right_columns)
    work.add("join", left.rows_kept, "scan_row_s", w)
    work.add("join", left.rows_kept * right_cols, "scan_cell_s", w)
    work.add("join", left.rows_kept, "aggregate_row_s", w)
    return left.rows_kept, left.partitions


def _gather_work(src: GatherSource, work: _Work, workers: int) -> float:
    rows = 0.0
    for value in src.inputs.values():
        if hasattr(value, "num_rows"):
            rows += value.num_rows
            continue
        n, _, _ = _catalog_work(value, work, workers, local=True)
        rows += n
    work.add("gather", rows, "gather_row_s", workers)
    return rows


def _merge_rows_out(merge: PlanNode, rows: float) -> float | None:
    """Rows a merge node outputs, when known from the plan (None: unknown)."""
    if isinstance(merge, (Limit, TopN)):
        n = merge.n if merge.n is not None else rows
        return min(rows, n + merge.offset)
    if isinstance(merge, Sort):
        return rows
    return None  # aggregates and DISTINCT: the groups are not known before running


def _plan_of(obj: Any) -> PlanNode:
    if isinstance(obj, PlanNode):
        return obj
    capped = getattr(obj, "run_plan", None)  # an SqlResult: its maxrec Limit included
    if isinstance(capped, PlanNode):
        return capped
    plan = getattr(obj, "plan", None)
    if isinstance(plan, PlanNode):
        return plan
    raise TypeError(f"estimate_cost takes a plan, a Catalog or an SqlResult, not {type(obj).__name__}")


def estimate_cost(
    plan_or_result: Any,
    *,
    rates: CostRates | None = None,
    client: Any = None,
    workers: int | None = None,
    observed: bool = False,
    write_result: bool = False,
) -> CostEstimate:
    """The estimated wall time of running a plan, without reading any row.

    Parameters
    ----------
    plan_or_result
        A plan, or an object with one: a :class:`~proxcompute.Catalog` (its ``plan``) or an
        :class:`~proxcompute.sql.SqlResult` (its plan with ``maxrec``'s limit).
    rates
        Per-operator rates; default :data:`~proxcompute.execute.cost_rates.DEFAULT_RATES`
        (``proxcompute calibrate`` measures the machine's).
    client
        The Dask client it will run on (default: the current one, else local threads).
    workers
        Worker threads; default the client's threads, else the machine's cores.
    observed
        Estimate the path a TAP job takes (its partition tasks observed for progress and
        cancellation, which rules out the single-scan fast paths).
    write_result
        Also count writing the result (a VOTable, CSV or Parquet document). The result's
        values are counted when its number of rows is known before running (a catalog plan's
        rows, a ``TOP``/``MAXREC`` limit); a predicate is assumed to keep every row.

    Returns
    -------
    CostEstimate
        Seconds, with the breakdown by operator.

    Examples
    --------
    >>> from proxcompute.catalog import from_dataframe
    >>> from proxcompute.synthetic import generate_catalog
    >>> cat = from_dataframe(generate_catalog(20_000, seed=3))
    >>> cone = estimate_cost(cat.cone_search(45.0, 30.0, 60.0))
    >>> cone.seconds < estimate_cost(cat).seconds
    True
    >>> estimate_cost(cat).summary().startswith("estimated ")
    True
    """
    rates = rates or DEFAULT_RATES
    plan = _plan_of(plan_or_result)
    is_sql = not isinstance(plan_or_result, PlanNode) and isinstance(getattr(plan_or_result, "run_plan", None), PlanNode)
    optimized = optimize(plan)
    n_workers = int(workers or worker_threads(client))
    on_cluster = client is not None or current_client() is not None
    work = _Work(rates)
    if observed:
        with observe(TaskObserver()):
            how = strategy(optimized, client)
    else:
        how = strategy(optimized, client)
    local = not on_cluster
    above, merge, below = _split(optimized)
    partitions = len(find_scan(below).partitions)
    out_rows: float | None
    if how == "count":
        if stored_count(below) is not None:
            out_rows = 1.0  # answered from stored row counts: no row is read
        else:
            _filtered_count_work(below, work, n_workers, local)
            out_rows = 1.0
    elif how == "single-scan":
        files = plain_file_scan(below) if isinstance(merge, (Aggregate, SqlAggregate, Distinct)) else None
        if files is not None:
            reads = scan_reads(find_scan(below))
            work.add("partitions", reads.partitions, "partition_s", n_workers)
            work.add("aggregate", reads.rows_decoded * len(files.columns), "duckdb_cell_s", n_workers)
            work.rows_read += reads.rows_decoded
            out_rows = _merge_rows_out(merge, reads.rows_decoded)
        else:
            rows, _, _ = _catalog_work(below, work, n_workers, local=False)
            work.add("aggregate", rows, "aggregate_row_s", n_workers)
            out_rows = _merge_rows_out(merge, rows)
    elif how == "stream":
        out_rows = _stream_work(below, merge, work, n_workers, local)
    elif how == "top-n-statistics":
        out_rows = _topn_work(below, merge, work, n_workers)
    else:  # partitions, aggregate: one task per partition, then the merge
        rows, _, parts = _catalog_work(below, work, n_workers, local)
        if merge is not None and not isinstance(merge, Limit):
            w = _width(parts, n_workers, local)
            if isinstance(merge, (Aggregate, SqlAggregate, Distinct, TopN, Sort)):
                work.add("aggregate", rows, "aggregate_row_s", w)
                work.add("aggregate", parts, "aggregate_partition_s", w)
            out_rows = _merge_rows_out(merge, rows)
        else:
            out_rows = rows
    for node in above:
        if isinstance(node, MERGE_NODES) and out_rows is not None:
            out_rows = _merge_rows_out(node, out_rows)
    if out_rows is not None and how != "count":
        cells = out_rows * len(optimized.output_columns())
        work.add("result", cells, "result_cell_s", 1)
        if write_result:
            work.add("write", cells, "write_cell_s", 1)
    work.seconds["open/plan"] = work.seconds.get("open/plan", 0.0) + rates.query_s
    if is_sql:  # an SqlResult: its query is parsed and compiled again when it runs
        work.add("open/plan", 1, "sql_s")
    breakdown = tuple(sorted(((k, v) for k, v in work.seconds.items() if v > 0), key=lambda kv: -kv[1]))
    return CostEstimate(
        seconds=float(sum(v for _, v in breakdown)),
        breakdown=breakdown,
        strategy=how,
        workers=n_workers,
        partitions=partitions,
        rows_read=round(work.rows_read),
        rates=rates.measured_on,
    )


def _filtered_count_work(below: PlanNode, work: _Work, workers: int, local: bool) -> None:
    """``COUNT(*)`` that must read rows: DuckDB over the files when the predicate allows
    (:func:`~proxcompute.execute.file_scan.filtered_count`), else the reader."""
    scan = find_scan(below)
    if _duckdb_counts(below):
        reads = scan_reads(Scan(scan.source, (), (), None, scan.pixels, None))
        work.add("partitions", reads.partitions, "partition_s", workers)
        cols = len(scan.predicate.columns())
        work.add("filter", reads.rows_decoded * cols, "duckdb_cell_s", workers)
        work.rows_read += reads.rows_decoded
        return
    _catalog_work(below, work, workers, local)


def _duckdb_counts(below: PlanNode) -> bool:
    node = below
    while isinstance(node, Project):
        (node,) = node.children
    if not isinstance(node, Scan) or node.predicate is None or node.regions or node.ranges is not None:
        return False
    if conjunction_sql(node.predicate, node.source.schema) is None:
        return False
    cols = tuple(sorted(node.predicate.columns()))
    return plain_file_scan(Scan(node.source, columns=cols, pixels=node.pixels)) is not None


def _stream_work(below: PlanNode, limit: Limit, work: _Work, workers: int, local: bool) -> float:
    """A ``Limit`` streams partitions in storage order and stops once it has its rows."""
    probe = _Work(work.rates)
    rows, _, parts = _catalog_work(below, probe, workers, local)
    want = (limit.n if limit.n is not None else rows) + limit.offset
    frac = 1.0 if rows <= 0 else min(1.0, max(want / rows, 1.0 / max(parts, 1)))
    for name, s in probe.seconds.items():
        work.seconds[name] = work.seconds.get(name, 0.0) + s * frac
    work.rows_read += probe.rows_read * frac
    return min(rows, want)


def _topn_work(below: PlanNode, merge: TopN, work: _Work, workers: int) -> float:
    """``TopN`` by statistics reads the best row groups first: about those holding the n rows
    plus one per partition, of the key columns and the output."""
    scan = find_scan(below)
    reads = scan_reads(scan)
    per_group = reads.rows_decoded / max(reads.row_groups, 1)
    want = merge.n + merge.offset
    groups = min(reads.row_groups, math.ceil(want / max(per_group, 1)) + reads.partitions)
    frac = groups / max(reads.row_groups, 1)
    partial = Reads(reads.partitions, groups, reads.rows_decoded * frac, reads.rows_kept * frac, reads.columns)
    _add_reads(work, partial, 1)
    work.add("aggregate", partial.rows_kept, "aggregate_row_s", 1)
    return float(min(want, reads.rows_kept))
