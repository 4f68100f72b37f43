"""Crossmatch kernels: nearest, k nearest and all pairs within a radius.

Both sides arrive sorted by ``_healpix_29`` (that is how partitions are stored; the right
side may be a few sorted runs, a partition followed by its margin), so the right side is
already bucketed by HEALPix pixel at any order: the rows of a pixel are a binary search away,
with no sort, no bucket table and no per-row work on the right rows (right unit vectors are
computed for candidates only, after a declination test).

The *fine order* (:func:`bucket_order_for`) is the deepest order whose pixels are wide enough
that a pixel and its 8 neighbours hold every point within the radius of a point inside it
(radius <= 0.4 x pixel resolution; the 3x3 block holds it up to 0.6x, see the tests). Lookups
happen at the coarser *lookup order*, ``SUB_LEVELS`` above it: a left point's fine pixel sits
at position ``(sx, sy)`` of a ``2**SUB_LEVELS`` grid inside its lookup pixel, and the fine
pixel's 3x3 block lies in the lookup pixel plus only the neighbours on the sides where the
point is in the grid's edge row or column. So a point costs 1, 2 or 4 pixel lookups instead
of 9, the runs are cached while consecutive left points share a lookup pixel, and coarser
buckets still hold few rows.

Separations are ``2 asin(chord / 2)``: numerically safe at every scale (an arccos of a dot
product loses ~5 digits at 1"). A pair exactly at the radius is a match
(``chord^2 <= 4 sin^2(r / 2)`` in float64). Ties are broken deterministically: equal
distances keep the right row that comes first in ``_healpix_29`` order (then in input order).
"""

from __future__ import annotations

import math

import numpy as np

from proxcompute.kernels import healpix_nested as _hn
from proxcompute.kernels._jit import jit

__all__ = ["SUB_LEVELS", "RightBuckets", "all_pairs", "bucket_order_for", "load", "nearest_k"]

INDEX_ORDER = 29
BUCKET_RADIUS_FACTOR = 0.4
"""The radius may be at most this fraction of the fine pixels' resolution."""
SUB_LEVELS = 4
"""Lookups happen up to this many orders above the fine order (see the module docstring)."""
ROWS_PER_LOOKUP_PIXEL = 4.0
"""Fewer sub-levels when the right rows' mean density would put more rows in a lookup pixel
(wide radii on dense catalogs): each candidate costs a declination test."""
MAX_RUNS = 16
"""Right inputs made of more sorted runs than this are sorted once (with a permutation)."""


def _resolution_deg(order: int) -> float:
    return math.degrees(math.sqrt(4.0 * math.pi / (12 * 4**order)))


def bucket_order_for(radius_deg: float, n_rows: int = 0, area_deg2: float = 0.0) -> int:
    """Fine order: the deepest order whose pixels are still wide enough for ``radius_deg``.

    A pixel at this order and its 8 neighbours hold every point within ``radius_deg`` of a
    point in the pixel. ``n_rows`` and ``area_deg2`` are accepted for callers that know them
    but are not needed.
    """
    order = 0
    while order < INDEX_ORDER and radius_deg <= BUCKET_RADIUS_FACTOR * _resolution_deg(order + 1):
        order += 1
    return order


def _lookup_order(order: int, rows_per_deg2: float | None) -> int:
    lookup = max(order - SUB_LEVELS, 0)
    if rows_per_deg2 is not None:
        while lookup < order and rows_per_deg2 * 41252.96124941928 / (12 * 4**lookup) > ROWS_PER_LOOKUP_PIXEL:
            lookup += 1
    return lookup


class RightBuckets:
    """The right-hand side of a crossmatch: positions in ``_healpix_29`` order, by sorted runs.

    Parameters
    ----------
    index29
        ``_healpix_29`` of the right rows: ascending, or a few ascending runs one after the
        other (a partition, then its margin); more than ``MAX_RUNS`` runs are sorted here.
    ra_deg, dec_deg
        Right positions, row for row with ``index29``.
    order
        Fine order (see :func:`bucket_order_for`).
    rows_per_deg2
        Mean density of the right rows, when known: caps the lookup pixels' size so that they
        hold about ``ROWS_PER_LOOKUP_PIXEL`` rows on average (None: ``SUB_LEVELS`` above
        ``order``).

    Row positions returned by :func:`nearest_k` and :func:`all_pairs` are positions in the
    arrays as given.
    """

    def __init__(
        self,
        index29: np.ndarray,
        ra_deg: np.ndarray,
        dec_deg: np.ndarray,
        order: int,
        rows_per_deg2: float | None = None,
    ) -> None:
        idx = np.ascontiguousarray(index29, dtype=np.int64)
        ra = np.ascontiguousarray(ra_deg, dtype=np.float64)
        dec = np.ascontiguousarray(dec_deg, dtype=np.float64)
        if not (idx.shape == ra.shape == dec.shape and idx.ndim == 1):
            raise ValueError("index29, ra_deg and dec_deg must be 1-d arrays of one length")
        breaks = np.flatnonzero(idx[1:] < idx[:-1]) + 1 if idx.size > 1 else np.empty(0, np.int64)
        self.perm: np.ndarray | None = None
        if breaks.size >= MAX_RUNS:
            self.perm = np.argsort(idx, kind="stable")
            idx, ra, dec = idx[self.perm], ra[self.perm], dec[self.perm]
            breaks = np.empty(0, np.int64)
        self.index, self.ra, self.dec = idx, ra, dec
        self.runs = np.concatenate([[0], breaks, [idx.shape[0]]]).astype(np.int64)
        self.order = int(order)
        self.lookup_order = _lookup_order(self.order, rows_per_deg2)
        self.size = idx.shape[0]

    def max_radius_deg(self) -> float:
        return BUCKET_RADIUS_FACTOR * _resolution_deg(self.order)

    def original(self, rows: np.ndarray) -> np.ndarray:
        """Positions in the arrays as given of kernel row positions (-1 stays -1)."""
        if self.perm is None:
            return rows
        return np.where(rows >= 0, self.perm[np.maximum(rows, 0)], -1)


@jit
def _lower_bound(a, lo, hi, x, hint):
    # first position p in [lo, hi) with a[p] >= x (hi if none), a[lo:hi] ascending; galloping
    # from `hint` (consecutive lookups land close to each other in the nested order)
    if hint < lo:
        hint = lo
    if hint > hi:
        hint = hi
    if hint < hi and a[hint] < x:
        b = hint  # a[b] < x
        step = 1
        e = hint + 1
        while e < hi and a[e] < x:
            b = e
            step *= 2
            e = b + step
        if e > hi:
            e = hi
        first = b + 1
    else:
        e = hint  # e == hi or a[e] >= x
        step = 1
        b = hint - 1
        while b >= lo and a[b] >= x:
            e = b
            step *= 2
            b = e - step
        if b < lo - 1:
            b = lo - 1
        first = b + 1
    while first < e:
        mid = (first + e) >> 1
        if a[mid] < x:
            first = mid + 1
        else:
            e = mid
    return first


@jit
def _pixel_runs(index, runs, shift, q, slot, spans, hints):
    # rows of lookup pixel q in each sorted run of the right side, into spans[slot]; searches
    # start from where the left point's own pixel was found (hints), which the own pixel moves
    lo = q << shift
    hi = (q + 1) << shift
    for s in range(runs.shape[0] - 1):
        a = _lower_bound(index, runs[s], runs[s + 1], lo, hints[s])
        spans[slot, s, 0] = a
        spans[slot, s, 1] = _lower_bound(index, a, runs[s + 1], hi, a)
        if slot == 0:
            hints[s] = a


@jit
def _unit(ra_deg, dec_deg):
    a = ra_deg * (math.pi / 180.0)
    d = dec_deg * (math.pi / 180.0)
    cd = math.cos(d)
    return cd * math.cos(a), cd * math.sin(a), math.sin(d)


@jit
def _wanted(r, nb, xoff, yoff, sx, sy, last):
    # whether slot r (0: the lookup pixel, 1..8: its neighbours) can hold matches of a point
    # whose fine pixel is at (sx, sy) of the lookup pixel's grid
    if r == 0:
        return True
    xo = xoff[r - 1]
    yo = yoff[r - 1]
    if (xo < 0 and sx != 0) or (xo > 0 and sx != last):
        return False
    if (yo < 0 and sy != 0) or (yo > 0 and sy != last):
        return False
    return nb[r - 1] >= 0


@jit
def _spans_for(lidx_i, state, nb, spans, known, hints, index, runs, lorder, lshift, fshift, sub,
               xoff, yoff, facearray, swaparray):
    # make spans[r] valid for every slot r the left point needs; returns (sx, sy, last)
    p = lidx_i >> lshift
    if p != state[0]:
        known[:] = False
        _pixel_runs(index, runs, lshift, p, 0, spans, hints)
        known[0] = True
        state[0] = p
        state[1] = 0  # neighbours not computed yet
    grid = (lidx_i >> fshift) & ((np.int64(1) << (2 * sub)) - 1)
    sx = _hn._compress_bits(grid)
    sy = _hn._compress_bits(grid >> 1)
    last = (np.int64(1) << sub) - 1
    if sub > 0 and 0 < sx < last and 0 < sy < last:
        return sx, sy, last  # inside the grid: the lookup pixel alone holds the 3x3 block
    if state[1] == 0:
        _hn._neighbours_of(lorder, p, xoff, yoff, facearray, swaparray, nb)
        state[1] = 1
    for r in range(1, 9):
        if not known[r] and _wanted(r, nb, xoff, yoff, sx, sy, last):
            _pixel_runs(index, runs, lshift, nb[r - 1], r, spans, hints)
            known[r] = True
    return sx, sy, last


@jit
def _before(index, d2, j, d2_other, j_other):
    # (d2, index[j], j) < (d2_other, index[j_other], j_other); j_other == -1 is an empty slot
    if d2 != d2_other:
        return d2 < d2_other
    if j_other < 0:
        return True
    if index[j] != index[j_other]:
        return index[j] < index[j_other]
    return j < j_other


@jit
def _nearest_k(lidx, lra, ldec, lorder, sub, index, rra, rdec, runs, c2max, c2min, dec_reach, k,
               xoff, yoff, facearray, swaparray, out_idx, out_d2):
    n = lra.shape[0]
    nruns = runs.shape[0] - 1
    spans = np.zeros((9, nruns, 2), dtype=np.int64)
    known = np.zeros(9, dtype=np.bool_)
    nb = np.empty(8, dtype=np.int64)
    hints = runs[:-1].copy()
    state = np.full(2, -1, dtype=np.int64)
    lshift = 2 * (29 - lorder)
    fshift = lshift - 2 * sub
    for i in range(n):
        for q in range(k):
            out_idx[i, q] = -1
            out_d2[i, q] = np.inf
        sx, sy, last = _spans_for(lidx[i], state, nb, spans, known, hints, index, runs, lorder, lshift,
                                  fshift, sub, xoff, yoff, facearray, swaparray)
        x, y, z = _unit(lra[i], ldec[i])
        dec_i = ldec[i]
        for r in range(9):
            if not _wanted(r, nb, xoff, yoff, sx, sy, last):
                continue
            for s in range(nruns):
                for j in range(spans[r, s, 0], spans[r, s, 1]):
                    if abs(rdec[j] - dec_i) > dec_reach:
                        continue  # the separation is at least the difference in declination
                    rx, ry, rz = _unit(rra[j], rdec[j])
                    dx = rx - x
                    dy = ry - y
                    dz = rz - z
                    d2 = dx * dx + dy * dy + dz * dz
                    if d2 > c2max or d2 < c2min:
                        continue
                    if not _before(index, d2, j, out_d2[i, k - 1], out_idx[i, k - 1]):
                        continue
                    q = k - 1
                    while q > 0 and _before(index, d2, j, out_d2[i, q - 1], out_idx[i, q - 1]):
                        out_d2[i, q] = out_d2[i, q - 1]
                        out_idx[i, q] = out_idx[i, q - 1]
                        q -= 1
                    out_d2[i, q] = d2
                    out_idx[i, q] = j


@jit
def _all_pairs(lidx, lra, ldec, lorder, sub, index, rra, rdec, runs, c2max, c2min, dec_reach,
               xoff, yoff, facearray, swaparray, count_only, out_l, out_r, out_d2):
    n = lra.shape[0]
    nruns = runs.shape[0] - 1
    spans = np.zeros((9, nruns, 2), dtype=np.int64)
    known = np.zeros(9, dtype=np.bool_)
    nb = np.empty(8, dtype=np.int64)
    hints = runs[:-1].copy()
    state = np.full(2, -1, dtype=np.int64)
    lshift = 2 * (29 - lorder)
    fshift = lshift - 2 * sub
    m = 0
    for i in range(n):
        sx, sy, last = _spans_for(lidx[i], state, nb, spans, known, hints, index, runs, lorder, lshift,
                                  fshift, sub, xoff, yoff, facearray, swaparray)
        x, y, z = _unit(lra[i], ldec[i])
        dec_i = ldec[i]
        for r in range(9):
            if not _wanted(r, nb, xoff, yoff, sx, sy, last):
                continue
            for s in range(nruns):
                for j in range(spans[r, s, 0], spans[r, s, 1]):
                    if abs(rdec[j] - dec_i) > dec_reach:
                        continue
                    rx, ry, rz = _unit(rra[j], rdec[j])
                    dx = rx - x
                    dy = ry - y
                    dz = rz - z
                    d2 = dx * dx + dy * dy + dz * dz
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


def _dec_reach(radius_deg: float) -> float:
    # a declination difference beyond this rules a pair out (slack for rounding in degrees)
    return radius_deg * (1.0 + 1e-9) + 1e-12


def _right_args(right: RightBuckets) -> tuple:
    return right.lookup_order, right.order - right.lookup_order, right.index, right.ra, right.dec, right.runs


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
            *_right_args(right), _chord2(radius_deg), c2min, _dec_reach(radius_deg), kk, *_tables(),
            out_idx, out_d2,
        )
        out_idx = right.original(out_idx)
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
    then the right rows' ``_healpix_29`` order.
    """
    _check(right, radius_deg)
    lidx = np.ascontiguousarray(left_index29, dtype=np.int64)
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
    if right.size == 0 or lidx.shape[0] == 0:
        return empty
    c2min = _chord2(min_radius_deg) if min_radius_deg > 0 else -1.0
    args = (
        lidx, np.ascontiguousarray(left_ra, dtype=np.float64), np.ascontiguousarray(left_dec, dtype=np.float64),
        *_right_args(right), _chord2(radius_deg), c2min, _dec_reach(radius_deg), *_tables(),
    )
    none = np.empty(0, np.int64)
    m = _all_pairs(*args, True, none, none, np.empty(0))
    out_l = np.empty(m, np.int64)
    out_r = np.empty(m, np.int64)
    out_d2 = np.empty(m, np.float64)
    _all_pairs(*args, False, out_l, out_r, out_d2)
    order = np.lexsort((out_r, right.index[out_r], out_d2, out_l))  # ties: _healpix_29 order
    return out_l[order], right.original(out_r[order]), chord2_to_arcsec(out_d2[order])


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
