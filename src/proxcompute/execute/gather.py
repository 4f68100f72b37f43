"""Run a :class:`~proxcompute.plan.gather.GatherSource`: its inputs read whole, then one DuckDB query.

The inputs' plans are read partition by partition with the reader (pruning, projection and
footer cache apply), in the process that runs the source's one pseudo-partition; the query
compiler refuses inputs above its row limit before anything runs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from proxcompute.execute.partition import concat, run_partition
from proxcompute.execute.reader import register_derived_source
from proxcompute.ops.sql_engine import run_sql
from proxcompute.plan.gather import GatherSource
from proxcompute.plan.nodes import find_scan
from proxcompute.storage import PartitionPixel

__all__ = ["gather_partition"]


def gather_partition(source: GatherSource, pixel: PartitionPixel, ranges: np.ndarray | None = None) -> pa.Table:
    """The query's rows: every input computed whole, then ``source.sql`` over them in DuckDB."""
    tables = {
        name: value
        if isinstance(value, pa.Table)
        else concat([run_partition(value, p) for p in find_scan(value).partitions], value)
        for name, value in source.inputs.items()
    }
    return run_sql(source.sql, tables).rename_columns(source.schema.names)


register_derived_source(GatherSource, gather_partition)
