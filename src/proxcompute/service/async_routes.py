"""UWS 1.1 routes under ``/async``: create, list, inspect, run, abort, delete jobs; fetch results.

Jobs live in the :class:`~proxcompute.service.jobs.JobStore` (one source of truth for
phases) and run on the :class:`~proxcompute.service.job_runner.JobRunner`'s queues (both
held by the :class:`~proxcompute.service.state.ServiceState`); how a job's query runs is
:mod:`proxcompute.service.job_exec`. Every handler is a module-level function wrapped by
:func:`~proxcompute.service.errors.handles_errors`, the one error mapping.
"""

from __future__ import annotations

import os
from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from proxcompute.service.errors import QuotaError, error_response, handles_errors
from proxcompute.service.job_exec import pick_queue
from proxcompute.service.jobs import parse_uws_time, utcnow, uws_time
from proxcompute.service.params import TapParams, TapRequestError, read_params
from proxcompute.service.query import check_query_length
from proxcompute.service.state import XML, ServiceState, base_url, state_of
from proxcompute.service.uws import Job
from proxcompute.service.uws_xml import job_document, job_list, parameters_document, results_document

__all__ = ["async_routes", "submit_job"]

WAIT_CAP_SECONDS = 10.0


def _job_url(request: Request, job_id: str) -> str:
    return f"{base_url(request)}/async/{job_id}"


def _see_job(request: Request, job_id: str) -> Response:
    return RedirectResponse(_job_url(request, job_id), status_code=303)


def _text(value: str) -> Response:
    return PlainTextResponse(value, media_type="text/plain; charset=utf-8")


def _query_param(request: Request, name: str) -> str | None:
    """A UWS query parameter (names are case-insensitive: ``WAIT`` or ``wait``)."""
    return request.query_params.get(name) or request.query_params.get(name.lower())


async def _params(request: Request, state: ServiceState):
    return await read_params(request, upload_limit_bytes=state.config.upload_limit_bytes)


def submit_job(state: ServiceState, owner: str | None, params: TapParams) -> Job:
    """Create a job from TAP parameters (and run it when ``PHASE=RUN``): what ``POST /async`` does.

    The one place a job is created, for the UWS route and the portal's query editor alike:
    the active-job quota, the queue and quote from the plan's cost, inline uploads kept in
    the job's directory.

    Raises
    ------
    QuotaError
        The owner already has as many active jobs as their quota allows.
    """
    config, store = state.config, state.store
    check_query_length(params.get("QUERY"), config.max_query_chars)
    allowed = state.quota_for(owner).active_jobs
    if store.active_count(owner) >= allowed:
        raise QuotaError(
            f"quota (active_jobs): {allowed} active jobs at most; wait for some to finish or abort them"
        )
    queue, estimate = pick_queue(params, state, owner)
    quote = None
    if estimate is not None:  # the cost model's estimate, known before the job runs
        quote = utcnow() + timedelta(seconds=estimate.seconds)
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
        job = store.set_parameters(job.id, owner, {}, uploads=saved)
    if (params.get("PHASE") or "").upper() == "RUN":
        job = state.runner.run(job.id, owner)
    return job


@handles_errors
async def create(request: Request) -> Response:
    state = state_of(request)
    owner = state.user(request)
    params = await _params(request, state)
    job = await run_in_threadpool(submit_job, state, owner, params)
    return _see_job(request, job.id)


@handles_errors
async def listing(request: Request) -> Response:
    state = state_of(request)
    owner = state.user(request)
    phases = [p.upper() for p in request.query_params.getlist("PHASE") + request.query_params.getlist("phase")]
    after, last = _query_param(request, "AFTER"), _query_param(request, "LAST")
    try:
        after_time = parse_uws_time(after) if after else None
        last_n = int(last) if last else None
    except ValueError as exc:
        raise TapRequestError(f"bad job list filter: {exc}") from None
    jobs = state.store.list(owner, phases=phases or None, after=after_time, last=last_n)
    return Response(job_list(jobs, f"{base_url(request)}/async"), media_type=XML)


@handles_errors
async def job(request: Request) -> Response:
    state = state_of(request)
    job_id = request.path_params["job_id"]
    owner = state.user(request)
    current = state.store.get(job_id, owner)
    wait = _query_param(request, "WAIT")
    if wait is not None and current.is_active:
        try:
            seconds = float(wait)
        except ValueError as exc:
            raise TapRequestError(f"WAIT must be a number of seconds: {exc}") from None
        timeout = WAIT_CAP_SECONDS if seconds < 0 else min(seconds, WAIT_CAP_SECONDS)
        only = _query_param(request, "PHASE")
        if only is None or only.upper() == current.phase:
            current = await run_in_threadpool(state.store.wait_for_change, job_id, owner, current.phase, timeout)
    return Response(job_document(current, _job_url(request, job_id)), media_type=XML)


@handles_errors
async def job_post(request: Request) -> Response:
    state = state_of(request)
    job_id = request.path_params["job_id"]
    owner = state.user(request)
    params = await _params(request, state)
    if (params.get("ACTION") or "").upper() != "DELETE":
        state.store.get(job_id, owner)  # an unknown job is a 404 first
        raise TapRequestError("POST to a job takes ACTION=DELETE")
    state.runner.delete(job_id, owner)
    return RedirectResponse(f"{base_url(request)}/async", status_code=303)


@handles_errors
async def job_delete(request: Request) -> Response:
    state = state_of(request)
    state.runner.delete(request.path_params["job_id"], state.user(request))
    return RedirectResponse(f"{base_url(request)}/async", status_code=303)


@handles_errors
async def phase(request: Request) -> Response:
    state = state_of(request)
    job_id = request.path_params["job_id"]
    owner = state.user(request)
    if request.method == "GET":
        return _text(state.store.get(job_id, owner).phase)
    params = await _params(request, state)
    wanted = (params.get("PHASE") or "").upper()
    if wanted == "RUN":
        state.runner.run(job_id, owner)
    elif wanted == "ABORT":
        state.runner.abort(job_id, owner)
    else:
        state.store.get(job_id, owner)
        raise TapRequestError(f"PHASE={params.get('PHASE')!r}: use PHASE=RUN or PHASE=ABORT")
    return _see_job(request, job_id)


@handles_errors
async def job_field(request: Request) -> Response:
    """GET quote, owner, executionduration or destruction (the last path element)."""
    state = state_of(request)
    j = state.store.get(request.path_params["job_id"], state.user(request))
    field = request.url.path.rsplit("/", 1)[-1]
    if field == "quote":
        return _text(uws_time(j.quote) if j.quote else "")
    if field == "owner":
        return _text(j.owner or "")
    if field == "executionduration":
        return _text(str(j.execution_duration))
    return _text(uws_time(j.destruction) if j.destruction else "")


@handles_errors
async def set_field(request: Request) -> Response:
    """POST executionduration or destruction."""
    state = state_of(request)
    job_id = request.path_params["job_id"]
    field = request.url.path.rsplit("/", 1)[-1]
    owner = state.user(request)
    params = await _params(request, state)
    store = state.store
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
    return _see_job(request, job_id)


@handles_errors
async def parameters(request: Request) -> Response:
    state = state_of(request)
    job_id = request.path_params["job_id"]
    owner = state.user(request)
    if request.method == "GET":
        return Response(parameters_document(state.store.get(job_id, owner)), media_type=XML)
    params = await _params(request, state)
    values = dict(params.values)
    if params.all("UPLOAD"):
        values["UPLOAD"] = ";".join(params.all("UPLOAD"))
    if params.parts:
        raise TapRequestError("uploads are accepted when a job is created, not added later")
    check_query_length(params.get("QUERY"), state.config.max_query_chars)
    state.store.set_parameters(job_id, owner, values)
    return _see_job(request, job_id)


@handles_errors
async def results(request: Request) -> Response:
    state = state_of(request)
    job_id = request.path_params["job_id"]
    j = state.store.get(job_id, state.user(request))
    return Response(results_document(j, _job_url(request, job_id)), media_type=XML)


@handles_errors
async def result(request: Request) -> Response:
    state = state_of(request)
    job_id = request.path_params["job_id"]
    j = state.store.get(job_id, state.user(request))
    if j.phase != "COMPLETED" or not j.result_path or not os.path.exists(j.result_path):
        return error_response(f"job {job_id} has no result (phase {j.phase})", 404)
    return FileResponse(j.result_path, media_type=j.result_mime or "application/octet-stream")


@handles_errors
async def error(request: Request) -> Response:
    state = state_of(request)
    job_id = request.path_params["job_id"]
    j = state.store.get(job_id, state.user(request))
    if j.phase != "ERROR":
        return PlainTextResponse(f"job {job_id} did not fail (phase {j.phase})", status_code=404)
    return error_response(j.error_message or "the job failed", 200)


def async_routes(base_path: str) -> list[Route]:
    """The UWS routes under ``base_path + "/async"``."""
    base = base_path + "/async"
    job_path = base + "/{job_id}"
    return [
        Route(base, create, methods=["POST"]),
        Route(base, listing, methods=["GET"]),
        Route(job_path, job, methods=["GET"]),
        Route(job_path, job_post, methods=["POST"]),
        Route(job_path, job_delete, methods=["DELETE"]),
        Route(job_path + "/phase", phase, methods=["GET", "POST"]),
        Route(job_path + "/quote", job_field, methods=["GET"]),
        Route(job_path + "/owner", job_field, methods=["GET"]),
        Route(job_path + "/executionduration", job_field, methods=["GET"]),
        Route(job_path + "/executionduration", set_field, methods=["POST"]),
        Route(job_path + "/destruction", job_field, methods=["GET"]),
        Route(job_path + "/destruction", set_field, methods=["POST"]),
        Route(job_path + "/parameters", parameters, methods=["GET", "POST"]),
        Route(job_path + "/results", results, methods=["GET"]),
        Route(job_path + "/results/result", result, methods=["GET"]),
        Route(job_path + "/error", error, methods=["GET"]),
    ]
