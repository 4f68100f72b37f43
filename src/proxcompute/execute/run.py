"""Execute plans: in-process for small queries, through Dask for the rest.

A plan touching at most :data:`IN_PROCESS_MAX_PARTITIONS` partitions runs in the calling
thread with no Dask graph at all (a 1' cone costs a few milliseconds). Bigger plans run one
task per partition on an explicit ``client``, else on the current distributed client, else
on a local thread pool (one thread per core). Only :func:`compute_table` brings rows back to
the caller; ``count`` and ``to_catalog`` move integers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from proxcompute.errors import PlanError, ProxError, UserFunctionError
from proxcompute.execute.faults import task_result
from proxcompute.execute.file_scan import filtered_count
from proxcompute.execute.partition import (
    PROGRESS_DIR,
    PartitionJob,
    concat,
    count_partition,
    iter_pieces,
    progress_marker,
    run_partition,
    write_partition,
)
from proxcompute.execute.progress import progress_bar
from proxcompute.execute.reader import stored_partition_rows
from proxcompute.execute.scheduler import current_client
from proxcompute.plan.nodes import (
    PlanNode,
    Project,
    Scan,
    find_scan,
    output_schema,
    with_extra_columns,
)
from proxcompute.plan.optimizer import OptFlags, optimize
from proxcompute.plan.source import MemorySource, StoredSource
from proxcompute.sky import INDEX_COLUMN
from proxcompute.storage import CatalogBuilder, PartitionPixel

__all__ = [
    "IN_PROCESS_MAX_PARTITIONS",
    "Cancelled",
    "TaskObserver",
    "compute_table",
    "count",
    "head",
    "iter_completed",
    "map_partitions",
    "observe",
    "stored_count",
    "to_catalog",
]

PROGRESS_MIN_TASKS = 16
"""Show a progress bar when a computation has at least this many partition tasks."""

IN_PROCESS_MAX_PARTITIONS = 4
"""Plans touching at most this many partitions run in-process, without Dask."""


class Cancelled(ProxError):
    """The computation was cancelled (e.g. a TAP job was aborted)."""


@dataclass
class TaskObserver:
    """Watches the partition tasks run in this context: progress, and a way to cancel them.

    ``progress(done, total, rows_done)`` is called as tasks finish, counting every
    :func:`map_partitions` call made while the observer is active (``rows_done``: the stored
    rows of the partitions done, which a rate and a time left are computed from); setting
    ``cancel`` stops the remaining tasks (local threads are not started, Dask futures are
    cancelled) and raises :class:`Cancelled`.
    """

    progress: Callable[[int, int, int], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    done: int = 0
    total: int = 0
    rows_done: int = 0

    def _add(self, n: int) -> None:
        self.total += n
        self._report()

    def _advance(self, rows: int = 0) -> None:
        self.done += 1
        self.rows_done += rows
        self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total, self.rows_done)

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self.cancel.is_set():
            raise Cancelled("the computation was cancelled")


_observer: ContextVar[TaskObserver | None] = ContextVar("proxcompute_task_observer", default=None)


@contextlib.contextmanager
def observe(observer: TaskObserver) -> Iterator[TaskObserver]:
    """Report progress to, and take cancellation from, ``observer`` for computations in this block."""
    token = _observer.set(observer)
    try:
        yield observer
    finally:
        _observer.reset(token)


def map_partitions(
    job: PartitionJob,
    pixels: Sequence[PartitionPixel],
    *,
    client: Any = None,
    label: str = "partition",
) -> list[Any]:
    """``[job(p) for p in pixels]``, in order: in-process, on local threads, or as Dask tasks.

    At most :data:`IN_PROCESS_MAX_PARTITIONS` partitions and no client: in the calling
    thread. More and no client (and no current distributed client): a thread pool of one
    thread per core; the kernels and Arrow release the GIL. (Dask's threaded scheduler
    does the same but imports ``distributed`` to look for a client, ~0.4 s in a fresh
    process.) With a client: one Dask task per partition. Exceptions from a task (e.g.
    :class:`~proxcompute.errors.CorruptPartitionError`) are raised unchanged.
    """
    pixels = list(pixels)
    results: list[Any] = [None] * len(pixels)
    for i, result in iter_completed(job, pixels, client=client, label=label):
        results[i] = result
    return results


def iter_completed(
    job: PartitionJob,
    pixels: Sequence[PartitionPixel],
    *,
    client: Any = None,
    label: str = "partition",
) -> Iterator[tuple[int, Any]]:
    """Yield ``(i, job(pixels[i]))`` as tasks finish, in completion order (see :func:`map_partitions`).

    A consumer that folds results as they come (an aggregation) holds one result at a time;
    each result is dropped by the scheduler once yielded. Before Dask tasks are submitted,
    the job is pickled once: a user function that cannot travel to the workers fails here
    with :class:`~proxcompute.errors.UserFunctionError`, before any work starts.
    """
    pixels = list(pixels)
    obs = _observer.get()
    if obs is not None:
        obs.check()
        obs._add(len(pixels))
    client = client if client is not None else current_client()
    if client is None and len(pixels) <= IN_PROCESS_MAX_PARTITIONS:
        rows_of = _stored_rows_of(job.plan) if obs is not None else _no_rows
        for i, p in enumerate(pixels):
            yield i, job(p)
            if obs is not None:
                obs._advance(rows_of(p))
                obs.check()
        return
    description = f"{label} {len(pixels)} partitions"
    show = len(pixels) >= PROGRESS_MIN_TASKS
    rows_of = _stored_rows_of(job.plan) if show or obs is not None else _no_rows
    if client is None:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="proxcompute") as pool:
            futures = {pool.submit(job, p): i for i, p in enumerate(pixels)}
            with progress_bar(description, total=len(futures), enabled=show, transient=True) as advance:
                try:
                    for fut in as_completed(futures):
                        i = futures.pop(fut)
                        yield i, fut.result()
                        rows = rows_of(pixels[i])
                        advance(1, rows)
                        if obs is not None:
                            obs._advance(rows)
                            obs.check()
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
        return
    import dask
    from distributed import as_completed as dask_as_completed

    job, items = job.for_other_processes(pixels)
    _check_picklable(job)
    tag = uuid.uuid4().hex[:12]
    task = dask.delayed(job, pure=False, name=f"proxcompute-{label}-fn-{tag}")
    parts = [task(item, dask_key_name=f"proxcompute-{label}-{tag}-{i}") for i, item in enumerate(items)]
    futures = client.compute(parts)
    index = {f.key: i for i, f in enumerate(futures)}
    try:
        with progress_bar(description, total=len(futures), enabled=show, transient=True) as advance:
            for fut in dask_as_completed(futures, loop=client.loop):
                i = index[fut.key]
                result = task_result(fut, f"{label} of partition {pixels[i]}")
                fut.release()
                yield i, result
                rows = rows_of(pixels[i])
                advance(1, rows)
                if obs is not None:
                    obs._advance(rows)
                    obs.check()
    except BaseException:
        client.cancel(futures)
        raise


def _no_rows(pixel: PartitionPixel) -> int:
    return 0


def _stored_rows_of(plan: PlanNode) -> Callable[[PartitionPixel], int]:
    """``pixel -> rows stored in that partition`` of the plan's (left-most) catalog, 0 when unknown.

    What the progress bar's rows/s and a job's jobInfo count: rows of the input partitions
    done (a crossmatch's or a join's left side). Footers are cached, and a partition's footer
    was just read by its task, so this costs microseconds per partition in this process.
    """
    source = find_scan(plan).source
    while not isinstance(source, (StoredSource, MemorySource)):
        left = getattr(source, "left", None)
        if left is None:  # a gathered query: no stored partition per task
            return _no_rows
        source = find_scan(left).source

    def rows_of(pixel: PartitionPixel) -> int:
        try:
            return stored_partition_rows(source, pixel) or 0
        except (OSError, KeyError, ProxError):  # progress never fails a query; the task reports the real error
            return 0

    return rows_of


def _check_picklable(job: PartitionJob) -> None:
    import cloudpickle

    try:
        cloudpickle.dumps(job)
    except Exception as exc:  # any pickling failure: a lambda closing over a lock, a file, a client ...
        raise UserFunctionError(
            f"the computation cannot be sent to the cluster's workers: it does not pickle ({type(exc).__name__}: "
            f"{exc}). Define the function at the top level of a module, and do not let it hold open files, "
            "locks or clients."
        ) from None


def compute_table(plan: PlanNode, *, client: Any = None, flags: OptFlags | None = None) -> pa.Table:
    """The plan's result as one Arrow table, partitions in storage order."""
    from proxcompute.execute.aggregate import aggregate_table, contains_aggregate

    if contains_aggregate(plan):  # one row per group, merged across partitions (then HAVING, columns)
        return aggregate_table(plan, client=client, flags=flags)
    optimized = optimize(plan, flags)
    pixels = find_scan(optimized).partitions
    tables = map_partitions(PartitionJob(run_partition, optimized), pixels, client=client, label="compute")
    return concat(tables, optimized)


def stored_count(plan: PlanNode, flags: OptFlags | None = None) -> int | None:
    """The plan's row count from stored metadata alone, or None when rows must be read.

    An unfiltered plan over a whole catalog answers from its properties (``hats_nrows``); one
    over chosen partitions, or a catalog without ``hats_nrows``, from the partitions' Parquet
    footers (cached, milliseconds; no row group is read). Regions, predicates, user functions
    and derived sources (crossmatches, joins) need their rows: None.
    """
    node = plan
    while isinstance(node, Project):
        node = node.child
    if not isinstance(node, Scan) or node.regions or node.predicate is not None:
        return None  # rows are filtered or computed: they must be read
    if node.pixels is None and node.source.total_rows >= 0:
        return node.source.total_rows
    node = optimize(Project(plan, ()), flags)
    while isinstance(node, Project):
        node = node.child
    if not isinstance(node, Scan) or node.regions or node.predicate is not None or node.ranges is not None:
        return None
    total = 0
    for pixel in node.partitions:
        rows = stored_partition_rows(node.source, pixel)
        if rows is None:
            return None
        total += rows
    return total


def count(plan: PlanNode, *, client: Any = None, flags: OptFlags | None = None) -> int:
    """Number of result rows, reading only the columns the filters need.

    Answered from stored metadata when nothing filters rows (:func:`stored_count`); an
    observer (a TAP job) then sees the work done at once.
    """
    stored = stored_count(plan, flags)
    if stored is not None:
        obs = _observer.get()
        if obs is not None:
            obs.check()
            obs._add(1)
            obs._advance()
        return stored
    optimized = optimize(Project(plan, ()), flags)
    scan = find_scan(optimized)
    if client is None and current_client() is None and _observer.get() is None:
        n = filtered_count(optimized, os.cpu_count() or 1)  # one multi-threaded DuckDB scan, if it can
        if n is not None:
            return n
    counts = map_partitions(
        PartitionJob(count_partition, optimized), scan.partitions, client=client, label="count"
    )
    return int(sum(counts))


def head(plan: PlanNode, n: int = 5, *, flags: OptFlags | None = None) -> pa.Table:
    """The first ``n`` result rows in storage order, reading row groups until found."""
    optimized = optimize(plan, flags)
    pieces: list[pa.Table] = []
    found = 0
    if n > 0:
        for pixel in find_scan(optimized).partitions:
            for table in iter_pieces(optimized, pixel, chunked=True):
                if table.num_rows:
                    pieces.append(table)
                    found += table.num_rows
                if found >= n:
                    break
            if found >= n:
                break
    return concat(pieces, optimized).slice(0, max(n, 0))


def to_catalog(
    plan: PlanNode,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    overwrite: bool = False,
    client: Any = None,
    flags: OptFlags | None = None,
    resume_dir: str | os.PathLike | None = None,
) -> Path:
    """Write the plan's result as a new catalog with the source's partitioning.

    ``_healpix_29`` and the coordinate columns are always written. The catalog is built in
    a staging directory and renamed into place; empty partitions are omitted. With
    ``resume_dir``, that directory is the staging directory and is kept when the write fails
    or is killed: calling again with the same ``resume_dir`` skips the partitions already
    written (each is recorded by a marker after its file).
    """
    src = plan.source
    widened = with_extra_columns(plan, [INDEX_COLUMN, src.ra_column, src.dec_column])
    optimized = optimize(widened, flags)
    missing = [
        c for c in (INDEX_COLUMN, src.ra_column, src.dec_column) if c not in optimized.output_columns()
    ]
    if missing:
        raise PlanError(f"cannot write a catalog without the column(s) {', '.join(missing)}")
    schema = _storage_schema(output_schema(optimized))
    builder = CatalogBuilder(
        path, name=name or src.name, ra_column=src.ra_column, dec_column=src.dec_column, overwrite=overwrite,
        staging=resume_dir,
    )  # fmt: skip
    try:
        pixels = list(find_scan(optimized).partitions)
        done: dict[PartitionPixel, int] = {}
        if resume_dir is not None:
            for p in pixels:
                marker = progress_marker(builder.staging, p)
                if os.path.exists(marker):
                    with open(marker) as fh:
                        done[p] = int(fh.read().strip() or 0)
        todo = [p for p in pixels if p not in done]
        job = PartitionJob(write_partition, optimized, (str(builder.staging), resume_dir is not None))
        rows = map_partitions(job, todo, client=client, label="write")
        done.update(zip(todo, rows, strict=True))
        if resume_dir is not None:
            shutil.rmtree(os.path.join(builder.staging, PROGRESS_DIR), ignore_errors=True)
        return builder.finish({p: done[p] for p in pixels}, schema, max_rows=src.max_rows)
    except BaseException:
        if resume_dir is None:
            builder.abort()
        raise


def _storage_schema(schema: pa.Schema) -> pa.Schema:
    names = [INDEX_COLUMN] + [n for n in schema.names if n != INDEX_COLUMN]
    return pa.schema([schema.field(n) for n in names]).remove_metadata()
