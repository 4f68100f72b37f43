"""Planning an ingest in the driver: input chunks, the common schema, the partition plan.

Everything here is plain Python on metadata (Parquet footers, scan results); the row work
is in :mod:`proxcompute.ingest._tasks`.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pyarrow as pa

from proxcompute.errors import IngestError, InputError, InvalidCoordinatesError
from proxcompute.ingest import _tasks
from proxcompute.ingest._inputs import InputFile, check_coordinate_schema, drop_reserved, open_parquet
from proxcompute.ingest._reduce import plan_bins
from proxcompute.ingest._tasks import HISTOGRAM_ORDER, Chunk
from proxcompute.sky.healpix import INDEX_COLUMN
from proxcompute.storage.atomic import atomic_write
from proxcompute.storage.partitioning import plan_partitions

__all__ = [
    "check_plan",
    "discover_parquet",
    "estimate_output_bytes",
    "make_plan",
    "merge_scan_histograms",
    "scan_units",
]

CHUNK_ROWS = 4_000_000
"""Rows per task (a group of Parquet row groups, or of converted batches)."""
BATCH_BYTES = 12 << 20
"""Target size of one batch of rows inside a task. Small on purpose: a task reuses the same
memory batch after batch, while big batches keep touching fresh pages, and page faults
cost more than the work (1M-row batches made the split 3x slower than 250k-row ones)."""
MIN_BATCH_ROWS = 65_536
MAX_BATCH_ROWS = 2_000_000
"""Most rows a task holds in memory at once."""
CONVERT_BATCH_ROWS = 262_144
"""Rows per batch when converting a FITS or VOTable file."""


def _batch_rows(row_bytes: float) -> int:
    return int(np.clip(BATCH_BYTES // max(row_bytes, 1.0), MIN_BATCH_ROWS, MAX_BATCH_ROWS))


def _file_id(i: int) -> str:
    return f"f{i:05d}"


def _group(sizes: list[int], limit: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` groups of items with at most ``limit`` total (>= 1 item each)."""
    groups = []
    start, total = 0, 0
    for i, n in enumerate(sizes):
        if i > start and total + n > limit:
            groups.append((start, i))
            start, total = i, 0
        total += n
    if start < len(sizes):
        groups.append((start, len(sizes)))
    return groups


def discover_parquet(
    files: list[InputFile], ra: str, dec: str
) -> tuple[dict[int, list[Chunk]], dict[int, pa.Schema]]:
    """Read Parquet footers: check the coordinate columns, cut the files into chunks."""
    chunks: dict[int, list[Chunk]] = {}
    schemas: dict[int, pa.Schema] = {}
    for i, f in enumerate(files):
        if f.format != "parquet":
            continue
        pf = open_parquet(f.path)
        schema = pf.schema_arrow
        check_coordinate_schema(schema, [ra, dec], f.path)
        schemas[i] = schema
        md = pf.metadata
        sizes = [md.row_group(k).num_rows for k in range(md.num_row_groups)]
        nbytes = sum(md.row_group(k).total_byte_size for k in range(md.num_row_groups))
        batch_rows = _batch_rows(nbytes / max(sum(sizes), 1))
        offsets = np.concatenate(([0], np.cumsum(sizes))).astype(int)
        chunks[i] = [
            Chunk(
                id=f"{_file_id(i)}-c{k:04d}",
                kind="parquet",
                path=f.path,
                source=f.path,
                row_start=int(offsets[a]),
                rows=int(offsets[b] - offsets[a]),
                batch_rows=batch_rows,
                row_groups=tuple(range(a, b)),
            )
            for k, (a, b) in enumerate(_group(sizes, CHUNK_ROWS))
            if offsets[b] > offsets[a]
        ]
    return chunks, schemas


def scan_units(files: list[InputFile], parquet_chunks: dict[int, list[Chunk]]) -> list[Chunk]:
    units: list[Chunk] = []
    for i, f in enumerate(files):
        if f.format == "parquet":
            units.extend(parquet_chunks[i])
        else:
            units.append(
                Chunk(id=_file_id(i), kind=f.format, path=f.path, source=f.path, row_start=0, rows=-1,
                      batch_rows=CONVERT_BATCH_ROWS)
            )  # fmt: skip
    return units


def _unify_schemas(files: list[InputFile], schemas: dict[int, pa.Schema]) -> pa.Schema:
    first_i = min(schemas)
    first = schemas[first_i]
    names = drop_reserved(first.names)
    kept = {}
    for i, s in sorted(schemas.items()):
        these = drop_reserved(s.names)
        if set(these) != set(names):
            extra = sorted(set(these) - set(names))
            missing = sorted(set(names) - set(these))
            raise InputError(
                f"input files have different columns: {files[i].path} "
                + (f"has {extra} " if extra else "")
                + ("and " if extra and missing else "")
                + (f"lacks {missing} " if missing else "")
                + f"compared with {files[first_i].path}"
            )
        kept[i] = pa.schema([s.field(n).remove_metadata() for n in names])
    try:
        unified = pa.unify_schemas(list(kept.values()), promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"input files have incompatible column types: {exc}") from None
    fields = [_plain(unified.field(n)) for n in names]
    return pa.schema([pa.field(INDEX_COLUMN, pa.int64(), nullable=False), *fields])


def _plain(f: pa.Field) -> pa.Field:
    """Dictionary columns (pandas categoricals) are stored decoded: batches from different
    files or row groups carry different dictionaries, which one Arrow IPC file cannot hold."""
    return f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f


def make_plan(
    files: list[InputFile],
    parquet_chunks: dict[int, list[Chunk]],
    file_schemas: dict[int, pa.Schema],
    scans: list[dict[str, Any]],
    ra: str,
    dec: str,
    max_rows: int,
    histogram_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Merge the scan results into the partition plan (saved as ``work/plan.json``).

    With ``histogram_path``, the merged order-10 row histogram is kept there (``.npz``), and
    the plan names it: the catalog's point map is that histogram, so the metadata stage need
    not read the partitions' ``_healpix_29`` columns again.
    """
    schemas = dict(file_schemas)
    chunks: list[Chunk] = []
    by_id = {s["id"]: s for s in scans}
    for i, f in enumerate(files):
        if f.format == "parquet":
            chunks.extend(parquet_chunks[i])
            continue
        s = by_id[_file_id(i)]
        schemas[i] = _tasks.deserialize_schema(s["schema"])
        sizes = [int(n) for n in s["batch_rows"]]
        total = sum(sizes)
        batch_rows = _batch_rows(os.path.getsize(s["ipc"]) / max(total, 1))
        offsets = np.concatenate(([0], np.cumsum(sizes))).astype(int)
        chunks.extend(
            Chunk(
                id=f"{_file_id(i)}-c{k:04d}",
                kind="ipc",
                path=s["ipc"],
                source=f.path,
                row_start=int(offsets[a]),
                rows=int(offsets[b] - offsets[a]),
                batch_rows=batch_rows,
                batches=(a, b),
            )
            for k, (a, b) in enumerate(_group(sizes, CHUNK_ROWS))
        )
    schema = _unify_schemas(files, schemas)
    check_coordinate_schema(schema, [ra, dec], "the unified input schema")

    pixels, counts = merge_scan_histograms([s["hist"] for s in scans], sum(int(s["rows"]) for s in scans))
    parts, rows = plan_partitions(pixels, counts, HISTOGRAM_ORDER, max_rows)
    if histogram_path is not None:
        with atomic_write(histogram_path) as fh:
            np.savez(fh, pixels=pixels, counts=counts, order=HISTOGRAM_ORDER)
    examples = [e for s in scans for e in s["examples"]][: _tasks.MAX_EXAMPLES]
    bins, groups = plan_bins([int(rows[p]) for p in parts])
    return {
        "schema": _tasks.serialize_schema(schema),
        "input_rows": int(sum(int(s["rows"]) for s in scans)),
        "invalid_rows": int(sum(int(s["invalid"]) for s in scans)),
        "invalid_examples": examples,
        "partitions": [[p.order, p.pixel, int(rows[p])] for p in parts],
        "chunks": [c.to_dict() for c in chunks],
        "bins": bins,
        "groups": groups,
        "histogram": None if histogram_path is None else str(histogram_path),
    }


def merge_scan_histograms(paths: list[str], max_total: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum the scans' sparse histograms in one dense array over all order-10 pixels.

    Memory is fixed (12.6 million counters) whatever the input size; the counters are int32
    (half the pages to touch) unless ``max_total`` rows could overflow them.
    """
    dtype = np.int32 if max_total < 2**31 else np.int64
    dense = np.zeros(12 * 4**HISTOGRAM_ORDER, dtype=dtype)
    for path in paths:
        with np.load(path) as h:
            dense[h["pixels"]] += h["counts"].astype(dtype)  # pixels are unique within one histogram
    pixels = np.flatnonzero(dense)
    return pixels, dense[pixels].astype(np.int64)


def estimate_output_bytes(plan: dict[str, Any]) -> int:
    """Rough bytes of the catalog: the rows at their in-memory width (variable-width columns
    counted as 16 bytes); Parquet's compression and the margin roughly cancel out."""
    schema = _tasks.deserialize_schema(plan["schema"])
    width = 0
    for field in schema:
        try:
            width += max(field.type.bit_width // 8, 1)
        except ValueError:  # variable width
            width += 16
    return int(plan["input_rows"]) * width


def check_plan(plan: dict[str, Any], max_rows: int, ra: str, dec: str, drop_invalid: bool) -> None:
    invalid = int(plan["invalid_rows"])
    if invalid and not drop_invalid:
        shown = "; ".join(f"{f} row {r}: {ra}={x!r}, {dec}={y!r}" for f, r, x, y in plan["invalid_examples"])
        raise InvalidCoordinatesError(
            f"{invalid:,} of {int(plan['input_rows']):,} input rows have invalid coordinates "
            f"(NaN, infinite or missing {ra}/{dec}, or |{dec}| > 90), e.g. (0-based rows) {shown}. "
            "Pass drop_invalid=True (CLI: --drop-invalid) to skip them; resume=True reuses this scan."
        )
    if not plan["partitions"]:
        raise IngestError("the inputs hold no rows" + (" with valid coordinates" if invalid else ""))
    big = [(o, p, n) for o, p, n in plan["partitions"] if n > max_rows]
    if big:
        o, p, n = max(big, key=lambda t: t[2])
        warnings.warn(
            f"{len(big)} partition(s) hold more than max_rows={max_rows:,} rows (largest: {n:,} rows in "
            f"Norder={o}/Npix={p}): a single order-{HISTOGRAM_ORDER} pixel is that dense and cannot be split",
            UserWarning,
            stacklevel=3,
        )
