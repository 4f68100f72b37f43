"""Plans as lazy Dask DataFrames: one Dask partition per touched catalog partition."""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd

from proxcompute.execute.partition import PartitionJob, run_partition
from proxcompute.execute.scheduler import current_client
from proxcompute.plan.nodes import PlanNode, find_scan, output_schema
from proxcompute.plan.optimizer import OptFlags, optimize

__all__ = ["to_dask"]


class PartitionFrame:
    """Picklable ``pixel -> pandas.DataFrame`` for one optimized plan."""

    def __init__(self, job: PartitionJob) -> None:
        self.job = job
        self.token = uuid.uuid4().hex

    def __call__(self, item: Any) -> pd.DataFrame:
        return self.job(item).to_pandas()

    def __dask_tokenize__(self) -> str:
        return self.token


def meta_frame(plan: PlanNode) -> pd.DataFrame:
    """An empty pandas frame with the dtypes the plan's partitions will have."""
    return output_schema(plan).empty_table().to_pandas()


def to_dask(plan: PlanNode, *, flags: OptFlags | None = None):
    """A lazy ``dask.dataframe.DataFrame`` of the plan's result (nothing is read yet)."""
    import dask.dataframe as dd

    optimized = optimize(plan, flags)
    meta = meta_frame(optimized)
    pixels = list(find_scan(optimized).partitions)
    if not pixels:
        return dd.from_pandas(meta, npartitions=1)
    job = PartitionJob(run_partition, optimized)
    items: list[Any] = pixels
    if current_client() is not None:  # rows of an in-memory catalog travel per partition
        job, items = job.for_other_processes(pixels)
    return dd.from_map(
        PartitionFrame(job),
        items,
        meta=meta,
        label=f"proxcompute-{plan.source.name}",
        enforce_metadata=False,
    )
