"""The per-task work of an ingest, run on Dask workers: scan, split, reduce.

Each task is a plain function of paths and small arguments. It writes its outputs into the
staging ``work`` directory, then its completion marker (atomically), and returns the
marker's content. Memory per task is bounded by one batch of rows (scan, split) or one
partition (reduce), whatever the size of the input.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from proxcompute.errors import IngestError, InputError
from proxcompute.ingest import _inputs
from proxcompute.ingest._staging import atomic_write_json, is_out_of_space, task_marker, temp_path
from proxcompute.sky.healpix import INDEX_ORDER, radec_to_healpix29
from proxcompute.storage.layout import PartitionPixel, partition_path
from proxcompute.storage.partitioning import DEFAULT_HISTOGRAM_ORDER
from proxcompute.storage.writer import write_partition_file

__all__ = [
    "HISTOGRAM_ORDER",
    "Chunk",
    "deserialize_schema",
    "reduce_task",
    "scan_task",
    "serialize_schema",
    "split_task",
]

HISTOGRAM_ORDER = DEFAULT_HISTOGRAM_ORDER
"""Order of the row histogram: the deepest partition order ingest can produce."""

MAX_EXAMPLES = 5
SCAN_BATCH_ROWS = 500_000
"""Rows per batch when scanning the two coordinate columns of a Parquet chunk."""
PIECE_ROWS = 4_096
"""Rows a bin's slice of one split batch should average (bigger buffers compress better)."""
MAX_SPLIT_BATCH_ROWS = 2_000_000
STAGING_COMPRESSION = "zstd"
"""Codec of the staged (split) files: 0.78x the bytes on a typical sky, ~5M rows/s per core."""


@dataclass(frozen=True)
class Chunk:
    """A bounded piece of input: one task's work.

    ``kind`` is ``"parquet"`` (``row_groups`` of ``path``), ``"ipc"`` (record batches
    ``batches[0]:batches[1]`` of a converted file) or, for the scan only, the format of a
    whole file to convert (``"csv"``, ``"fits"``, ``"votable"``).
    """

    id: str
    kind: str
    path: str
    source: str
    """Path of the original input file (for messages)."""
    row_start: int
    """Row number, in the original file, of the chunk's first row."""
    rows: int
    batch_rows: int
    row_groups: tuple[int, ...] = ()
    batches: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Chunk:
        d = dict(d)
        d["row_groups"] = tuple(d.get("row_groups", ()))
        d["batches"] = tuple(d.get("batches", (0, 0)))
        return cls(**d)


def serialize_schema(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def deserialize_schema(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def _finish(work: Path, stage: str, task_id: str, result: dict[str, Any]) -> dict[str, Any]:
    atomic_write_json(task_marker(work, stage, task_id), result)
    return result


def wrap_ra(ra: np.ndarray) -> tuple[np.ndarray, bool]:
    """RA folded into [0, 360); the flag says whether anything changed."""
    outside = (ra < 0.0) | (ra >= 360.0)
    if not outside.any():
        return ra, False
    wrapped = np.mod(ra, 360.0)
    wrapped[wrapped >= 360.0] = 0.0  # tiny negative values round up to 360
    return wrapped, True


def invalid_mask(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """True where a position cannot be placed: NaN/inf (or null) RA or Dec, |Dec| > 90."""
    with np.errstate(invalid="ignore"):
        ok = np.abs(dec) <= 90.0  # False for NaN
        ok &= np.isfinite(ra)
    return ~ok


# -- scan --------------------------------------------------------------------------------


def _weighted_histogram(pixels: np.ndarray, counts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``counts`` (1 each when None) per distinct pixel: sorted ``(pixels, totals)``."""
    if pixels.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    if counts is None:
        pix = np.sort(pixels)
        starts = np.flatnonzero(np.concatenate(([True], pix[1:] != pix[:-1])))
        totals = np.diff(np.append(starts, pix.size))
    else:
        order = np.argsort(pixels)
        pix, cnt = pixels[order], counts[order]
        starts = np.flatnonzero(np.concatenate(([True], pix[1:] != pix[:-1])))
        totals = np.add.reduceat(cnt, starts)
    return pix[starts].astype(np.int64), totals.astype(np.int64)


class _ScanAccumulator:
    """Row counts, invalid rows and a sparse histogram over a stream of coordinate batches.

    Pixels (int32 at order 10) are buffered raw and counted with one sort when the buffer
    holds ``FLUSH_ROWS``, so memory stays bounded for a file of any length.
    """

    FLUSH_ROWS = 8_000_000

    def __init__(self, source: str, row_start: int) -> None:
        self.source = os.path.basename(source)
        self.row = row_start
        self.rows = 0
        self.invalid = 0
        self.examples: list[list[Any]] = []
        self.raw: list[np.ndarray] = []
        self.raw_rows = 0
        self.sparse: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, ra: np.ndarray, dec: np.ndarray) -> None:
        bad = invalid_mask(ra, dec)
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            if len(self.examples) < MAX_EXAMPLES:
                for i in np.flatnonzero(bad)[: MAX_EXAMPLES - len(self.examples)]:
                    self.examples.append([self.source, self.row + int(i), float(ra[i]), float(dec[i])])
            keep = ~bad
            ra, dec = ra[keep], dec[keep]
        self.rows += len(bad)
        self.row += len(bad)
        self.invalid += n_bad
        ra, _ = wrap_ra(ra)
        pix = np.right_shift(radec_to_healpix29(ra, dec), 2 * (INDEX_ORDER - HISTOGRAM_ORDER))
        self.raw.append(pix.astype(np.int32))
        self.raw_rows += pix.size
        if self.raw_rows >= self.FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.raw:
            self.sparse.append(_weighted_histogram(np.concatenate(self.raw), None))
            self.raw, self.raw_rows = [], 0
        if len(self.sparse) > 1 and sum(p.size for p, _ in self.sparse) > 2 * self.FLUSH_ROWS:
            self.sparse = [self._merged()]  # at most 12.6 million distinct order-10 pixels

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """``(pixels, counts)`` at ``HISTOGRAM_ORDER``, pixels sorted."""
        self._flush()
        return self._merged()

    def _merged(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self.sparse) == 1:
            return self.sparse[0]
        return _weighted_histogram(
            np.concatenate([p for p, _ in self.sparse] or [np.empty(0, np.int64)]),
            np.concatenate([c for _, c in self.sparse] or [np.empty(0, np.int64)]),
        )

    def result(self, unit_id: str, hist_path: Path, schema: pa.Schema) -> dict[str, Any]:
        pix, cnt = self.histogram()
        tmp = temp_path(hist_path, ".npz")
        # order-10 pixels fit int32, and so do the counts of any chunk below 2**31 rows
        np.savez(
            tmp, pixels=pix.astype(np.int32), counts=cnt.astype(np.int32 if self.rows < 2**31 else np.int64)
        )
        os.replace(tmp, hist_path)
        return {
            "id": unit_id,
            "rows": self.rows,
            "invalid": self.invalid,
            "examples": self.examples,
            "hist": str(hist_path),
            "schema": serialize_schema(schema),
        }


def scan_task(unit: Chunk, *, work: str, ra: str, dec: str) -> dict[str, Any]:
    """Scan one unit: count rows, validate coordinates, histogram them at ``HISTOGRAM_ORDER``.

    A Parquet chunk is read for its two coordinate columns only. A CSV, FITS or VOTable file
    is read whole, streaming, and converted to an Arrow IPC file in the staging directory
    (so it is parsed once); the result lists the converted file's batches.
    """
    work_dir = Path(work)
    hist_path = work_dir / "scan" / f"{unit.id}.hist.npz"
    if unit.kind == "parquet":
        acc = _ScanAccumulator(unit.source, unit.row_start)
        pf = _inputs.open_parquet(unit.path)
        try:
            for batch in pf.iter_batches(
                batch_size=SCAN_BATCH_ROWS, row_groups=list(unit.row_groups), columns=[ra, dec]
            ):
                acc.add(*_inputs.coordinate_arrays(batch, ra, dec))
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot read input file {unit.source}: {exc}") from None
        schema = pf.schema_arrow
        return _finish(work_dir, "scan", unit.id, acc.result(unit.id, hist_path, schema))
    ipc_path = work_dir / "convert" / f"{unit.id}.arrow"
    if unit.kind == "csv":
        types: dict[str, pa.DataType] = {}
        while True:
            try:
                acc, schema, batch_rows = _convert(
                    unit, _inputs.iter_csv_batches(unit.path, types), ipc_path, ra, dec
                )
                break
            except pa.ArrowInvalid as exc:
                if not _inputs.widen_csv_type(exc, lambda: _inputs.csv_column_names(unit.path), types):
                    raise InputError(f"cannot read input file {unit.source} as CSV: {exc}") from None
            except (OSError, pa.ArrowException) as exc:
                raise InputError(f"cannot read input file {unit.source} as CSV: {exc}") from None
    else:
        batches = _inputs.iter_astropy_batches(unit.path, unit.kind, unit.batch_rows)
        try:
            acc, schema, batch_rows = _convert(unit, batches, ipc_path, ra, dec)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise InputError(f"cannot convert input file {unit.source} to Arrow: {exc}") from None
    result = acc.result(unit.id, hist_path, schema)
    result["ipc"] = str(ipc_path)
    result["batch_rows"] = batch_rows
    return _finish(work_dir, "scan", unit.id, result)


def _convert(
    unit: Chunk, batches: Iterator[pa.RecordBatch], ipc_path: Path, ra: str, dec: str
) -> tuple[_ScanAccumulator, pa.Schema, list[int]]:
    acc = _ScanAccumulator(unit.source, 0)
    batch_rows: list[int] = []
    writer = None
    schema = None
    tmp = temp_path(ipc_path)
    try:
        for batch in batches:
            if schema is None:
                schema = batch.schema
                _inputs.check_coordinate_schema(schema, [ra, dec], unit.source)
                writer = pa.ipc.new_file(str(tmp), schema)
            elif batch.schema != schema:
                batch = batch.cast(schema)
            if batch.num_rows == 0:
                continue
            acc.add(*_inputs.coordinate_arrays(batch, ra, dec))
            writer.write_batch(batch)
            batch_rows.append(batch.num_rows)
        if schema is None:
            raise InputError(f"input file {unit.source} holds no table")
        writer.close()
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, ipc_path)
    return acc, schema, batch_rows


# -- split -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _load_plan(path: str, _mtime_ns: int) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    with open(path) as fh:
        plan = json.load(fh)
    parts = plan["partitions"]
    starts = np.array([p[1] << (2 * (INDEX_ORDER - p[0])) for p in parts], dtype=np.int64)
    ends = np.array([(p[1] + 1) << (2 * (INDEX_ORDER - p[0])) for p in parts], dtype=np.int64)
    bin_starts = np.array([b[0] for b in plan["bins"]], dtype=np.int64)
    group_of_bin = np.empty(len(bin_starts), dtype=np.int64)
    for g, (b0, b1) in enumerate(plan["groups"]):
        group_of_bin[b0:b1] = g
    return starts, ends, len(parts), bin_starts, group_of_bin


def load_plan_ranges(path: str) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """``(starts, ends, n, bin_starts, group_of_bin)``: order-29 ranges of the planned
    partitions, the first partition of each bin, and each bin's file group (cached per process)."""
    return _load_plan(path, os.stat(path).st_mtime_ns)


def _iter_chunk(chunk: Chunk, columns: list[str] | None, batch_rows: int) -> Iterator[pa.RecordBatch]:
    if chunk.kind == "parquet":
        pf = _inputs.open_parquet(chunk.path)
        yield from pf.iter_batches(batch_size=batch_rows, row_groups=list(chunk.row_groups), columns=columns)
        return
    with pa.memory_map(chunk.path) as src:
        reader = pa.ipc.open_file(src)
        for i in range(chunk.batches[0], chunk.batches[1]):
            yield reader.get_batch(i)


def _rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Group small batches into tables of about ``rows`` rows (big ones pass through)."""
    buf: list[pa.RecordBatch] = []
    n = 0
    for b in batches:
        buf.append(b)
        n += b.num_rows
        if n >= rows:
            yield pa.Table.from_batches(buf)
            buf, n = [], 0
    if buf:
        yield pa.Table.from_batches(buf)


def _conform(table: pa.Table, schema: pa.Schema, source: str) -> pa.Table:
    """The input table with the unified column order and types (``schema`` minus the index)."""
    names = schema.names[1:]
    try:
        table = table.select(names)
    except KeyError:
        missing = sorted(set(names) - set(table.column_names))
        raise InputError(f"input file {source} lacks columns {missing} that other inputs have") from None
    target = pa.schema([schema.field(n) for n in names])
    if table.schema != target:
        try:
            table = table.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(
                f"input file {source}: cannot convert columns to the common schema: {exc}"
            ) from None
    return pa.Table.from_arrays(table.columns, schema=target)


def split_task(
    chunk: Chunk,
    *,
    work: str,
    plan_path: str,
    schema: str,
    ra: str,
    dec: str,
    drop_invalid: bool,
) -> dict[str, Any]:
    """Split one input chunk by bin into ``work/split/<chunk>.g<group>.arrow``, one file per group.

    Rows are read in batches (``chunk.batch_rows``, more when there are many bins); each
    batch gets its ``_healpix_29``, is grouped by partition (one stable radix sort of the
    partition numbers, one take), and each bin's slice (consecutive partitions) is appended,
    zstd-compressed, as a record batch to its group's file. The marker maps bin numbers to
    the numbers of their record batches, and groups to their files.
    """
    work_dir = Path(work)
    out_schema = deserialize_schema(schema)
    starts, ends, n_parts, bin_starts, group_of_bin = load_plan_ranges(plan_path)
    key_dtype = np.int16 if n_parts < 2**15 else np.int32
    # enough rows per batch that a bin's slice averages >= PIECE_ROWS rows: compression works
    # on bigger buffers, and the number of pieces stays far below the number of rows
    batch_rows = max(chunk.batch_rows, min(PIECE_ROWS * len(bin_starts), MAX_SPLIT_BATCH_ROWS))
    ra_type = out_schema.field(ra).type
    options = pa.ipc.IpcWriteOptions(compression=STAGING_COMPRESSION)
    writers: dict[int, tuple[Path, Path, Any, list[int]]] = {}  # group -> (path, tmp, writer, [batches])
    pieces: dict[str, list[int]] = {}
    rows = dropped = 0

    def writer_of(group: int) -> tuple[Path, Path, Any, list[int]]:
        if group not in writers:
            path = work_dir / "split" / f"{chunk.id}.g{group:04d}.arrow"
            tmp = temp_path(path)
            writers[group] = (path, tmp, pa.ipc.new_file(str(tmp), out_schema, options=options), [0])
        return writers[group]

    try:
        for table in _rebatch(_iter_chunk(chunk, None, batch_rows), batch_rows):
            table = _conform(table, out_schema, chunk.source)
            ra_arr, dec_arr = _inputs.coordinate_arrays(table, ra, dec)
            bad = invalid_mask(ra_arr, dec_arr)
            if bad.any():
                if not drop_invalid:
                    raise IngestError(
                        f"input file {chunk.source} changed during the ingest (new invalid rows)"
                    )
                keep = ~bad
                dropped += int(bad.sum())
                table = table.filter(pa.array(keep))
                ra_arr, dec_arr = ra_arr[keep], dec_arr[keep]
            ra_arr, wrapped = wrap_ra(ra_arr)
            if wrapped:
                col = pa.array(ra_arr).cast(ra_type, safe=False)
                table = table.set_column(table.schema.get_field_index(ra), ra, col)
            idx = radec_to_healpix29(ra_arr, dec_arr)
            pos = np.searchsorted(starts, idx, side="right") - 1
            if idx.size and ((pos < 0).any() or (idx >= ends[np.maximum(pos, 0)]).any()):
                raise IngestError(
                    f"input file {chunk.source} changed during the ingest (rows outside the plan)"
                )
            perm = np.argsort(pos.astype(key_dtype), kind="stable")
            bins = np.searchsorted(bin_starts, pos, side="right") - 1
            counts = np.bincount(bins, minlength=len(bin_starts))
            table = table.add_column(0, out_schema.field(0), pa.array(idx)).take(perm).combine_chunks()
            offset = 0
            for b in np.flatnonzero(counts):
                n = int(counts[b])
                _, _, writer, next_batch = writer_of(int(group_of_bin[b]))
                for rb in table.slice(offset, n).to_batches():
                    writer.write_batch(rb)
                    pieces.setdefault(str(b), []).append(next_batch[0])
                    next_batch[0] += 1
                offset += n
            rows += table.num_rows
        for _, _, writer, _ in writers.values():
            writer.close()
    except BaseException as exc:
        for _, tmp, writer, _ in writers.values():
            try:
                writer.close()
            except (OSError, pa.ArrowException):
                pass
            tmp.unlink(missing_ok=True)
        if isinstance(exc, (OSError, pa.ArrowInvalid)) and not is_out_of_space(exc):
            raise InputError(
                f"cannot split input file {chunk.source} (rows {chunk.row_start:,}+): {exc}"
            ) from None
        raise
    files = {}
    for group, (path, tmp, _, _) in writers.items():
        os.replace(tmp, path)
        files[str(group)] = str(path)
    result = {"id": chunk.id, "files": files, "rows": rows, "dropped": dropped, "pieces": pieces}
    return _finish(work_dir, "split", chunk.id, result)


# -- reduce ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReduceItem:
    """One output partition and where its rows are in the split files."""

    id: str
    order: int
    pixel: int
    expected_rows: int
    pieces: tuple[tuple[str, tuple[int, ...]], ...] = ()
    """``(split file, batch numbers)`` pairs, when the task gathers the rows itself."""


def reduce_task(
    item: ReduceItem, *, work: str, catalog_dir: str, schema: str, table: pa.Table | None = None
) -> dict[str, Any]:
    """Write one partition's file: its rows (``table``, or gathered from ``item.pieces``)
    sorted by ``_healpix_29``; then its marker."""
    out_schema = deserialize_schema(schema)
    if table is None:
        batches: list[pa.RecordBatch] = []
        for path, numbers in item.pieces:
            reader = pa.ipc.open_file(pa.memory_map(path))
            batches.extend(reader.get_batch(i) for i in numbers)
        table = pa.Table.from_batches(batches, schema=out_schema)
        del batches
    if table.num_rows != item.expected_rows:
        raise IngestError(
            f"partition {PartitionPixel(item.order, item.pixel)} has {table.num_rows} rows, "
            f"the plan expected {item.expected_rows}: an input file changed during the ingest"
        )
    idx = table.column(0).combine_chunks().to_numpy()
    if idx.size > 1 and not (idx[1:] >= idx[:-1]).all():
        table = table.take(np.argsort(idx))
    table = table.combine_chunks()
    pixel = PartitionPixel(item.order, item.pixel)
    path = partition_path(catalog_dir, pixel.order, pixel.pixel)
    try:
        rows = write_partition_file(catalog_dir, pixel, table)
    except BaseException:
        # a write cut short (e.g. a full disk) can leave the writer's temporary file, which
        # the published catalog must not hold
        for leftover in path.parent.glob(f"{path.name}.*.part"):
            leftover.unlink(missing_ok=True)
        raise
    del table
    _fsync(path)  # now, in parallel, not all at publish
    return _finish(
        Path(work), "reduce", item.id, {"id": item.id, "order": item.order, "pixel": item.pixel, "rows": rows}
    )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
