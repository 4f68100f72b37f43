"""Running one TAP query (sync or async): parameters -> SQL result -> a document in a format."""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa

from proxcompute.catalog import from_dataframe
from proxcompute.errors import InputError, ProxError, SqlError
from proxcompute.formats import MEDIA_TYPES, normalize_format, read_table_bytes, write_table
from proxcompute.service.params import TapParams, TapRequestError
from proxcompute.sql import CatalogRegistry, SqlResult, sql

__all__ = [
    "QuerySpec",
    "check_query_length",
    "content_type",
    "load_upload",
    "parse_query_spec",
    "position_columns",
    "run_query",
]

LANGS = {"ADQL", "ADQL-2.0", "ADQL-2.1"}
UPLOAD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RA_NAMES = ("ra", "raj2000", "ra_icrs", "_raj2000")
DEC_NAMES = ("dec", "dej2000", "de_icrs", "_dej2000", "decj2000")


def position_columns(names: list[str]) -> tuple[str | None, str | None]:
    """The (ra, dec) columns of a table by their usual names (case-insensitive), None when absent.

    >>> position_columns(["id", "RAJ2000", "DEJ2000"])
    ('RAJ2000', 'DEJ2000')
    """
    cols = {str(c).lower(): str(c) for c in names}
    ra = next((cols[c] for c in RA_NAMES if c in cols), None)
    dec = next((cols[c] for c in DEC_NAMES if c in cols), None)
    return ra, dec


@dataclass
class QuerySpec:
    """A validated TAP query request."""

    query: str
    fmt: str
    mime: str
    maxrec: int
    uploads: dict[str, Any] = field(default_factory=dict)
    """``TAP_UPLOAD.<name>`` -> a Catalog (with coordinates) or an Arrow table."""
    upload_meta: dict[str, dict[str, str]] = field(default_factory=dict)
    """Column name -> VOTable attributes of uploaded ``char`` columns (echoed in results)."""
    table_name: str | None = None
    """``TABLE_NAME``/``DESTINATION=mydb://``: also write the whole result as ``mydb.<name>``."""


def content_type(fmt: str, requested: str | None) -> str:
    """Answer with exactly the media type the client named; else ours for the format."""
    if requested and "/" in requested:
        return requested
    return MEDIA_TYPES[fmt]


MAX_QUERY_CHARS = 200_000
"""The default longest QUERY (``ServiceConfig.max_query_chars``)."""


def check_query_length(query: str | None, max_query_chars: int) -> None:
    """Refuse a QUERY longer than ``max_query_chars`` (before anything parses or stores it)."""
    if query is not None and len(query) > max_query_chars:
        raise TapRequestError(f"QUERY has {len(query):,} characters; the limit is {max_query_chars:,} "
                              "(send long lists of positions or ids as a table: UPLOAD)")  # fmt: skip


def parse_query_spec(
    params: TapParams, *, default_maxrec: int, hard_maxrec: int, upload_limit: int,
    max_query_chars: int = MAX_QUERY_CHARS,
) -> QuerySpec:  # fmt: skip
    """Check LANG, QUERY, RESPONSEFORMAT/FORMAT, MAXREC and UPLOAD; raise :class:`TapRequestError`."""
    request = params.get("REQUEST")
    if request is not None and request not in ("doQuery",):
        raise TapRequestError(f"REQUEST={request} is not supported (use REQUEST=doQuery)")
    lang = params.get("LANG")
    if lang is None:
        raise TapRequestError("LANG is missing (use LANG=ADQL)")
    if lang.upper() not in LANGS:
        raise TapRequestError(f"LANG={lang} is not supported; use one of ADQL, ADQL-2.0, ADQL-2.1")
    query = params.get("QUERY")
    if not query or not query.strip():
        raise TapRequestError("QUERY is missing or empty")
    check_query_length(query, max_query_chars)
    requested = params.get("RESPONSEFORMAT") or params.get("FORMAT")
    try:
        fmt = normalize_format(requested or "votable")
    except InputError as exc:
        raise TapRequestError(str(exc)) from None
    raw = params.get("MAXREC")
    if raw is None:
        maxrec = default_maxrec
    else:
        try:
            maxrec = int(raw)
        except ValueError:
            raise TapRequestError(f"MAXREC={raw!r} is not a whole number") from None
        if maxrec < 0:
            raise TapRequestError(f"MAXREC={raw} must be >= 0")
        maxrec = min(maxrec, hard_maxrec)
    uploads = {}
    upload_meta: dict[str, dict[str, str]] = {}
    for item in params.all("UPLOAD"):
        for spec in filter(None, (p.strip() for p in item.split(";"))):
            name, sep, source = spec.partition(",")
            name = name.strip()
            if not sep or not UPLOAD_NAME.match(name):
                raise TapRequestError(f"UPLOAD={spec!r}: expected name,param:part or name,http(s)://... with a name "
                                      "of letters, digits and _")  # fmt: skip
            uploads[f"TAP_UPLOAD.{name}"] = load_upload(name, source.strip(), params, upload_limit, upload_meta)
    from proxcompute.service.mydb import MyDBError, table_name_from

    try:
        table_name = table_name_from(params.values)
    except MyDBError as exc:
        raise TapRequestError(str(exc)) from None
    return QuerySpec(query, fmt, content_type(fmt, requested), maxrec, uploads, upload_meta, table_name)


def load_upload(
    name: str, source: str, params: TapParams, limit: int, meta: dict[str, dict[str, str]] | None = None
) -> Any:
    """An uploaded table (VOTable, CSV, Parquet or FITS) as a Catalog when it has coordinates."""
    if source.startswith("param:"):
        part = source[len("param:") :]
        data = params.parts.get(part)
        if data is None:
            raise TapRequestError(f"UPLOAD {name}: no multipart part named {part!r} in the request")
    elif source.startswith(("http://", "https://")):
        data = _fetch(source, limit)
    else:
        raise TapRequestError(f"UPLOAD {name}: the source must be param:<part> or an http(s) URL, got {source!r}")
    if len(data) > limit:
        raise TapRequestError(f"UPLOAD {name} has {len(data):,} bytes; the limit is {limit:,}")
    try:
        df = read_table_bytes(data, name=f"UPLOAD {name}", meta=meta if meta is not None else {})
    except InputError as exc:
        raise TapRequestError(str(exc)) from None
    ra, dec = position_columns(list(df.columns))
    if ra and dec:
        try:
            return from_dataframe(df, name=name, ra_column=ra, dec_column=dec)
        except ProxError as exc:
            raise TapRequestError(f"UPLOAD {name}: {exc}") from None
    return pa.Table.from_pandas(df, preserve_index=False)


def _fetch(url: str, limit: int) -> bytes:
    """GET an upload URL, refusing loopback/private/link-local hosts and oversize bodies."""
    import httpx

    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        raise TapRequestError(f"UPLOAD URL host {host!r} cannot be resolved") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if addr.is_loopback or addr.is_private or addr.is_link_local or addr.is_reserved or addr.is_multicast:
            raise TapRequestError(f"UPLOAD URL {url!r} points at a local or private address; refused")
    chunks, size = [], 0
    try:
        with httpx.stream("GET", url, timeout=30.0, follow_redirects=False) as response:
            if response.status_code != 200:
                raise TapRequestError(f"UPLOAD URL {url!r} answered HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise TapRequestError(f"UPLOAD URL {url!r} is larger than the upload limit of {limit:,} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise TapRequestError(f"UPLOAD URL {url!r} cannot be fetched: {exc}") from None
    return b"".join(chunks)


class _LateFlag:
    """A truth value read when used: the writers test ``overflow`` after the last row."""

    def __init__(self, get: Callable[[], bool]) -> None:
        self._get = get

    def __bool__(self) -> bool:
        return self._get()


def compile_spec(spec: QuerySpec, registry: CatalogRegistry) -> SqlResult:
    """The lazy SQL result for a request (uploads visible as ``TAP_UPLOAD.<name>``)."""
    if spec.uploads:
        registry = registry.extended(spec.uploads)
    return sql(spec.query, registry, maxrec=max(spec.maxrec, 0))


def run_query(
    spec: QuerySpec,
    registry: CatalogRegistry,
    out: BinaryIO,
    *,
    client: Any = None,
    cancel: threading.Event | None = None,
    infos: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    column_meta: Mapping[str, Mapping[str, str]] | None = None,
    mydb: Any = None,
    user: str | None = None,
    mydb_quota_bytes: int | None = None,
) -> tuple[int, bool]:
    """Run a request and write its document to ``out``; returns ``(rows, overflow)``.

    ``MAXREC=0`` writes the metadata only; ``TABLE_NAME`` also writes the whole result to
    ``user``'s MyDB within ``mydb_quota_bytes``. Raises :class:`SqlError` (and other
    :class:`ProxError`) for user errors.
    """
    import warnings

    from proxcompute.sql import SqlTruncatedWarning

    result = compile_spec(spec, registry)
    if spec.table_name is not None:
        if mydb is None:
            raise TapRequestError("this service keeps no MyDB tables")
        full = sql(spec.query, registry.extended(spec.uploads) if spec.uploads else registry)
        mydb.write(user, spec.table_name, full, client=client, quota_bytes=mydb_quota_bytes)
    if progress is not None:
        progress(0, max(1, len(result.partitions)))
    if cancel is not None and cancel.is_set():
        raise SqlError("execution", "the job was aborted")
    meta = {k: dict(v) for k, v in spec.upload_meta.items()}
    for k, v in (column_meta or {}).items():
        meta.setdefault(k, {}).update(v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SqlTruncatedWarning)
        batches = result.iter_batches(client)  # streams row-by-row queries partition by partition
        first = next(batches)

        def checked():
            yield first
            for batch in batches:
                if cancel is not None and cancel.is_set():
                    raise SqlError("execution", "the job was aborted")
                yield batch

        extra = [("QUERY", spec.query), *(infos or {}).items()]
        flag = _LateFlag(lambda: bool(result.overflow) and spec.maxrec > 0)
        rows = write_table(checked(), first.schema, out, spec.fmt, overflow=flag, infos=extra, column_meta=meta)
    overflow = bool(flag)
    return rows, overflow
