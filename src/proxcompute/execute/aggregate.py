"""Run an :class:`~proxcompute.plan.aggregate.Aggregate`: partial states per partition, merged as they finish.

Each partition's rows are reduced where they are read (threads locally, workers on a
cluster); only the small partial state travels back and is folded into one merged state
right away. Memory holds the merged state (for a sky map at order <= 10, dense arrays of
``12 * 4**order`` slots) plus about one partition per worker, however many rows there are.
"""

from __future__ import annotations

import os
import pickle
import threading
from typing import Any

import pyarrow as pa

from proxcompute.errors import PlanError
from proxcompute.execute.partition import PROGRESS_DIR, PartitionJob, run_partition
from proxcompute.execute.run import iter_completed
from proxcompute.ops.aggregate import MergedState, Partial, partial_aggregate
from proxcompute.ops.filters import apply_filters
from proxcompute.plan.aggregate import Aggregate
from proxcompute.plan.nodes import Filter, PlanNode, Project, RegionFilter, find_scan
from proxcompute.plan.optimizer import OptFlags, optimize
from proxcompute.storage import PartitionPixel

__all__ = ["aggregate", "aggregate_partition", "aggregate_partition_kept", "aggregate_table", "contains_aggregate"]


def aggregate_partition(plan: Aggregate, pixel: PartitionPixel) -> Partial:
    """The partial aggregation state of one partition."""
    return partial_aggregate(run_partition(plan.child, pixel), plan.aggregation())


def _partial_path(resume_dir: str | os.PathLike, pixel: PartitionPixel) -> str:
    return os.path.join(resume_dir, PROGRESS_DIR, f"Norder={pixel.order}_Npix={pixel.pixel}.partial.pkl")


def aggregate_partition_kept(plan: Aggregate, pixel: PartitionPixel, resume_dir: str) -> Partial:
    """:func:`aggregate_partition`, also kept under ``resume_dir`` (written atomically)."""
    partial = aggregate_partition(plan, pixel)
    path = _partial_path(resume_dir, pixel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as fh:
        pickle.dump(partial, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return partial


def aggregate(
    plan: PlanNode,
    *,
    client: Any = None,
    flags: OptFlags | None = None,
    resume_dir: str | os.PathLike | None = None,
) -> MergedState:
    """Run an Aggregate plan; the merged state (see :class:`~proxcompute.ops.aggregate.MergedState`).

    With ``resume_dir``, each partition's partial state is kept there as it finishes, and a
    later call with the same ``resume_dir`` merges the kept ones instead of recomputing them
    (the caller removes the directory when done).
    """
    if not isinstance(plan, Aggregate):
        raise PlanError(f"aggregate() runs an Aggregate plan, not {type(plan).__name__}")
    optimized = optimize(plan, flags)
    assert isinstance(optimized, Aggregate)
    state = MergedState.for_node(optimized.aggregation())
    pixels = list(find_scan(optimized).partitions)
    job = PartitionJob(aggregate_partition, optimized)
    if resume_dir is not None:
        todo = []
        for p in pixels:
            try:
                with open(_partial_path(resume_dir, p), "rb") as fh:
                    state.merge(pickle.load(fh))  # our own file, written by aggregate_partition_kept
            except (OSError, EOFError, pickle.UnpicklingError):
                todo.append(p)
        pixels = todo
        job = PartitionJob(aggregate_partition_kept, optimized, (str(resume_dir),))
    for _, partial in iter_completed(job, pixels, client=client, label="aggregate"):
        state.merge(partial)
    return state


def aggregate_table(plan: PlanNode, *, client: Any = None, flags: OptFlags | None = None) -> pa.Table:
    """Run a plan whose root is an Aggregate, or filters/projections over one (``HAVING``).

    One row per non-empty group, keys then aggregates; the nodes above the aggregate then
    filter and select those rows in this process (they are few).
    """
    above: list[PlanNode] = []
    node = plan
    while not isinstance(node, Aggregate):
        if not isinstance(node, Filter | Project | RegionFilter) or not node.children:
            raise PlanError(f"aggregate_table() runs an Aggregate plan, not {type(plan).__name__}")
        above.append(node)
        node = node.children[0]
    table = aggregate(node, client=client, flags=flags).finalize()
    for parent in reversed(above):
        if isinstance(parent, Project):
            table = table.select(list(parent.columns))
        elif isinstance(parent, Filter):
            table = apply_filters(table, predicate=parent.predicate)
        else:
            src = parent.source
            table = apply_filters(table, regions=[parent.region], ra_column=src.ra_column, dec_column=src.dec_column)
    return table


def contains_aggregate(plan: PlanNode) -> bool:
    """Whether an Aggregate is anywhere in ``plan``."""
    node: PlanNode | None = plan
    while node is not None:
        if isinstance(node, Aggregate):
            return True
        node = node.children[0] if node.children else None
    return False
