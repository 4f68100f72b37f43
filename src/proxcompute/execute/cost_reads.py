"""What a scan will read, from metadata only: the cost model's input (:mod:`.cost`).

* A scan touching at most :data:`FOOTER_PARTITIONS` partitions opens their Parquet footers
  (cached, as :func:`~proxcompute.execute.describe_reads` does) and counts the row groups the
  reader keeps (``_healpix_29`` ranges and predicate statistics); the rows inside the ranges
  are each kept row group's rows times the share of its ``_healpix_29`` span the ranges cover.
* A larger scan never opens a footer per partition: each partition's rows come from the
  catalog's ``point_map.fits`` (row counts per HEALPix pixel, written by ingest; read once
  per catalog and cached), or ``hats_nrows`` shared by sky area when there is no map; the
  rows inside the ranges are the map's counts in them.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proxcompute.errors import CorruptPartitionError
from proxcompute.execute.reader import footer, selected_row_groups
from proxcompute.plan.nodes import Scan
from proxcompute.plan.source import MemorySource, Source, StoredSource
from proxcompute.sky.healpix import INDEX_ORDER
from proxcompute.storage import PartitionPixel
from proxcompute.storage.reader import leaf_index
from proxcompute.storage.writer import DEFAULT_ROW_GROUP_ROWS

__all__ = ["FOOTER_PARTITIONS", "Reads", "covered", "scan_reads"]

FOOTER_PARTITIONS = 64
"""Scans touching at most this many partitions open their footers for exact row-group counts."""


@dataclass(frozen=True)
class Reads:
    """What the reader reads for one scan."""

    partitions: int
    row_groups: float
    rows_decoded: float
    """Rows of the row groups read (each decoded in every column read)."""
    rows_kept: float
    """Rows inside the scan's ``_healpix_29`` ranges (what the region and predicate tests see)."""
    columns: int


_point_maps: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, int] | None] = {}
_maps_lock = threading.Lock()


def _point_map(src: StoredSource) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The catalog's ``point_map.fits`` as sorted ``(pixels, cumulative counts, order)`` (cached)."""
    if src.meta.is_remote:
        return None
    path = Path(src.root) / "point_map.fits"
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError:
        return None
    with _maps_lock:
        if key in _point_maps:
            return _point_maps[key]
    from proxcompute.storage.skymap import read_point_map

    try:
        pix, counts, order = read_point_map(path)
        o = np.argsort(pix)
        out = (pix[o], np.concatenate([[0], np.cumsum(counts[o])]).astype(np.float64), order)
    except Exception:  # an unreadable map (astropy's errors vary): share hats_nrows instead
        out = None
    with _maps_lock:
        _point_maps[key] = out
    return out


def covered(ranges: np.ndarray | None, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Length of each ``[lo, hi)`` (order-29 numbers) inside the sorted, disjoint ``ranges``.

    >>> covered(np.array([[0, 10], [20, 30]]), np.array([5, 0]), np.array([25, 40]))
    array([10., 20.])
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    if ranges is None:
        return hi - lo
    r = np.asarray(ranges, dtype=np.float64).reshape(-1, 2)
    if not len(r):
        return np.zeros_like(lo)
    cum = np.concatenate([[0.0], np.cumsum(r[:, 1] - r[:, 0])])

    def below(x: np.ndarray) -> np.ndarray:  # covered length below x
        i = np.searchsorted(r[:, 0], x, side="right") - 1
        ok = i >= 0
        j = np.where(ok, i, 0)
        inside = np.clip(x - r[j, 0], 0.0, r[j, 1] - r[j, 0])
        return np.where(ok, cum[j] + inside, 0.0)

    return np.maximum(below(hi) - below(lo), 0.0)


def _bounds(pixels: tuple[PartitionPixel, ...]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([p.healpix29_range[0] for p in pixels], dtype=np.float64)
    hi = np.array([p.healpix29_range[1] for p in pixels], dtype=np.float64)
    return lo, hi


def partition_rows(
    src: Source, pixels: tuple[PartitionPixel, ...], ranges: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows of each partition, rows of each inside ``ranges``) from stored counts, no footer."""
    lo, hi = _bounds(pixels)
    if isinstance(src, MemorySource):
        rows = np.array([src.partition_rows(p) for p in pixels], dtype=np.float64)
        return rows, rows * covered(ranges, lo, hi) / np.maximum(hi - lo, 1)
    pm = _point_map(src) if isinstance(src, StoredSource) else None
    if pm is not None:
        pix, cum, order = pm
        step = 2.0 ** (2 * (INDEX_ORDER - order))
        a = np.searchsorted(pix, np.floor(lo / step), side="left")
        b = np.searchsorted(pix, np.ceil(hi / step), side="left")
        share = np.minimum(1.0, (hi - lo) / step)  # a partition finer than the map: its share
        rows = (cum[b] - cum[a]) * share
        if ranges is None:
            return rows, rows
        kept = np.zeros(len(pixels))
        for k in np.flatnonzero(rows > 0):
            mp = pix[a[k] : b[k]].astype(np.float64)
            counts = (cum[a[k] + 1 : b[k] + 1] - cum[a[k] : b[k]]) * share[k]
            plo, phi = np.maximum(mp * step, lo[k]), np.minimum((mp + 1) * step, hi[k])
            kept[k] = float(np.sum(counts * covered(ranges, plo, phi) / np.maximum(phi - plo, 1)))
        return rows, kept
    total = max(src.total_rows, 0)
    all_lo, all_hi = _bounds(tuple(src.pixels)) if src.pixels else (np.zeros(1), np.ones(1))
    rows = total * (hi - lo) / max(float(np.sum(all_hi - all_lo)), 1.0)  # shared by sky area
    return rows, rows * covered(ranges, lo, hi) / np.maximum(hi - lo, 1)


def _footer_reads(scan: Scan, src: StoredSource, pixels: tuple[PartitionPixel, ...]) -> Reads:
    """Exact row groups from the partitions' footers; rows in the ranges by each row group's span."""
    groups = decoded = kept = 0.0
    meta = src.meta
    for pixel in pixels:
        for f in meta.partition_files(pixel):
            md = footer(f)
            rgs = selected_row_groups(md, scan.ranges, scan.predicate, meta)
            col = leaf_index(md, meta.index_column) if meta.index_column and scan.ranges is not None else None
            shift = 2 * (INDEX_ORDER - meta.index_order)
            for rg in rgs:
                group = md.row_group(rg)
                n = group.num_rows
                groups += 1
                decoded += n
                st = group.column(col).statistics if col is not None else None
                if st is None or not st.has_min_max:
                    kept += n * (1.0 if scan.ranges is None else 0.5)
                    continue
                lo, hi = float(st.min) * 2.0**shift, (float(st.max) + 1) * 2.0**shift
                kept += n * float(covered(scan.ranges, np.array([lo]), np.array([hi]))[0]) / max(hi - lo, 1.0)
    return Reads(len(pixels), groups, decoded, kept, len(scan.read_columns()))


def _rows_per_group(src: StoredSource, pixels: tuple[PartitionPixel, ...]) -> float:
    """The writer's row-group size: the largest row group among a few partitions' footers."""
    best = 0
    for p in pixels[:: max(1, len(pixels) // 3)][:3]:
        try:
            md = footer(src.meta.partition_files(p)[0])
        except (CorruptPartitionError, OSError, IndexError):
            continue
        if md.num_row_groups > 1:
            return float(max(md.row_group(i).num_rows for i in range(md.num_row_groups)))
        best = max(best, md.num_rows)
    return float(max(best, DEFAULT_ROW_GROUP_ROWS))


def scan_reads(scan: Scan) -> Reads:
    """What the reader will read for ``scan`` (optimized; a stored or in-memory source)."""
    src = scan.source
    pixels = tuple(scan.partitions)
    columns = len(scan.read_columns())
    if not pixels or not isinstance(src, (StoredSource, MemorySource)):
        return Reads(len(pixels), 0, 0, 0, columns)
    if isinstance(src, StoredSource) and len(pixels) <= FOOTER_PARTITIONS:
        try:
            return _footer_reads(scan, src, pixels)
        except (CorruptPartitionError, OSError):
            pass  # the run will name the file; estimate from the stored counts meanwhile
    rows, kept = partition_rows(src, pixels, scan.ranges)
    if isinstance(src, MemorySource):
        return Reads(len(pixels), len(pixels), float(kept.sum()), float(kept.sum()), columns)
    per_group = _rows_per_group(src, pixels)
    if scan.ranges is None:
        decoded = float(rows.sum())
        groups = float(np.sum(np.ceil(rows / per_group)))
    else:  # whole row groups: at least one of each partition the ranges meet
        met = kept > 0
        decoded = float(np.sum(np.minimum(rows[met], np.maximum(kept[met], per_group))))
        groups = float(math.ceil(decoded / per_group))
    return Reads(len(pixels), max(groups, len(pixels)), decoded, float(kept.sum()), columns)
