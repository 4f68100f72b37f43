"""MyDB: per-user result tables, kept next to the data as partitioned catalogs.

A query with ``TABLE_NAME=t`` (or ``DESTINATION=mydb://t``) writes its result to
``<data_dir>/mydb/<user>/t`` (atomically) and later queries by the same user read it as
``mydb.t``, through the same planner as any catalog (regions prune its partitions, positional
joins crossmatch it). Nobody else sees it unless its owner shares it, read-only, with a
group (``group:desi``) or with every signed-in user (``authenticated``): then it is
``mydb_<owner>.t`` for them. Shares are kept in ``<data_dir>/mydb/<owner>/.shares.json``
(written atomically) and end when the table is dropped. A quota bounds each user's bytes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from proxcompute.errors import ProxError
from proxcompute.sql import CatalogRegistry, SqlResult
from proxcompute.storage.atomic import atomic_write_json

__all__ = ["AUTHENTICATED", "MyDB", "MyDBError", "MyDBQuotaError", "bare_name", "shared_schema", "table_name_from"]

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
USER = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
SCHEMA_OWNER = re.compile(r"^[A-Za-z0-9_]{1,64}$")
GROUP_TARGET = re.compile(r"^group:([A-Za-z0-9_.@-]{1,128})$")
AUTHENTICATED = "authenticated"
SHARES_FILE = ".shares.json"


class MyDBError(ProxError):
    """A MyDB request that cannot be honoured (no user, bad name, exists, not shared)."""


class MyDBQuotaError(MyDBError):
    """A MyDB write over the owner's ``mydb_bytes`` quota (HTTP 403)."""


def bare_name(table: str) -> str:
    """``t`` for ``mydb.t`` or ``t`` (the name under the owner's directory).

    >>> bare_name("mydb.bright"), bare_name("bright")
    ('bright', 'bright')
    """
    return table[5:] if table.lower().startswith("mydb.") else table


def shared_schema(owner: str) -> str:
    """The schema other users see ``owner``'s shared tables under: ``mydb_<owner>``."""
    return f"mydb_{owner}"


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
        """Bumped on every write, drop, share or unshare (caches of per-user registries key on it)."""
        self._shares: dict[str, dict[str, set[str]]] = {}
        """Owner -> table -> targets (``group:NAME`` or ``authenticated``), as on disk."""
        if self.root.is_dir():
            for owner_dir in self.root.iterdir():
                if (owner_dir / SHARES_FILE).is_file() and USER.match(owner_dir.name):
                    self._shares[owner_dir.name] = self._read_shares(owner_dir / SHARES_FILE)

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

    def write(
        self, user: str | None, name: str, result: SqlResult, client=None, *, quota_bytes: int | None = None
    ) -> Path:
        """Write ``result`` as ``mydb.<name>``; refuses when it exists or the quota would be exceeded.

        ``quota_bytes`` is the user's ``mydb_bytes`` quota (default: the service-wide one).
        """
        d = self._user_dir(user)
        path = d / name
        if path.exists():
            raise MyDBError(f"mydb.{name} exists; drop it first")
        quota = self.quota_bytes if quota_bytes is None else int(quota_bytes)
        used = self.usage(user)
        if used >= quota:
            raise MyDBQuotaError(f"MyDB quota (mydb_bytes) of {quota:,} bytes is used up ({used:,} bytes); "
                                 "drop tables first")  # fmt: skip
        d.mkdir(parents=True, exist_ok=True)
        result.to_catalog(path, name=name, client=client)
        size = _dir_bytes(path)
        if used + size > quota:
            shutil.rmtree(path, ignore_errors=True)
            raise MyDBQuotaError(
                f"mydb.{name} would take {size:,} bytes and exceed the MyDB quota (mydb_bytes) of {quota:,} bytes "
                f"({used:,} used); the table was not kept"
            )
        with self._lock:
            self.version += 1
        return path

    def written_elsewhere(self, user: str | None, name: str, *, aborted: bool = False) -> None:
        """Another process (a job's worker) wrote, or began to write, ``user``'s ``mydb.<name>``.

        Registries are rebuilt (as after :meth:`write`). ``aborted``: the writer was stopped,
        perhaps killed, so the staging directories it may have left (``<name>.tmp-*``) go.
        """
        if aborted and user is not None and USER.match(user) and NAME.match(name):
            for staging in self._user_dir(user).glob(f"{name}.tmp-*"):
                shutil.rmtree(staging, ignore_errors=True)
        with self._lock:
            self.version += 1

    def drop(self, user: str | None, name: str) -> None:
        """Delete ``mydb.<name>``."""
        if not NAME.match(name):
            raise MyDBError(f"{name!r} is not a MyDB table name")
        path = self._user_dir(user) / name
        if not path.is_dir():
            raise MyDBError(f"there is no table mydb.{name}")
        shutil.rmtree(path)
        with self._lock:
            if self._shares.get(user, {}).pop(name, None) is not None:  # type: ignore[arg-type]
                self._save_shares(user)  # type: ignore[arg-type]
            self.version += 1

    # ------------------------------------------------------------ sharing

    @staticmethod
    def _read_shares(path: Path) -> dict[str, set[str]]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {t: set(v) for t, v in data.items() if NAME.match(str(t)) and isinstance(v, list) and v}

    def _save_shares(self, owner: str) -> None:
        table = {t: sorted(v) for t, v in sorted(self._shares.get(owner, {}).items()) if v}
        atomic_write_json(self._user_dir(owner) / SHARES_FILE, table)

    @staticmethod
    def check_target(target: str) -> str:
        """``target`` if it is ``authenticated`` or ``group:NAME``; else :class:`MyDBError`."""
        if target == AUTHENTICATED or GROUP_TARGET.match(target or ""):
            return target
        raise MyDBError(f"cannot share with {target!r}: use \"group:NAME\" or \"authenticated\"")

    def share(self, owner: str | None, name: str, target: str) -> None:
        """Share ``owner``'s ``mydb.<name>`` read-only with ``target`` (``group:NAME`` or ``authenticated``)."""
        self.check_target(target)
        d = self._user_dir(owner)
        if not NAME.match(name) or not (d / name).is_dir():
            raise MyDBError(f"there is no table mydb.{name}")
        if not SCHEMA_OWNER.match(owner or ""):
            raise MyDBError(f"user {owner!r} cannot share tables: a schema name {shared_schema(owner or '')!r} "
                            "needs a user name of letters, digits and _")  # fmt: skip
        with self._lock:
            self._shares.setdefault(owner, {}).setdefault(name, set()).add(target)  # type: ignore[arg-type]
            self._save_shares(owner)  # type: ignore[arg-type]
            self.version += 1

    def unshare(self, owner: str | None, name: str, target: str) -> None:
        """End a share made by :meth:`share` (at once: the next query no longer sees the table)."""
        self.check_target(target)
        self._user_dir(owner)
        with self._lock:
            targets = self._shares.get(owner, {}).get(name)  # type: ignore[arg-type]
            if not targets or target not in targets:
                raise MyDBError(f"mydb.{name} is not shared with {target}")
            targets.discard(target)
            if not targets:
                del self._shares[owner][name]  # type: ignore[index]
            self._save_shares(owner)  # type: ignore[arg-type]
            self.version += 1

    def shares_of(self, owner: str | None) -> dict[str, set[str]]:
        """``{table: targets}`` of the tables ``owner`` shares."""
        if owner is None:
            return {}
        with self._lock:
            return {t: set(v) for t, v in self._shares.get(owner, {}).items() if v}

    def shared_with(self, user: str | None, is_member: Callable[[str], bool]) -> dict[str, Path]:
        """``{"mydb_<owner>.<table>": path}`` of other users' tables shared with ``user``.

        ``is_member(group)`` says whether ``user`` is in a group; anonymous users see none.
        """
        if user is None:
            return {}
        out: dict[str, Path] = {}
        with self._lock:
            shares = [(o, t, set(v)) for o, tables in self._shares.items() if o != user for t, v in tables.items()]
        for owner, table, targets in sorted(shares):
            path = self.root / owner / table
            if not path.is_dir():
                continue
            if AUTHENTICATED in targets or any(
                (m := GROUP_TARGET.match(t)) and is_member(m.group(1)) for t in targets
            ):
                out[f"{shared_schema(owner)}.{table}"] = path
        return out

    def extend(self, registry: CatalogRegistry, user: str | None, shared: dict[str, Path] | None = None) -> CatalogRegistry:
        """``registry`` plus the user's tables as ``mydb.<name>`` and ``shared`` tables under their names."""
        tables = {f"mydb.{n}": p for n, p in self.tables(user).items()}
        tables.update(shared or {})
        if not tables:
            return registry
        return registry.extended(tables)
