"""The query editor: ADQL in a textarea, ``Run`` (waits, with a row limit) or ``Submit job`` (async).

Both buttons create a UWS job through :func:`~proxcompute.service.async_routes.submit_job`,
exactly as ``POST /async`` does, with ``RESPONSEFORMAT=parquet`` so that the result page can
read any page of rows; ``Run`` then waits for the job (up to the service's sync timeout) and
shows its result. The query is compiled first, so that a mistake is shown at once with the
line and column the compiler reported, next to the query.
"""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from proxcompute.errors import ProxError
from proxcompute.service.async_routes import submit_job
from proxcompute.service.errors import status_for
from proxcompute.service.examples import examples
from proxcompute.service.params import TapParams, TapRequestError
from proxcompute.service.portal.catalogs import readable_tables
from proxcompute.service.portal.web import Ctx, portal_page, render
from proxcompute.service.query import check_query_length, compile_spec, parse_query_spec
from proxcompute.service.uws import Job
from proxcompute.sql.parse import known_functions

__all__ = ["DEFAULT_ROW_LIMIT", "editor_page", "submit_query"]

DEFAULT_ROW_LIMIT = 1000
"""Rows ``Run`` returns unless the form asks for another limit."""

ADQL_KEYWORDS = (
    "SELECT", "TOP", "DISTINCT", "FROM", "WHERE", "AND", "OR", "NOT", "AS", "JOIN", "LEFT", "INNER", "ON",
    "USING", "GROUP BY", "HAVING", "ORDER BY", "ASC", "DESC", "OFFSET", "IN", "BETWEEN", "LIKE", "ILIKE",
    "IS NULL", "IS NOT NULL", "UNION", "INTERSECT", "EXCEPT", "WITH", "CASE", "WHEN", "THEN", "ELSE", "END",
    "TAP_UPLOAD", "'ICRS'",
)  # fmt: skip
"""Words the editor completes besides tables, columns and functions."""


def _completions(tables) -> dict:
    """What the editor completes: the tables this visitor may read with their columns, and ADQL's words.

    Only readable tables: completion shows no more than ``TAP_SCHEMA`` would.
    """
    return {
        "tables": {t.name: [c.name for c in t.columns] for t in tables},
        "words": [*ADQL_KEYWORDS, *known_functions()],
    }


UPLOAD_PART = "upload_file"
"""The form field of the table a visitor uploads, and its multipart part in the job."""


def _params(query: str, maxrec: int | None, table_name: str = "", upload: tuple[str, bytes] | None = None) -> TapParams:
    values = {"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": "parquet", "PHASE": "RUN"}
    if maxrec is not None:
        values["MAXREC"] = str(maxrec)
    if table_name.strip():
        values["TABLE_NAME"] = table_name.strip()
    parts = {}
    if upload is not None:  # TAP_UPLOAD.<name>, exactly as UPLOAD=name,param:part in POST /async
        name, data = upload
        values["UPLOAD"] = f"{name},param:{UPLOAD_PART}"
        parts[UPLOAD_PART] = data
    return TapParams(values=values, multi={k: [v] for k, v in values.items()}, parts=parts)


async def _uploaded(ctx: Ctx, form: dict[str, str]) -> tuple[str, bytes] | None:
    """The table file the form carries, as ``(TAP_UPLOAD name, bytes)``; None without one.

    Raises
    ------
    TapRequestError
        The file is larger than the service's upload limit.
    """
    file = (await ctx.request.form()).get(UPLOAD_PART)
    if file is None or isinstance(file, str) or not file.filename:
        return None
    limit = ctx.state.config.upload_limit_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise TapRequestError(f"the uploaded file {file.filename!r} is larger than the upload limit of {limit:,} bytes")
    name = form.get("upload_name", "").strip() or "mine"
    return name, data


def _row_limit(raw: str | None, hard: int) -> int:
    text = (raw or "").strip()
    if not text:
        return DEFAULT_ROW_LIMIT
    try:
        n = int(text)
    except ValueError:
        raise TapRequestError(f"the row limit {text!r} is not a whole number") from None
    if n < 1 or n > hard:
        raise TapRequestError(f"the row limit must be between 1 and {hard:,}; got {n:,}")
    return n


def _check_and_submit(
    ctx: Ctx, query: str, maxrec: int | None, table_name: str = "", upload: tuple[str, bytes] | None = None
) -> Job:
    state = ctx.state
    config = state.config
    check_query_length(query, config.max_query_chars)  # before the compiler sees it, as /sync does
    params = _params(query, maxrec, table_name, upload)
    spec = parse_query_spec(params, default_maxrec=config.default_maxrec, hard_maxrec=config.hard_maxrec,
                            upload_limit=config.upload_limit_bytes)  # fmt: skip
    compile_spec(spec, state.registry_for(ctx.user)[0])  # a mistake is reported now, with its position
    job = submit_job(state, ctx.user, params)
    if ctx.user is None:
        ctx.portal.sessions.add_job(ctx.session, job.id)
    return job


def _wait(ctx: Ctx, job: Job) -> Job:
    deadline = time.monotonic() + ctx.state.config.sync_timeout_seconds
    while job.is_active and time.monotonic() < deadline:
        job = ctx.state.store.wait_for_change(job.id, job.owner, job.phase, min(5.0, deadline - time.monotonic()))
    return job


def _editor(
    ctx: Ctx,
    query: str,
    row_limit: str,
    error: ProxError | None = None,
    status: int = 200,
    table_name: str = "",
    upload_name: str = "",
) -> Response:
    tables = readable_tables(ctx)
    shown = [{"id": eid, "title": title, "query": q} for eid, title, q, _t in examples(tables)]
    err = None
    if error is not None:
        line = getattr(error, "line", None)
        column = getattr(error, "column", None)
        err = {"message": str(error), "line": line, "column": column}
    return render(ctx, "query.html", status=status, query=query, row_limit=row_limit, examples=shown,
                  error=err, query_lines=query.splitlines() or [""], table_name=table_name,
                  upload_name=upload_name or "mine", tables=[t.name for t in tables],
                  completions=_completions(tables))  # fmt: skip


@portal_page
async def editor_page(request: Request, ctx: Ctx) -> Response:
    query = request.query_params.get("query", "")
    wanted = request.query_params.get("example")
    if wanted:
        for eid, _title, q, _t in examples(readable_tables(ctx)):
            if eid == wanted:
                query = q
    return _editor(ctx, query, str(DEFAULT_ROW_LIMIT))


@portal_page
async def submit_query(request: Request, ctx: Ctx) -> Response:
    form = await ctx.form()
    query = form.get("query", "")
    limit_text = form.get("row_limit", "")
    action = form.get("action", "run")
    try:
        if action == "run":
            maxrec = _row_limit(limit_text, ctx.state.config.hard_maxrec)
        else:
            maxrec = None if not limit_text.strip() else _row_limit(limit_text, ctx.state.config.hard_maxrec)
        upload = await _uploaded(ctx, form)
        job = await run_in_threadpool(_check_and_submit, ctx, query, maxrec, form.get("table_name", ""), upload)
    except ProxError as exc:
        return _editor(ctx, query, limit_text, exc, status_for(exc), form.get("table_name", ""),
                       form.get("upload_name", ""))  # fmt: skip
    if action == "run":
        await run_in_threadpool(_wait, ctx, job)
        return RedirectResponse(ctx.url(f"/jobs/{job.id}"), status_code=303)
    return RedirectResponse(ctx.url("/jobs"), status_code=303)
