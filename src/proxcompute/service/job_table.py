"""The job store's database table (SQLAlchemy Core): schema, row -> :class:`Job`, SQLite set-up."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from proxcompute.service.uws import Job, from_db_time

__all__ = ["add_missing_columns", "jobs_table", "metadata", "owner_clause", "row_to_job", "sqlite_on_connect"]

metadata = sa.MetaData()
jobs_table = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.Text, nullable=True, index=True),
    sa.Column("run_id", sa.Text, nullable=True),
    sa.Column("phase", sa.String(16), nullable=False, index=True),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("parameters", sa.Text, nullable=False),  # JSON object, insertion-ordered
    sa.Column("creation_time", sa.DateTime, nullable=False, index=True),  # naive UTC
    sa.Column("start_time", sa.DateTime, nullable=True),
    sa.Column("end_time", sa.DateTime, nullable=True),
    sa.Column("execution_duration", sa.Integer, nullable=False),
    sa.Column("destruction", sa.DateTime, nullable=True, index=True),
    sa.Column("quote", sa.DateTime, nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("result_path", sa.Text, nullable=True),
    sa.Column("result_mime", sa.Text, nullable=True),
    sa.Column("result_size", sa.BigInteger, nullable=True),
    sa.Column("result_rows", sa.BigInteger, nullable=True),
    sa.Column("overflow", sa.Boolean, nullable=False, default=False),
    sa.Column("progress_done", sa.Integer, nullable=True),
    sa.Column("progress_total", sa.Integer, nullable=True),
    sa.Column("progress_rows", sa.BigInteger, nullable=True),  # stored rows of the partitions done
    sa.Column("uploads", sa.Text, nullable=False),  # JSON object name -> path
)


def row_to_job(row: Any) -> Job:
    m = row._mapping
    return Job(
        id=m["id"],
        owner=m["owner"],
        run_id=m["run_id"],
        phase=m["phase"],
        queue=m["queue"],
        parameters=json.loads(m["parameters"]),
        creation_time=from_db_time(m["creation_time"]),
        start_time=from_db_time(m["start_time"]),
        end_time=from_db_time(m["end_time"]),
        execution_duration=int(m["execution_duration"]),
        destruction=from_db_time(m["destruction"]),
        quote=from_db_time(m["quote"]),
        error_message=m["error_message"],
        result_path=m["result_path"],
        result_mime=m["result_mime"],
        result_size=m["result_size"],
        result_rows=m["result_rows"],
        overflow=bool(m["overflow"]),
        progress_done=m["progress_done"],
        progress_total=m["progress_total"],
        progress_rows=m["progress_rows"],
        uploads=json.loads(m["uploads"]),
    )


def add_missing_columns(engine: sa.Engine) -> list[str]:
    """Add to an existing ``jobs`` table the nullable columns a newer release defined; their names.

    A job database outlives service upgrades (jobs are kept for days); every column added
    since the first release is nullable, so ``ALTER TABLE ... ADD COLUMN`` brings an older
    table up to date in SQLite and PostgreSQL alike, keeping its jobs.
    """
    have = {c["name"] for c in sa.inspect(engine).get_columns(jobs_table.name)}
    added = []
    with engine.begin() as conn:
        for column in jobs_table.columns:
            if column.name in have:
                continue
            if not column.nullable:
                raise RuntimeError(f"job table lacks column {column.name!r}, which cannot be added to existing rows")
            kind = column.type.compile(dialect=engine.dialect)
            conn.execute(sa.text(f'ALTER TABLE {jobs_table.name} ADD COLUMN "{column.name}" {kind}'))
            added.append(column.name)
    return added


def owner_clause(owner: str | None):
    return jobs_table.c.owner.is_(None) if owner is None else jobs_table.c.owner == owner


def sqlite_on_connect(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
    except Exception:  # e.g. in-memory databases have no WAL; harmless
        pass
    finally:
        cur.close()
