"""The SQL front's view of the DuckDB engine, which lives in :mod:`proxcompute.ops.sql_engine`.

:func:`run_sql` runs SQL over Arrow tables (the per-partition and final-merge operator).
:func:`run_sql_on_file` runs it over Parquet files under one directory with a connection
that may read nothing else; no query path uses it any more (the executor's reader reads
partition files, so it can prune partitions and row groups and cache footers). It stays,
with the test of its file-access guard, until that test moves to the Arrow connections;
then it can go.
"""

from __future__ import annotations

import os

import pyarrow as pa

from proxcompute.errors import SqlError
from proxcompute.ops.sql_engine import (
    MACROS,
    engine_message,
    engine_phase,
    is_engine_error,
    new_connection,
    run_sql,
)

__all__ = ["FILE_PLACEHOLDER", "MACROS", "engine_message", "run_sql", "run_sql_on_file"]

FILE_PLACEHOLDER = "__file__"
"""Table name in SQL for :func:`run_sql_on_file` that stands for ``read_parquet('<file>')``."""


def run_sql_on_file(sql: str, path: str | list[str], root: str, *, threads: int = 1) -> pa.Table:
    """Run ``sql`` with :data:`FILE_PLACEHOLDER` reading Parquet file(s) under ``root`` only."""
    from proxcompute.errors import CorruptPartitionError

    paths = [path] if isinstance(path, str) else list(path)
    literal = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"
    text = sql.replace(f'"{FILE_PLACEHOLDER}"', f"read_parquet({literal}, hive_partitioning = false)")
    con = new_connection(threads, os.path.realpath(root))
    try:
        return con.sql(text).to_arrow_table()
    except Exception as exc:
        if not is_engine_error(exc):
            raise
        message = engine_message(exc)
        if "Permission" in type(exc).__name__:
            raise SqlError("forbidden", message) from None
        if "IO" in type(exc).__name__ or "parquet" in message.lower() or "magic" in message.lower():
            named = next((p for p in paths if os.path.basename(p) in message), None)
            raise CorruptPartitionError(str(named or paths[0]), message) from None
        raise SqlError(engine_phase(exc), message) from None
    finally:
        con.close()
