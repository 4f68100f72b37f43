"""Queries: sync and async, into memory or into a file, with MAXREC overflow detection."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from proxcompute.client._errors import (
    ResultTruncatedWarning,
    TapError,
    TapQueryError,
    TapTimeoutError,
)
from proxcompute.client._session import (
    CLIENT_MAXREC,
    FILE_FORMATS,
    FILE_MIMES,
    RESULT_KINDS,
    ResultKind,
    _Session,
)
from proxcompute.client._xml import (
    query_statuses,
    votable_error,
)
from proxcompute.formats import arrow_to_astropy
from proxcompute.storage.atomic import atomic_path


class _QueryMixin(_Session):
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
                    message = votable_error(head)
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
            if any(v == "OVERFLOW" for v, _ in query_statuses(out)):  # the trailing INFO
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
        statuses = query_statuses(head)
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
            overflow = any(v == "OVERFLOW" for v, _ in query_statuses(data))
        return resource.tables[0].to_table(use_names_over_ids=True), overflow
