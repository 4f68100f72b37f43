"""Distance from points to a ring of great-circle arcs on the unit sphere (margin selection).

A pixel boundary is given as a closed ring of unit vectors ``pts``; consecutive points (and
last -> first) are joined by great-circle arcs ("segments"). The margin test asks, for each
point, whether its distance to some segment is ``<= threshold``. Segments are grouped in
blocks of consecutive segments, each with a bounding cap, and each point visits only the
blocks listed for its group: the caller (``ops.margin``) decides which blocks can be near
which points, so a kernel call costs a few dozen segment tests per point whatever the ring
length.

For a segment ``(a, b)`` with unit normal ``n = a x b / |a x b|``, the foot of the
perpendicular from ``x`` lies on the arc iff ``(a x x).n >= 0``, ``(x x b).n >= 0`` and
``x.(a + b) > 0``; the distance is then ``asin(|x.n|)``, otherwise the nearer endpoint's.
Thresholds are compared as sines and squared chords: no arccos, exact to rounding
(~1e-16 rad, 2e-11 arcsec). The normal is computed when a segment is visited, so nothing is
precomputed per segment.
"""

from __future__ import annotations

import math

import numpy as np

from proxcompute.kernels._jit import jit

__all__ = [
    "block_caps",
    "polyline_distance_arcsec",
    "ring_sag_arcsec",
    "within_distance_mask",
]

_ARCSEC = math.pi / 180.0 / 3600.0
_RAD_TO_ARCSEC = 180.0 / math.pi * 3600.0


@jit
def _seg_within(x0, x1, x2, pts, j, k, sin_thr, chord2_thr):
    a0 = pts[j, 0]
    a1 = pts[j, 1]
    a2 = pts[j, 2]
    b0 = pts[k, 0]
    b1 = pts[k, 1]
    b2 = pts[k, 2]
    d0 = x0 - a0
    d1 = x1 - a1
    d2 = x2 - a2
    if d0 * d0 + d1 * d1 + d2 * d2 <= chord2_thr:
        return True
    d0 = x0 - b0
    d1 = x1 - b1
    d2 = x2 - b2
    if d0 * d0 + d1 * d1 + d2 * d2 <= chord2_thr:
        return True
    if x0 * (a0 + b0) + x1 * (a1 + b1) + x2 * (a2 + b2) <= 0.0:
        return False
    n0 = a1 * b2 - a2 * b1
    n1 = a2 * b0 - a0 * b2
    n2 = a0 * b1 - a1 * b0
    nn = math.sqrt(n0 * n0 + n1 * n1 + n2 * n2)
    if nn == 0.0:
        return False
    n0 /= nn
    n1 /= nn
    n2 /= nn
    # foot of the perpendicular on the arc: (a x x).n >= 0 and (x x b).n >= 0
    pu = (a1 * x2 - a2 * x1) * n0 + (a2 * x0 - a0 * x2) * n1 + (a0 * x1 - a1 * x0) * n2
    pv = (x1 * b2 - x2 * b1) * n0 + (x2 * b0 - x0 * b2) * n1 + (x0 * b1 - x1 * b0) * n2
    if pu >= 0.0 and pv >= 0.0:
        # (x - a).n rather than x.n: a.n = 0 exactly, but not in floating point
        return abs((x0 - a0) * n0 + (x1 - a1) * n1 + (x2 - a2) * n2) <= sin_thr
    return False


@jit
def _within_mask(xyz, group, gptr, gblocks, bstart, blen, bcenter, bchord2, pts, sin_thr, chord2_thr, out):
    npts = pts.shape[0]
    for i in range(xyz.shape[0]):
        x0 = xyz[i, 0]
        x1 = xyz[i, 1]
        x2 = xyz[i, 2]
        g = group[i]
        hit = False
        for jj in range(gptr[g], gptr[g + 1]):
            k = gblocks[jj]
            c0 = x0 - bcenter[k, 0]
            c1 = x1 - bcenter[k, 1]
            c2 = x2 - bcenter[k, 2]
            if c0 * c0 + c1 * c1 + c2 * c2 > bchord2[k]:
                continue
            s0 = bstart[k]
            for s in range(s0, s0 + blen[k]):
                j = s % npts
                if _seg_within(x0, x1, x2, pts, j, (j + 1) % npts, sin_thr, chord2_thr):
                    hit = True
                    break
            if hit:
                break
        out[i] = hit
    return out


@jit
def _block_caps(pts, starts, lengths, centers, radii):
    n = pts.shape[0]
    for b in range(starts.shape[0]):
        c0 = 0.0
        c1 = 0.0
        c2 = 0.0
        for s in range(starts[b], starts[b] + lengths[b] + 1):
            j = s % n
            c0 += pts[j, 0]
            c1 += pts[j, 1]
            c2 += pts[j, 2]
        cn = math.sqrt(c0 * c0 + c1 * c1 + c2 * c2)
        c0 /= cn
        c1 /= cn
        c2 /= cn
        worst = 0.0
        for s in range(starts[b], starts[b] + lengths[b] + 1):
            j = s % n
            d0 = pts[j, 0] - c0
            d1 = pts[j, 1] - c1
            d2 = pts[j, 2] - c2
            worst = max(worst, d0 * d0 + d1 * d1 + d2 * d2)
        centers[b, 0] = c0
        centers[b, 1] = c1
        centers[b, 2] = c2
        radii[b] = 2.0 * math.asin(min(1.0, 0.5 * math.sqrt(worst))) + 1e-12
    return radii


@jit
def _ring_sag(fine):
    # fine: 2n points; polyline = even points, fine[2i + 1] = the curve between 2i and 2i + 2
    n2 = fine.shape[0]
    worst = 0.0
    for i in range(0, n2, 2):
        a0 = fine[i, 0]
        a1 = fine[i, 1]
        a2 = fine[i, 2]
        k = (i + 2) % n2
        b0 = fine[k, 0]
        b1 = fine[k, 1]
        b2 = fine[k, 2]
        n0 = a1 * b2 - a2 * b1
        n1 = a2 * b0 - a0 * b2
        n2_ = a0 * b1 - a1 * b0
        nn = math.sqrt(n0 * n0 + n1 * n1 + n2_ * n2_)
        if nn == 0.0:
            continue
        s = abs(fine[i + 1, 0] * n0 + fine[i + 1, 1] * n1 + fine[i + 1, 2] * n2_) / nn
        worst = max(worst, s)
    return worst


def _chord2(angle_rad: float) -> float:
    a = min(float(angle_rad), math.pi)
    s = math.sin(0.5 * a)
    return 4.0 * s * s


def _as_points(points: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)


def block_caps(points: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding caps ``(centers (k, 3), radii_rad (k,))`` of blocks of consecutive segments.

    Block ``j`` holds segments ``starts[j] .. starts[j] + lengths[j] - 1`` (modulo the ring
    length), i.e. points ``starts[j] .. starts[j] + lengths[j]``. A great-circle arc between
    two points of a cap narrower than a hemisphere stays inside it, so the cap bounds the
    whole block.
    """
    pts = _as_points(points)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    centers = np.empty((starts.size, 3), dtype=np.float64)
    radii = np.empty(starts.size, dtype=np.float64)
    if starts.size:
        _block_caps(pts, starts, lengths, centers, radii)
    return centers, radii


def ring_sag_arcsec(fine: np.ndarray) -> float:
    """Largest distance from ``fine[2i + 1]`` to the arc ``fine[2i] -> fine[2i + 2]``, in arcsec.

    With ``fine`` a boundary sampled at twice the step of the ring that is actually used
    (its even points), this measures how far the true boundary sags from each segment at its
    mid-point.
    """
    pts = _as_points(fine)
    if pts.shape[0] < 4:
        return 0.0
    return math.asin(min(1.0, _ring_sag(pts))) * _RAD_TO_ARCSEC


def within_distance_mask(
    xyz: np.ndarray,
    group: np.ndarray,
    group_ptr: np.ndarray,
    group_blocks: np.ndarray,
    block_start: np.ndarray,
    block_len: np.ndarray,
    block_center: np.ndarray,
    block_radius_rad: np.ndarray,
    points: np.ndarray,
    threshold_arcsec: float,
) -> np.ndarray:
    """Mask of points within ``threshold_arcsec`` of a segment in one of their group's blocks.

    Parameters
    ----------
    xyz
        Unit vectors of the points, ``(n, 3)``.
    group
        Group of each point (int64, ``(n,)``).
    group_ptr, group_blocks
        CSR lists: the blocks of group ``g`` are ``group_blocks[group_ptr[g]:group_ptr[g + 1]]``.
    block_start, block_len
        First segment and number of segments of each block (indices modulo the ring length).
    block_center, block_radius_rad
        Bounding caps of the blocks (see :func:`block_caps`); blocks whose cap is farther
        than the threshold are skipped.
    points
        The ring, ``(m, 3)`` unit vectors; segment ``j`` joins ``points[j]`` and ``points[j + 1]``.
    threshold_arcsec
        Distance threshold; a point at exactly the threshold is inside.
    """
    pts = _as_points(xyz)
    out = np.empty(pts.shape[0], dtype=np.bool_)
    if pts.shape[0] == 0:
        return out
    thr = float(threshold_arcsec) * _ARCSEC
    radii = np.asarray(block_radius_rad, dtype=np.float64)
    bchord2 = 4.0 * np.sin(0.5 * np.minimum(radii + thr, math.pi)) ** 2
    return _within_mask(
        pts,
        np.ascontiguousarray(group, dtype=np.int64),
        np.ascontiguousarray(group_ptr, dtype=np.int64),
        np.ascontiguousarray(group_blocks, dtype=np.int64),
        np.ascontiguousarray(block_start, dtype=np.int64),
        np.ascontiguousarray(block_len, dtype=np.int64),
        np.ascontiguousarray(block_center, dtype=np.float64),
        np.ascontiguousarray(bchord2, dtype=np.float64),
        _as_points(points),
        math.sin(min(thr, 0.5 * math.pi)),
        _chord2(thr),
        out,
    )


@jit
def _polyline_distance(xyz, pts, out):
    npts = pts.shape[0]
    for i in range(xyz.shape[0]):
        x0 = xyz[i, 0]
        x1 = xyz[i, 1]
        x2 = xyz[i, 2]
        best = 4.0  # squared chord to the nearest vertex
        best_perp = 2.0  # smallest |sin| of a perpendicular whose foot is on its arc
        for j in range(npts):
            a0 = pts[j, 0]
            a1 = pts[j, 1]
            a2 = pts[j, 2]
            k = (j + 1) % npts
            b0 = pts[k, 0]
            b1 = pts[k, 1]
            b2 = pts[k, 2]
            d0 = x0 - a0
            d1 = x1 - a1
            d2 = x2 - a2
            best = min(best, d0 * d0 + d1 * d1 + d2 * d2)
            if x0 * (a0 + b0) + x1 * (a1 + b1) + x2 * (a2 + b2) <= 0.0:
                continue
            n0 = a1 * b2 - a2 * b1
            n1 = a2 * b0 - a0 * b2
            n2 = a0 * b1 - a1 * b0
            nn = math.sqrt(n0 * n0 + n1 * n1 + n2 * n2)
            if nn == 0.0:
                continue
            n0 /= nn
            n1 /= nn
            n2 /= nn
            pu = (a1 * x2 - a2 * x1) * n0 + (a2 * x0 - a0 * x2) * n1 + (a0 * x1 - a1 * x0) * n2
            pv = (x1 * b2 - x2 * b1) * n0 + (x2 * b0 - x0 * b2) * n1 + (x0 * b1 - x1 * b0) * n2
            if pu >= 0.0 and pv >= 0.0:
                best_perp = min(best_perp, abs(d0 * n0 + d1 * n1 + d2 * n2))
        ang = 2.0 * math.asin(min(1.0, 0.5 * math.sqrt(best)))
        if best_perp <= 1.0:
            ang = min(ang, math.asin(best_perp))
        out[i] = ang * (180.0 / math.pi) * 3600.0
    return out


def polyline_distance_arcsec(xyz: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance in arcsec from each point to the closed ring of great-circle arcs ``points``.

    Brute force over every segment (for checks and small rings; the margin selection uses
    :func:`within_distance_mask`).
    """
    pts = _as_points(xyz)
    return _polyline_distance(pts, _as_points(points), np.empty(pts.shape[0], dtype=np.float64))
