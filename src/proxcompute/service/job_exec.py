"""How a UWS job runs: the executor the job runner calls, and the queue (and quote) a new job gets.

The job's query runs exactly as a sync query does (:func:`~proxcompute.service.query.run_query`),
with its partition tasks observed: ``jobInfo`` shows partitions done / total and ABORT cancels
the remaining tasks. It runs in a worker process at a lower CPU priority when the service
computes locally (:mod:`~proxcompute.service.job_process`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxcompute.errors import ProxError
from proxcompute.execute import CostEstimate, TaskObserver, estimate_cost, observe
from proxcompute.service.config import ServiceConfig
from proxcompute.service.job_process import run_in_worker
from proxcompute.service.jobs import Job, JobOutcome
from proxcompute.service.mydb import MyDB, table_name_from
from proxcompute.service.params import TapParams, TapRequestError
from proxcompute.service.query import compile_spec, parse_query_spec, run_query
from proxcompute.service.vosi import column_metadata
from proxcompute.sql import CatalogRegistry
from proxcompute.storage.atomic import atomic_write

__all__ = ["JobQuery", "make_executor", "pick_queue", "run_job_query"]

EXTENSIONS = {"csv": "csv", "tsv": "tsv", "parquet": "parquet"}


@dataclass
class JobQuery:
    """What a job's query needs, all of it picklable (it may run in a worker process)."""

    job: Job
    registry: CatalogRegistry
    """What the job's owner sees (``ServiceState.registry_for``)."""
    column_meta: dict[str, dict[str, str]]
    config: ServiceConfig
    mydb_quota_bytes: int


def run_job_query(
    q: JobQuery, progress: Callable[..., None], cancel: threading.Event, *, mydb: MyDB | None = None,
    client: Any = None,
) -> JobOutcome:  # fmt: skip
    """Run the job's query as a sync query runs, written to the job's result directory.

    ``mydb`` is the service's MyDB (a worker process, which passes None, opens its own).
    """
    config, job = q.config, q.job
    params = TapParams(values=dict(job.parameters), multi={k: [v] for k, v in job.parameters.items()})
    for name, path in job.uploads.items():
        params.parts[name] = Path(path).read_bytes()
    spec = parse_query_spec(
        params, default_maxrec=config.default_maxrec, hard_maxrec=config.hard_maxrec,
        upload_limit=config.upload_limit_bytes, max_query_chars=config.max_query_chars,
    )  # fmt: skip
    if mydb is None:
        mydb = MyDB(config.mydb_dir, config.mydb_quota_bytes)
    job_dir = config.results_dir / job.id
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / f"result.{EXTENSIONS.get(spec.fmt, 'vot')}"
    observer = TaskObserver(progress=progress, cancel=cancel)
    with observe(observer), atomic_write(path, "wb") as fh:
        rows, overflow = run_query(
            spec, q.registry, fh, cancel=cancel, column_meta=q.column_meta, mydb=mydb, user=job.owner,
            client=client, mydb_quota_bytes=q.mydb_quota_bytes,
        )  # fmt: skip
    return JobOutcome(str(path), spec.mime, path.stat().st_size, rows, overflow)


def make_executor(state: Any):
    """The ``execute(job, progress, cancel)`` the runner calls: the query, written to the job's dir.

    Without a Dask client and with ``config.job_processes`` (the default), the query runs in
    a worker process at ``config.job_nice`` (:func:`~proxcompute.service.job_process.run_in_worker`),
    so that a long job leaves the service's GIL and, first, its CPU to sync queries. With a
    client it runs from the runner's thread: its tasks run on the cluster's workers.
    """
    config = state.config

    def execute(job, progress, cancel) -> JobOutcome:
        registry, tables = state.registry_for(job.owner)
        q = JobQuery(job, registry, column_metadata(tables, job.parameters.get("QUERY") or ""), config,
                     state.quota_for(job.owner).mydb_bytes)  # fmt: skip
        if state.client is not None or not config.job_processes:
            return run_job_query(q, progress, cancel, mydb=state.mydb, client=state.client)
        try:
            return run_in_worker(run_job_query, q, progress, cancel, nice=config.job_nice,
                                 name=f"proxcompute-job-{job.id}")  # fmt: skip
        finally:
            table = table_name_from(job.parameters)
            if table is not None:  # the worker may have written (or begun) a MyDB table
                state.mydb.written_elsewhere(job.owner, table, aborted=cancel.is_set())

    return execute


def pick_queue(params: TapParams, state: Any, state_user: str | None = None) -> tuple[str, CostEstimate | None]:
    """The queue a job runs in, and its plan's estimated cost (None when it cannot be planned).

    The estimate is :func:`~proxcompute.execute.estimate_cost` of the job's query as a job
    runs it (observed partition tasks, the result written out) with the service's rates
    (``proxcompute serve --cost-rates``); a job estimated above ``long_queue_seconds`` goes
    to the ``long`` queue unless ``QUEUE`` says otherwise.
    """
    config = state.config
    asked = params.get("QUEUE")
    if asked is not None:
        if asked not in config.queues:
            raise TapRequestError(f"QUEUE={asked} is not a queue here; queues: {', '.join(sorted(config.queues))}")
    try:
        spec = parse_query_spec(params, default_maxrec=config.default_maxrec, hard_maxrec=config.hard_maxrec,
                                upload_limit=config.upload_limit_bytes,
                                max_query_chars=config.max_query_chars)  # fmt: skip
        result = compile_spec(spec, state.registry_for(state_user)[0])
        estimate = estimate_cost(result, rates=config.cost_rates, client=state.client, observed=True,
                                 write_result=True)  # fmt: skip
    except (ProxError, RecursionError):
        return asked or config.default_queue, None  # the job will fail with the message when it runs
    if asked is not None:
        return asked, estimate
    if estimate.seconds > config.long_queue_seconds and "long" in config.queues:
        return "long", estimate
    return config.default_queue, estimate
