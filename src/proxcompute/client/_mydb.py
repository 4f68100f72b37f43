"""MyDB: per-user tables on a proxcompute service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxcompute.client._errors import (
    TapError,
)
from proxcompute.client._session import (
    UPLOAD_NAME,
    VOTABLE_MIME,
    _Session,
)


class _MyDBMixin(_Session):
    # ------------------------------------------------------------------ MyDB

    @staticmethod
    def _mydb_name(name: str) -> str:
        bare = name[5:] if name.lower().startswith("mydb.") else name
        if not UPLOAD_NAME.match(bare):
            raise TapError(f"MyDB table name {name!r} must be letters, digits and _ (starting with a letter)")
        return bare

    def mydb_list(self) -> list[str]:
        """Names of your MyDB tables (without the ``mydb.`` prefix), from ``TAP_SCHEMA.tables``.

        Examples
        --------
        >>> tap.mydb_create("listed", "SELECT TOP 5 id, ra, dec FROM survey.gaia")
        'mydb.listed'
        >>> "listed" in tap.mydb_list()
        True
        >>> tap.mydb_drop("listed")
        """
        table = self.query("SELECT table_name FROM TAP_SCHEMA.tables WHERE schema_name = 'mydb'", fmt="arrow")
        names = [str(n) for n in table.column(0).to_pylist() if n is not None]
        return sorted(n[5:] if n.lower().startswith("mydb.") else n for n in names)

    def mydb_create(
        self,
        name: str,
        adql: str,
        uploads: Mapping[str, Any] | None = None,
        queue: str | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        """Run ``adql`` as an async job storing its result as ``mydb.<name>``; return that name.

        The job is deleted afterwards (the table stays until :meth:`mydb_drop`).

        Examples
        --------
        >>> tap.mydb_create("bright", "SELECT * FROM survey.gaia WHERE mag < 14")
        'mydb.bright'
        >>> n = tap.query("SELECT COUNT(*) AS n FROM mydb.bright")["n"][0]
        >>> tap.mydb_drop("bright")
        """
        bare = self._mydb_name(name)
        request = self._params(adql, VOTABLE_MIME, None, queue, {"TABLE_NAME": bare})
        files = self._upload_files(uploads, request)
        job_id = self._create(request, files)
        with self._owned_job(job_id):
            self._wait(job_id, timeout)
        return f"mydb.{bare}"

    def mydb_import(self, name: str, table: Any, *, timeout: float | None = None) -> str:
        """Upload a table (DataFrame, astropy/Arrow Table or file path) as ``mydb.<name>``.

        Examples
        --------
        >>> tap.mydb_import("targets", pd.DataFrame({"ra": [10.0], "dec": [20.0]}))
        'mydb.targets'
        >>> tap.mydb_drop("targets")
        """
        return self.mydb_create(name, "SELECT * FROM TAP_UPLOAD.mydb_import", uploads={"mydb_import": table},
                                timeout=timeout)  # fmt: skip

    def mydb_drop(self, name: str) -> None:
        """Delete the MyDB table ``mydb.<name>`` (``POST {url}/mydb/<name>`` with ``ACTION=DELETE``).

        Examples
        --------
        >>> tap.mydb_create("gone", "SELECT TOP 1 id, ra, dec FROM survey.gaia")
        'mydb.gone'
        >>> tap.mydb_drop("gone")
        """
        bare = self._mydb_name(name)
        self._request("POST", f"mydb/{bare}", what=f"dropping mydb.{bare}", data={"ACTION": "DELETE"},
                      follow_redirects=False)  # fmt: skip

    # ---------------------------------------------------------- sharing

    @staticmethod
    def _share_target(with_: str) -> str:
        if with_ != "authenticated" and not (with_.startswith("group:") and len(with_) > 6):
            raise TapError(f'cannot share with {with_!r}: use "group:NAME" or "authenticated"')
        return with_

    def mydb_share(self, name: str, with_: str) -> list[str]:
        """Share ``mydb.<name>`` read-only with ``"group:NAME"`` or ``"authenticated"`` (every signed-in user).

        They see it as ``mydb_<you>.<name>`` (in their TAP_SCHEMA, queried like any table).
        Returns whom the table is shared with now.

        Examples
        --------
        >>> tap.mydb_create("shown", "SELECT TOP 5 id, ra, dec FROM survey.gaia")
        'mydb.shown'
        >>> tap.mydb_share("shown", "authenticated")
        ['authenticated']
        >>> tap.mydb_shares()["shown"]
        ['authenticated']
        >>> tap.mydb_unshare("shown", "authenticated")
        []
        >>> tap.mydb_drop("shown")
        """
        bare = self._mydb_name(name)
        response = self._request("POST", f"mydb/{bare}/share", what=f"sharing mydb.{bare}",
                                 json={"with": self._share_target(with_)})  # fmt: skip
        return list(response.json()["shared_with"])

    def mydb_unshare(self, name: str, with_: str) -> list[str]:
        """End a share made by :meth:`mydb_share` (at once); returns whom it is still shared with."""
        bare = self._mydb_name(name)
        response = self._request("POST", f"mydb/{bare}/unshare", what=f"unsharing mydb.{bare}",
                                 json={"with": self._share_target(with_)})  # fmt: skip
        return list(response.json()["shared_with"])

    def mydb_shares(self) -> dict[str, list[str]]:
        """``{table: [targets]}`` of your MyDB tables that are shared (``GET {url}/mydb``)."""
        response = self._request("GET", "mydb", what="listing MyDB tables")
        return {e["name"][5:]: list(e.get("shared_with", [])) for e in response.json() if e.get("shared_with")}
