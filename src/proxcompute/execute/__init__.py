"""The only package that builds Dask graphs (public Dask API only)."""

from proxcompute.execute.aggregate import aggregate, aggregate_table
from proxcompute.execute.cost import CostEstimate, estimate_cost, worker_threads
from proxcompute.execute.cost_rates import (
    DEFAULT_RATES,
    CostRates,
    default_rates_path,
    load_rates,
    save_rates,
)
from proxcompute.execute.crossmatch import crossmatch_partition
from proxcompute.execute.explain import describe_reads
from proxcompute.execute.frames import to_dask
from proxcompute.execute.gather import gather_partition
from proxcompute.execute.join import join_partition
from proxcompute.execute.map_partitions import learn_schema
from proxcompute.execute.progress import progress_bar
from proxcompute.execute.query import STREAM_CHUNK_PARTITIONS, compute_query, iter_tables, strategy
from proxcompute.execute.reader import clear_footer_cache
from proxcompute.execute.run import (
    IN_PROCESS_MAX_PARTITIONS,
    Cancelled,
    TaskObserver,
    compute_table,
    count,
    head,
    iter_completed,
    map_partitions,
    observe,
    stored_count,
    to_catalog,
)
from proxcompute.execute.scheduler import current_client, local_client
from proxcompute.execute.tasks import map_tasks

__all__ = [
    "DEFAULT_RATES",
    "IN_PROCESS_MAX_PARTITIONS",
    "STREAM_CHUNK_PARTITIONS",
    "Cancelled",
    "CostEstimate",
    "CostRates",
    "TaskObserver",
    "aggregate",
    "aggregate_table",
    "clear_footer_cache",
    "compute_query",
    "compute_table",
    "count",
    "crossmatch_partition",
    "current_client",
    "default_rates_path",
    "describe_reads",
    "estimate_cost",
    "gather_partition",
    "head",
    "iter_completed",
    "iter_tables",
    "join_partition",
    "learn_schema",
    "load_rates",
    "local_client",
    "map_partitions",
    "map_tasks",
    "observe",
    "progress_bar",
    "save_rates",
    "stored_count",
    "strategy",
    "to_catalog",
    "to_dask",
    "worker_threads",
]
