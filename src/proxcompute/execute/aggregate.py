"""Run an :class:`~proxcompute.plan.aggregate.Aggregate`: partial states per partition, merged as they finish.

Each partition's rows are reduced where they are read (threads locally, workers on a
cluster); only the small partial state travels back and is folded into one merged state
right away. Memory holds the merged state (for a sky map at order <= 10, dense arrays of
``12 * 4**order`` slots) plus about one partition per worker, however many rows there are.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from proxcompute.errors import PlanError
from proxcompute.execute.partition import PartitionJob, run_partition
from proxcompute.execute.run import iter_completed
from proxcompute.ops.aggregate import MergedState, Partial, partial_aggregate
from proxcompute.plan.aggregate import Aggregate
from proxcompute.plan.nodes import PlanNode, find_scan
from proxcompute.plan.optimizer import OptFlags, optimize
from proxcompute.storage import PartitionPixel

__all__ = ["aggregate", "aggregate_partition", "aggregate_table"]


def aggregate_partition(plan: Aggregate, pixel: PartitionPixel) -> Partial:
    """The partial aggregation state of one partition."""
    return partial_aggregate(run_partition(plan.child, pixel), plan.aggregation())


def aggregate(plan: PlanNode, *, client: Any = None, flags: OptFlags | None = None) -> MergedState:
    """Run an Aggregate plan; the merged state (see :class:`~proxcompute.ops.aggregate.MergedState`)."""
    if not isinstance(plan, Aggregate):
        raise PlanError(f"aggregate() runs an Aggregate plan, not {type(plan).__name__}")
    optimized = optimize(plan, flags)
    assert isinstance(optimized, Aggregate)
    state = MergedState.for_node(optimized.aggregation())
    pixels = find_scan(optimized).partitions
    job = PartitionJob(aggregate_partition, optimized)
    for _, partial in iter_completed(job, pixels, client=client, label="aggregate"):
        state.merge(partial)
    return state


def aggregate_table(plan: PlanNode, *, client: Any = None, flags: OptFlags | None = None) -> pa.Table:
    """Run an Aggregate plan; one row per non-empty group, keys then aggregates."""
    return aggregate(plan, client=client, flags=flags).finalize()
