"""A client for IVOA TAP services: ADQL queries, UWS async jobs, table uploads and MyDB tables.

:class:`Client` speaks plain TAP 1.1 / UWS 1.1 over HTTP (httpx), so it works against any TAP
service, with a few shortcuts when the service offers them:

* results come as **Parquet** when the service declares a Parquet output format in
  ``/capabilities`` (fast and typed), else as VOTable;
* uploads go as Parquet to a proxcompute service (it reads Parquet, VOTable, CSV and FITS)
  and as VOTable (the one standard upload format) to any other service;
* **MyDB** (per-user tables) needs a proxcompute service: a job with ``TABLE_NAME=t`` stores
  its result as ``mydb.t``, which later queries read like any other table.

Every failure is a :class:`TapError` (a :class:`~proxcompute.errors.ProxError`); a query the
service refuses or that fails is a :class:`TapQueryError` carrying the service's message and
HTTP status. A result cut short by ``MAXREC`` emits a :class:`ResultTruncatedWarning`.

>>> from proxcompute.client import Client
>>> tap = Client(tap_url)  # e.g. "http://localhost:8000/tap"
>>> df = tap.query("SELECT TOP 5 id, ra, dec FROM survey.gaia ORDER BY id")
>>> list(df.columns), len(df)
(['id', 'ra', 'dec'], 5)

How overflow is detected
------------------------
TAP reports truncation only inside VOTable (a trailing ``QUERY_STATUS=OVERFLOW`` INFO); a
Parquet document has no such slot. When the client loads a result itself it therefore asks
for ``MAXREC = limit + 1`` rows in Parquet and keeps ``limit``: getting the extra row proves
the result was truncated, so the check is exact and Parquet stays usable. ``limit`` is the
``maxrec`` you pass, or the service's declared default. VOTable is used instead when the limit
is unknown (no ``outputLimit`` in the capabilities) or is the hard limit (asking one row more
is impossible there). For ``out=`` files the document is stored as the service sends it, with
``MAXREC`` as given: VOTable files are checked exactly (their OVERFLOW INFO), async jobs on a
proxcompute service exactly (its ``jobInfo`` rows/overflow), and other Parquet/CSV/TSV files
get a warning when they hold exactly ``limit`` rows (they *may* be truncated).

Async jobs started by :meth:`Client.query` are deleted once their result has been read (into
memory or into ``out``) and when they fail; a job still running when ``timeout`` expires is
left running (the :class:`TapTimeoutError` names it, so :meth:`Client.wait` and
:meth:`Client.results` can pick it up), and Ctrl-C aborts and deletes it. Jobs started with
:meth:`Client.submit` are yours to :meth:`~Client.delete`.
"""

from __future__ import annotations

import io
import os
import re
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import pyarrow as pa

from proxcompute.errors import ProxError
from proxcompute.formats import SUFFIX_FORMATS, WRITABLE, arrow_to_astropy
from proxcompute.storage.atomic import atomic_path

__all__ = ["Client", "JobStatus", "ResultTruncatedWarning", "TapError", "TapQueryError", "TapTimeoutError"]

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


class TapError(ProxError):
    """A TAP request failed: the service is unreachable, refused the request, or a job failed.

    Attributes
    ----------
    message : str
        What went wrong (the service's own message when it sent one).
    status : int or None
        The HTTP status, if the service answered.
    url : str or None
        The URL that was requested.
    """

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None) -> None:
        self.message = message
        self.status = status
        self.url = url
        super().__init__(f"{message} (HTTP {status})" if status is not None else message)

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.status, self.url))


class TapQueryError(TapError):
    """The service refused a query or the query failed; ``message`` is the service's text."""


class TapTimeoutError(TapError):
    """A job did not finish in time; it is still on the service (``job_id``)."""

    job_id: str | None = None


class _ReadTimeout(TapError):
    """The service accepted the request but sent no answer in time."""


def _rebuild(cls, message, status, url):
    return cls(message, status=status, url=url)


class ResultTruncatedWarning(UserWarning):
    """The result was cut at ``MAXREC`` rows; more rows match the query."""


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


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_time(text: str | None) -> datetime | None:
    if not text or not text.strip():
        return None
    value = text.strip().replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _block_for(deadline: float | None) -> int | None:
    """The ``WAIT`` to send: -1 (until a change) without a deadline, else the whole seconds left."""
    if deadline is None:
        return -1
    remaining = deadline - time.monotonic()
    return int(min(MAX_BLOCK_SECONDS, remaining)) if remaining >= 1 else None


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


_INFO_TAG = re.compile(rb"<(?:\w+:)?INFO\b([^>]*?)(/?)>", re.IGNORECASE)
_ATTR = re.compile(rb"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def _query_statuses(data: bytes) -> list[tuple[str, str]]:
    """``(value, text)`` of each ``QUERY_STATUS`` INFO in a (piece of a) VOTable document."""
    import html

    found = []
    for m in _INFO_TAG.finditer(data):
        attrs = {a.lower(): (v1 or v2) for a, v1, v2 in _ATTR.findall(m.group(1))}
        if attrs.get(b"name", b"").upper() != b"QUERY_STATUS":
            continue
        text = b""
        if not m.group(2):
            end = re.compile(rb"</(?:\w+:)?INFO\s*>", re.IGNORECASE).search(data, m.end())
            text = data[m.end() : end.start()] if end else b""
            text = re.sub(rb"<!\[CDATA\[(.*?)\]\]>", rb"\1", text, flags=re.DOTALL)
        value = html.unescape(attrs.get(b"value", b"").decode("utf-8", "replace"))
        found.append((value.upper(), html.unescape(text.decode("utf-8", "replace")).strip()))
    return found


def _votable_error(data: bytes) -> str | None:
    """The message of a VOTable error document (``QUERY_STATUS=ERROR``), or None."""
    statuses = _query_statuses(data[: 1 << 20])
    for value, text in statuses:
        if value == "ERROR":
            return text or "the service reported an error without a message"
    return None


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


class JobStatus(dict):
    """A job's state (a ``dict``) that shows itself as a small table in notebooks."""

    def _repr_html_(self) -> str:
        import html

        esc = html.escape
        progress = self.get("progress")
        bar = ""
        if progress and progress[1]:
            done, total = progress
            pct = 100.0 * done / total
            bar = (
                f"<div style='width:200px;border:1px solid #999'><div style='width:{pct:.0f}%;"
                f"background:#4a8;height:8px'></div></div>{done}/{total} partitions"
            )
        rows = [("job", esc(str(self.get("job_id", "")))), ("phase", f"<b>{esc(str(self.get('phase', '')))}</b>")]
        if bar:
            rows.append(("progress", bar))
        for key in ("queue", "rows", "created", "started", "ended", "error"):
            if self.get(key) not in (None, ""):
                rows.append((key, esc(str(self[key]))))
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>"
                       for k, v in rows)  # fmt: skip
        return f"<table class='proxcompute-job'>{body}</table>"


class Client:
    """A TAP service at ``url``.

    Parameters
    ----------
    url : str
        The TAP base URL (the one with ``/sync``, ``/async`` and ``/capabilities`` below it),
        e.g. ``http://localhost:8000/tap``.
    token : str, optional
        A bearer token, sent as ``Authorization: Bearer <token>``; the service then runs your
        jobs as your user (you see only your own jobs and MyDB tables).
    timeout : float
        Seconds any single HTTP request may take (queries and downloads included); the
        connection itself must open within 30 s.

    Examples
    --------
    >>> tap = Client(tap_url, token="s3cret")
    >>> tap  # doctest: +ELLIPSIS
    Client('http://127.0.0.1:.../tap', token=<set>)
    >>> df = tap.query("SELECT COUNT(*) AS n FROM survey.gaia")
    >>> t = tap.query("SELECT * FROM survey.gaia WHERE mag < 12", fmt="table", async_=True)
    """

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

    def __enter__(self) -> Client:
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
        message = _votable_error(response.content)
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
                    _local(cap.tag) != "capability"
                    or cap.get("standardID", "").lower() != "ivo://ivoa.net/std/tap"
                ):
                    continue
                for el in cap.iter():
                    tag = _local(el.tag)
                    if tag == "outputFormat":
                        mime = next((c.text or "" for c in el if _local(c.tag) == "mime"), "").strip()
                        aliases = [(c.text or "").strip().lower() for c in el if _local(c.tag) == "alias"]
                        if caps.parquet_mime is None and ("parquet" in mime.lower() or "parquet" in aliases):
                            caps.parquet_mime = mime or "parquet"
                    elif tag == "outputLimit":
                        for c in el:
                            if c.get("unit", "row") != "row":
                                continue
                            if _local(c.tag) == "default":
                                caps.default_maxrec = _int(c.text)
                            elif _local(c.tag) == "hard":
                                caps.hard_maxrec = _int(c.text)
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

    # ----------------------------------------------------------------- query

    def query(
        self,
        adql: str,
        fmt: ResultKind = "pandas",
        async_: bool = False,
        out: str | os.PathLike | None = None,
        maxrec: int | None = None,
        uploads: Mapping[str, Any] | None = None,
        queue: str | None = None,
        *,
        timeout: float | None = None,
        params: Mapping[str, Any] | None = None,
    ):
        """Run an ADQL query and return its result (or write it to ``out``).

        Parameters
        ----------
        adql : str
            The ADQL query.
        fmt : {"pandas", "table", "arrow"}
            The result as a pandas DataFrame, an astropy Table or a pyarrow Table.
        async_ : bool
            Run as a UWS job (``/async``: create with ``PHASE=RUN``, wait, fetch, delete)
            instead of one ``/sync`` request. Use it for long queries: a sync request is cut
            by HTTP timeouts, a job is not.
        out : path, optional
            Stream the result document into this file instead of loading it; the format
            follows the suffix (``.parquet``, ``.csv``, ``.tsv``, ``.vot``/``.xml``) and the
            path is returned. The file appears only when the whole document arrived.
        maxrec : int, optional
            Row limit (TAP ``MAXREC``; default: the service's). A result that hits it emits a
            :class:`ResultTruncatedWarning`.
        uploads : mapping of name to table, optional
            Tables to send with the query, read as ``TAP_UPLOAD.<name>``: pandas DataFrames,
            astropy Tables, pyarrow Tables, or paths of VOTable/Parquet/CSV/FITS files.
        queue : str, optional
            The job queue (a proxcompute extension: ``QUEUE=``; other services ignore it).
        timeout : float, optional
            Async only: seconds to wait for the job (default: no limit). On expiry a
            :class:`TapTimeoutError` names the job, which keeps running.
        params : mapping, optional
            Extra TAP parameters sent as they are (e.g. ``{"RUNID": "mine"}``).

        Returns
        -------
        pandas.DataFrame, astropy.table.Table, pyarrow.Table or pathlib.Path

        Raises
        ------
        TapQueryError
            The service refused the query or it failed (its message and HTTP status).
        TapError
            The service is unreachable, refused the request, or the job was aborted.

        Examples
        --------
        >>> df = tap.query("SELECT ra, dec FROM survey.gaia WHERE mag < 15", maxrec=1000)
        >>> tap.query("SELECT * FROM survey.gaia", async_=True, out=f"{tmpdir}/gaia.parquet").name
        'gaia.parquet'
        >>> targets = pd.DataFrame({"ra": [10.0], "dec": [20.0]})
        >>> matches = tap.query(
        ...     "SELECT g.* FROM TAP_UPLOAD.t AS t JOIN survey.gaia AS g ON 1 = CONTAINS("
        ...     "POINT('ICRS', t.ra, t.dec), CIRCLE('ICRS', g.ra, g.dec, 2.0/3600))",
        ...     uploads={"t": targets},
        ... )
        """
        self._check_kind(fmt)
        if out is not None:
            return self._query_to_file(adql, Path(out), async_, maxrec, uploads, queue, timeout, params)
        plan = self._plan(maxrec)
        extra = dict(params or {})
        if plan.plus_one and async_:
            extra[CLIENT_MAXREC] = plan.limit
        request = self._params(adql, plan.mime, plan.send_maxrec, queue, extra)
        files = self._upload_files(uploads, request)
        if not async_:
            response = self._request(
                "POST", "sync", what="query", query=True, **self._post_params(request, files)
            )
            return self._decode(response.content, fmt, plan.limit if plan.plus_one else None)
        job_id = self._create(request, files)
        with self._owned_job(job_id):
            status = self._wait(job_id, timeout)
            data = self._result_bytes(job_id, status)
        return self._decode(data, fmt, plan.limit if plan.plus_one else None)

    @staticmethod
    def _check_kind(fmt: str) -> None:
        if fmt not in RESULT_KINDS:
            raise TapError(f"fmt={fmt!r}: use one of {', '.join(RESULT_KINDS)}")

    def _owned_job(self, job_id: str):
        """Delete the job afterwards unless it is still running (timeout); abort it on Ctrl-C."""
        import contextlib

        @contextlib.contextmanager
        def owned():
            try:
                yield
            except TapTimeoutError:
                raise
            except KeyboardInterrupt:
                with contextlib.suppress(TapError):
                    self.abort(job_id)
                with contextlib.suppress(TapError):
                    self.delete(job_id)
                raise
            except BaseException:
                with contextlib.suppress(TapError):
                    self.delete(job_id)
                raise
            with contextlib.suppress(TapError):
                self.delete(job_id)

        return owned()

    def _query_to_file(self, adql, out: Path, async_, maxrec, uploads, queue, timeout, params) -> Path:
        kind = FILE_FORMATS.get(out.suffix.lower())
        if kind is None:
            raise TapError(f"out={str(out)!r}: the suffix must be one of {', '.join(sorted(FILE_FORMATS))}")
        caps = self._capabilities()
        if kind == "parquet":
            if caps.parquet_mime is None:
                raise TapError(
                    f"the TAP service at {self.url} does not offer Parquet results; use .vot or .csv"
                )
            mime = caps.parquet_mime
        else:
            mime = FILE_MIMES[kind]
        if maxrec is not None and (not isinstance(maxrec, int) or maxrec < 0):
            raise TapError(f"maxrec must be a whole number >= 0, got {maxrec!r}")
        limit = maxrec if maxrec is not None else caps.default_maxrec
        request = self._params(adql, mime, maxrec, queue, params)
        files = self._upload_files(uploads, request)
        exact_overflow = None
        if not async_:
            rows = self._stream_to(
                out, "POST", "sync", kind, what="query", **self._post_params(request, files)
            )
        else:
            job_id = self._create(request, files)
            with self._owned_job(job_id):
                status = self._wait(job_id, timeout)
                rows = self._stream_to(
                    out, "GET", self._result_url(job_id, status), kind, what=f"job {job_id} result"
                )
            exact_overflow = status.get("overflow")
        self._warn_file_overflow(out, kind, rows, limit, exact_overflow)
        return out

    def _stream_to(
        self, out: Path, method: str, path: str, kind: str, *, what: str, **kwargs: Any
    ) -> int | None:
        """Stream a response body into ``out`` (atomically); CSV/TSV: return the data rows."""
        url = self._full(path)
        newlines = 0
        try:
            with self._http.stream(method, url, **kwargs) as response, atomic_path(out, suffix=".part") as tmp:
                if response.status_code >= 400:
                    response.read()
                    self._raise_for(response, what, query=True)
                head = b""
                with open(tmp, "wb") as fh:
                    for chunk in response.iter_bytes(1 << 20):
                        if len(head) < 65536:
                            head += chunk[: 65536 - len(head)]
                        newlines += chunk.count(b"\n")
                        fh.write(chunk)
                if head.lstrip().startswith(b"<"):  # a VOTable: the result, or an error document
                    message = _votable_error(head)
                    if message is not None:
                        raise TapQueryError(message, status=response.status_code, url=url)
        except httpx.TimeoutException:
            raise TapError(f"{what}: the TAP service at {url} did not answer in time", url=url) from None
        except httpx.HTTPError as exc:
            raise TapError(f"{what}: cannot reach the TAP service at {url}: {exc}", url=url) from None
        except OSError as exc:
            raise TapError(f"cannot write {out}: {exc}") from None
        return max(newlines - 1, 0) if kind in ("csv", "tsv") else None

    @staticmethod
    def _warn_file_overflow(
        out: Path, kind: str, rows: int | None, limit: int | None, exact: bool | None
    ) -> None:
        if kind == "votable":
            with open(out, "rb") as fh:
                fh.seek(max(out.stat().st_size - 65536, 0))
                tail = fh.read()
            if any(v == "OVERFLOW" for v, _ in _query_statuses(tail)):
                warnings.warn(
                    f"the result in {out} was truncated at MAXREC rows; more rows match (pass a larger maxrec=)",
                    ResultTruncatedWarning,
                    stacklevel=4,
                )
            return
        if exact is not None:
            if exact:
                warnings.warn(f"the result in {out} was truncated at MAXREC={limit} rows; more rows match",
                              ResultTruncatedWarning, stacklevel=4)  # fmt: skip
            return
        if kind == "parquet":
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(out).metadata.num_rows
        if limit and rows is not None and rows >= limit:
            warnings.warn(
                f"the result in {out} has {rows} rows, the MAXREC limit: it may be truncated "
                "(pass a larger maxrec=, or use a .vot file to be told exactly)",
                ResultTruncatedWarning,
                stacklevel=4,
            )

    def _decode(self, data: bytes, fmt: str, limit: int | None):
        """A result document (Parquet or VOTable) as pandas/astropy/Arrow, warning on overflow."""
        if data[:4] == b"PAR1":
            import pyarrow.parquet as pq

            table = pq.read_table(io.BytesIO(data))
            if limit is not None and table.num_rows > limit:
                table = table.slice(0, limit)
                warnings.warn(
                    f"the result was truncated at MAXREC={limit} rows; more rows match (pass a larger maxrec=)",
                    ResultTruncatedWarning,
                    stacklevel=3,
                )
            if fmt == "arrow":
                return table
            if fmt == "pandas":
                return table.to_pandas()
            return arrow_to_astropy(table)
        head = data[:65536]
        if not head.lstrip().startswith(b"<"):
            raise TapError(f"the service sent neither Parquet nor VOTable: {data[:200]!r}")
        statuses = _query_statuses(head)
        message = next((t for v, t in statuses if v == "ERROR"), None)
        if message is not None:
            raise TapQueryError(message or "the service reported an error without a message")
        table, overflow = self._parse_votable(data)
        if overflow:
            warnings.warn(
                "the result was truncated at MAXREC rows; more rows match (pass a larger maxrec=)",
                ResultTruncatedWarning,
                stacklevel=3,
            )
        if fmt == "table":
            return table
        df = table.to_pandas()
        if fmt == "pandas":
            return df
        return pa.Table.from_pandas(df, preserve_index=False)

    @staticmethod
    def _parse_votable(data: bytes):
        from astropy.io.votable import parse
        from astropy.io.votable.exceptions import VOWarning

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", VOWarning)
                votable = parse(io.BytesIO(data), verify="ignore")
        except Exception as exc:  # astropy raises many types for bad documents
            raise TapError(f"cannot read the VOTable result: {type(exc).__name__}: {exc}") from None
        resources = list(votable.resources)
        resource = next((r for r in resources if r.type == "results"), resources[0] if resources else None)
        if resource is None or not resource.tables:
            raise TapError("the VOTable result has no table")
        infos = [*votable.infos, *resource.infos]
        statuses = [i.value.upper() for i in infos if (i.name or "").upper() == "QUERY_STATUS" and i.value]
        overflow = bool(statuses) and statuses[-1] == "OVERFLOW"
        if not overflow:  # INFOs after the TABLE: not every astropy version keeps them
            overflow = any(v == "OVERFLOW" for v, _ in _query_statuses(data[-65536:]))
        return resource.tables[0].to_table(use_names_over_ids=True), overflow

    # ------------------------------------------------------------------ jobs

    def submit(
        self,
        adql: str,
        fmt: ResultKind = "pandas",
        maxrec: int | None = None,
        uploads: Mapping[str, Any] | None = None,
        queue: str | None = None,
        *,
        table_name: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """Start an async job (``POST /async`` with ``PHASE=RUN``) and return its id.

        Parameters
        ----------
        adql, maxrec, uploads, queue, params
            As for :meth:`query`.
        fmt : {"pandas", "table", "arrow"}
            Accepted for symmetry with :meth:`query` (the kind is chosen by :meth:`results`).
        table_name : str, optional
            Store the result in MyDB as ``mydb.<table_name>`` (``TABLE_NAME=``; needs a service
            with MyDB).

        Returns
        -------
        str
            The job id, for :meth:`status`, :meth:`wait`, :meth:`results`, :meth:`abort` and
            :meth:`delete`.

        Examples
        --------
        >>> job = tap.submit("SELECT flag, COUNT(*) AS n FROM survey.gaia GROUP BY flag")
        >>> tap.wait(job)
        'COMPLETED'
        >>> df = tap.results(job); tap.delete(job)
        """
        self._check_kind(fmt)
        plan = self._plan(maxrec)
        extra = dict(params or {})
        if plan.plus_one:
            extra[CLIENT_MAXREC] = plan.limit
        if table_name is not None:
            extra["TABLE_NAME"] = table_name
        request = self._params(adql, plan.mime, plan.send_maxrec, queue, extra)
        files = self._upload_files(uploads, request)
        return self._create(request, files)

    def _create(self, request: dict[str, str], files: dict[str, Any]) -> str:
        request = {**request, "PHASE": "RUN"}
        response = self._request(
            "POST", "async", what="job creation", query=True, follow_redirects=False,
            **self._post_params(request, files),
        )  # fmt: skip
        location = response.headers.get("location")
        if location:
            job_id = httpx.URL(location).path.rstrip("/").rsplit("/", 1)[-1]
        else:
            job_id = self._parse_job(response.content).get("job_id") or ""
        if not job_id:
            raise TapError(
                "job creation: the service named no job (no Location header)", status=response.status_code
            )
        if self.status(job_id)["phase"] == "PENDING":  # a service that ignores PHASE=RUN at creation
            self._request("POST", f"async/{job_id}/phase", what=f"running job {job_id}", data={"PHASE": "RUN"},
                          follow_redirects=False)  # fmt: skip
        return job_id

    @staticmethod
    def _parse_job(content: bytes) -> dict[str, Any]:
        try:
            root = ET.fromstring(content)
        except ET.ParseError as exc:
            raise TapError(f"the service sent an unreadable UWS job document: {exc}") from None
        out: dict[str, Any] = {
            "job_id": None, "phase": "UNKNOWN", "run_id": None, "owner": None, "created": None,
            "started": None, "ended": None, "destruction": None, "execution_duration": None, "quote": None,
            "progress": None, "error": None, "rows": None, "overflow": None, "queue": None,
            "parameters": {}, "results": {},
        }  # fmt: skip
        simple = {"jobId": "job_id", "runId": "run_id", "ownerId": "owner", "phase": "phase"}
        times = {"creationTime": "created", "startTime": "started", "endTime": "ended",
                 "destruction": "destruction", "quote": "quote"}  # fmt: skip
        for el in root:
            tag = _local(el.tag)
            text = (el.text or "").strip() or None
            if tag in simple:
                out[simple[tag]] = text
            elif tag in times:
                out[times[tag]] = _parse_time(text)
            elif tag == "executionDuration":
                out["execution_duration"] = _int(text)
            elif tag == "parameters":
                out["parameters"] = {p.get("id", ""): (p.text or "") for p in el}
            elif tag == "results":
                out["results"] = {
                    r.get("id", ""): r.get("{http://www.w3.org/1999/xlink}href") or r.get("href") or ""
                    for r in el
                }
            elif tag == "errorSummary":
                msg = next((m.text for m in el if _local(m.tag) == "message"), None)
                out["error"] = (msg or "").strip() or "the job failed"
            elif tag == "jobInfo":
                for info in el.iter():
                    itag = _local(info.tag)
                    if itag == "progress" and info.get("total") is not None:
                        out["progress"] = (_int(info.get("done")) or 0, _int(info.get("total")))
                    elif itag == "rows":
                        out["rows"] = _int(info.text)
                        if info.get("overflow") is not None:
                            out["overflow"] = info.get("overflow", "").lower() == "true"
                    elif itag == "queue":
                        out["queue"] = (info.text or "").strip() or None
        if out["phase"]:
            out["phase"] = out["phase"].upper()
        return out

    def status(self, job_id: str) -> dict[str, Any]:
        """The job's state, from its UWS document.

        Returns
        -------
        dict
            ``job_id``, ``phase`` (``PENDING``, ``QUEUED``, ``EXECUTING``, ``COMPLETED``,
            ``ERROR``, ``ABORTED``, ...), ``run_id``, ``owner``, the times ``created``,
            ``started``, ``ended`` and ``destruction`` (UTC datetimes or None),
            ``execution_duration`` (seconds, 0 = unlimited), ``quote``, ``progress``
            (``(done, total)`` partitions from ``jobInfo``, or None), ``error`` (the
            service's message when the phase is ERROR), ``rows`` and ``overflow`` (when the
            service reports them), ``queue``, ``parameters`` (name -> value) and ``results``
            (result id -> URL).

        Examples
        --------
        >>> job = tap.submit("SELECT COUNT(*) AS n FROM survey.gaia"); tap.wait(job)
        'COMPLETED'
        >>> status = tap.status(job)
        >>> status["phase"], status["progress"][0] == status["progress"][1]  # partitions done, total
        ('COMPLETED', True)
        >>> "COMPLETED" in status._repr_html_()  # a small table in notebooks
        True
        """
        return self._status(job_id)

    def _status(
        self, job_id: str, wait: int | None = None, read_timeout: float | None = None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if wait is not None:
            kwargs["params"] = {"WAIT": str(wait)}
        if read_timeout is not None:
            kwargs["timeout"] = httpx.Timeout(read_timeout, connect=min(read_timeout, 30.0))
        response = self._request("GET", f"async/{self._job_path(job_id)}", what=f"job {job_id}", **kwargs)
        status = JobStatus(self._parse_job(response.content))
        status["job_id"] = status["job_id"] or job_id
        return status

    @staticmethod
    def _job_path(job_id: str) -> str:
        job_id = str(job_id).strip()
        if not job_id or "/" in job_id or job_id in (".", ".."):
            raise TapError(f"{job_id!r} is not a job id")
        return job_id

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.5) -> str:
        """Block until the job ends; return ``"COMPLETED"``.

        Uses UWS blocking requests (``WAIT=-1``, or the remaining time, at most
        60 s per request), falling back to polling every ``poll`` seconds (growing to 5 s) for
        services that answer at once.

        Parameters
        ----------
        job_id : str
        timeout : float, optional
            Seconds to wait at most (default: no limit).
        poll : float
            First polling interval when the service does not block.

        Raises
        ------
        TapQueryError
            The job ended in ERROR (the service's message).
        TapError
            The job was aborted, is still PENDING (never started) or no longer exists.
        TapTimeoutError
            ``timeout`` expired; the job is still running (``exc.job_id``).

        Examples
        --------
        >>> tap.wait(tap.submit("SELECT COUNT(*) FROM survey.gaia"), timeout=60)
        'COMPLETED'
        """
        return self._wait(job_id, timeout, poll)["phase"]

    def _wait(self, job_id: str, timeout: float | None, poll: float = 0.5) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = max(poll, 0.01)
        block = _block_for(deadline)
        last_phase = None
        while True:
            started = time.monotonic()
            try:
                status = self._status(job_id, wait=block, read_timeout=None if block is None else
                                      (MAX_BLOCK_SECONDS if block < 0 else block) + 30)  # fmt: skip
            except _ReadTimeout:
                if block is None:
                    raise
                status = {"phase": last_phase or "UNKNOWN"}  # a blocking request the service held too long
            phase = status["phase"]
            if phase == "COMPLETED":
                return status
            if phase == "ERROR":
                message = status.get("error") or self._error_message(job_id)
                raise TapQueryError(f"job {job_id} failed: {message}")
            if phase == "ABORTED":
                raise TapError(f"job {job_id} was aborted")
            if phase == "ARCHIVED":
                raise TapError(f"job {job_id} is ARCHIVED: its results are gone")
            if phase == "PENDING":
                raise TapError(f"job {job_id} is PENDING: it was never started (POST PHASE=RUN to start it)")
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                exc = TapTimeoutError(f"job {job_id} is still {phase} after {timeout:g} s; it keeps running "
                                      f"(wait for it with wait({job_id!r}) or stop it with abort({job_id!r}))")  # fmt: skip
                exc.job_id = job_id
                raise exc
            if phase == last_phase and now - started < delay:  # the service does not block: poll
                time.sleep(min(delay, (deadline - now) if deadline is not None else delay))
                delay = min(delay * 1.5, 5.0)
            last_phase = phase
            block = _block_for(deadline)

    def _error_message(self, job_id: str) -> str:
        try:
            response = self._http.get(self._full(f"async/{job_id}/error"))
        except httpx.HTTPError:
            return "the job failed"
        return _votable_error(response.content) or "the job failed"

    def _result_url(self, job_id: str, status: dict[str, Any]) -> str:
        links = status.get("results") or {}
        href = next((h for h in links.values() if h.rstrip("/").endswith("results/result")), None)
        href = href or links.get("result")
        job_url = self._full(f"async/{self._job_path(job_id)}")
        if not href:
            return job_url + "/results/result"
        return str(httpx.URL(job_url + "/").join(href))

    def _result_bytes(self, job_id: str, status: dict[str, Any]) -> bytes:
        return self._request("GET", self._result_url(job_id, status), what=f"job {job_id} result").content

    def results(self, job_id: str, fmt: ResultKind = "pandas"):
        """The result of a COMPLETED job as a pandas DataFrame, astropy Table or Arrow table.

        Raises
        ------
        TapQueryError
            The job failed (the service's message).
        TapError
            The job is not COMPLETED, or does not exist.

        Examples
        --------
        >>> job = tap.submit("SELECT TOP 3 id FROM survey.gaia ORDER BY id"); tap.wait(job)
        'COMPLETED'
        >>> t = tap.results(job, fmt="table")
        >>> len(t)
        3
        """
        self._check_kind(fmt)
        status = self.status(job_id)
        if status["phase"] == "ERROR":
            raise TapQueryError(f"job {job_id} failed: {status['error'] or self._error_message(job_id)}")
        if status["phase"] != "COMPLETED":
            raise TapError(f"job {job_id} is {status['phase']}: it has no result (yet)")
        given = {k.upper(): v for k, v in status["parameters"].items()}
        limit = _int(given.get(CLIENT_MAXREC))
        return self._decode(self._result_bytes(job_id, status), fmt, limit)

    def abort(self, job_id: str) -> None:
        """Abort a job (``PHASE=ABORT``); the service stops it and keeps its record.

        Examples
        --------
        >>> job = tap.submit("SELECT a.id FROM survey.gaia AS a JOIN survey.gaia AS b "
        ...                  "ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 1")
        >>> tap.abort(job)
        >>> tap.status(job)["phase"] in ("ABORTED", "COMPLETED")
        True
        """
        self._request("POST", f"async/{self._job_path(job_id)}/phase", what=f"aborting job {job_id}",
                      data={"PHASE": "ABORT"}, follow_redirects=False)  # fmt: skip

    def delete(self, job_id: str) -> None:
        """Delete a job and its result (HTTP ``DELETE``); a running job is aborted first.

        Examples
        --------
        >>> job = tap.submit("SELECT COUNT(*) FROM survey.gaia")
        >>> tap.delete(job)
        """
        self._request("DELETE", f"async/{self._job_path(job_id)}", what=f"deleting job {job_id}",
                      follow_redirects=False)  # fmt: skip

    def jobs(self, phase: str | Iterable[str] | None = None, last: int | None = None) -> list[dict[str, Any]]:
        """Your jobs on the service (the UWS job list), in the order the service lists them.

        Parameters
        ----------
        phase : str or iterable of str, optional
            Only jobs in these phases (``PHASE=``).
        last : int, optional
            Only the ``last`` most recently created jobs (``LAST=``).

        Returns
        -------
        list of dict
            ``job_id``, ``phase``, ``run_id``, ``owner``, ``created`` (UTC datetime) and
            ``url`` per job.

        Examples
        --------
        >>> isinstance([j["job_id"] for j in tap.jobs(phase="EXECUTING")], list)
        True
        """
        query: list[tuple[str, str]] = []
        if phase is not None:
            for p in [phase] if isinstance(phase, str) else phase:
                query.append(("PHASE", str(p).upper()))
        if last is not None:
            query.append(("LAST", str(int(last))))
        response = self._request("GET", "async", what="job list", params=query)
        try:
            root = ET.fromstring(response.content)
        except ET.ParseError as exc:
            raise TapError(f"the service sent an unreadable UWS job list: {exc}") from None
        out = []
        for ref in root:
            if _local(ref.tag) != "jobref":
                continue
            fields = {_local(c.tag): (c.text or "").strip() or None for c in ref}
            out.append(
                {
                    "job_id": ref.get("id"),
                    "phase": (fields.get("phase") or "UNKNOWN").upper(),
                    "run_id": fields.get("runId"),
                    "owner": fields.get("ownerId"),
                    "created": _parse_time(fields.get("creationTime")),
                    "url": ref.get("{http://www.w3.org/1999/xlink}href"),
                }
            )
        return out

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
