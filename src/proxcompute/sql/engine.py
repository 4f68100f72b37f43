"""The SQL front's view of the DuckDB engine, which lives in :mod:`proxcompute.ops.sql_engine`.

:func:`run_sql` runs SQL over Arrow tables (the per-partition and final-merge operator). Only
the executor has DuckDB read partition files itself, when it decides a plain full scan is
fastest that way (:mod:`proxcompute.execute.file_scan`).
"""

from __future__ import annotations

from proxcompute.ops.sql_engine import MACROS, engine_message, run_sql

__all__ = ["MACROS", "engine_message", "run_sql"]
