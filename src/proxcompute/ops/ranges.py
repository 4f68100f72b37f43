"""Half-open ``_healpix_29`` ranges as ``(n, 2)`` int64 arrays: intersection, overlap, row masks."""

from __future__ import annotations

import numpy as np

from proxcompute.sky.healpix import healpix29_spans

__all__ = ["intersect_ranges", "overlaps", "ranges_mask", "slice_by_ranges"]


def _as_ranges(r: np.ndarray) -> np.ndarray:
    return np.asarray(r, dtype=np.int64).reshape(-1, 2)


def intersect_ranges(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of two sorted, merged range lists (result sorted and merged).

    Examples
    --------
    >>> intersect_ranges(np.array([[0, 10], [20, 30]]), np.array([[5, 25]])).tolist()
    [[5, 10], [20, 25]]
    """
    a, b = _as_ranges(a), _as_ranges(b)
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i, 0], b[j, 0])
        hi = min(a[i, 1], b[j, 1])
        if lo < hi:
            out.append((lo, hi))
        if a[i, 1] < b[j, 1]:
            i += 1
        else:
            j += 1
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def overlaps(starts: np.ndarray, ends: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """For each half-open interval ``[starts[k], ends[k])``, whether it meets any range.

    Examples
    --------
    >>> overlaps(np.array([0, 10, 30]), np.array([10, 20, 40]), np.array([[15, 31]])).tolist()
    [False, True, True]
    """
    ranges = _as_ranges(ranges)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if ranges.shape[0] == 0:
        return np.zeros(starts.shape, dtype=bool)
    # first range whose end > start; it overlaps if it begins before the interval's end
    i = np.searchsorted(ranges[:, 1], starts, side="right")
    ok = i < ranges.shape[0]
    out = np.zeros(starts.shape, dtype=bool)
    out[ok] = ranges[i[ok], 0] < ends[ok]
    return out


def ranges_mask(index: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Whether each index value lies in any range (no ordering assumed)."""
    ranges = _as_ranges(ranges)
    idx = np.asarray(index, dtype=np.int64)
    if ranges.shape[0] == 0:
        return np.zeros(idx.shape, dtype=bool)
    i = np.searchsorted(ranges[:, 1], idx, side="right")
    ok = i < ranges.shape[0]
    out = np.zeros(idx.shape, dtype=bool)
    out[ok] = ranges[i[ok], 0] <= idx[ok]
    return out


def slice_by_ranges(index: np.ndarray, ranges: np.ndarray) -> list[tuple[int, int]] | None:
    """Row slices ``(start, stop)`` of a *sorted* index inside the ranges.

    Returns None when ``index`` is not sorted (use :func:`ranges_mask` instead).
    """
    idx = np.asarray(index, dtype=np.int64)
    if idx.size > 1 and not bool(np.all(idx[1:] >= idx[:-1])):
        return None
    lo, hi = healpix29_spans(idx, ranges)
    return [(int(a), int(b)) for a, b in zip(lo, hi, strict=True)]
