"""The job list and a job's page: phase, progress, times, Abort and Delete, the result and downloads.

A signed-in user sees the jobs the job store keeps under their name (also those submitted
with their bearer token by pyvo or TOPCAT); an anonymous visitor only the jobs their own
session submitted (anonymous jobs share one owner in the store).
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from proxcompute.execute.progress import rows_rate_text
from proxcompute.formats import MEDIA_TYPES, SUFFIX_FORMATS
from proxcompute.service.jobs import JobNotFound, utcnow
from proxcompute.service.portal.results import PAGE_ROWS, read_page, sky_plot, write_result
from proxcompute.service.portal.web import Ctx, portal_page, render
from proxcompute.service.query import position_columns
from proxcompute.service.spool import spooled_response
from proxcompute.service.uws import Job
from proxcompute.service.vosi import column_metadata

__all__ = ["abort_job", "delete_job", "download", "job_page", "job_sky", "job_status", "jobs_page", "own_jobs"]

DOWNLOADS = {fmt: next(end for end, f in SUFFIX_FORMATS.items() if f == fmt) for fmt in ("votable", "csv", "parquet")}
"""Download formats and the file-name ending of each (the first ``SUFFIX_FORMATS`` gives it)."""
POSITION = re.compile(r"at line (\d+), column (\d+)")
JOBS_PER_PAGE = 50
"""Jobs on one page of the job list."""


def own_jobs(ctx: Ctx, page: int = 0) -> tuple[list[Job], bool]:
    """A page of the jobs this visitor may see, newest first, and whether older ones follow.

    A page holds :data:`JOBS_PER_PAGE` jobs; the store is asked only for the jobs up to the
    end of the page (UWS ``LAST``), so a long history costs nothing on the first pages.
    """
    store = ctx.state.store
    start, stop = page * JOBS_PER_PAGE, (page + 1) * JOBS_PER_PAGE
    if ctx.user is not None:
        jobs = store.list(ctx.user, last=stop + 1)  # most recent first
    else:
        jobs = []
        for job_id in list(ctx.session.job_ids):
            try:
                jobs.append(store.get(job_id, None))
            except JobNotFound:
                ctx.portal.sessions.forget_job(ctx.session, job_id)
        jobs.sort(key=lambda j: j.creation_time, reverse=True)
    return jobs[start:stop], len(jobs) > stop


def own_job(ctx: Ctx, job_id: str) -> Job:
    """One of this visitor's jobs; anyone else's (or none) is the same :class:`JobNotFound`."""
    if ctx.user is None and job_id not in ctx.session.job_ids:
        raise JobNotFound(job_id)
    return ctx.state.store.get(job_id, ctx.user)


def run_seconds(job: Job) -> float | None:
    """Seconds the job has run (so far, while it runs)."""
    if job.start_time is None:
        return None
    return ((job.end_time or utcnow()) - job.start_time).total_seconds()


def _pace_text(job: Job) -> str:
    """``"12.3M rows/s, ~41 s left"`` while the job runs (see :meth:`Job.progress_rates`), else empty."""
    rate, left = job.progress_rates()
    parts = [rows_rate_text(round(rate), 1.0)] if rate else []
    if left is not None:
        parts.append(f"~{left:.0f} s left")
    return ", ".join(parts)


def job_view(job: Job) -> dict:
    """What the templates and the status JSON show of a job."""
    pos = POSITION.search(job.error_message or "")
    return {
        "id": job.id,
        "phase": job.phase,
        "query": job.parameters.get("QUERY", ""),
        "done": job.progress_done,
        "total": job.progress_total,
        "pace": _pace_text(job),
        "created": job.creation_time.strftime("%Y-%m-%d %H:%M:%S"),
        "started": job.start_time.strftime("%Y-%m-%d %H:%M:%S") if job.start_time else "",
        "run_seconds": run_seconds(job),
        "rows": job.result_rows,
        "overflow": job.overflow,
        "error": job.error_message,
        "error_line": int(pos.group(1)) if pos else None,
        "error_column": int(pos.group(2)) if pos else None,
        "active": job.is_active,
    }


def _page_number(request: Request) -> int:
    """``?page=N`` (0 for a missing, negative or non-numeric value)."""
    try:
        return max(int(request.query_params.get("page", "0")), 0)
    except ValueError:
        return 0


@portal_page
async def jobs_page(request: Request, ctx: Ctx) -> Response:
    page = _page_number(request)
    jobs, more = await run_in_threadpool(own_jobs, ctx, page)
    return render(ctx, "jobs.html", jobs=[job_view(j) for j in jobs], page=page, more=more)


@portal_page
async def job_status(request: Request, ctx: Ctx) -> Response:
    """A job's phase and progress as JSON (the job page polls it while the job runs)."""
    job = await run_in_threadpool(own_job, ctx, request.path_params["job_id"])
    view = job_view(job)
    return JSONResponse({k: view[k] for k in ("phase", "done", "total", "pace", "run_seconds", "rows", "active")})


@portal_page
async def job_page(request: Request, ctx: Ctx) -> Response:
    job = await run_in_threadpool(own_job, ctx, request.path_params["job_id"])
    page = _page_number(request)
    result, has_sky = None, False
    if job.phase == "COMPLETED":
        result = await run_in_threadpool(read_page, job, page)
        has_sky = None not in position_columns(result.columns)
    view = job_view(job)
    lines = view["query"].splitlines() or [""]
    return render(ctx, "job.html", job=view, result=result, page=page, page_rows=PAGE_ROWS,
                  query_lines=lines, downloads=list(DOWNLOADS), has_sky=has_sky)  # fmt: skip


@portal_page
async def abort_job(request: Request, ctx: Ctx) -> Response:
    await ctx.form()
    job = await run_in_threadpool(own_job, ctx, request.path_params["job_id"])
    await run_in_threadpool(ctx.state.runner.abort, job.id, job.owner)
    return RedirectResponse(ctx.url(f"/jobs/{job.id}"), status_code=303)


@portal_page
async def delete_job(request: Request, ctx: Ctx) -> Response:
    await ctx.form()
    job = await run_in_threadpool(own_job, ctx, request.path_params["job_id"])
    await run_in_threadpool(ctx.state.runner.delete, job.id, job.owner)
    await run_in_threadpool(ctx.portal.sessions.forget_job, ctx.session, job.id)
    return RedirectResponse(ctx.url("/jobs"), status_code=303)


@portal_page
async def download(request: Request, ctx: Ctx) -> Response:
    fmt = request.path_params["fmt"]
    if fmt not in DOWNLOADS:
        raise JobNotFound(f"{request.path_params['job_id']}/{fmt}")
    job = await run_in_threadpool(own_job, ctx, request.path_params["job_id"])
    name = f"job-{job.id}{DOWNLOADS[fmt]}"
    headers = {"content-disposition": f'attachment; filename="{name}"'}
    tables = ctx.state.registry_for(ctx.user)[1]
    meta = column_metadata(tables, job.parameters.get("QUERY", ""))
    return await spooled_response(
        lambda spool: write_result(job, fmt, spool, meta),
        directory=ctx.state.config.results_dir, media_type=MEDIA_TYPES[fmt], headers=headers,
    )  # fmt: skip


@portal_page
async def job_sky(request: Request, ctx: Ctx) -> Response:
    job = await run_in_threadpool(own_job, ctx, request.path_params["job_id"])
    path = await run_in_threadpool(sky_plot, job, ctx.state.config.results_dir)
    if path is None:
        raise JobNotFound(f"{job.id}: the result has no positions to plot")
    return FileResponse(path, media_type="image/png", headers={"cache-control": "private, max-age=300"})
