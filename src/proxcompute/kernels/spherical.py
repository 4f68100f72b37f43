"""Numba kernels on plain float64 arrays (degrees in, masks/arcsec out).

Distances are compared as squared chords of unit vectors, which is exact to rounding for
small and large angles alike (no arccos of a dot product).
"""

from __future__ import annotations

import math

import numpy as np

from proxcompute.kernels._jit import jit, numba_loaded

__all__ = [
    "box_mask",
    "chord2_threshold",
    "cone_mask",
    "polygon_mask",
    "radec_to_xyz",
    "separation_arcsec",
]

_DEG = math.pi / 180.0

NUMPY_BELOW_ROWS = 2_000_000
"""While numba is not loaded, inputs smaller than this use numpy (no ~0.6 s start-up)."""


def _use_numpy(n: int) -> bool:
    return n < NUMPY_BELOW_ROWS and not numba_loaded()


def _xyz_numpy(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    a = np.radians(ra)
    d = np.radians(dec)
    cd = np.cos(d)
    return np.stack([cd * np.cos(a), cd * np.sin(a), np.sin(d)], axis=1)


def chord2_threshold(radius_deg: float) -> float:
    """Squared chord length between two unit vectors separated by ``radius_deg``."""
    s = math.sin(0.5 * radius_deg * _DEG)
    return 4.0 * s * s


@jit
def _radec_to_xyz(ra, dec, out):
    for i in range(ra.shape[0]):
        a = ra[i] * (math.pi / 180.0)
        d = dec[i] * (math.pi / 180.0)
        cd = math.cos(d)
        out[i, 0] = cd * math.cos(a)
        out[i, 1] = cd * math.sin(a)
        out[i, 2] = math.sin(d)
    return out


def radec_to_xyz(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """Unit vectors, shape ``(n, 3)``, of positions in degrees."""
    ra = np.ascontiguousarray(ra_deg, dtype=np.float64)
    dec = np.ascontiguousarray(dec_deg, dtype=np.float64)
    if _use_numpy(ra.shape[0]):
        return _xyz_numpy(ra, dec)
    return _radec_to_xyz(ra, dec, np.empty((ra.shape[0], 3), dtype=np.float64))


@jit
def _cone_mask(ra, dec, cx, cy, cz, chord2, out):
    for i in range(ra.shape[0]):
        a = ra[i] * (math.pi / 180.0)
        d = dec[i] * (math.pi / 180.0)
        cd = math.cos(d)
        dx = cd * math.cos(a) - cx
        dy = cd * math.sin(a) - cy
        dz = math.sin(d) - cz
        out[i] = dx * dx + dy * dy + dz * dz <= chord2
    return out


def cone_mask(
    ra_deg: np.ndarray, dec_deg: np.ndarray, ra0_deg: float, dec0_deg: float, radius_deg: float
) -> np.ndarray:
    """Boolean mask of positions within ``radius_deg`` of ``(ra0, dec0)`` (boundary included).

    Examples
    --------
    >>> cone_mask(np.array([10.0, 10.0]), np.array([0.0, 2.0]), 10.0, 0.0, 1.0).tolist()
    [True, False]
    """
    ra = np.ascontiguousarray(ra_deg, dtype=np.float64)
    dec = np.ascontiguousarray(dec_deg, dtype=np.float64)
    c = _xyz_numpy(np.array([ra0_deg], dtype=np.float64), np.array([dec0_deg], dtype=np.float64))[0]
    if _use_numpy(ra.shape[0]):
        d = _xyz_numpy(ra, dec) - c
        return np.einsum("ij,ij->i", d, d) <= chord2_threshold(radius_deg)
    out = np.empty(ra.shape[0], dtype=np.bool_)
    return _cone_mask(ra, dec, c[0], c[1], c[2], chord2_threshold(radius_deg), out)


@jit
def _separation_arcsec(ra1, dec1, ra2, dec2, out):
    # Vincenty formula: stable at all separations.
    for i in range(ra1.shape[0]):
        l1 = ra1[i] * (math.pi / 180.0)
        p1 = dec1[i] * (math.pi / 180.0)
        l2 = ra2[i] * (math.pi / 180.0)
        p2 = dec2[i] * (math.pi / 180.0)
        dl = l2 - l1
        sdl = math.sin(dl)
        cdl = math.cos(dl)
        sp1 = math.sin(p1)
        cp1 = math.cos(p1)
        sp2 = math.sin(p2)
        cp2 = math.cos(p2)
        num1 = cp2 * sdl
        num2 = cp1 * sp2 - sp1 * cp2 * cdl
        den = sp1 * sp2 + cp1 * cp2 * cdl
        out[i] = math.atan2(math.hypot(num1, num2), den) * (180.0 / math.pi) * 3600.0
    return out


def separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Angular separation in arcsec (Vincenty formula, stable at every scale)."""
    a = np.ascontiguousarray(np.broadcast_to(ra1, np.shape(ra2) if np.ndim(ra1) == 0 else np.shape(ra1)), dtype=np.float64)
    b = np.ascontiguousarray(np.broadcast_to(dec1, a.shape), dtype=np.float64)
    c = np.ascontiguousarray(np.broadcast_to(ra2, a.shape), dtype=np.float64)
    d = np.ascontiguousarray(np.broadcast_to(dec2, a.shape), dtype=np.float64)
    return _separation_arcsec(a.ravel(), b.ravel(), c.ravel(), d.ravel(), np.empty(a.size)).reshape(a.shape)


@jit
def _polygon_mask(ra, dec, normals, out):
    n_edges = normals.shape[0]
    for i in range(ra.shape[0]):
        a = ra[i] * (math.pi / 180.0)
        d = dec[i] * (math.pi / 180.0)
        cd = math.cos(d)
        x = cd * math.cos(a)
        y = cd * math.sin(a)
        z = math.sin(d)
        inside = True
        for j in range(n_edges):
            if normals[j, 0] * x + normals[j, 1] * y + normals[j, 2] * z < 0.0:
                inside = False
                break
        out[i] = inside
    return out


def polygon_mask(ra_deg: np.ndarray, dec_deg: np.ndarray, edge_normals: np.ndarray) -> np.ndarray:
    """Mask of positions inside a convex spherical polygon given by inward edge normals ``(k, 3)``."""
    ra = np.ascontiguousarray(ra_deg, dtype=np.float64)
    dec = np.ascontiguousarray(dec_deg, dtype=np.float64)
    normals = np.ascontiguousarray(edge_normals, dtype=np.float64)
    if _use_numpy(ra.shape[0]):
        return np.all(_xyz_numpy(ra, dec) @ normals.T >= 0.0, axis=1)
    return _polygon_mask(ra, dec, normals, np.empty(ra.shape[0], dtype=np.bool_))


@jit
def _box_mask(ra, dec, ra_min, ra_max, dec_min, dec_max, wraps, full_ra, out):
    for i in range(ra.shape[0]):
        d = dec[i]
        ok = d >= dec_min and d <= dec_max
        if ok and not full_ra:
            a = ra[i] % 360.0
            if wraps:
                ok = a >= ra_min or a <= ra_max
            else:
                ok = a >= ra_min and a <= ra_max
        out[i] = ok
    return out


def box_mask(ra_deg, dec_deg, ra_min, ra_max, dec_min, dec_max) -> np.ndarray:
    """Mask of positions in an RA/Dec box (edges included); ``ra_min > ra_max`` wraps through 0."""
    ra = np.ascontiguousarray(ra_deg, dtype=np.float64)
    dec = np.ascontiguousarray(dec_deg, dtype=np.float64)
    full = (ra_max - ra_min) >= 360.0
    lo = ra_min % 360.0
    hi = ra_max % 360.0 if not full else 360.0
    wraps = (not full) and lo > hi
    return _box_mask(ra, dec, lo, hi, dec_min, dec_max, wraps, full, np.empty(ra.shape[0], dtype=np.bool_))
