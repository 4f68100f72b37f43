"""The TAP service as an ASGI app: ``create_app(ServiceConfig(...))``, served by uvicorn.

Routes under ``config.base_path`` (default ``/tap``): ``sync``, ``async`` (UWS 1.1,
:mod:`~proxcompute.service.async_routes`), ``capabilities``, ``availability``, ``tables``,
``tables/{name}``, ``examples``, ``mydb`` (list; ``mydb/{t}`` drop; ``mydb/{t}/share`` and
``mydb/{t}/unshare``) and an HTML landing page; the science-platform portal
(:mod:`~proxcompute.service.portal`) at ``/``. What a user sees everywhere is
``ServiceState.registry_for(user)`` (the access rules; see :mod:`~proxcompute.service.access`).
Handlers are module-level functions that find the service's
:class:`~proxcompute.service.state.ServiceState` on the
app; every error a client can cause is a VOTable error document with the message in the
INFO element's text (what pyvo shows) and a 4xx status
(:func:`~proxcompute.service.errors.handles_errors`).
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import tempfile
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from proxcompute import __version__
from proxcompute.service.async_routes import async_routes
from proxcompute.service.config import ServiceConfig
from proxcompute.service.errors import AuthError, error_response, handles_errors
from proxcompute.service.examples import examples_document
from proxcompute.service.mydb import bare_name
from proxcompute.service.params import TapRequestError, read_params
from proxcompute.service.portal import PortalState, portal_routes
from proxcompute.service.query import parse_query_spec, run_query
from proxcompute.service.state import XML, ServiceState, base_url, state_of
from proxcompute.service.vosi import (
    availability_document,
    capabilities_document,
    column_metadata,
    table_document,
    tables_document,
    tap_schema_self_description,
)

__all__ = ["AuthError", "ServiceState", "create_app", "error_response"]

log = logging.getLogger(__name__)
SERVER = f"proxcompute/{__version__} (IVOA TAP 1.1; UWS 1.1)"
SPOOL_BYTES = 64 << 20


class ServerHeader:
    """Pure ASGI middleware: a ``Server`` header naming the VO software (taplint W-CAP-SVRV)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                headers.append((b"server", SERVER.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_header)


def _tables_seen(request: Request) -> list:
    """Descriptions of the tables the request's user sees (a bad credential is a 401)."""
    state = state_of(request)
    return state.registry_for(state.user(request))[1]


@handles_errors
async def landing(request: Request) -> Response:
    base = base_url(request)
    seen = await run_in_threadpool(_tables_seen, request)
    rows = "".join(
        f"<tr><td><code>{html.escape(t.name)}</code></td><td>{html.escape(t.description)}</td>"
        f"<td>{len(t.columns)}</td></tr>"
        for t in seen
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'/><title>proxcompute TAP</title></head><body>"
        f"<h1>proxcompute TAP service</h1><p>TAP base URL: <code>{html.escape(base)}</code> "
        "(use it in pyvo, TOPCAT or STILTS). "
        f"<a href='{base}/capabilities'>capabilities</a> · <a href='{base}/tables'>tables</a> · "
        f"<a href='{base}/examples'>examples</a> · <a href='{base}/async'>jobs</a> · "
        f"<a href='{html.escape(request.app.state.portal.prefix)}/'>web portal</a></p>"
        f"<table border='1'><tr><th>table</th><th>description</th><th>columns</th></tr>{rows}</table>"
        "<pre>import pyvo\n"
        f"tap = pyvo.dal.TAPService({html.escape(repr(base))})\n"
        "tap.search(\"SELECT TOP 10 * FROM TAP_SCHEMA.tables\").to_table()</pre></body></html>"
    )
    return Response(page, media_type="text/html; charset=utf-8")


async def capabilities(request: Request) -> Response:
    config = state_of(request).config
    doc = capabilities_document(
        base_url(request),
        default_maxrec=config.default_maxrec,
        hard_maxrec=config.hard_maxrec,
        upload_limit=config.upload_limit_bytes,
        retention_seconds=config.retention_seconds,
        execution_duration=config.queues[config.default_queue],
        tokens=bool(config.tokens) or config.access_file is not None,
    )
    return Response(doc, media_type=XML)


def _describe_cluster(state: ServiceState) -> str:
    client = state.client
    info = client.scheduler_info()
    prefixes = client.run_on_scheduler(
        lambda dask_scheduler: sorted(p for p in dask_scheduler.task_prefixes if p.startswith("proxcompute"))
    )
    return (f"; queries run on cluster profile {state.config.cluster!r} at {info.get('address')} with "
            f"{len(info.get('workers', {}))} workers (task kinds run: {', '.join(prefixes) or 'none'})")  # fmt: skip


async def availability(request: Request) -> Response:
    state = state_of(request)
    note = "service is accepting queries"
    if state.client is not None:
        note += await run_in_threadpool(_describe_cluster, state)
    return Response(availability_document(note), media_type=XML)


@handles_errors
async def tables(request: Request) -> Response:
    return Response(tables_document(await run_in_threadpool(_tables_seen, request)), media_type=XML)


@handles_errors
async def one_table(request: Request) -> Response:
    name = request.path_params["name"]
    for t in await run_in_threadpool(_tables_seen, request) + tap_schema_self_description():
        if t.name.lower() == name.lower():
            return Response(table_document(t), media_type=XML)
    return PlainTextResponse(f"no table {name!r}", status_code=404)


@handles_errors
async def examples(request: Request) -> Response:
    seen = await run_in_threadpool(_tables_seen, request)
    return Response(examples_document(seen), media_type="application/xhtml+xml")


@handles_errors
async def sync(request: Request) -> Response:
    state = state_of(request)
    config = state.config
    user = state.user(request)
    registry, tables_seen = await run_in_threadpool(state.registry_for, user)
    params = await read_params(request, upload_limit_bytes=config.upload_limit_bytes)
    spec = await run_in_threadpool(
        parse_query_spec,
        params,
        default_maxrec=config.default_maxrec,
        hard_maxrec=config.hard_maxrec,
        upload_limit=config.upload_limit_bytes,
        max_query_chars=config.max_query_chars,
    )
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=config.results_dir)
    try:
        meta = column_metadata(tables_seen, spec.query)
        await run_in_threadpool(
            lambda: run_query(spec, registry, spool, column_meta=meta, mydb=state.mydb, user=user, client=state.client,
                              mydb_quota_bytes=state.quota_for(user).mydb_bytes)
        )
    except BaseException:
        spool.close()
        raise
    size = spool.tell()
    spool.seek(0)

    def chunks():
        try:
            while block := spool.read(1 << 20):
                yield block
        finally:
            spool.close()

    return StreamingResponse(chunks(), media_type=spec.mime, headers={"content-length": str(size)})


@handles_errors
async def mydb_list(request: Request) -> Response:
    state = state_of(request)
    user = state.user(request)
    shares = state.shares_of(user)
    body = [{"name": f"mydb.{n}", "bytes": size, "shared_with": sorted(shares.get(n, ()))}
            for n, size in state.mydb.sizes(user).items()]  # fmt: skip
    return Response(json.dumps(body), media_type="application/json")


async def _share_target(request: Request, state: ServiceState) -> str:
    """The ``with`` of a share request: JSON ``{"with": ...}`` or a form/query field ``with``."""
    if "json" in request.headers.get("content-type", ""):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            raise TapRequestError(f"the request body is not JSON: {exc}") from None
        target = body.get("with") if isinstance(body, dict) else None
    else:
        params = await read_params(request, upload_limit_bytes=state.config.upload_limit_bytes)
        target = params.get("with") or params.get("WITH")
    if not isinstance(target, str) or not target:
        raise TapRequestError('say whom to share with: {"with": "group:NAME"} or {"with": "authenticated"}')
    return target


@handles_errors
async def mydb_share(request: Request) -> Response:
    """POST ``mydb/{name}/share`` or ``mydb/{name}/unshare`` with ``{"with": "group:NAME" | "authenticated"}``."""
    state = state_of(request)
    user = state.user(request)
    if user is None:
        raise AuthError("sharing MyDB tables needs a signed-in user")
    target = await _share_target(request, state)
    name = request.path_params["name"]
    action = state.share if request.url.path.endswith("/share") else state.unshare
    await run_in_threadpool(action, user, name, target)
    bare = bare_name(name)
    body = {"name": f"mydb.{bare}", "shared_with": sorted(state.shares_of(user).get(bare, ()))}
    return Response(json.dumps(body), media_type="application/json")


@handles_errors
async def mydb_drop(request: Request) -> Response:
    state = state_of(request)
    user = state.user(request)
    if request.method == "POST":
        params = await read_params(request, upload_limit_bytes=state.config.upload_limit_bytes)
        if (params.get("ACTION") or "").upper() != "DELETE":
            raise TapRequestError("POST to a MyDB table takes ACTION=DELETE")
    await run_in_threadpool(state.mydb.drop, user, request.path_params["name"])
    return Response(status_code=204)


def tap_routes(base_path: str) -> list[Route]:
    """Every route of the service under ``base_path``."""
    return [
        Route(base_path, landing),
        Route(base_path + "/", landing),
        Route(base_path + "/sync", sync, methods=["GET", "POST"]),
        Route(base_path + "/capabilities", capabilities),
        Route(base_path + "/availability", availability),
        Route(base_path + "/tables", tables),
        Route(base_path + "/tables/{name}", one_table),
        Route(base_path + "/examples", examples),
        Route(base_path + "/mydb", mydb_list, methods=["GET"]),
        Route(base_path + "/mydb/{name}", mydb_drop, methods=["DELETE", "POST"]),
        Route(base_path + "/mydb/{name}/share", mydb_share, methods=["POST"]),
        Route(base_path + "/mydb/{name}/unshare", mydb_share, methods=["POST"]),
        *async_routes(base_path),
    ]


def create_app(config: ServiceConfig, *, client: Any = None) -> Starlette:
    """The ASGI application for ``config`` (jobs run on background threads of this process).

    Parameters
    ----------
    config : ServiceConfig
        Catalog root, job store, limits.
    client : distributed.Client, optional
        Queries run on this Dask client's workers (``proxcompute serve --cluster PROFILE``
        starts the profile's cluster and hands its client here; the service never starts
        clusters itself). None: queries run in this process.
    """
    state = ServiceState(config, client=client)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if state.client is not None:
            log.warning("queries run on cluster profile %r: %s", config.cluster, state.client)
        try:
            yield
        finally:
            state.close()

    routes = [*tap_routes(config.base_path), *portal_routes()]  # the portal at /
    app = Starlette(routes=routes, middleware=[Middleware(ServerHeader)], lifespan=lifespan)
    app.state.tap = state
    app.state.portal = PortalState(state)
    return app
