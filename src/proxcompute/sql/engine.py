"""DuckDB over Arrow: the per-partition and final SQL engine.

Connections come from a small pool (creating one costs ~20 ms; a query on a warm one
~1 ms) and serve one thread at a time, with one thread each (Dask already runs one task per core), file-system access disabled and the
configuration locked, so a query can only see the Arrow tables registered for it. The
ADQL geometry macros and the ``ivo_healpix_index`` UDF (our numba kernel) are defined on
every connection.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import pyarrow as pa

from proxcompute.errors import SqlError
from proxcompute.sql.geometry import MACROS

__all__ = ["run_sql"]

_pool: dict[tuple[str | None, int], list] = {}
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


def _new_connection(readable_dir: str | None, threads: int = 1):
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
def connection(readable_dir: str | None = None, threads: int = 1) -> Iterator:
    """A pooled DuckDB connection for the calling thread's exclusive use.

    With ``readable_dir``, the connection may read files under that directory (a catalog's
    partition files) and nothing else; without, it reads no files at all.
    """
    with _pool_lock:
        free = _pool.get((readable_dir, threads))
        con = free.pop() if free else None
    if con is None:
        con = _new_connection(readable_dir, threads)
    try:
        yield con
    finally:
        with _pool_lock:
            free = _pool.setdefault((readable_dir, threads), [])
            if len(free) < POOL_SIZE:
                free.append(con)
                con = None
        if con is not None:
            con.close()


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


def _phase(exc: Exception) -> str:
    name = type(exc).__name__
    if "Binder" in name or "Conversion" in name or "Parser" in name:
        return "type"
    if "OutOfRange" in name or "InvalidInput" in name:
        return "type"
    if "Permission" in name:
        return "forbidden"
    return "execution"


def run_sql(sql: str, tables: Mapping[str, pa.Table]) -> pa.Table:
    """Run ``sql`` with ``tables`` registered under their names; returns an Arrow table."""
    with connection() as con:
        names = list(tables)
        try:
            for name in names:
                con.register(name, tables[name])
            return con.sql(sql).to_arrow_table()
        except Exception as exc:
            if type(exc).__module__.startswith(("duckdb", "_duckdb")):
                raise SqlError(_phase(exc), engine_message(exc)) from None
            raise
        finally:
            for name in names:
                try:
                    con.unregister(name)
                except Exception:  # pragma: no cover - nothing to unregister
                    pass


@atexit.register
def _close_pool() -> None:  # closes cleanly instead of leaking UDF references at exit
    with _pool_lock:
        for free in _pool.values():
            while free:
                free.pop().close()


class _FileSetError(Exception):
    """A multi-file scan failed on a file it did not name: retry file by file to name it."""


FILE_PLACEHOLDER = "__file__"
"""Table name in direct SQL that stands for ``read_parquet('<partition file>')``."""


def run_sql_on_file(sql: str, path: str | list[str], root: str, *, threads: int = 1) -> pa.Table:
    """Run ``sql`` with :data:`FILE_PLACEHOLDER` reading Parquet file(s) under ``root``.

    Several files are read as one table, in the order given (DuckDB keeps insertion order),
    by one query using ``threads`` threads.
    """
    from proxcompute.errors import CorruptPartitionError

    paths = [path] if isinstance(path, str) else list(path)
    literal = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"
    text = sql.replace(f'"{FILE_PLACEHOLDER}"', f"read_parquet({literal}, hive_partitioning = false)")
    with connection(os.path.realpath(root), threads) as con:
        try:
            return con.sql(text).to_arrow_table()
        except Exception as exc:
            if not type(exc).__module__.startswith(("duckdb", "_duckdb")):
                raise
            message = engine_message(exc)
            if "Permission" in type(exc).__name__:
                raise SqlError("forbidden", message) from None
            if "IO" in type(exc).__name__ or "parquet" in message.lower() or "magic" in message.lower():
                named = next((p for p in paths if os.path.basename(p) in message), None)
                if named is None and len(paths) > 1:
                    raise _FileSetError(message) from None
                raise CorruptPartitionError(str(named or paths[0]), message) from None
            raise SqlError(_phase(exc), message) from None
