"""MyDB: per-user result tables, kept next to the data as partitioned catalogs.

A query with ``TABLE_NAME=t`` (or ``DESTINATION=mydb://t``) writes its result to
``<data_dir>/mydb/<user>/t`` (atomically) and later queries by the same user read it as
``mydb.t``, through the same planner as any catalog (regions prune its partitions, positional
joins crossmatch it). Nobody else sees it. A quota bounds each user's bytes.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

from proxcompute.errors import ProxError
from proxcompute.sql import CatalogRegistry, SqlResult

__all__ = ["MyDB", "MyDBError", "table_name_from"]

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
USER = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")


class MyDBError(ProxError):
    """A MyDB request that cannot be honoured (no user, bad name, exists, quota)."""


def table_name_from(values: dict[str, str]) -> str | None:
    """The MyDB table a request asks for (``TABLE_NAME=t`` or ``DESTINATION=mydb://t``), checked."""
    name = values.get("TABLE_NAME")
    dest = values.get("DESTINATION")
    if dest is not None:
        if not dest.lower().startswith("mydb://"):
            raise MyDBError(f"DESTINATION={dest!r}: only mydb://<table> destinations are supported")
        name = dest[len("mydb://") :]
    if name is None:
        return None
    if not NAME.match(name):
        raise MyDBError(f"table name {name!r}: use a letter then up to 63 letters, digits or _")
    return name


def _dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except OSError:
                pass
    return total


class MyDB:
    """The MyDB tables of every user under ``root`` (``root/<user>/<table>``)."""

    def __init__(self, root: Path, quota_bytes: int) -> None:
        self.root = Path(root)
        self.quota_bytes = int(quota_bytes)
        self._lock = threading.Lock()
        self.version = 0
        """Bumped on every write or drop (caches of per-user registries key on it)."""

    def _user_dir(self, user: str | None) -> Path:
        if user is None:
            raise MyDBError("MyDB tables belong to a user: authenticate with a bearer token")
        if not USER.match(user):
            raise MyDBError(f"user name {user!r} cannot own MyDB tables")
        return self.root / user

    def tables(self, user: str | None) -> dict[str, Path]:
        """``{name: path}`` of the user's tables (none for anonymous users)."""
        if user is None:
            return {}
        d = self._user_dir(user)
        if not d.is_dir():
            return {}
        return {p.name: p for p in sorted(d.iterdir()) if p.is_dir() and NAME.match(p.name)}

    def sizes(self, user: str | None) -> dict[str, int]:
        """``{name: bytes}`` of the user's tables."""
        return {n: _dir_bytes(p) for n, p in self.tables(user).items()}

    def usage(self, user: str | None) -> int:
        """Bytes the user's tables take."""
        return sum(_dir_bytes(p) for p in self.tables(user).values())

    def write(self, user: str | None, name: str, result: SqlResult, client=None) -> Path:
        """Write ``result`` as ``mydb.<name>``; refuses when it exists or the quota would be exceeded."""
        d = self._user_dir(user)
        path = d / name
        if path.exists():
            raise MyDBError(f"mydb.{name} exists; drop it first")
        used = self.usage(user)
        if used >= self.quota_bytes:
            raise MyDBError(f"MyDB quota of {self.quota_bytes:,} bytes is used up ({used:,} bytes); drop tables first")
        d.mkdir(parents=True, exist_ok=True)
        result.to_catalog(path, name=name, client=client)
        size = _dir_bytes(path)
        if used + size > self.quota_bytes:
            shutil.rmtree(path, ignore_errors=True)
            raise MyDBError(
                f"mydb.{name} would take {size:,} bytes and exceed the MyDB quota of {self.quota_bytes:,} bytes "
                f"({used:,} used); the table was not kept"
            )
        with self._lock:
            self.version += 1
        return path

    def drop(self, user: str | None, name: str) -> None:
        """Delete ``mydb.<name>``."""
        if not NAME.match(name):
            raise MyDBError(f"{name!r} is not a MyDB table name")
        path = self._user_dir(user) / name
        if not path.is_dir():
            raise MyDBError(f"there is no table mydb.{name}")
        shutil.rmtree(path)
        with self._lock:
            self.version += 1

    def extend(self, registry: CatalogRegistry, user: str | None) -> CatalogRegistry:
        """``registry`` plus the user's tables as ``mydb.<name>``."""
        tables = self.tables(user)
        if not tables:
            return registry
        return registry.extended({f"mydb.{n}": p for n, p in tables.items()})
