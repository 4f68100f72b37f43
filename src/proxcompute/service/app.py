"""The TAP service as an ASGI app: ``create_app(ServiceConfig(...))``, served by uvicorn.

Routes under ``config.base_path`` (default ``/tap``): ``sync``, ``async`` (UWS 1.1),
``capabilities``, ``availability``, ``tables``, ``tables/{name}``, ``examples`` and an HTML
landing page. Every error a client can cause is a VOTable error document with the message in
the INFO element's text (what pyvo shows) and the right HTTP status.
"""

from __future__ import annotations

import contextlib
import html
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
from proxcompute.errors import ProxError
from proxcompute.formats import write_votable_error
from proxcompute.service.config import ServiceConfig
from proxcompute.service.examples import examples_document
from proxcompute.service.params import TapRequestError, read_params
from proxcompute.service.query import parse_query_spec, run_query
from proxcompute.service.vosi import (
    availability_document,
    capabilities_document,
    column_metadata,
    describe_tables,
    table_document,
    tables_document,
    tap_schema_tables,
)
from proxcompute.sql import CatalogRegistry

__all__ = ["ServiceState", "create_app", "error_response"]

log = logging.getLogger(__name__)
SERVER = f"proxcompute/{__version__} (IVOA TAP 1.1; UWS 1.1)"
XML = "text/xml; charset=utf-8"
SPOOL_BYTES = 64 << 20


class ServiceState:
    """What the routes share: configuration, the catalog registry and its descriptions."""

    def __init__(self, config: ServiceConfig) -> None:
        from proxcompute.service.mydb import MyDB

        self.config = config
        config.ensure_dirs()
        self.mydb = MyDB(config.mydb_dir, config.mydb_quota_bytes)
        self.client: Any = None
        """A ``distributed.Client`` when the service runs queries on a cluster profile."""
        self._user_registries: dict[tuple[str, int], tuple[CatalogRegistry, list]] = {}
        self.reload()

    def reload(self) -> None:
        """Re-scan the catalog root (new catalogs appear; TAP_SCHEMA follows)."""
        base = CatalogRegistry(catalog_root=self.config.catalog_root)
        self.base_registry = base
        self.tables = describe_tables(base)
        self.registry = base.extended(tap_schema_tables(self.tables))
        self._user_registries.clear()

    def registry_for(self, user: str | None) -> tuple[CatalogRegistry, list]:
        """The registry a user's queries see (public catalogs, their MyDB, TAP_SCHEMA of both)."""
        if user is None or not self.mydb.tables(user):
            return self.registry, self.tables
        key = (user, self.mydb.version)
        if key not in self._user_registries:
            with_mydb = self.mydb.extend(self.base_registry, user)
            tables = describe_tables(with_mydb)
            self._user_registries[key] = (with_mydb.extended(tap_schema_tables(tables)), tables)
        return self._user_registries[key]

    def user(self, request: Request) -> str | None:
        """The user a bearer token names (None: anonymous); a bad token is an error."""
        auth = request.headers.get("authorization", "")
        if not auth:
            return None
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.config.tokens:
            raise AuthError("the bearer token is not valid")
        return self.config.tokens[token.strip()]


class AuthError(ProxError):
    """A request with a bad credential (HTTP 401)."""


def error_response(message: str, status: int = 400) -> Response:
    """A DALI error document (``QUERY_STATUS=ERROR`` with the message as the INFO text)."""
    import io

    buf = io.BytesIO()
    write_votable_error(buf, message)
    return Response(buf.getvalue(), status_code=status, media_type="application/x-votable+xml")


def _status_for(exc: Exception) -> int:
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, ProxError):
        return 400
    return 500


def _message(exc: Exception) -> str:
    if isinstance(exc, ProxError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


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


def base_url(request: Request, state: ServiceState) -> str:
    """The TAP base URL as the client reached it (scheme, host and port of the request)."""
    root = str(request.base_url).rstrip("/")
    return root + state.config.base_path


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
    state = ServiceState(config)
    state.client = client

    async def landing(request: Request) -> Response:
        base = base_url(request, state)
        rows = "".join(
            f"<tr><td><code>{html.escape(t.name)}</code></td><td>{html.escape(t.description)}</td>"
            f"<td>{len(t.columns)}</td></tr>"
            for t in state.tables
        )
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'/><title>proxcompute TAP</title></head><body>"
            f"<h1>proxcompute TAP service</h1><p>TAP base URL: <code>{html.escape(base)}</code> "
            "(use it in pyvo, TOPCAT or STILTS). "
            f"<a href='{base}/capabilities'>capabilities</a> · <a href='{base}/tables'>tables</a> · "
            f"<a href='{base}/examples'>examples</a> · <a href='{base}/async'>jobs</a></p>"
            f"<table border='1'><tr><th>table</th><th>description</th><th>columns</th></tr>{rows}</table>"
            "<pre>import pyvo\n"
            f"tap = pyvo.dal.TAPService({html.escape(repr(base))})\n"
            "tap.search(\"SELECT TOP 10 * FROM TAP_SCHEMA.tables\").to_table()</pre></body></html>"
        )
        return Response(page, media_type="text/html; charset=utf-8")

    async def capabilities(request: Request) -> Response:
        doc = capabilities_document(
            base_url(request, state),
            default_maxrec=config.default_maxrec,
            hard_maxrec=config.hard_maxrec,
            upload_limit=config.upload_limit_bytes,
            retention_seconds=config.retention_seconds,
            execution_duration=config.queues[config.default_queue],
            tokens=bool(config.tokens),
        )
        return Response(doc, media_type=XML)

    async def availability(request: Request) -> Response:
        note = "service is accepting queries"
        if state.client is not None:
            def describe() -> str:
                info = state.client.scheduler_info()
                prefixes = state.client.run_on_scheduler(
                    lambda dask_scheduler: sorted(p for p in dask_scheduler.task_prefixes if p.startswith("proxcompute"))
                )
                return (f"; queries run on cluster profile {config.cluster!r} at {info.get('address')} with "
                        f"{len(info.get('workers', {}))} workers (task kinds run: {', '.join(prefixes) or 'none'})")

            note += await run_in_threadpool(describe)
        return Response(availability_document(note), media_type=XML)

    async def tables(request: Request) -> Response:
        return Response(tables_document(state.tables), media_type=XML)

    async def one_table(request: Request) -> Response:
        name = request.path_params["name"]
        from proxcompute.service.vosi import _tap_schema_self_description

        for t in state.tables + _tap_schema_self_description():
            if t.name.lower() == name.lower():
                return Response(table_document(t), media_type=XML)
        return PlainTextResponse(f"no table {name!r}", status_code=404)

    async def examples(request: Request) -> Response:
        return Response(examples_document(state.tables), media_type="application/xhtml+xml")

    async def sync(request: Request) -> Response:
        try:
            user = state.user(request)
            registry, tables_seen = state.registry_for(user)
            params = await read_params(request, upload_limit_bytes=config.upload_limit_bytes)
            spec = await run_in_threadpool(
                parse_query_spec,
                params,
                default_maxrec=config.default_maxrec,
                hard_maxrec=config.hard_maxrec,
                upload_limit=config.upload_limit_bytes,
            )
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=config.results_dir)
            try:
                meta = column_metadata(tables_seen, spec.query)
                await run_in_threadpool(
                    lambda: run_query(
                        spec, registry, spool, column_meta=meta, mydb=state.mydb, user=user, client=state.client
                    )
                )
            except BaseException:
                spool.close()
                raise
        except Exception as exc:  # every failure becomes a VOTable error document
            if not isinstance(exc, (ProxError, TapRequestError)):
                log.exception("sync query failed")
            return error_response(_message(exc), _status_for(exc))
        size = spool.tell()
        spool.seek(0)

        def chunks():
            try:
                while block := spool.read(1 << 20):
                    yield block
            finally:
                spool.close()

        return StreamingResponse(chunks(), media_type=spec.mime, headers={"content-length": str(size)})

    routes = [
        Route(config.base_path, landing),
        Route(config.base_path + "/", landing),
        Route(config.base_path + "/sync", sync, methods=["GET", "POST"]),
        Route(config.base_path + "/capabilities", capabilities),
        Route(config.base_path + "/availability", availability),
        Route(config.base_path + "/tables", tables),
        Route(config.base_path + "/tables/{name}", one_table),
        Route(config.base_path + "/examples", examples),
    ]
    from proxcompute.service.async_routes import async_routes

    async def mydb_list(request: Request) -> Response:
        try:
            user = state.user(request)
            tables = state.mydb.tables(user)
        except Exception as exc:
            return error_response(_message(exc), _status_for(exc))
        import json

        body = [{"name": f"mydb.{n}", "bytes": sum(f.stat().st_size for f in p.rglob("*") if f.is_file())}
                for n, p in tables.items()]  # fmt: skip
        return Response(json.dumps(body), media_type="application/json")

    async def mydb_drop(request: Request) -> Response:
        try:
            user = state.user(request)
            if request.method == "POST":
                params = await read_params(request, upload_limit_bytes=config.upload_limit_bytes)
                if (params.get("ACTION") or "").upper() != "DELETE":
                    return error_response("POST to a MyDB table takes ACTION=DELETE", 400)
            await run_in_threadpool(state.mydb.drop, user, request.path_params["name"])
        except Exception as exc:
            return error_response(_message(exc), _status_for(exc))
        return Response(status_code=204)

    routes += [
        Route(config.base_path + "/mydb", mydb_list, methods=["GET"]),
        Route(config.base_path + "/mydb/{name}", mydb_drop, methods=["DELETE", "POST"]),
    ]
    routes += async_routes(state)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if state.client is not None:
            log.warning("queries run on cluster profile %r: %s", config.cluster, state.client)
        try:
            yield
        finally:
            state.runner.shutdown(wait=False)  # running jobs end in ERROR "the service shut down ..."
            state.store.dispose()
            state.client = None  # the caller that started the cluster closes it

    app = Starlette(routes=routes, middleware=[Middleware(ServerHeader)], lifespan=lifespan)
    app.state.tap = state
    return app
