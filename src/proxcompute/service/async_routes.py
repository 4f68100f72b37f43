"""UWS 1.1 routes under ``/async``: create, list, inspect, run, abort, delete jobs; fetch results.

Jobs live in the :class:`~proxcompute.service.jobs.JobStore` (one source of truth for
phases) and run on the :class:`~proxcompute.service.job_runner.JobRunner`'s queues. The job's
query runs exactly as a sync query does (:func:`~proxcompute.service.query.run_query`), with
its partition tasks observed: ``jobInfo`` shows partitions done / total and ABORT cancels
the remaining tasks.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from proxcompute.errors import ProxError
from proxcompute.execute import TaskObserver, observe
from proxcompute.service.job_runner import JobRunner
from proxcompute.service.jobs import (
    JobNotFound,
    JobOutcome,
    JobStore,
    PhaseError,
    parse_uws_time,
    utcnow,
    uws_time,
)
from proxcompute.service.params import TapParams, TapRequestError, read_params
from proxcompute.service.query import compile_spec, parse_query_spec, run_query
from proxcompute.service.uws_xml import job_document, job_list, parameters_document, results_document
from proxcompute.service.vosi import column_metadata
from proxcompute.storage.atomic import atomic_write

__all__ = ["async_routes", "make_executor"]

log = logging.getLogger(__name__)
XML = "text/xml; charset=utf-8"
WAIT_CAP_SECONDS = 10.0
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
            upload_limit=config.upload_limit_bytes,
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
            )  # fmt: skip
        return JobOutcome(str(path), spec.mime, path.stat().st_size, rows, overflow)

    return execute


SCAN_ROWS_PER_SECOND = 50_000_000
"""Cost model of the quote: rows read per second (partition scan + kernels, 2 cores)."""


def _pick_queue(params: TapParams, state: Any, state_user: str | None = None) -> tuple[str, float | None]:
    """The queue a job runs in, and the rows its plan reads (None when it cannot be planned)."""
    config = state.config
    asked = params.get("QUEUE")
    if asked is not None:
        if asked not in config.queues:
            raise TapRequestError(f"QUEUE={asked} is not a queue here; queues: {', '.join(sorted(config.queues))}")
    try:  # the plan's cost: rows of the partitions it reads
        spec = parse_query_spec(params, default_maxrec=config.default_maxrec, hard_maxrec=config.hard_maxrec,
                                upload_limit=config.upload_limit_bytes)  # fmt: skip
        result = compile_spec(spec, state.registry_for(state_user)[0])
    except ProxError:
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
            for c in result._plan.gather.values()
        )
    if asked is not None:
        return asked, estimate
    if estimate > LONG_QUEUE_ROWS and "long" in config.queues:
        return "long", estimate
    return config.default_queue, estimate


def async_routes(state: Any) -> list[Route]:
    """The UWS routes of the service (they also start the job runner)."""
    from proxcompute.service.app import AuthError, base_url, error_response

    config = state.config
    store = JobStore(config.db_url)
    runner = JobRunner(
        store, make_executor(state), queues=dict(config.queues), results_dir=config.results_dir,
    )  # fmt: skip
    state.store, state.runner = store, runner

    def job_url(request: Request, job_id: str) -> str:
        return f"{base_url(request, state)}/async/{job_id}"

    def see_job(request: Request, job_id: str) -> Response:
        return RedirectResponse(job_url(request, job_id), status_code=303)

    def fail(exc: Exception) -> Response:
        if isinstance(exc, JobNotFound):
            return error_response(str(exc), 404)
        if isinstance(exc, AuthError):
            return error_response(str(exc), 401)
        if isinstance(exc, (PhaseError, ProxError)):
            return error_response(str(exc), 400)
        log.exception("UWS request failed")
        return error_response(f"internal error: {type(exc).__name__}: {exc}", 500)

    async def create(request: Request) -> Response:
        try:
            owner = state.user(request)
            params = await read_params(request, upload_limit_bytes=config.upload_limit_bytes)
            if store.active_count(owner) >= config.max_active_jobs:
                return error_response(
                    f"quota: {config.max_active_jobs} active jobs at most; wait for some to finish or abort them",
                    403,
                )
            queue, rows_to_read = await run_in_threadpool(_pick_queue, params, state, owner)
            quote = None
            if rows_to_read is not None:  # the cost is known before the job runs
                quote = utcnow() + timedelta(seconds=0.5 + rows_to_read / SCAN_ROWS_PER_SECOND)
            values = {k: v for k, v in params.values.items() if k not in ("PHASE",)}
            if params.all("UPLOAD"):
                values["UPLOAD"] = ";".join(params.all("UPLOAD"))
            job = store.create(
                owner, values, queue=queue, execution_duration=config.queues[queue],
                destruction=utcnow() + timedelta(seconds=config.retention_seconds), quote=quote,
            )  # fmt: skip
            if params.parts:  # inline uploads live in the job's directory (removed with it)
                staging = config.results_dir / job.id / "uploads"
                staging.mkdir(parents=True, exist_ok=True)
                saved: dict[str, str] = {}
                for name, data in params.parts.items():
                    target = staging / f"part-{len(saved)}"
                    target.write_bytes(data)
                    saved[name] = str(target)
                store.set_parameters(job.id, owner, {}, uploads=saved)
            if (params.get("PHASE") or "").upper() == "RUN":
                runner.run(job.id, owner)
        except Exception as exc:
            return fail(exc)
        return see_job(request, job.id)

    async def listing(request: Request) -> Response:
        try:
            owner = state.user(request)
            phases = [p.upper() for p in request.query_params.getlist("PHASE") + request.query_params.getlist("phase")]
            after = request.query_params.get("AFTER") or request.query_params.get("after")
            last = request.query_params.get("LAST") or request.query_params.get("last")
            jobs = store.list(
                owner, phases=phases or None, after=parse_uws_time(after) if after else None,
                last=int(last) if last else None,
            )  # fmt: skip
        except ValueError as exc:
            return error_response(f"bad job list filter: {exc}", 400)
        except Exception as exc:
            return fail(exc)
        return Response(job_list(jobs, f"{base_url(request, state)}/async"), media_type=XML)

    async def job(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            owner = state.user(request)
            current = store.get(job_id, owner)
            wait = request.query_params.get("WAIT") or request.query_params.get("wait")
            if wait is not None and current.is_active:
                seconds = float(wait)
                timeout = WAIT_CAP_SECONDS if seconds < 0 else min(seconds, WAIT_CAP_SECONDS)
                only = request.query_params.get("PHASE") or request.query_params.get("phase")
                if only is None or only.upper() == current.phase:
                    current = await run_in_threadpool(store.wait_for_change, job_id, owner, current.phase, timeout)
        except ValueError as exc:
            return error_response(f"WAIT must be a number of seconds: {exc}", 400)
        except Exception as exc:
            return fail(exc)
        return Response(job_document(current, job_url(request, job_id)), media_type=XML)

    async def job_post(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            owner = state.user(request)
            params = await read_params(request, upload_limit_bytes=config.upload_limit_bytes)
            action = (params.get("ACTION") or "").upper()
            if action != "DELETE":
                store.get(job_id, owner)
                return error_response("POST to a job takes ACTION=DELETE", 400)
            runner.delete(job_id, owner)
        except Exception as exc:
            return fail(exc)
        return RedirectResponse(f"{base_url(request, state)}/async", status_code=303)

    async def job_delete(request: Request) -> Response:
        try:
            runner.delete(request.path_params["job_id"], state.user(request))
        except Exception as exc:
            return fail(exc)
        return RedirectResponse(f"{base_url(request, state)}/async", status_code=303)

    def text(value: str) -> Response:
        return PlainTextResponse(value, media_type="text/plain; charset=utf-8")

    async def phase(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            owner = state.user(request)
            if request.method == "GET":
                return text(store.get(job_id, owner).phase)
            params = await read_params(request, upload_limit_bytes=config.upload_limit_bytes)
            wanted = (params.get("PHASE") or "").upper()
            if wanted == "RUN":
                runner.run(job_id, owner)
            elif wanted == "ABORT":
                runner.abort(job_id, owner)
            else:
                store.get(job_id, owner)
                return error_response(f"PHASE={params.get('PHASE')!r}: use PHASE=RUN or PHASE=ABORT", 400)
        except Exception as exc:
            return fail(exc)
        return see_job(request, job_id)

    def simple_get(field: str):
        async def handler(request: Request) -> Response:
            try:
                j = store.get(request.path_params["job_id"], state.user(request))
            except Exception as exc:
                return fail(exc)
            if field == "quote":
                return text(uws_time(j.quote) if j.quote else "")
            if field == "owner":
                return text(j.owner or "")
            if field == "executionduration":
                return text(str(j.execution_duration))
            return text(uws_time(j.destruction) if j.destruction else "")

        return handler

    async def set_field(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        field = request.url.path.rsplit("/", 1)[-1]
        try:
            owner = state.user(request)
            params = await read_params(request, upload_limit_bytes=config.upload_limit_bytes)
            name, parse, setter, what = {
                "executionduration": ("EXECUTIONDURATION", int, store.set_execution_duration, "a whole number of seconds"),
                "destruction": ("DESTRUCTION", parse_uws_time, store.set_destruction, "an ISO-8601 time"),
            }[field]  # fmt: skip
            value = params.get(name)
            if value is None:
                raise TapRequestError(f"{name} is missing")
            try:
                parsed = parse(value)
            except ValueError:
                raise TapRequestError(f"{name}={value!r} is not {what}") from None
            setter(job_id, owner, parsed)
        except Exception as exc:
            return fail(exc)
        return see_job(request, job_id)

    async def parameters(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            owner = state.user(request)
            if request.method == "GET":
                return Response(parameters_document(store.get(job_id, owner)), media_type=XML)
            params = await read_params(request, upload_limit_bytes=config.upload_limit_bytes)
            values = dict(params.values)
            if params.all("UPLOAD"):
                values["UPLOAD"] = ";".join(params.all("UPLOAD"))
            if params.parts:
                raise TapRequestError("uploads are accepted when a job is created, not added later")
            store.set_parameters(job_id, owner, values)
        except Exception as exc:
            return fail(exc)
        return see_job(request, job_id)

    async def results(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            j = store.get(job_id, state.user(request))
        except Exception as exc:
            return fail(exc)
        return Response(results_document(j, job_url(request, job_id)), media_type=XML)

    async def result(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            j = store.get(job_id, state.user(request))
        except Exception as exc:
            return fail(exc)
        if j.phase != "COMPLETED" or not j.result_path or not os.path.exists(j.result_path):
            return error_response(f"job {job_id} has no result (phase {j.phase})", 404)
        return FileResponse(j.result_path, media_type=j.result_mime or "application/octet-stream")

    async def error(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            j = store.get(job_id, state.user(request))
        except Exception as exc:
            return fail(exc)
        if j.phase != "ERROR":
            return PlainTextResponse(f"job {job_id} did not fail (phase {j.phase})", status_code=404)
        return error_response(j.error_message or "the job failed", 200)

    base = config.base_path + "/async"
    return [
        Route(base, create, methods=["POST"]),
        Route(base, listing, methods=["GET"]),
        Route(base + "/{job_id}", job, methods=["GET"]),
        Route(base + "/{job_id}", job_post, methods=["POST"]),
        Route(base + "/{job_id}", job_delete, methods=["DELETE"]),
        Route(base + "/{job_id}/phase", phase, methods=["GET", "POST"]),
        Route(base + "/{job_id}/quote", simple_get("quote"), methods=["GET"]),
        Route(base + "/{job_id}/owner", simple_get("owner"), methods=["GET"]),
        Route(base + "/{job_id}/executionduration", simple_get("executionduration"), methods=["GET"]),
        Route(base + "/{job_id}/executionduration", set_field, methods=["POST"]),
        Route(base + "/{job_id}/destruction", simple_get("destruction"), methods=["GET"]),
        Route(base + "/{job_id}/destruction", set_field, methods=["POST"]),
        Route(base + "/{job_id}/parameters", parameters, methods=["GET", "POST"]),
        Route(base + "/{job_id}/results", results, methods=["GET"]),
        Route(base + "/{job_id}/results/result", result, methods=["GET"]),
        Route(base + "/{job_id}/error", error, methods=["GET"]),
    ]

