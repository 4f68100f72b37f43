"""A job's result as the portal shows it: one page of rows, downloads in other formats, a sky plot.

The portal's queries store their results as Parquet (``RESPONSEFORMAT=parquet``), so a page
of rows reads only the row groups it needs and a download in another format streams the
batches through :func:`proxcompute.formats.write_table`, the writer ``/sync`` uses. A job a
TAP client submitted in another format is read whole (up to :data:`PREVIEW_MAX_BYTES`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from proxcompute.errors import InputError
from proxcompute.formats import read_table_bytes, write_table
from proxcompute.service.query import position_columns
from proxcompute.service.uws import Job
from proxcompute.storage.atomic import atomic_write

__all__ = ["PAGE_ROWS", "SKY_PLOT_MAX_ROWS", "ResultPage", "read_page", "sky_plot", "write_result"]

PAGE_ROWS = 50
"""Rows per page of the result table."""
PREVIEW_MAX_BYTES = 200 << 20
"""A non-Parquet result larger than this is offered for download only."""
SKY_PLOT_MAX_ROWS = 2_000_000
"""Positions drawn on a result's sky plot at most (the first ones)."""
PARQUET = "application/vnd.apache.parquet"


class ResultUnavailable(InputError):
    """The job has no result the portal can read (not finished, failed, or too large)."""


def _is_parquet(job: Job) -> bool:
    if not job.result_path:
        return False
    with open(job.result_path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def _check(job: Job) -> Path:
    if job.phase != "COMPLETED" or not job.result_path or not Path(job.result_path).exists():
        raise ResultUnavailable(f"job {job.id} has no result (phase {job.phase})")
    return Path(job.result_path)


def _whole(job: Job) -> pa.Table:
    path = _check(job)
    if path.stat().st_size > PREVIEW_MAX_BYTES:
        raise ResultUnavailable(f"the result of job {job.id} is too large to show here; download it")
    df = read_table_bytes(path.read_bytes(), name=f"result of job {job.id}")
    return pa.Table.from_pandas(df, preserve_index=False)


class ResultPage:
    """Rows ``offset .. offset + len(table)`` of a result of ``total`` rows."""

    def __init__(self, table: pa.Table, offset: int, total: int) -> None:
        self.table = table
        self.offset = offset
        self.total = total

    @property
    def columns(self) -> list[str]:
        return list(self.table.column_names)

    def rows(self) -> list[list[str]]:
        """The cells as text (nulls as empty strings); the template escapes them."""
        cols = [c.to_pylist() for c in self.table.columns]
        return [["" if v is None else _cell(v) for v in row] for row in zip(*cols, strict=True)]


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def read_page(job: Job, page: int, rows: int = PAGE_ROWS) -> ResultPage:
    """Page ``page`` (0-based) of the job's result: only the Parquet row groups it overlaps are read."""
    path = _check(job)
    start = max(page, 0) * rows
    if not _is_parquet(job):
        table = _whole(job)
        return ResultPage(table.slice(start, rows), start, table.num_rows)
    pf = pq.ParquetFile(path)
    total = pf.metadata.num_rows
    groups, first, seen = [], None, 0
    for i in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(i).num_rows
        if seen + n > start and seen < start + rows:
            groups.append(i)
            first = seen if first is None else first
        seen += n
    if not groups:
        return ResultPage(pf.schema_arrow.empty_table(), start, total)
    table = pf.read_row_groups(groups)
    return ResultPage(table.slice(start - first, rows), start, total)


def _batches(job: Job) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    path = _check(job)
    if _is_parquet(job):
        pf = pq.ParquetFile(path)
        return pf.schema_arrow, pf.iter_batches(batch_size=65_536)
    table = _whole(job)
    return table.schema, iter(table.to_batches())


def write_result(job: Job, fmt: str, out: BinaryIO, column_meta: dict | None = None) -> int:
    """Write the job's whole result to ``out`` in ``fmt`` (votable, csv, parquet...); returns rows."""
    schema, batches = _batches(job)
    infos = [("QUERY", job.parameters.get("QUERY", ""))]
    return write_table(batches, schema, out, fmt, overflow=job.overflow, infos=infos, column_meta=column_meta)


def sky_plot(job: Job, results_dir: Path) -> Path | None:
    """A PNG density map of the result's positions, drawn once and kept in the job's directory.

    None when the result has no RA/Dec columns or no rows with positions.
    """
    path = _check(job)
    target = Path(results_dir) / job.id / "portal-sky.png"
    if target.exists():
        return target
    if _is_parquet(job):
        pf = pq.ParquetFile(path)
        ra, dec = position_columns(pf.schema_arrow.names)
        if ra is None or dec is None:
            return None
        parts, n = [], 0
        for batch in pf.iter_batches(batch_size=262_144, columns=[ra, dec]):
            parts.append(batch)
            n += batch.num_rows
            if n >= SKY_PLOT_MAX_ROWS:
                break
        table = pa.Table.from_batches(parts, schema=pa.schema([pf.schema_arrow.field(ra), pf.schema_arrow.field(dec)]))
    else:
        table = _whole(job)
        ra, dec = position_columns(table.column_names)
        if ra is None or dec is None:
            return None
    ra_v = np.asarray(table.column(ra).to_numpy(zero_copy_only=False), dtype=float)[:SKY_PLOT_MAX_ROWS]
    dec_v = np.asarray(table.column(dec).to_numpy(zero_copy_only=False), dtype=float)[:SKY_PLOT_MAX_ROWS]
    ok = np.isfinite(ra_v) & np.isfinite(dec_v) & (np.abs(dec_v) <= 90)
    if not ok.any():
        return None
    ra_ok, dec_ok = ra_v[ok], dec_v[ok]
    centre = np.degrees(np.arctan2(np.mean(np.sin(np.radians(ra_ok))), np.mean(np.cos(np.radians(ra_ok)))))
    wide = max(np.ptp((ra_ok - centre + 180.0) % 360.0), np.ptp(dec_ok)) > 30  # the rule plot_points uses
    import pandas as pd
    from matplotlib.figure import Figure

    from proxcompute.catalog import from_dataframe

    cat = from_dataframe(pd.DataFrame({"ra": ra_ok % 360.0, "dec": dec_ok}), name=f"job {job.id}")
    fig = Figure(figsize=(8, 4.6), dpi=100)
    ax = fig.add_subplot(projection="mollweide" if wide else None)
    cat.plot_points(ax=ax, bins=120 if wide else 80, projection="mollweide" if wide else "rectilinear")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, "wb") as fh:
        fh.write(buf.getvalue())
    return target
