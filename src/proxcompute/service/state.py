"""What every route handler shares, reached as ``request.app.state.tap``: configuration, the
catalog registry and its descriptions, access rules, MyDB, the job store and runner, the Dask
client.

The access API (what the routes and the web portal call): :meth:`ServiceState.user_for_token`,
:meth:`~ServiceState.check_password`, :meth:`~ServiceState.groups_of`,
:meth:`~ServiceState.can_read`, :meth:`~ServiceState.registry_for`,
:meth:`~ServiceState.quota_for`, :meth:`~ServiceState.shares_of`, :meth:`~ServiceState.share`
and :meth:`~ServiceState.unshare`. The rules live in :mod:`~proxcompute.service.access`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.requests import Request

from proxcompute.service.access import AccessControl, Quota
from proxcompute.service.config import ServiceConfig
from proxcompute.service.errors import AuthError
from proxcompute.service.job_exec import make_executor
from proxcompute.service.job_runner import JobRunner
from proxcompute.service.jobs import JobStore
from proxcompute.service.mydb import MyDB, MyDBError, bare_name
from proxcompute.service.vosi import describe_tables, tap_schema_tables
from proxcompute.sql import CatalogRegistry

__all__ = ["XML", "Quota", "ServiceState", "base_url", "state_of"]

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
        self.access = AccessControl(
            config.access_file, tokens=config.tokens,
            default_quota=Quota(config.mydb_quota_bytes, config.max_active_jobs),
        )  # fmt: skip  (first: a bad access file stops the service before anything is created)
        config.ensure_dirs()
        self.mydb = MyDB(config.mydb_dir, config.mydb_quota_bytes)
        self.client: Any = client
        """A ``distributed.Client`` when the service runs queries on a cluster."""
        self._user_registries: dict[str | None, tuple[CatalogRegistry, list]] = {}
        """User -> (registry, table descriptions), valid for ``self._versions``."""
        self._versions: tuple[int, int] = (-1, -1)
        self.reload()
        self.store = JobStore(config.db_url)
        self.runner = JobRunner(
            self.store, make_executor(self), queues=dict(config.queues), results_dir=config.results_dir
        )

    def reload(self) -> None:
        """Re-scan the catalog root (new catalogs appear; TAP_SCHEMA follows)."""
        self.base_registry = CatalogRegistry(catalog_root=self.config.catalog_root)
        self._user_registries = {}

    @property
    def tables(self) -> list:
        """Descriptions of the tables an anonymous user sees (the public catalogs)."""
        return self.registry_for(None)[1]

    @property
    def registry(self) -> CatalogRegistry:
        """The registry an anonymous user's queries see."""
        return self.registry_for(None)[0]

    # ------------------------------------------------------------ access API

    def registry_for(self, user: str | None) -> tuple[CatalogRegistry, list]:
        """The registry ``user``'s queries see and its table descriptions (None: anonymous).

        The catalogs the access rules let them read, their own MyDB tables as ``mydb.<t>``,
        tables others share with them as ``mydb_<owner>.<t>``, and TAP_SCHEMA of all that.
        Everything else is unknown to them, as if it did not exist.
        """
        self.access.refresh()
        versions = (self.mydb.version, self.access.version)
        if versions != self._versions:  # a write, share or rule change: every user's view may differ
            self._user_registries, self._versions = {}, versions
        cached = self._user_registries.get(user)
        if cached is not None:
            return cached
        groups = self.groups_of(user)
        visible = self.base_registry.filtered(
            lambda refs: self.access.can_read_names(user, [r.qualified for r in refs])
        )
        shared = self.mydb.shared_with(user if self.access.knows(user) else None, groups.__contains__)
        with_mydb = self.mydb.extend(visible, user, shared)
        tables = describe_tables(with_mydb)
        entry = (with_mydb.extended(tap_schema_tables(tables)), tables)
        if len(self._user_registries) > 1024:
            self._user_registries = {}
        if versions == self._versions:
            self._user_registries[user] = entry
        return entry

    def user_for_token(self, token: str | None) -> str | None:
        """The user a bearer token names (None: no such token); timing-safe."""
        return self.access.user_for_token(token)

    def check_password(self, user: str | None, password: str | None) -> bool:
        """Whether ``password`` is ``user``'s (unknown users take as long and fail)."""
        return self.access.check_password(user, password)

    def groups_of(self, user: str | None) -> set[str]:
        """The groups ``user`` belongs to (none for anonymous users)."""
        return self.access.groups_of(user)

    def can_read(self, user: str | None, catalog_name: str) -> bool:
        """Whether ``user`` may read the catalog called ``catalog_name`` (any of its names).

        A name that is no catalog is False, like a catalog the user may not read.
        """
        schema, _, name = catalog_name.rpartition(".")
        try:
            ref = self.base_registry.lookup(name, schema or None)
        except Exception:  # an ambiguous name: the user must qualify it
            return False
        if ref is None:
            return False
        names = [r.qualified for r in self.base_registry.refs()
                 if r.opener is ref.opener or (ref.source is not None and r.source == ref.source)]  # fmt: skip
        return self.access.can_read_names(user, names)

    def quota_for(self, user: str | None) -> Quota:
        """``Quota(mydb_bytes, active_jobs)`` of ``user``."""
        return self.access.quota_for(user)

    def shares_of(self, user: str | None) -> dict[str, set[str]]:
        """``{table: {"group:NAME" | "authenticated", ...}}`` of the MyDB tables ``user`` shares."""
        return self.mydb.shares_of(user)

    def share(self, owner: str | None, table: str, with_: str) -> None:
        """Share ``owner``'s ``mydb.<table>`` read-only with ``group:NAME`` or ``authenticated``."""
        target = self.mydb.check_target(with_)
        if target.startswith("group:") and not self.access.group_exists(target[6:]):
            raise MyDBError(f"cannot share with {target}: there is no such group")
        self.mydb.share(owner, bare_name(table), target)

    def unshare(self, owner: str | None, table: str, with_: str) -> None:
        """End a share; the table disappears from the other users' next query at once."""
        self.mydb.unshare(owner, bare_name(table), with_)

    def user(self, request: Request) -> str | None:
        """The user a request authenticates as (None: anonymous); a bad credential is an error.

        ``Authorization: Bearer TOKEN`` or ``Authorization: Basic`` (user and password).
        """
        auth = request.headers.get("authorization", "")
        if not auth:
            return None
        scheme, _, credential = auth.partition(" ")
        scheme, credential = scheme.lower(), credential.strip()
        if scheme == "bearer":
            user = self.user_for_token(credential)
            if user is None:
                raise AuthError("the bearer token is not valid")
            return user
        if scheme == "basic":
            try:
                name, sep, password = base64.b64decode(credential, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                name, sep, password = "", "", ""
            if sep and self.access.user_for_password(name, password):
                return name
            if not sep:
                self.check_password(None, None)  # as long as any refusal
            raise AuthError("unknown user or wrong password")
        raise AuthError("the Authorization header must be Bearer TOKEN or Basic credentials")

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
