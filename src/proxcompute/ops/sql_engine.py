"""DuckDB as a per-partition operator: SQL over Arrow tables, sort, top-n and distinct.

The SQL front compiles what the plan nodes cannot express (expressions in SELECT lists,
residual WHERE terms, partial and final aggregates with expressions, ``HAVING``) to SQL
that this module runs over the Arrow tables the executor's reader produced; DuckDB never
reads a partition file itself. Ordering and de-duplication (``Sort``, ``TopN``,
``Distinct``) also run here, so their null and NaN ordering is DuckDB's in every plan.

Connections come from a small pool (creating one costs ~20 ms; a query on a warm one
~1 ms) and serve one thread at a time, with file-system access disabled and the
configuration locked, so a query can only see the Arrow tables registered for it.

Two SQL macros stay defined on every connection, ``__adql_distance`` (haversine) and
``__adql_in_box``: region tests in WHERE become ``RegionFilter`` nodes and positional joins
``CrossmatchSource`` scans (the exact kernels), but ADQL allows ``DISTANCE(...)`` and
``CONTAINS(...)`` as *values* (a select-list column, an ORDER BY key, a test between two
columns of one row), which are per-row expressions only SQL can evaluate. The
``ivo_healpix_index`` UDF is our numba kernel.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from proxcompute.errors import SqlError

__all__ = [
    "MACROS",
    "SortKey",
    "connection",
    "distinct_table",
    "engine_message",
    "locate_error",
    "run_sql",
    "run_sql_over_files",
    "sort_table",
]

DISTANCE_MACRO = (
    "CREATE OR REPLACE MACRO __adql_distance(ra1, dec1, ra2, dec2) AS degrees(2 * asin(least(1.0, sqrt("
    "pow(sin(radians(dec2 - dec1) / 2), 2) + cos(radians(dec1)) * cos(radians(dec2)) * "
    "pow(sin(radians(ra2 - ra1) / 2), 2)))))"
)
BOX_MACRO = (
    "CREATE OR REPLACE MACRO __adql_in_box(ra, dec, c1, c2, w, h) AS "
    "abs(dec - c2) <= h / 2 AND (w >= 360 OR abs(((ra - c1 + 540) % 360) - 180) <= w / 2)"
)
MACROS = (DISTANCE_MACRO, BOX_MACRO)
"""SQL macros translated ADQL geometry values call; every engine connection defines them."""

_pool: dict[tuple[int, str | None], list] = {}
_pool_lock = threading.Lock()
POOL_SIZE = max(4, 2 * (os.cpu_count() or 1))


def _healpix_index(order: pa.Array, ra: pa.Array, dec: pa.Array) -> pa.Array:
    from proxcompute.kernels.healpix_nested import radec_to_nested

    orders = np.unique(order.to_numpy(zero_copy_only=False))
    if len(orders) != 1 or not 0 <= int(orders[0]) <= 29:
        raise ValueError("ivo_healpix_index needs one constant order between 0 and 29")
    ra_np = np.asarray(ra.to_numpy(zero_copy_only=False), dtype=np.float64)
    dec_np = np.asarray(dec.to_numpy(zero_copy_only=False), dtype=np.float64)
    ok = np.isfinite(ra_np) & np.isfinite(dec_np) & (np.abs(dec_np) <= 90)
    out = np.zeros(len(ra_np), dtype=np.int64)
    if ok.any():
        out[ok] = radec_to_nested(int(orders[0]), np.mod(ra_np[ok], 360.0), dec_np[ok])
    return pa.array(out, mask=~ok)


def new_connection(threads: int = 1, readable_dir: str | None = None):
    """A locked-down DuckDB connection with the macros and UDFs (no file access unless ``readable_dir``)."""
    import duckdb
    from duckdb.sqltypes import BIGINT, DOUBLE

    con = duckdb.connect(config={"threads": threads})
    for macro in MACROS:
        con.execute(macro)
    con.create_function("ivo_healpix_index", _healpix_index, [BIGINT, DOUBLE, DOUBLE], BIGINT, type="arrow")
    if readable_dir is not None:
        con.execute("SET allowed_directories = [$1]", [readable_dir.rstrip("/") + "/"])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


@contextmanager
def connection(threads: int = 1, readable_dir: str | None = None) -> Iterator:
    """A pooled connection for the calling thread's exclusive use, running ``threads`` threads.

    One thread by default: the executor already runs one partition task per core. A query
    over all partitions at once (the executor's single-scan decision) asks for more.
    ``readable_dir``: the one directory the connection may read files under (none by default).
    """
    key = (threads, readable_dir)
    with _pool_lock:
        free = _pool.get(key)
        con = free.pop() if free else None
    if con is None:
        con = new_connection(threads, readable_dir)
    try:
        yield con
    finally:
        with _pool_lock:
            free = _pool.setdefault(key, [])
            if len(free) < POOL_SIZE:
                free.append(con)
                con = None
        if con is not None:
            con.close()


@atexit.register
def _close_pool() -> None:  # closes cleanly instead of leaking UDF references at exit
    with _pool_lock:
        for free in _pool.values():
            while free:
                free.pop().close()


_LINE = re.compile(r"\n\s*LINE \d+:.*", re.S)


def engine_message(exc: Exception) -> str:
    """DuckDB's first line, without its position block (that points into generated SQL)."""
    full = str(exc)
    text = _LINE.sub("", full).strip()
    text = re.sub(r"^[A-Za-z ]+Error: ", "", text)
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    candidates = re.search(r"Candidate bindings: ([^\n]+)", full)
    if candidates:
        names = re.findall(r'"(?:[^".]+\.)?([^".]+)"', candidates.group(1))
        if names:
            first = first.rstrip("!") + f"; did you mean {names[0]!r}?"
    first = first.replace("__adql_distance", "DISTANCE").replace("__adql_in_box", "BOX")
    return re.sub(r'"__(?:part|partials|file__|g\d+)"\.', "", first)


def engine_phase(exc: Exception) -> str:
    """The :class:`SqlError` phase of a DuckDB exception."""
    name = type(exc).__name__
    if "Binder" in name or "Conversion" in name or "Parser" in name:
        return "type"
    if "OutOfRange" in name or "InvalidInput" in name:
        return "type"
    if "Permission" in name:
        return "forbidden"
    return "execution"


def is_engine_error(exc: Exception) -> bool:
    return type(exc).__module__.startswith(("duckdb", "_duckdb"))


def run_sql(sql: str, tables: Mapping[str, pa.Table], *, threads: int = 1) -> pa.Table:
    """Run ``sql`` with ``tables`` registered under their names; returns an Arrow table."""
    with connection(threads) as con:
        names = list(tables)
        try:
            for name in names:
                con.register(name, tables[name])
            return con.sql(sql).to_arrow_table()
        except Exception as exc:
            if is_engine_error(exc):
                raise SqlError(engine_phase(exc), engine_message(exc)) from None
            raise
        finally:
            for name in names:
                try:
                    con.unregister(name)
                except Exception:  # pragma: no cover - nothing to unregister
                    pass


def run_sql_over_files(
    sql: str, name: str, files: Sequence[str], columns: Sequence[str], root: str, *, threads: int = 1
) -> pa.Table:
    """Run ``sql`` with ``name`` bound to ``columns`` of the Parquet ``files`` (all under ``root``).

    DuckDB reads the files itself, overlapping decoding with the query on every thread: for a
    query over every row group of many partitions this is ~2x faster than handing it the
    Arrow tables of the reader. The executor decides when (:mod:`proxcompute.execute.file_scan`);
    the connection can read nothing outside ``root``.
    """
    with connection(threads, readable_dir=root) as con:
        try:
            rel = con.read_parquet(list(files), hive_partitioning=False).select(*[_ident(c) for c in columns])
            rel.create_view(name, replace=True)
            return con.sql(sql).to_arrow_table()
        except Exception as exc:
            if is_engine_error(exc):
                raise SqlError(engine_phase(exc), engine_message(exc)) from None
            raise
        finally:
            try:
                con.execute(f"DROP VIEW IF EXISTS {_ident(name)}")
            except Exception:  # pragma: no cover - nothing to drop
                pass


def locate_error(exc: SqlError, pieces: list[tuple[str, int | None, int | None]], tables: Mapping) -> SqlError:
    """``exc`` with the position of the query piece that fails on ``tables`` on its own, if any.

    ``pieces`` are row-wise parts of the user's query (select items, WHERE terms) as SQL over
    the table ``__part``, with their line and column in the query text.
    """
    if exc.line is not None:
        return exc
    for sql, line, col in pieces:
        try:
            run_sql(f'SELECT {sql} FROM "__part"', tables)
        except SqlError as inner:
            return SqlError(inner.phase, inner.message, line, col)
    return exc


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY key: a column, descending or not, nulls first or last."""

    column: str
    descending: bool = False
    nulls_first: bool = False

    def __str__(self) -> str:
        return f"{self.column} {'desc' if self.descending else 'asc'}{' nulls first' if self.nulls_first else ''}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def order_by_sql(keys: Sequence[SortKey]) -> str:
    """The ``ORDER BY`` clause of ``keys``."""
    return ", ".join(
        f"{_ident(k.column)} {'DESC' if k.descending else 'ASC'} NULLS {'FIRST' if k.nulls_first else 'LAST'}"
        for k in keys
    )


def sort_table(table: pa.Table, keys: Sequence[SortKey], limit: int | None = None, *, threads: int = 1) -> pa.Table:
    """``table`` ordered by ``keys`` (DuckDB's ordering of nulls and NaN), the first ``limit`` rows."""
    if not keys:
        return table if limit is None else table.slice(0, limit)
    sql = f'SELECT * FROM "__t" ORDER BY {order_by_sql(keys)}'
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return run_sql(sql, {"__t": table}, threads=threads)


def distinct_table(table: pa.Table, *, threads: int = 1) -> pa.Table:
    """The distinct rows of ``table`` (SQL ``DISTINCT``: nulls equal each other)."""
    return run_sql('SELECT DISTINCT * FROM "__t"', {"__t": table}, threads=threads)
