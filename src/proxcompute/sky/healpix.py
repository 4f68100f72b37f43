"""HEALPix shim: the only module in proxcompute that imports healpy.

Conventions: NESTED scheme only, ``order`` (never nside), angles in degrees.
The spatial index is ``_healpix_29``: the NESTED pixel at order 29, an int64.

Positions to pixels, pixel centres, neighbours, boundaries and cone covers run on our numba
kernels (:mod:`proxcompute.kernels.healpix_nested`, checked against healpy in the tests);
healpy is imported lazily, only for polygon covers, because importing it costs ~2 s (it
pulls in matplotlib and astropy). NESTED bit arithmetic (ancestors, descendants, the x/y
interleave) lives here too, so no other module shifts pixel numbers by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from proxcompute.kernels import healpix_nested as _nested

__all__ = [
    "INDEX_COLUMN",
    "INDEX_ORDER",
    "MAX_ORDER",
    "PartitionPixel",
    "ancestor",
    "cone_cover",
    "deinterleave_xy",
    "discs_cover_ranges",
    "edge_subpixels",
    "first_descendant",
    "healpix29_spans",
    "healpix29_to_order",
    "interleave_xy",
    "max_pixel_radius_deg",
    "neighbours",
    "order_to_healpix29_range",
    "pixel_boundaries_xyz",
    "pixel_center",
    "pixel_resolution_deg",
    "pixels_to_healpix29_ranges",
    "polygon_cover",
    "radec_to_healpix29",
    "radec_to_pixel",
    "strip_cover",
]

INDEX_COLUMN = "_healpix_29"
INDEX_ORDER = 29
MAX_ORDER = 29


def _nside(order: int) -> int:
    return 1 << int(order)


def _hp():
    import healpy

    return healpy


def radec_to_pixel(order: int, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """NESTED pixel at ``order`` of each (ra, dec) in degrees, as int64."""
    ra = np.asarray(ra_deg, dtype=np.float64).ravel()
    dec = np.asarray(dec_deg, dtype=np.float64).ravel()
    if ra.size == 0:
        return np.empty(0, dtype=np.int64)
    return _nested.radec_to_nested(order, ra, dec)


def radec_to_healpix29(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """The ``_healpix_29`` spatial index (NESTED, order 29) of each position.

    Examples
    --------
    >>> int(radec_to_healpix29([0.0], [90.0])[0]) >> 58
    0
    """
    return radec_to_pixel(INDEX_ORDER, ra_deg, dec_deg)


def healpix29_to_order(index29: np.ndarray, order: int) -> np.ndarray:
    """Parent pixel at ``order`` of order-29 indices (a bit shift in the NESTED scheme)."""
    return np.right_shift(np.asarray(index29, dtype=np.int64), 2 * (INDEX_ORDER - int(order)))


def order_to_healpix29_range(order: int, pixel: int) -> tuple[int, int]:
    """Half-open ``[start, end)`` range of order-29 indices inside NESTED ``(order, pixel)``."""
    shift = 2 * (INDEX_ORDER - int(order))
    return int(pixel) << shift, (int(pixel) + 1) << shift


@dataclass(frozen=True, order=True)
class PartitionPixel:
    """One partition: a NESTED HEALPix pixel ``(order, pixel)``.

    It lives here, not in ``storage``, so that ``ops`` and ``storage`` can both take it
    without importing each other (``storage.PartitionPixel`` re-exports it).
    """

    order: int
    pixel: int

    @property
    def healpix29_range(self) -> tuple[int, int]:
        """Half-open range of ``_healpix_29`` values inside this pixel."""
        return order_to_healpix29_range(self.order, self.pixel)

    def __str__(self) -> str:
        return f"Norder={self.order}/Npix={self.pixel}"


def pixels_to_healpix29_ranges(order: int, pixels: np.ndarray) -> np.ndarray:
    """Merged, sorted ``(n, 2)`` array of half-open order-29 ranges covering ``pixels``."""
    pix = np.unique(np.asarray(pixels, dtype=np.int64))
    if pix.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    shift = 2 * (INDEX_ORDER - int(order))
    # merge runs of consecutive pixels
    breaks = np.nonzero(np.diff(pix) != 1)[0]
    starts = np.concatenate(([pix[0]], pix[breaks + 1]))
    ends = np.concatenate((pix[breaks], [pix[-1]])) + 1
    return np.stack([starts << shift, ends << shift], axis=1)


def pixel_resolution_deg(order: int) -> float:
    """Square root of the pixel area at ``order``, in degrees."""
    return math.degrees(math.sqrt(4.0 * math.pi / (12 * _nside(order) ** 2)))


def max_pixel_radius_deg(order: int) -> float:
    """Largest centre-to-corner angular distance of any pixel at ``order``, in degrees."""
    return math.degrees(_nested.max_pixel_radius_rad(order))


def pixel_center(order: int, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) in degrees of the centres of NESTED pixels."""
    return _nested.nested_to_radec(order, np.asarray(pixels, dtype=np.int64).ravel())


def neighbours(order: int, pixels: np.ndarray) -> np.ndarray:
    """The 8 neighbours of each pixel, shape ``(n, 8)``; -1 where a neighbour does not exist."""
    pix = np.asarray(pixels, dtype=np.int64)
    if pix.size == 0:
        return np.empty((0, 8), dtype=np.int64)
    return _nested.neighbours_nested(order, pix)


def pixel_boundaries_xyz(order: int, pixel: int, step: int) -> np.ndarray:
    """Unit vectors along the boundary of one pixel, ``4 * step`` points, shape ``(n, 3)``.

    Points run around the pixel in order, so consecutive points (and last -> first) are
    boundary segments ``step`` per edge.
    """
    return _nested.boundaries_xyz(order, pixel, step)


def edge_subpixels(order: int, pixel: int, sub_order: int) -> np.ndarray:
    """Pixels at ``sub_order`` inside ``(order, pixel)`` that touch its boundary.

    In the NESTED scheme the sub-pixels of a pixel form a ``2^d x 2^d`` grid whose index is
    the bit interleaving of the grid coordinates, so the border is enumerated directly.
    """
    depth = int(sub_order) - int(order)
    if depth < 0:
        raise ValueError("sub_order must be >= order")
    if depth == 0:
        return np.array([pixel], dtype=np.int64)
    side = 1 << depth
    i = np.arange(side, dtype=np.int64)
    zeros = np.zeros(side, dtype=np.int64)
    last = np.full(side, side - 1, dtype=np.int64)
    xs = np.concatenate([zeros, last, i, i])
    ys = np.concatenate([i, i, zeros, last])
    inner = interleave_xy(xs, ys, depth)
    return np.unique((np.int64(pixel) << (2 * depth)) + inner)


def interleave_xy(x: np.ndarray, y: np.ndarray, bits: int) -> np.ndarray:
    """Grid coordinates inside a pixel -> NESTED local index (x to the even bits, y to the odd).

    >>> int(interleave_xy(np.int64(3), np.int64(1), 2))
    7
    """
    out = np.zeros_like(x)
    for b in range(bits):
        out |= ((x >> b) & 1) << (2 * b)
        out |= ((y >> b) & 1) << (2 * b + 1)
    return out


def deinterleave_xy(local: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """NESTED local index -> grid coordinates (the inverse of :func:`interleave_xy`).

    >>> tuple(int(v) for v in deinterleave_xy(np.int64(7), 2))
    (3, 1)
    """
    v = np.asarray(local, dtype=np.int64)
    x = np.zeros_like(v)
    y = np.zeros_like(v)
    for b in range(bits):
        x |= ((v >> (2 * b)) & 1) << b
        y |= ((v >> (2 * b + 1)) & 1) << b
    return x, y


def ancestor(pixels: np.ndarray, order: int | np.ndarray, to_order: int | np.ndarray) -> np.ndarray:
    """NESTED pixels at ``order`` -> the pixel containing each at the coarser ``to_order``."""
    return np.asarray(pixels, dtype=np.int64) >> (2 * (np.asarray(order, dtype=np.int64) - to_order))


def first_descendant(pixels: np.ndarray, order: int | np.ndarray, to_order: int | np.ndarray) -> np.ndarray:
    """NESTED pixels at ``order`` -> their first sub-pixel at the finer ``to_order``."""
    return np.asarray(pixels, dtype=np.int64) << (2 * (np.asarray(to_order, dtype=np.int64) - order))


def cone_cover(order: int, ra_deg: float, dec_deg: float, radius_deg: float) -> np.ndarray:
    """Pixels at ``order`` that may intersect the cone: a conservative (inclusive) cover."""
    return _nested.cone_cover_nested(order, ra_deg, dec_deg, radius_deg)


def discs_cover_ranges(ra_deg: np.ndarray, dec_deg: np.ndarray, radius_deg: float) -> np.ndarray:
    """Merged order-29 ranges covering every disc of ``radius_deg`` around the given points.

    Vectorised over the points: each point's pixel at the crossmatch kernel's bucket order
    (the deepest whose pixels stay wide enough for the radius,
    :func:`proxcompute.kernels.crossmatch.bucket_order_for`) and its 8 neighbours, the ring
    the kernel itself searches, so the cover holds every row the kernel can match.
    """
    from proxcompute.kernels.crossmatch import bucket_order_for

    order = bucket_order_for(float(radius_deg))
    pix = radec_to_pixel(order, ra_deg, dec_deg)
    if pix.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    ring = neighbours(order, np.unique(pix)).ravel()
    return pixels_to_healpix29_ranges(order, np.concatenate([pix, ring[ring >= 0]]))


def polygon_cover(order: int, vertices_radec: np.ndarray) -> np.ndarray:
    """Pixels at ``order`` that may intersect a convex spherical polygon (inclusive cover)."""
    v = np.asarray(vertices_radec, dtype=np.float64)
    hp = _hp()
    xyz = np.asarray(hp.ang2vec(v[:, 0], v[:, 1], lonlat=True), dtype=np.float64)
    pix = hp.query_polygon(_nside(order), xyz, inclusive=True, nest=True, fact=4)
    return np.sort(np.asarray(pix, dtype=np.int64))


def strip_cover(order: int, dec_min: float, dec_max: float) -> np.ndarray:
    """Pixels at ``order`` that may intersect the declination strip (inclusive cover)."""
    theta1 = np.radians(90.0 - dec_max)
    theta2 = np.radians(90.0 - dec_min)
    pix = _hp().query_strip(_nside(order), theta1, theta2, inclusive=True, nest=True)
    return np.sort(np.asarray(pix, dtype=np.int64))


def healpix29_spans(index: np.ndarray, ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row spans of a *sorted* ``_healpix_29`` index inside half-open ranges.

    The one implementation of "which rows of a sorted partition fall in these ranges"
    (``ops.ranges.slice_by_ranges`` and ``storage.reader`` both use it).

    Returns
    -------
    start, stop : numpy.ndarray
        int64 row offsets of the non-empty spans, in range order.

    >>> healpix29_spans(np.array([1, 2, 5, 7, 9]), np.array([[0, 3], [6, 8], [20, 30]]))
    (array([0, 3]), array([2, 4]))
    """
    idx = np.asarray(index, dtype=np.int64)
    r = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
    lo = np.searchsorted(idx, r[:, 0], side="left")
    hi = np.searchsorted(idx, r[:, 1], side="left")
    keep = hi > lo
    return lo[keep], hi[keep]
