"""Search regions as immutable value types.

A region answers three questions, from coarse to exact:

1. ``cover(order)``: the pixels at ``order`` that may intersect it (conservative: never
   misses a pixel that holds a matching row; may include extra pixels);
2. ``healpix29_ranges()``: the same at a fine order, as merged ``_healpix_29`` ranges used
   to prune Parquet row groups;
3. ``contains(ra, dec)``: the exact per-row test.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from proxcompute import kernels
from proxcompute.errors import InvalidRegionError
from proxcompute.sky import healpix

__all__ = ["Box", "Cone", "Polygon", "Region"]


def _check_finite(**values: float) -> None:
    for name, value in values.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise InvalidRegionError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(v):
            raise InvalidRegionError(f"{name} must be finite, got {value!r}")


def _check_dec(name: str, dec: float) -> None:
    if not -90.0 <= float(dec) <= 90.0:
        raise InvalidRegionError(f"{name} must be within [-90, 90] degrees, got {dec!r}")


def _order_for_size(size_deg: float, max_order: int = 20) -> int:
    """Deepest order whose pixels are still >= ``size_deg / 4`` (covers stay small)."""
    order = 0
    while order < max_order and healpix.pixel_resolution_deg(order + 1) >= size_deg / 4.0:
        order += 1
    return order


class Region(ABC):
    """A sky region (degrees). Subclasses are frozen dataclasses."""

    @abstractmethod
    def cover(self, order: int) -> np.ndarray:
        """Sorted NESTED pixels at ``order`` that may intersect the region.

        Examples
        --------
        >>> len(Cone(45.0, 30.0, 3600.0).cover(5))
        8
        """

    @abstractmethod
    def contains(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        """Exact boolean mask of positions inside the region (boundary included).

        Examples
        --------
        >>> Cone(45.0, 30.0, 3600.0).contains(np.array([45.0, 50.0]), np.array([30.5, 30.0]))
        array([ True, False])
        """

    @property
    @abstractmethod
    def size_deg(self) -> float:
        """A characteristic size (radius or half-diagonal), used to pick cover orders."""

    def fine_order(self) -> int:
        """The order used for row-group pruning ranges."""
        return _order_for_size(self.size_deg)

    def healpix29_ranges(self, order: int | None = None) -> np.ndarray:
        """Merged half-open ``_healpix_29`` ranges, shape ``(n, 2)``, covering the region."""
        o = self.fine_order() if order is None else order
        return healpix.pixels_to_healpix29_ranges(o, self.cover(o))

    def touches_pixel(self, order: int, pixel: int, cover_order: int | None = None) -> bool:
        """Whether the region may intersect NESTED ``(order, pixel)`` (conservative)."""
        co = max(order, self.fine_order()) if cover_order is None else cover_order
        lo, hi = healpix.order_to_healpix29_range(order, pixel)
        ranges = self.healpix29_ranges(co)
        i = np.searchsorted(ranges[:, 1], lo, side="right")
        return bool(i < len(ranges) and ranges[i, 0] < hi)


@dataclass(frozen=True)
class Cone(Region):
    """A cone: centre ``(ra, dec)`` in degrees and ``radius_arcsec``.

    Examples
    --------
    >>> Cone(10.0, -5.0, 30.0).radius_deg
    0.008333333333333333
    """

    ra: float
    dec: float
    radius_arcsec: float

    def __post_init__(self) -> None:
        _check_finite(ra=self.ra, dec=self.dec, radius_arcsec=self.radius_arcsec)
        _check_dec("dec", self.dec)
        if float(self.radius_arcsec) <= 0:
            raise InvalidRegionError(f"radius_arcsec must be > 0, got {self.radius_arcsec!r}")
        if float(self.radius_arcsec) > 180.0 * 3600.0:
            raise InvalidRegionError(f"radius_arcsec must be <= 648000 (180 deg), got {self.radius_arcsec!r}")
        object.__setattr__(self, "ra", float(self.ra) % 360.0)
        object.__setattr__(self, "dec", float(self.dec))
        object.__setattr__(self, "radius_arcsec", float(self.radius_arcsec))

    @property
    def radius_deg(self) -> float:
        return self.radius_arcsec / 3600.0

    @property
    def size_deg(self) -> float:
        return self.radius_deg

    def cover(self, order: int) -> np.ndarray:
        return healpix.cone_cover(order, self.ra, self.dec, self.radius_deg)

    def contains(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        return kernels.cone_mask(ra_deg, dec_deg, self.ra, self.dec, self.radius_deg)

    def __str__(self) -> str:
        return f"Cone(ra={self.ra:g}, dec={self.dec:g}, radius_arcsec={self.radius_arcsec:g})"


@dataclass(frozen=True)
class Box(Region):
    """An RA/Dec box in degrees; ``ra_min > ra_max`` means the box wraps through RA = 0.

    Examples
    --------
    >>> box = Box(350.0, 10.0, -5.0, 5.0)  # wraps through RA = 0
    >>> box.contains(np.array([355.0, 20.0]), np.array([0.0, 0.0]))
    array([ True, False])

    Edges of constant Dec are small circles and edges of constant RA are meridians, as in
    ADQL ``BOX`` for LSDB-style ``box_search(ra=(a, b), dec=(c, d))``.
    """

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float

    def __post_init__(self) -> None:
        _check_finite(ra_min=self.ra_min, ra_max=self.ra_max, dec_min=self.dec_min, dec_max=self.dec_max)
        _check_dec("dec_min", self.dec_min)
        _check_dec("dec_max", self.dec_max)
        if self.dec_min > self.dec_max:
            raise InvalidRegionError(f"dec_min ({self.dec_min}) must be <= dec_max ({self.dec_max})")
        if self.ra_min == self.ra_max:
            raise InvalidRegionError("ra_min and ra_max are equal: the box is empty")

    @property
    def full_ra(self) -> bool:
        return (self.ra_max - self.ra_min) >= 360.0

    @property
    def ra_width(self) -> float:
        if self.full_ra:
            return 360.0
        return (self.ra_max - self.ra_min) % 360.0

    @property
    def size_deg(self) -> float:
        return max(self.dec_max - self.dec_min, self.ra_width * math.cos(math.radians(self._min_abs_dec())))

    def _min_abs_dec(self) -> float:
        if self.dec_min <= 0.0 <= self.dec_max:
            return 0.0
        return min(abs(self.dec_min), abs(self.dec_max))

    def cover(self, order: int) -> np.ndarray:
        pix = healpix.strip_cover(order, self.dec_min, self.dec_max)
        if self.full_ra or pix.size == 0:
            return pix
        ra_c, dec_c = healpix.pixel_center(order, pix)
        lo = self.ra_min % 360.0
        width = self.ra_width
        # RA distance of each pixel centre outside [lo, lo + width] (0 when inside)
        off = (ra_c - lo) % 360.0
        outside = np.where(off <= width, 0.0, np.minimum(off - width, 360.0 - off))
        # distance from centre to the nearest bounding meridian >= asin(sin(dRA) cos(dec))
        d_ra = np.radians(np.minimum(outside, 90.0))
        dist = np.degrees(np.arcsin(np.clip(np.sin(d_ra) * np.cos(np.radians(dec_c)), 0.0, 1.0)))
        keep = dist <= healpix.max_pixel_radius_deg(order) * 1.01 + 1e-9
        return pix[keep]

    def contains(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        return kernels.box_mask(ra_deg, dec_deg, self.ra_min, self.ra_max, self.dec_min, self.dec_max)

    def __str__(self) -> str:
        return f"Box(ra=[{self.ra_min:g}, {self.ra_max:g}], dec=[{self.dec_min:g}, {self.dec_max:g}])"


@dataclass(frozen=True)
class Polygon(Region):
    """A convex spherical polygon with great-circle edges; ``vertices`` are (ra, dec) degrees.

    Vertices may be given in either orientation.

    Examples
    --------
    >>> square = Polygon(((40, 25), (50, 25), (50, 35), (40, 35)))
    >>> square.contains(np.array([45.0, 55.0]), np.array([30.0, 30.0]))
    array([ True, False])
    """

    vertices: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        try:
            verts = tuple((float(r), float(d)) for r, d in self.vertices)
        except (TypeError, ValueError):
            raise InvalidRegionError("polygon vertices must be a sequence of (ra, dec) pairs") from None
        if len(verts) < 3:
            raise InvalidRegionError(f"a polygon needs at least 3 vertices, got {len(verts)}")
        for i, (r, d) in enumerate(verts):
            _check_finite(**{f"vertex {i} ra": r, f"vertex {i} dec": d})
            _check_dec(f"vertex {i} dec", d)
        object.__setattr__(self, "vertices", verts)
        normals = self._edge_normals(verts)
        object.__setattr__(self, "_normals", normals)

    @staticmethod
    def _edge_normals(verts: tuple[tuple[float, float], ...]) -> np.ndarray:
        v = np.array(verts, dtype=np.float64)
        xyz = kernels.radec_to_xyz(v[:, 0], v[:, 1])
        normals = np.cross(xyz, np.roll(xyz, -1, axis=0))
        norms = np.linalg.norm(normals, axis=1)
        if np.any(norms < 1e-15):
            raise InvalidRegionError("polygon has repeated or antipodal consecutive vertices")
        normals /= norms[:, None]
        centroid = xyz.sum(axis=0)
        if np.linalg.norm(centroid) < 1e-12:
            raise InvalidRegionError("polygon is degenerate (its vertices sum to zero)")
        side = normals @ centroid
        if np.all(side < 0):
            normals = -normals  # clockwise input: flip to inward normals
        elif not np.all(side > 0):
            raise InvalidRegionError("polygon is not convex; split it into convex polygons")
        # convexity: every vertex on the inner side of every edge
        if np.any(normals @ xyz.T < -1e-12):
            raise InvalidRegionError("polygon is not convex; split it into convex polygons")
        return normals

    @property
    def size_deg(self) -> float:
        v = np.array(self.vertices)
        xyz = kernels.radec_to_xyz(v[:, 0], v[:, 1])
        c = xyz.sum(axis=0)
        c /= np.linalg.norm(c)
        return float(np.degrees(np.max(np.arccos(np.clip(xyz @ c, -1.0, 1.0)))))

    def cover(self, order: int) -> np.ndarray:
        return healpix.polygon_cover(order, np.array(self.vertices))

    def contains(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        return kernels.polygon_mask(ra_deg, dec_deg, self._normals)  # type: ignore[attr-defined]

    def __str__(self) -> str:
        pts = ", ".join(f"({r:g}, {d:g})" for r, d in self.vertices)
        return f"Polygon([{pts}])"
