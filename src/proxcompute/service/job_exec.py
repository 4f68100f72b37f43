"""How a UWS job runs: the executor the job runner calls, and the queue (and quote) a new job gets.

The job's query runs exactly as a sync query does (:func:`~proxcompute.service.query.run_query`),
with its partition tasks observed: ``jobInfo`` shows partitions done / total and ABORT cancels
the remaining tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from proxcompute.errors import ProxError
from proxcompute.execute import TaskObserver, observe
from proxcompute.service.jobs import JobOutcome
from proxcompute.service.params import TapParams, TapRequestError
from proxcompute.service.query import compile_spec, parse_query_spec, run_query
from proxcompute.service.vosi import column_metadata
from proxcompute.storage.atomic import atomic_write

__all__ = ["LONG_QUEUE_ROWS", "SCAN_ROWS_PER_SECOND", "make_executor", "pick_queue"]

LONG_QUEUE_ROWS = 20_000_000
"""Queries estimated to read more rows than this go to the ``long`` queue unless QUEUE says otherwise."""
EXTENSIONS = {"csv": "csv", "tsv": "tsv", "parquet": "parquet"}


def make_executor(state: Any):
    """The ``execute(job, progress, cancel)`` the runner calls: the query, written to the job's dir."""
    config = state.config

    def execute(job, progress, cancel) -> JobOutcome:
        params = TapParams(values=dict(job.parameters), multi={k: [v] for k, v in job.parameters.items()})
        for name, path in job.uploads.items():
            params.parts[name] = Path(path).read_bytes()
        spec = parse_query_spec(
            params, default_maxrec=config.default_maxrec, hard_maxrec=config.hard_maxrec,
            upload_limit=config.upload_limit_bytes, max_query_chars=config.max_query_chars,
        )  # fmt: skip
        job_dir = config.results_dir / job.id
        job_dir.mkdir(parents=True, exist_ok=True)
        path = job_dir / f"result.{EXTENSIONS.get(spec.fmt, 'vot')}"
        observer = TaskObserver(progress=progress, cancel=cancel)
        registry, tables = state.registry_for(job.owner)
        with observe(observer), atomic_write(path, "wb") as fh:
            rows, overflow = run_query(
                spec, registry, fh, cancel=cancel, column_meta=column_metadata(tables, spec.query),
                mydb=state.mydb, user=job.owner, client=state.client,
                mydb_quota_bytes=state.quota_for(job.owner).mydb_bytes,
            )  # fmt: skip
        return JobOutcome(str(path), spec.mime, path.stat().st_size, rows, overflow)

    return execute


SCAN_ROWS_PER_SECOND = 50_000_000
"""Cost model of the quote: rows read per second (partition scan + kernels, 2 cores)."""


def pick_queue(params: TapParams, state: Any, state_user: str | None = None) -> tuple[str, float | None]:
    """The queue a job runs in, and the rows its plan reads (None when it cannot be planned)."""
    config = state.config
    asked = params.get("QUEUE")
    if asked is not None:
        if asked not in config.queues:
            raise TapRequestError(f"QUEUE={asked} is not a queue here; queues: {', '.join(sorted(config.queues))}")
    try:  # the plan's cost: rows of the partitions it reads
        spec = parse_query_spec(params, default_maxrec=config.default_maxrec, hard_maxrec=config.hard_maxrec,
                                upload_limit=config.upload_limit_bytes,
                                max_query_chars=config.max_query_chars)  # fmt: skip
        result = compile_spec(spec, state.registry_for(state_user)[0])
    except (ProxError, RecursionError):
        return asked or config.default_queue, None  # the job will fail with the message when it runs
    cat = result.catalog
    if cat is not None:
        src = cat.plan.source
        n_all = max(1, len(getattr(src, "pixels", ()) or ()))
        estimate = max(src.total_rows, 0) * len(result.partitions) / n_all
    else:
        # gathered inputs: a catalog's recorded rows (-1 when unknown counts as 0), a table's rows
        estimate = sum(
            c.num_rows if isinstance(c, pa.Table) else max(c.plan.source.total_rows, 0)
            for c in result.inputs.values()
        )
    if asked is not None:
        return asked, estimate
    if estimate > LONG_QUEUE_ROWS and "long" in config.queues:
        return "long", estimate
    return config.default_queue, estimate
