"""Independent references for the margin tests: test data near partition edges, and a
brute-force "distance from a row to a partition" built from healpy and numpy only.

The reference distance of a row ``x`` outside partition ``P`` is the smallest chord-based
angle from ``x`` to points sampled densely (spacing ``h``) on the boundaries of P's border
sub-pixels near ``x``. Those sub-pixels are found with a KD-tree on their centres and
healpy's ``max_pixrad``; nothing of ``proxcompute.ops.margin`` or its kernels is used. The
sampled distance ``d_ref`` satisfies ``d <= d_ref <= sqrt(d^2 + (h/2)^2)``, and ``h`` is chosen
so that the excess is below a quarter of the decision band at ``d ~ r``.
"""

from __future__ import annotations

import math

import healpy as hp
import numpy as np
from scipy.spatial import cKDTree

ARCSEC = math.pi / 180.0 / 3600.0
BAND_ARCSEC = 1e-3
"""Rows whose reference distance is within this of the radius may be in or out."""


def unit(ra_deg, dec_deg) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def to_radec(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xyz = xyz / np.linalg.norm(xyz, axis=-1, keepdims=True)
    ra = np.degrees(np.arctan2(xyz[..., 1], xyz[..., 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(xyz[..., 2], -1.0, 1.0)))
    return ra, dec


def angle_arcsec(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between unit vectors from the chord (accurate at every scale we use)."""
    chord = np.linalg.norm(a - b, axis=-1)
    return 2.0 * np.arcsin(np.minimum(1.0, chord / 2.0)) / ARCSEC


def _border_children(order: int, pixel: int, fine: int) -> np.ndarray:
    """Children of (order, pixel) at ``fine`` with a neighbour outside it, level by level."""
    cur = np.array([pixel], dtype=np.int64)
    for o in range(order + 1, fine + 1):
        kids = (cur[:, None] * 4 + np.arange(4)).ravel()
        nb = hp.get_all_neighbours(1 << o, kids, nest=True).T
        shift = 2 * (o - order)
        outside = ((nb >= 0) & ((nb >> shift) != pixel)).any(axis=1)
        cur = kids[outside]
    return cur


def _sub_points(fine: int, sub: int, step: int) -> np.ndarray:
    return np.asarray(hp.boundaries(1 << fine, int(sub), step=int(step), nest=True)).T


def reference_distance(order: int, pixel: int, xyz: np.ndarray, radius_arcsec: float) -> np.ndarray:
    """Distance in arcsec from each point (outside the pixel) to pixel ``(order, pixel)``.

    ``inf`` when a point is certainly farther than ``radius_arcsec + 1"``. Within
    ``BAND_ARCSEC / 4`` of the true distance for points near the radius; elsewhere only
    guaranteed to be on the same side of the decision band as the true distance.

    Two levels: coarse samples (spacing ``H``) give ``d_c >= d >= d_c - H/2`` by the triangle
    inequality; rows the coarse level cannot place are measured against dense samples
    (spacing ``h``, excess ``<= (h/2)^2 / (2 d)``) of the coarse intervals that can hold
    their nearest boundary point (any sample within ``d_c + H`` of the row).
    """
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    out = np.full(xyz.shape[0], np.inf)
    if xyz.shape[0] == 0:
        return out
    r = float(radius_arcsec)
    reach = r + 1.0
    center = np.array(hp.pix2vec(1 << order, pixel, nest=True))
    near = angle_arcsec(xyz, center[None, :]) <= 1.01 * np.degrees(hp.max_pixrad(1 << order)) * 3600 + reach
    idx = np.flatnonzero(near)
    if idx.size == 0:
        return out
    # localisation order: border sub-pixels about 2 r wide, at most 11 levels down
    fine = order
    while fine < order + 11 and np.degrees(hp.nside2resol(1 << (fine + 1))) * 3600 >= 2.0 * r:
        fine += 1
    subs = _border_children(order, pixel, fine) if fine > order else np.array([pixel])
    centers = np.array(hp.pix2vec(1 << fine, subs, nest=True)).T
    sub_reach = (1.01 * np.degrees(hp.max_pixrad(1 << fine)) * 3600 + reach) * ARCSEC
    lists = cKDTree(centers).query_ball_point(xyz[idx], 2.0 * math.sin(sub_reach / 2.0))
    pair_row = np.concatenate(
        [np.full(len(js), k) for k, js in enumerate(lists)] + [np.empty(0, int)]
    ).astype(int)
    pair_sub = np.concatenate([np.asarray(js, dtype=int) for js in lists] + [np.empty(0, int)])
    if pair_row.size == 0:
        return out
    edge = np.degrees(hp.nside2resol(1 << fine)) * 3600 * 1.6
    step_c = max(4, math.ceil(edge / max(0.5, r / 20.0)))
    h = 2.0 * math.sqrt(2.0 * max(r, 1.0) * BAND_ARCSEC / 4.0)
    ratio = max(1, math.ceil(edge / step_c / h))
    coarse_pts = {j: _sub_points(fine, subs[j], step_c) for j in np.unique(pair_sub)}
    gap = 1.01 * max(float(angle_arcsec(p, np.roll(p, -1, axis=0)).max()) for p in coarse_pts.values())
    coarse = np.full(idx.size, np.inf)
    srt = np.argsort(pair_sub, kind="stable")
    pair_row, pair_sub = pair_row[srt], pair_sub[srt]
    cuts = np.flatnonzero(np.diff(pair_sub)) + 1
    groups = list(zip(np.split(pair_row, cuts), np.split(pair_sub, cuts), strict=True))
    for rows_k, sub_k in groups:
        pts = coarse_pts[sub_k[0]]
        for c0 in range(0, rows_k.size, 512):
            rk = rows_k[c0 : c0 + 512]
            np.minimum.at(coarse, rk, angle_arcsec(pts[None, :, :], xyz[idx[rk]][:, None, :]).min(axis=1))
    out[idx] = coarse
    unsure = (coarse > r - BAND_ARCSEC) & (coarse - gap / 2.0 <= r + BAND_ARCSEC)
    best = coarse.copy()
    win = np.arange(-ratio, ratio + 1)
    for rows_k, sub_k in groups:
        rows_k = rows_k[unsure[rows_k]]
        if rows_k.size == 0:
            continue
        cpts = coarse_pts[sub_k[0]]
        fpts = _sub_points(fine, subs[sub_k[0]], step_c * ratio)
        for k in rows_k:
            x = xyz[idx[k]]
            cand = np.flatnonzero(angle_arcsec(cpts, x[None, :]) <= coarse[k] + gap)
            if cand.size == 0:
                continue
            fi = np.unique((cand[:, None] * ratio + win[None, :]).ravel() % fpts.shape[0])
            best[k] = min(best[k], float(angle_arcsec(fpts[fi], x[None, :]).min()))
    out[idx[unsure]] = best[unsure]
    return out


def rows_near_boundaries(
    pixels: list[tuple[int, int]],
    radii_arcsec: list[float],
    rng: np.random.Generator,
    per_edge: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) of points placed on purpose near the boundaries of ``pixels``.

    For every pixel: points offset perpendicularly from random boundary points and from the
    corners, inwards and outwards, at distances around each radius (just inside/outside the
    decision band, inside it, half and twice the radius) and at ~0.
    """
    out = []
    for order, pixel in pixels:
        ns = 1 << order
        step = 64
        ring = np.asarray(hp.boundaries(ns, pixel, step=step, nest=True)).T  # (4 step, 3)
        n = ring.shape[0]
        picks = np.concatenate(
            [e * step + rng.integers(1, step, per_edge) for e in range(4)] + [np.arange(0, n, step)]
        )
        for i in picks:
            p = ring[i]
            t = ring[(i + 1) % n] - ring[(i - 1) % n]
            t -= p * (p @ t)
            t /= np.linalg.norm(t)
            nrm = np.cross(p, t)
            dirs = [nrm, -nrm]
            if i % step == 0:  # a corner: also diagonal directions
                for ang in rng.uniform(0, 2 * np.pi, 4):
                    dirs.append(np.cos(ang) * t + np.sin(ang) * nrm)
            for r in radii_arcsec:
                dists = (
                    np.array([0.5, 2.0, 1.0 - 3e-3 / r, 1.0 + 3e-3 / r, 1.0 - 0.02 / r, 1.0 + 0.02 / r, 1.0])
                    * r
                )
                dists = np.append(dists, 1e-4)
                for d in dists:
                    a = d * ARCSEC
                    for u in dirs:
                        out.append(np.cos(a) * p + np.sin(a) * u)
    return to_radec(np.array(out))


def rows_at_poles_and_wrap(
    radii_arcsec: list[float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Points at and around both poles, and on both sides of RA = 0/360."""
    ra, dec = [0.0, 0.0, 123.0], [90.0, -90.0, 90.0]
    for r in radii_arcsec:
        for f in (1e-4, 0.3, 1.0 - 3e-3 / r, 1.0, 1.0 + 3e-3 / r, 2.0):
            colat = f * r / 3600.0
            if colat >= 90:
                continue
            for a in np.concatenate([[0.0, 45.0, 90.0, 180.0, 270.0], rng.uniform(0, 360, 3)]):
                ra += [a, a]
                dec += [90.0 - colat, colat - 90.0]
        # RA = 0 is a boundary of base pixels 0|3 (north) and 8|11 (south): offsets across it
        for d0 in (60.0, -60.0, 0.0, 20.0):
            for f in (1e-4, 0.5, 1.0 - 3e-3 / r, 1.0 + 3e-3 / r, 2.0):
                off = f * r / 3600.0 / max(math.cos(math.radians(d0)), 1e-6)
                ra += [off % 360.0, (-off) % 360.0]
                dec += [d0, d0]
    ra += [360.0 - 1e-12, 1e-12, 359.9999999]
    dec += [10.0, 10.0, -45.0]
    return np.asarray(ra, dtype=np.float64) % 360.0, np.asarray(dec, dtype=np.float64)


RADII = (10.0, 1800.0)
"""Margin widths the margin tests build (arcsec)."""
