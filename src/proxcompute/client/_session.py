"""The HTTP session of the TAP client: requests, errors, capabilities, parameters, uploads."""

from __future__ import annotations

import io
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import pyarrow as pa

from proxcompute.client._errors import (
    TapError,
    TapQueryError,
    _ReadTimeout,
)
from proxcompute.client._xml import (
    local_name,
    parse_int,
    votable_error,
)
from proxcompute.errors import ProxError
from proxcompute.formats import SUFFIX_FORMATS, WRITABLE

ResultKind = Literal["pandas", "table", "arrow"]
RESULT_KINDS = ("pandas", "table", "arrow")
VOTABLE_MIME = "application/x-votable+xml"
FILE_FORMATS = {e: f for e, f in SUFFIX_FORMATS.items() if f in WRITABLE and not e.endswith(".gz")}
"""The result file names the client writes (a downloaded result is stored as the service sent it)."""
FILE_MIMES = {"votable": VOTABLE_MIME, "csv": "text/csv", "tsv": "text/tab-separated-values"}
ACTIVE = {"QUEUED", "EXECUTING", "UNKNOWN", "HELD", "SUSPENDED"}
UPLOAD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
CLIENT_MAXREC = "CLIENT_MAXREC"
"""Job parameter recording the row limit the client wants when it asked for one row more."""
MAX_BLOCK_SECONDS = 60
"""Longest a single blocking ``WAIT`` request may take before the client asks again."""


@dataclass
class _Capabilities:
    parquet_mime: str | None = None
    default_maxrec: int | None = None
    hard_maxrec: int | None = None
    server: str = ""

    @property
    def reads_parquet_uploads(self) -> bool:
        return self.server.lower().startswith("proxcompute/")


@dataclass
class _ResultPlan:
    """What to ask for: RESPONSEFORMAT, MAXREC to send, the limit the caller sees."""

    mime: str
    send_maxrec: int | None
    limit: int | None
    plus_one: bool


def _block_for(deadline: float | None) -> int | None:
    """The ``WAIT`` to send: -1 (until a change) without a deadline, else the whole seconds left."""
    if deadline is None:
        return -1
    remaining = deadline - time.monotonic()
    return int(min(MAX_BLOCK_SECONDS, remaining)) if remaining >= 1 else None


def _plain_message(response: httpx.Response) -> str:
    text = response.text.strip()
    if "<" in text[:200]:  # HTML error page: keep the words only
        text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return text[:500] or response.reason_phrase or "no message"


def _to_arrow(obj: Any) -> pa.Table:
    """An upload (DataFrame, astropy Table, Arrow table or batch) as an Arrow table."""
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    module = type(obj).__module__
    if module.startswith("pandas"):
        return pa.Table.from_pandas(obj, preserve_index=False)
    if module.startswith("astropy"):
        return pa.Table.from_pandas(obj.to_pandas(index=False), preserve_index=False)
    raise TapError(
        f"cannot upload a {type(obj).__name__}: give a pandas DataFrame, an astropy Table, "
        "a pyarrow Table or the path of a VOTable/Parquet/CSV/FITS file"
    )


class _Session:
    """HTTP, capabilities, request parameters and uploads: what every part of the client uses."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 600) -> None:
        from proxcompute import __version__

        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self._token = token
        headers = {"User-Agent": f"proxcompute-client/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 30.0)),
            follow_redirects=True,
        )
        self._caps: _Capabilities | None = None

    def __repr__(self) -> str:
        return f"Client({self.url!r}, token={'<set>' if self._token else None})"

    def close(self) -> None:
        """Close the HTTP connections (the client cannot be used afterwards)."""
        self._http.close()

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ HTTP

    def _full(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.url}/{path.lstrip('/')}"

    def _request(
        self, method: str, path: str, *, what: str, query: bool = False, **kwargs: Any
    ) -> httpx.Response:
        url = self._full(path)
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.ReadTimeout:
            raise _ReadTimeout(f"{what}: the TAP service at {url} did not answer in time", url=url) from None
        except httpx.TimeoutException:
            raise TapError(f"{what}: the TAP service at {url} did not answer in time", url=url) from None
        except httpx.HTTPError as exc:
            raise TapError(f"{what}: cannot reach the TAP service at {url}: {exc}", url=url) from None
        if response.status_code >= 400:
            self._raise_for(response, what, query=query)
        return response

    @staticmethod
    def _raise_for(response: httpx.Response, what: str, *, query: bool) -> None:
        status = response.status_code
        url = str(response.request.url) if response.request else None
        message = votable_error(response.content)
        if message is not None and query and status not in (401, 403, 404) and status < 500:
            raise TapQueryError(message, status=status, url=url)
        raise TapError(f"{what}: {message or _plain_message(response)}", status=status, url=url)

    # ---------------------------------------------------------- capabilities

    def _capabilities(self) -> _Capabilities:
        if self._caps is not None:
            return self._caps
        caps = _Capabilities()
        url = self._full("capabilities")
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            raise TapError(f"cannot reach the TAP service at {url}: {exc}", url=url) from None
        caps.server = response.headers.get("server", "")
        if response.status_code == 200:
            try:
                root = ET.fromstring(response.content)
            except ET.ParseError:
                root = None
            for cap in root.iter() if root is not None else ():
                if (
                    local_name(cap.tag) != "capability"
                    or cap.get("standardID", "").lower() != "ivo://ivoa.net/std/tap"
                ):
                    continue
                for el in cap.iter():
                    tag = local_name(el.tag)
                    if tag == "outputFormat":
                        mime = next((c.text or "" for c in el if local_name(c.tag) == "mime"), "").strip()
                        aliases = [(c.text or "").strip().lower() for c in el if local_name(c.tag) == "alias"]
                        if caps.parquet_mime is None and ("parquet" in mime.lower() or "parquet" in aliases):
                            caps.parquet_mime = mime or "parquet"
                    elif tag == "outputLimit":
                        for c in el:
                            if c.get("unit", "row") != "row":
                                continue
                            if local_name(c.tag) == "default":
                                caps.default_maxrec = parse_int(c.text)
                            elif local_name(c.tag) == "hard":
                                caps.hard_maxrec = parse_int(c.text)
        self._caps = caps
        return caps

    def _plan(self, maxrec: int | None) -> _ResultPlan:
        if maxrec is not None and (not isinstance(maxrec, int) or maxrec < 0):
            raise TapError(f"maxrec must be a whole number >= 0, got {maxrec!r}")
        caps = self._capabilities()
        limit = maxrec if maxrec is not None else caps.default_maxrec
        if limit is not None and caps.hard_maxrec is not None:
            limit = min(limit, caps.hard_maxrec)
        if caps.parquet_mime and limit is not None:
            if limit == 0:
                return _ResultPlan(caps.parquet_mime, 0, 0, False)
            if caps.hard_maxrec is None or limit < caps.hard_maxrec:
                return _ResultPlan(caps.parquet_mime, limit + 1, limit, True)
        return _ResultPlan(VOTABLE_MIME, maxrec, limit, False)

    # -------------------------------------------------------------- requests

    def _params(
        self, adql: str, mime: str, maxrec: int | None, queue: str | None, extra: Mapping[str, Any] | None
    ) -> dict[str, str]:
        if not isinstance(adql, str) or not adql.strip():
            raise TapError("the ADQL query is empty")
        params = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": adql, "RESPONSEFORMAT": mime}
        if maxrec is not None:
            params["MAXREC"] = str(maxrec)
        if queue is not None:
            params["QUEUE"] = str(queue)
        for k, v in (extra or {}).items():
            params[str(k).upper()] = str(v)
        return params

    def _upload_files(self, uploads: Mapping[str, Any] | None, params: dict[str, str]) -> dict[str, Any]:
        """Multipart parts for ``uploads`` (and ``UPLOAD=name,param:name;...`` in ``params``)."""
        if not uploads:
            return {}
        parquet_ok = self._capabilities().reads_parquet_uploads
        files: dict[str, Any] = {}
        for name, obj in uploads.items():
            if not isinstance(name, str) or not UPLOAD_NAME.match(name):
                raise TapError(f"upload name {name!r} must be letters, digits and _ (starting with a letter)")
            if isinstance(obj, (str, os.PathLike)):
                path = Path(obj)
                if not path.is_file():
                    raise TapError(f"upload {name}: no file {path}")
                if path.suffix.lower() in (".parquet", ".pq") and not parquet_ok:
                    import pyarrow.parquet as pq

                    try:
                        obj = pq.read_table(path)
                    except (OSError, pa.ArrowException) as exc:
                        raise TapError(f"upload {name}: cannot read {path}: {exc}") from None
                else:
                    files[name] = (path.name, path.read_bytes(), "application/octet-stream")
                    continue
            table = _to_arrow(obj)
            buf = io.BytesIO()
            if parquet_ok:
                import pyarrow.parquet as pq

                pq.write_table(table, buf)
                files[name] = (f"{name}.parquet", buf.getvalue(), "application/vnd.apache.parquet")
            else:
                from proxcompute.formats import write_table

                try:
                    write_table(table, table.schema, buf, "votable")
                except ProxError as exc:
                    raise TapError(f"upload {name}: {exc}") from None
                files[name] = (f"{name}.vot", buf.getvalue(), VOTABLE_MIME)
        params["UPLOAD"] = ";".join(f"{n},param:{n}" for n in files)
        return files

    @staticmethod
    def _post_params(params: dict[str, str], files: dict[str, Any]) -> dict[str, Any]:
        return {"data": params, "files": files} if files else {"data": params}
