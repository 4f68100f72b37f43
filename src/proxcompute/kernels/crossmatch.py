"""Crossmatch kernels: nearest, k nearest and all pairs within a radius.

Both sides arrive sorted by ``_healpix_29`` (that is how partitions are stored), so the
right side is already bucketed by HEALPix pixel at any order: one linear pass finds the runs
of each pixel at the *bucket order*, with no sort at all. Each left point scans its own
pixel and its 8 neighbours (neighbours are recomputed only when the left pixel changes) and
tests candidates by the squared chord between unit vectors (a right row's computed when it is
first a candidate: most never are when the left is sparse). The bucket order is the deepest
order whose pixels are wide enough that the 9 pixels hold every point within the radius
(radius <= 0.4 x pixel resolution; the 3x3 block holds it up to 0.6x, see the tests), and
holding as few rows as possible, so dense clusters cost no more than sparse sky.

Separations are ``2 asin(chord / 2)``: numerically safe at every scale (an arccos of a dot
product loses ~5 digits at 1"). A pair exactly at the radius is a match
(``chord^2 <= 4 sin^2(r / 2)`` in float64). Ties are broken deterministically: equal
distances keep the lower right index.
"""

from __future__ import annotations

import math

import numpy as np

from proxcompute.kernels import healpix_nested as _hn
from proxcompute.kernels import spherical as _spherical
from proxcompute.kernels._jit import jit

__all__ = ["RightBuckets", "all_pairs", "bucket_order_for", "load", "nearest_k"]

INDEX_ORDER = 29
BUCKET_RADIUS_FACTOR = 0.4
"""The radius may be at most this fraction of the bucket pixels' resolution."""


def _resolution_deg(order: int) -> float:
    return math.degrees(math.sqrt(4.0 * math.pi / (12 * 4**order)))


def bucket_order_for(radius_deg: float, n_rows: int = 0, area_deg2: float = 0.0) -> int:
    """Bucket order: the deepest order whose pixels are still wide enough for ``radius_deg``.

    Deeper is better: lookups cost a galloping search near the previous one, while a
    coarse bucket in a dense cluster (10^5 rows/deg^2 in a partition averaging 10^2) would
    hold thousands of candidates. ``n_rows`` and ``area_deg2`` are accepted for callers
    that know them but are not needed.
    """
    order = 0
    while order < INDEX_ORDER and radius_deg <= BUCKET_RADIUS_FACTOR * _resolution_deg(order + 1):
        order += 1
    return order


@jit
def _runs(index29, shift):
    n = index29.shape[0]
    count = 0
    prev = -1
    for i in range(n):
        p = index29[i] >> shift
        if p != prev:
            count += 1
            prev = p
    pixels = np.empty(count, dtype=np.int64)
    starts = np.empty(count + 1, dtype=np.int64)
    c = 0
    prev = -1
    for i in range(n):
        p = index29[i] >> shift
        if p != prev:
            pixels[c] = p
            starts[c] = i
            c += 1
            prev = p
    starts[count] = n
    return pixels, starts


class RightBuckets:
    """The right-hand side of a crossmatch: unit vectors and pixel runs at the bucket order.

    Parameters
    ----------
    index29
        ``_healpix_29`` of the right rows, sorted ascending.
    ra_deg, dec_deg
        Right positions, in the same (sorted) order.
    order
        Bucket order (see :func:`bucket_order_for`).
    """

    def __init__(self, index29: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray, order: int) -> None:
        idx = np.ascontiguousarray(index29, dtype=np.int64)
        if idx.size > 1 and np.any(idx[1:] < idx[:-1]):
            raise ValueError("right rows must be sorted by _healpix_29")
        self.order = int(order)
        self.shift = 2 * (INDEX_ORDER - self.order)
        self.size = idx.shape[0]
        self.pixels, self.starts = _runs(idx, self.shift)
        self.ra = np.ascontiguousarray(ra_deg, dtype=np.float64)
        self.dec = np.ascontiguousarray(dec_deg, dtype=np.float64)

    def unit_memo(self, n_left: int) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors of the rows and which of them are computed, for ``n_left`` left rows.

        With fewer left rows than a quarter of the right rows, most right rows are never a
        candidate (1M x 10M: ~1.3M of 10M), so the kernel computes a row's vector when it first
        is one (``np.empty``/``np.zeros`` touch no memory until written); otherwise all are
        computed up front, which costs less per row than the kernel's lazy path.
        """
        if 4 * n_left >= self.size:
            return _spherical.radec_to_xyz(self.ra, self.dec), np.ones(self.size, dtype=np.bool_)
        return np.empty((self.size, 3)), np.zeros(self.size, dtype=np.bool_)

    def max_radius_deg(self) -> float:
        return BUCKET_RADIUS_FACTOR * _resolution_deg(self.order)


@jit
def _find_run(pixels, starts, p, hint):
    # galloping search from `hint` (neighbouring pixels sit close in the nested order),
    # then binary search in the bracket; returns (run start, run end, position)
    n = pixels.shape[0]
    if hint < 0:
        hint = 0
    if hint >= n:
        hint = n - 1
    if pixels[hint] < p:
        lo = hint + 1
        step = 1
        hi = lo
        while hi < n and pixels[hi] < p:
            lo = hi + 1
            hi = hint + step * 2
            step *= 2
        if hi > n:
            hi = n
    else:
        hi = hint
        step = 1
        lo = hi
        while lo > 0 and pixels[lo - 1] >= p:
            hi = lo - 1
            lo = hint - step * 2
            step *= 2
            if lo < 0:
                lo = 0
    while lo < hi:
        mid = (lo + hi) >> 1
        if pixels[mid] < p:
            lo = mid + 1
        else:
            hi = mid
    if lo < n and pixels[lo] == p:
        return starts[lo], starts[lo + 1], lo
    return 0, 0, lo


@jit
def _fill_runs(order, p, pixels, starts, runs, nb, xoff, yoff, facearray, swaparray, hint):
    # runs of pixel p and its 8 neighbours; returns p's position (the next hint)
    _hn._neighbours_of(order, p, xoff, yoff, facearray, swaparray, nb)
    if pixels.shape[0] == 0:
        runs[:, :] = 0
        return 0
    a, b, pos = _find_run(pixels, starts, p, hint)
    runs[0, 0] = a
    runs[0, 1] = b
    for q in range(8):
        if nb[q] >= 0:
            a, b, _ = _find_run(pixels, starts, nb[q], pos)
        else:
            a, b = 0, 0
        runs[q + 1, 0] = a
        runs[q + 1, 1] = b
    return pos


@jit
def _unit(ra_deg, dec_deg):
    a = ra_deg * (math.pi / 180.0)
    d = dec_deg * (math.pi / 180.0)
    cd = math.cos(d)
    return cd * math.cos(a), cd * math.sin(a), math.sin(d)


@jit
def _chord2_to(rra, rdec, rxyz, have, j, x, y, z):
    # squared chord to right row j; its unit vector is computed the first time it is needed
    if not have[j]:
        rx, ry, rz = _unit(rra[j], rdec[j])
        rxyz[j, 0] = rx
        rxyz[j, 1] = ry
        rxyz[j, 2] = rz
        have[j] = True
    dx = rxyz[j, 0] - x
    dy = rxyz[j, 1] - y
    dz = rxyz[j, 2] - z
    return dx * dx + dy * dy + dz * dz


@jit
def _nearest_k(lidx, lra, ldec, order, shift, pixels, starts, rra, rdec, rxyz, have, c2max, c2min, k,
               xoff, yoff, facearray, swaparray, out_idx, out_d2):
    n = lra.shape[0]
    runs = np.zeros((9, 2), dtype=np.int64)
    nb = np.empty(8, dtype=np.int64)
    prev = -1
    hint = 0
    for i in range(n):
        for q in range(k):
            out_idx[i, q] = -1
            out_d2[i, q] = np.inf
        p = lidx[i] >> shift
        if p != prev:
            hint = _fill_runs(order, p, pixels, starts, runs, nb, xoff, yoff, facearray, swaparray, hint)
            prev = p
        x, y, z = _unit(lra[i], ldec[i])
        for r in range(9):
            for j in range(runs[r, 0], runs[r, 1]):
                d2 = _chord2_to(rra, rdec, rxyz, have, j, x, y, z)
                if d2 > c2max or d2 < c2min:
                    continue
                last = out_d2[i, k - 1]
                if d2 > last or (d2 == last and j > out_idx[i, k - 1] >= 0):
                    continue
                q = k - 1
                while q > 0 and (out_d2[i, q - 1] > d2 or (out_d2[i, q - 1] == d2 and out_idx[i, q - 1] > j)):
                    out_d2[i, q] = out_d2[i, q - 1]
                    out_idx[i, q] = out_idx[i, q - 1]
                    q -= 1
                out_d2[i, q] = d2
                out_idx[i, q] = j


@jit
def _all_pairs(lidx, lra, ldec, order, shift, pixels, starts, rra, rdec, rxyz, have, c2max, c2min,
               xoff, yoff, facearray, swaparray, count_only, out_l, out_r, out_d2):
    n = lra.shape[0]
    runs = np.zeros((9, 2), dtype=np.int64)
    nb = np.empty(8, dtype=np.int64)
    prev = -1
    hint = 0
    m = 0
    for i in range(n):
        p = lidx[i] >> shift
        if p != prev:
            hint = _fill_runs(order, p, pixels, starts, runs, nb, xoff, yoff, facearray, swaparray, hint)
            prev = p
        x, y, z = _unit(lra[i], ldec[i])
        for r in range(9):
            for j in range(runs[r, 0], runs[r, 1]):
                d2 = _chord2_to(rra, rdec, rxyz, have, j, x, y, z)
                if d2 > c2max or d2 < c2min:
                    continue
                if not count_only:
                    out_l[m] = i
                    out_r[m] = j
                    out_d2[m] = d2
                m += 1
    return m


def _chord2(radius_deg: float) -> float:
    s = math.sin(0.5 * math.radians(radius_deg))
    return 4.0 * s * s


def chord2_to_arcsec(d2: np.ndarray) -> np.ndarray:
    """Angular separation in arcsec from a squared chord between unit vectors."""
    return np.degrees(2.0 * np.arcsin(np.minimum(np.sqrt(d2) / 2.0, 1.0))) * 3600.0


def _check(right: RightBuckets, radius_deg: float) -> None:
    if radius_deg > right.max_radius_deg() * (1 + 1e-12):
        raise ValueError(f"radius {radius_deg} deg is too large for bucket order {right.order}")


def _tables():
    return _hn._NB_XOFFSET, _hn._NB_YOFFSET, _hn._NB_FACEARRAY, _hn._NB_SWAPARRAY


def nearest_k(
    left_index29: np.ndarray,
    left_ra: np.ndarray,
    left_dec: np.ndarray,
    right: RightBuckets,
    radius_deg: float,
    k: int = 1,
    min_radius_deg: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest right rows with ``min_radius <= separation <= radius`` of each left row.

    Left rows should be sorted by ``_healpix_29`` for speed (any order is correct).

    Returns
    -------
    idx : ndarray of int64, shape (n, k)
        Right row positions, nearest first; -1 where fewer than k matched.
    sep_arcsec : ndarray, shape (n, k)
        Separations in arcsec; NaN where no match.
    """
    _check(right, radius_deg)
    lidx = np.ascontiguousarray(left_index29, dtype=np.int64)
    n = lidx.shape[0]
    kk = int(k)
    out_idx = np.full((n, kk), -1, dtype=np.int64)
    out_d2 = np.full((n, kk), np.inf)
    if right.size and n:
        c2min = _chord2(min_radius_deg) if min_radius_deg > 0 else -1.0
        _nearest_k(
            lidx, np.ascontiguousarray(left_ra, dtype=np.float64), np.ascontiguousarray(left_dec, dtype=np.float64),
            right.order, right.shift, right.pixels, right.starts, right.ra, right.dec, *right.unit_memo(n),
            _chord2(radius_deg), c2min, kk,
            *_tables(), out_idx, out_d2,
        )
    matched = out_idx >= 0
    sep = np.full((n, kk), np.nan)
    sep[matched] = chord2_to_arcsec(out_d2[matched])
    return out_idx, sep


def all_pairs(
    left_index29: np.ndarray,
    left_ra: np.ndarray,
    left_dec: np.ndarray,
    right: RightBuckets,
    radius_deg: float,
    min_radius_deg: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (left, right) pair with ``min_radius <= separation <= radius``.

    Returns ``(left_idx, right_idx, sep_arcsec)`` ordered by left index, then separation,
    then right index.
    """
    _check(right, radius_deg)
    lidx = np.ascontiguousarray(left_index29, dtype=np.int64)
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
    if right.size == 0 or lidx.shape[0] == 0:
        return empty
    c2min = _chord2(min_radius_deg) if min_radius_deg > 0 else -1.0
    args = (
        lidx, np.ascontiguousarray(left_ra, dtype=np.float64), np.ascontiguousarray(left_dec, dtype=np.float64),
        right.order, right.shift, right.pixels, right.starts, right.ra, right.dec, *right.unit_memo(lidx.shape[0]),
        _chord2(radius_deg), c2min, *_tables(),
    )
    none = np.empty(0, np.int64)
    m = _all_pairs(*args, True, none, none, np.empty(0))
    out_l = np.empty(m, np.int64)
    out_r = np.empty(m, np.int64)
    out_d2 = np.empty(m, np.float64)
    _all_pairs(*args, False, out_l, out_r, out_d2)
    order = np.lexsort((out_r, out_d2, out_l))
    return out_l[order], out_r[order], chord2_to_arcsec(out_d2[order])


def load() -> None:
    """Load the kernels now (numba, its compiler's registries, the cached machine code).

    The first kernel call of a process pays for this (~0.5-1 s, most of it numba's own
    imports); a caller can do it in a thread while it reads its first partitions. Arrays
    from Arrow are read-only, which numba types separately: this loads that variant.
    """
    idx = np.zeros(2, dtype=np.int64)
    pos = np.zeros(2)
    for a in (idx, pos):
        a.setflags(write=False)
    nearest_k(idx, pos, pos, RightBuckets(idx, pos, pos, 16), 1 / 3600)
