"""Adaptive partitioning: from row counts per fine pixel to partitions of at most ``max_rows``.

Walk down from order 0: a pixel whose count fits becomes a partition (if non-empty), a
pixel that does not fit is split into its 4 children. At the histogram order a pixel is
kept whatever its count (the histogram cannot resolve it further).
"""

from __future__ import annotations

import numpy as np

from proxcompute.sky.healpix import first_descendant, healpix29_to_order
from proxcompute.storage.layout import PartitionPixel, partition_starts, sort_pixels

__all__ = [
    "DEFAULT_HISTOGRAM_ORDER",
    "DEFAULT_MAX_ROWS",
    "assign_partitions",
    "histogram",
    "merge_histograms",
    "plan_partitions",
]

DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_HISTOGRAM_ORDER = 10


def histogram(index29: np.ndarray, order: int = DEFAULT_HISTOGRAM_ORDER) -> tuple[np.ndarray, np.ndarray]:
    """Sparse row counts per pixel at ``order``: ``(pixels, counts)``, pixels sorted."""
    pix = healpix29_to_order(np.asarray(index29, dtype=np.int64), order)
    if pix.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    pix.sort()
    edges = np.flatnonzero(np.diff(pix)) + 1
    starts = np.concatenate(([0], edges))
    counts = np.diff(np.concatenate((starts, [pix.size])))
    return pix[starts], counts.astype(np.int64)


def merge_histograms(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sum sparse histograms (same order)."""
    parts = [p for p in parts if p[0].size]
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    pix = np.concatenate([p[0] for p in parts])
    cnt = np.concatenate([p[1] for p in parts])
    uniq, inv = np.unique(pix, return_inverse=True)
    return uniq, np.bincount(inv, weights=cnt, minlength=uniq.size).astype(np.int64)


def plan_partitions(
    pixels: np.ndarray,
    counts: np.ndarray,
    histogram_order: int,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> tuple[list[PartitionPixel], dict[PartitionPixel, int]]:
    """Partitions (in storage order) and their expected row counts.

    Parameters
    ----------
    pixels, counts
        Sparse histogram at ``histogram_order`` (pixels sorted ascending).
    histogram_order
        Order of the histogram; the deepest possible partition order.
    max_rows
        Largest number of rows a partition may hold (unless a single histogram pixel holds more).

    Examples
    --------
    >>> parts, rows = plan_partitions(np.array([0, 1, 5]), np.array([10, 10, 3]), 1, max_rows=15)
    >>> [str(p) for p in parts], sorted(rows.values())
    (['Norder=1/Npix=0', 'Norder=1/Npix=1', 'Norder=0/Npix=1'], [3, 10, 10])
    """
    if max_rows < 1:
        raise ValueError("max_rows must be >= 1")
    pixels = np.asarray(pixels, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    result: dict[PartitionPixel, int] = {}
    # cumulative counts along the nested curve give any ancestor's total in O(log n)
    cum = np.concatenate(([0], np.cumsum(counts)))

    def total(order: int, pix: int) -> int:
        lo = np.searchsorted(pixels, first_descendant(pix, order, histogram_order), side="left")
        hi = np.searchsorted(pixels, first_descendant(pix + 1, order, histogram_order), side="left")
        return int(cum[hi] - cum[lo])

    stack = [(0, p) for p in range(11, -1, -1)]
    while stack:
        order, pix = stack.pop()
        n = total(order, pix)
        if n == 0:
            continue
        if n <= max_rows or order >= histogram_order:
            result[PartitionPixel(order, pix)] = n
        else:
            stack.extend((order + 1, 4 * pix + c) for c in range(3, -1, -1))
    ordered = sort_pixels(list(result))
    return ordered, {p: result[p] for p in ordered}


def assign_partitions(index29: np.ndarray, pixels: list[PartitionPixel]) -> np.ndarray:
    """Position in ``pixels`` (storage order) of each row's partition; -1 if none holds it."""
    starts, ends = partition_starts(pixels)
    idx = np.asarray(index29, dtype=np.int64)
    pos = np.searchsorted(starts, idx, side="right") - 1
    ok = pos >= 0
    ok[ok] = idx[ok] < ends[pos[ok]]
    return np.where(ok, pos, -1)
