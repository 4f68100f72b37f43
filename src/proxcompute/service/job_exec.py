"""How a UWS job runs: the executor the job runner calls, and the queue (and quote) a new job gets.

The job's query runs exactly as a sync query does (:func:`~proxcompute.service.query.run_query`),
with its partition tasks observed: ``jobInfo`` shows partitions done / total and ABORT cancels
the remaining tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from proxcompute.errors import ProxError
from proxcompute.execute import CostEstimate, TaskObserver, estimate_cost, observe
from proxcompute.service.jobs import JobOutcome
from proxcompute.service.params import TapParams, TapRequestError
from proxcompute.service.query import compile_spec, parse_query_spec, run_query
from proxcompute.service.vosi import column_metadata
from proxcompute.storage.atomic import atomic_write

__all__ = ["make_executor", "pick_queue"]

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
