"""What every route handler shares, reached as ``request.app.state.tap``: configuration, the
catalog registry and its descriptions, MyDB, the job store and runner, the Dask client."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from proxcompute.service.config import ServiceConfig
from proxcompute.service.errors import AuthError
from proxcompute.service.job_exec import make_executor
from proxcompute.service.job_runner import JobRunner
from proxcompute.service.jobs import JobStore
from proxcompute.service.mydb import MyDB
from proxcompute.service.vosi import describe_tables, tap_schema_tables
from proxcompute.sql import CatalogRegistry

__all__ = ["XML", "ServiceState", "base_url", "state_of"]

XML = "text/xml; charset=utf-8"


class ServiceState:
    """Configuration, registries, MyDB, the job store and runner of one service.

    Parameters
    ----------
    config : ServiceConfig
    client : distributed.Client, optional
        Queries run on its workers (handed in by the caller; see ``create_app``).
    """

    def __init__(self, config: ServiceConfig, client: Any = None) -> None:
        self.config = config
        config.ensure_dirs()
        self.mydb = MyDB(config.mydb_dir, config.mydb_quota_bytes)
        self.client: Any = client
        """A ``distributed.Client`` when the service runs queries on a cluster."""
        self._user_registries: dict[tuple[str, int], tuple[CatalogRegistry, list]] = {}
        self.reload()
        self.store = JobStore(config.db_url)
        self.runner = JobRunner(
            self.store, make_executor(self), queues=dict(config.queues), results_dir=config.results_dir
        )

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

    def close(self) -> None:
        """Stop the runner (running jobs end in ERROR "the service shut down ...") and the store."""
        self.runner.shutdown(wait=False)
        self.store.dispose()
        self.client = None  # the caller that started the cluster closes it


def state_of(request: Request) -> ServiceState:
    """The :class:`ServiceState` of the app serving ``request``."""
    return request.app.state.tap


def base_url(request: Request, state: ServiceState | None = None) -> str:
    """The TAP base URL as the client reached it (scheme, host and port of the request)."""
    state = state or state_of(request)
    return str(request.base_url).rstrip("/") + state.config.base_path
