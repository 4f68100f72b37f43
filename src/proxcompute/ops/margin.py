"""Margin selection for one partition: the rows of other partitions within ``r`` of it.

No Dask here: the same code builds a stored margin catalog (``ingest.margin``, one task per
partition) and can serve a margin on the fly (e.g. a crossmatch without a stored margin):
:func:`plan_margin` + :func:`margin_rows` work on Arrow tables; reading only the candidate row
groups of the neighbouring partition files is
:func:`proxcompute.storage.selected_rows.read_selected_rows`, driven per target partition by
:func:`proxcompute.ingest.margin.margin_for_partition`.

How a target partition ``P = (k, p)`` is served
-----------------------------------------------
1. **Margin order.** ``m`` is the deepest order whose pixels are at least
   :data:`MARGIN_ORDER_FACTOR` margins wide (``pixel_resolution(m) >= 2 r``). We measured
   the distance from every pixel to the outside of its 8-neighbour ring: it is at least
   :data:`MIN_RING_WIDTH_RATIO` ``x resolution`` at every order 1-20 (the minimum sits on the
   edges between the polar base pixels, near the poles). So at order ``m`` it is
   ``>= 1.35 r``: a point within ``r`` of an order-``m`` pixel ``e`` lies in ``e`` or one of
   its 8 neighbours.
2. **Ring mode** (``k < m``). Let ``E`` be P's border pixels at order ``m'`` (``m`` capped at
   ``k + MAX_RING_DEPTH``). A row ``x`` outside P within ``r`` of P has its nearest point of
   P in some ``e`` of ``E``, so x's order-``m'`` pixel is an 8-neighbour of that ``e``. The
   candidates are the rows in the "ring" ``N8(E) \\ P`` (an order-29 range per ring pixel,
   so reading and slicing a sorted partition is a binary search), and the distance from
   ``x`` to P is the distance to the stretches of P's boundary that border the ``e`` whose
   neighbour x's pixel is. In the NESTED grid those stretches are fixed index ranges of
   P's boundary ring as ``sky.healpix.pixel_boundaries_xyz`` samples it (our numba port of
   healpy's ``boundaries``, same traversal: edge 0: ``y = max``, ``x`` descending; edge 1:
   ``x = 0``, ``y`` descending; edge 2: ``y = 0``, ``x`` ascending; edge 3: ``x = max``,
   ``y`` ascending), checked once per process against the sub-pixels' own boundaries.
3. **Cone mode** (``k >= m``: P narrower than the ring needs). Candidates are the rows in a
   conservative cover of the cone ``(centre(P), max_pixrad(k) + r)``; each is tested
   against all of P's boundary, grouped in blocks with bounding caps.
4. **Exact test.** P's boundary is sampled (``sky.healpix.pixel_boundaries_xyz``) and joined by great-circle arcs. HEALPix
   edges are not great circles, so the ring is sampled finely enough that the measured sag
   (distance from the true edge at the mid-point of every segment to the arc) is below
   :data:`SAG_TARGET_ARCSEC`, and a row is kept when its distance to the polyline is
   ``<= r + tolerance`` with ``tolerance = 2 x measured sag`` (``<= 1e-4`` arcsec). Every row
   within ``r`` is kept; a row kept may be up to ``2 x tolerance`` farther than ``r``.

The whole selection is conservative-exact: it never loses a row within ``r``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from proxcompute import kernels
from proxcompute.errors import InvalidRegionError
from proxcompute.kernels import margin as mk
from proxcompute.sky import healpix

__all__ = [
    "MARGIN_ORDER_FACTOR",
    "MAX_RING_DEPTH",
    "MIN_RING_WIDTH_RATIO",
    "SAG_TARGET_ARCSEC",
    "MarginSelector",
    "margin_order",
    "margin_rows",
    "margin_sources",
    "plan_margin",
]

INDEX_ORDER = healpix.INDEX_ORDER

MIN_RING_WIDTH_RATIO = 0.673
"""Measured lower bound of (distance from a pixel to the outside of its 8-neighbour ring) /
(pixel resolution), over orders 1-20; it decreases towards ~0.6731 at high order."""

MARGIN_ORDER_FACTOR = 2.0
"""Margin-order pixels have a resolution of at least this many margins (ring width >= 1.35 r)."""

MAX_RING_DEPTH = 14
"""Ring pixels are at most this many orders below the target (bounds the work for big pixels)."""

SAG_TARGET_ARCSEC = 5e-5
"""Largest allowed sag of a boundary segment; the tolerance is twice the measured sag."""

_CONE_BLOCK = 16
_MAX_SEGMENTS_PER_EDGE = 1 << 22
_ARCSEC_DEG = 1.0 / 3600.0


def margin_order(radius_arcsec: float) -> int:
    """Deepest order whose pixel resolution is ``>= MARGIN_ORDER_FACTOR * radius_arcsec``.

    Examples
    --------
    >>> margin_order(10.0)
    13
    """
    r = float(radius_arcsec)
    if not math.isfinite(r) or r <= 0:
        raise InvalidRegionError(f"margin radius must be a positive number of arcsec, got {radius_arcsec!r}")
    need_deg = MARGIN_ORDER_FACTOR * r * _ARCSEC_DEG
    if healpix.pixel_resolution_deg(0) < need_deg:
        raise InvalidRegionError(
            f"margin of {r} arcsec is too large: at most "
            f"{healpix.pixel_resolution_deg(0) * 3600 / MARGIN_ORDER_FACTOR:.0f} arcsec is supported"
        )
    order = 0
    while order < INDEX_ORDER and healpix.pixel_resolution_deg(order + 1) >= need_deg:
        order += 1
    return order


_compact_bits = healpix.deinterleave_xy  # NESTED local index -> grid (x, y); kept for the tests' name


def _sampled_boundary(order: int, pixel: int, side: int) -> tuple[np.ndarray, int, float]:
    """Boundary ring of ``(order, pixel)`` with ``S * side`` segments per edge, and its sag.

    Returns ``(points (4 S side, 3), S, max_sag_arcsec)``. ``S`` is the smallest that keeps the
    sag measured at every segment's mid-point below :data:`SAG_TARGET_ARCSEC` (first guessed
    from a coarse ring, since sag scales as 1/S^2, then verified on the ring used).
    """
    coarse = 64
    sag_c = mk.ring_sag_arcsec(healpix.pixel_boundaries_xyz(order, pixel, 2 * coarse))
    s = max(1, math.ceil(coarse * math.sqrt(sag_c / SAG_TARGET_ARCSEC) * 1.1 / side))
    while True:
        n = s * side
        fine = healpix.pixel_boundaries_xyz(order, pixel, 2 * n)
        sag = mk.ring_sag_arcsec(fine)
        if sag <= SAG_TARGET_ARCSEC or 2 * n >= _MAX_SEGMENTS_PER_EDGE:
            return np.ascontiguousarray(fine[0::2]), s, sag
        s = max(s + 1, math.ceil(s * math.sqrt(sag / SAG_TARGET_ARCSEC) * 1.05))


_TRAVERSAL_CHECKED = False


def _check_traversal() -> None:
    """Pin the boundary traversal order that ring mode relies on (once per process)."""
    global _TRAVERSAL_CHECKED
    if _TRAVERSAL_CHECKED:
        return
    order, pixel, depth, s = 1, 17, 2, 3
    side = 1 << depth
    n = s * side
    ring = healpix.pixel_boundaries_xyz(order, pixel, n)
    base = int(healpix.first_descendant(pixel, order, order + depth))
    # (sub-pixel grid x, y) -> its edge index and where its stretch starts in P's ring
    cases = [
        ((side - 1, side - 1), 0, 0),
        ((0, side - 1), 1, n),
        ((0, 0), 2, 2 * n),
        ((side - 1, 0), 3, 3 * n),
    ]
    for (gx, gy), edge, start in cases:
        local = int(healpix.interleave_xy(np.int64(gx), np.int64(gy), depth))
        own = healpix.pixel_boundaries_xyz(order + depth, base + local, s)[edge * s : (edge + 1) * s]
        if not np.allclose(own, ring[start : start + s], rtol=0, atol=1e-12):
            raise RuntimeError("the pixel boundary traversal order changed; ops.margin needs updating")
    _TRAVERSAL_CHECKED = True


@dataclass(frozen=True, eq=False)
class MarginSelector:
    """Selects, from rows of other partitions, those within ``radius_arcsec`` of one partition.

    Build with :func:`plan_margin`. ``ranges`` are the merged half-open ``_healpix_29`` ranges
    where candidates can be: read only those (row-group pruning) and pass the rows to
    :meth:`select`.
    """

    order: int
    pixel: int
    radius_arcsec: float
    tolerance_arcsec: float
    """Rows are kept when within ``radius_arcsec + tolerance_arcsec`` of the sampled boundary."""
    mode: str
    """``"ring"`` or ``"cone"``."""
    ring_order: int
    """Order of the ring pixels (ring mode) or of the cone cover (cone mode)."""
    ranges: np.ndarray
    _ring: np.ndarray = field(repr=False)
    _group_ptr: np.ndarray = field(repr=False)
    _group_blocks: np.ndarray = field(repr=False)
    _block_start: np.ndarray = field(repr=False)
    _block_len: np.ndarray = field(repr=False)
    _block_center: np.ndarray = field(repr=False)
    _block_radius: np.ndarray = field(repr=False)
    _points: np.ndarray = field(repr=False)

    @property
    def healpix29_range(self) -> tuple[int, int]:
        """The target partition's own ``_healpix_29`` range."""
        return healpix.order_to_healpix29_range(self.order, self.pixel)

    def candidates(self, index29: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row positions that may be in the margin and the group (ring pixel) of each."""
        h = np.asarray(index29, dtype=np.int64)
        if h.size == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        if self.mode == "ring":
            if h.size > 1 and bool(np.all(h[1:] >= h[:-1])):
                lo = np.searchsorted(h, healpix.first_descendant(self._ring, self.ring_order, INDEX_ORDER), side="left")
                hi = np.searchsorted(h, healpix.first_descendant(self._ring + 1, self.ring_order, INDEX_ORDER), side="left")
                counts = hi - lo
                keep = np.flatnonzero(counts)
                if keep.size == 0:
                    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
                lo, counts = lo[keep], counts[keep]
                total = int(counts.sum())
                group = np.repeat(keep.astype(np.int64), counts)
                starts = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
                return starts + np.arange(total, dtype=np.int64), group
            pix = healpix.ancestor(h, INDEX_ORDER, self.ring_order)
            g = np.searchsorted(self._ring, pix)
            g = np.minimum(g, self._ring.size - 1)
            rows = np.flatnonzero(self._ring[g] == pix) if self._ring.size else np.empty(0, np.int64)
            return rows.astype(np.int64), g[rows].astype(np.int64)
        lo, hi = self.healpix29_range
        pos = np.searchsorted(self.ranges[:, 0], h, side="right") - 1
        ok = pos >= 0
        ok[ok] = h[ok] < self.ranges[pos[ok], 1]
        ok &= (h < lo) | (h >= hi)
        rows = np.flatnonzero(ok).astype(np.int64)
        return rows, np.zeros(rows.size, dtype=np.int64)

    def select(self, index29: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        """Positions (ascending) of the rows within the margin of this partition.

        Rows inside the partition itself are never selected. Fastest when ``index29`` is
        sorted (partition files are).
        """
        rows, group = self.candidates(index29)
        if rows.size == 0:
            return rows
        ra = np.asarray(ra_deg, dtype=np.float64)[rows]
        dec = np.asarray(dec_deg, dtype=np.float64)[rows]
        xyz = kernels.radec_to_xyz(ra, dec)
        mask = mk.within_distance_mask(
            xyz,
            group,
            self._group_ptr,
            self._group_blocks,
            self._block_start,
            self._block_len,
            self._block_center,
            self._block_radius,
            self._points,
            self.radius_arcsec + self.tolerance_arcsec,
        )
        return rows[mask]


def plan_margin(
    order: int, pixel: int, radius_arcsec: float, *, ring_order: int | None = None
) -> MarginSelector:
    """Prepare the margin selection of partition ``(order, pixel)``.

    Parameters
    ----------
    order, pixel
        The target partition.
    radius_arcsec
        Margin radius.
    ring_order
        Margin order (default :func:`margin_order`); only shallower values are safe.
    """
    m = margin_order(radius_arcsec) if ring_order is None else int(ring_order)
    if m > margin_order(radius_arcsec):
        raise InvalidRegionError(f"ring order {m} is too deep for a {radius_arcsec} arcsec margin")
    order, pixel = int(order), int(pixel)
    if order < m:
        return _plan_ring(order, pixel, float(radius_arcsec), min(m, order + MAX_RING_DEPTH))
    return _plan_cone(order, pixel, float(radius_arcsec))


def _plan_ring(order: int, pixel: int, radius_arcsec: float, m: int) -> MarginSelector:
    _check_traversal()
    depth = m - order
    side = 1 << depth
    edge = healpix.edge_subpixels(order, pixel, m)
    gx, gy = healpix.deinterleave_xy(edge - healpix.first_descendant(pixel, order, m), depth)
    # each border pixel borders one stretch of P's boundary per edge it touches (2 at a
    # corner); block j of the ring is the stretch of segments j*S .. j*S + S - 1
    stretch = [
        np.where(gy == side - 1, side - 1 - gx, -1),  # edge 0: y = max, x descending
        np.where(gx == 0, 2 * side - 1 - gy, -1),  # edge 1: x = 0, y descending
        np.where(gy == 0, 2 * side + gx, -1),  # edge 2: y = 0, x ascending
        np.where(gx == side - 1, 3 * side + gy, -1),  # edge 3: x = max, y ascending
    ]
    # ring pixels: neighbours of border pixels outside P, paired with the border pixel
    nb = healpix.neighbours(m, edge)
    outside = (nb >= 0) & (healpix.ancestor(nb, m, order) != pixel)
    pair_ring = nb[outside]
    pair_e = np.broadcast_to(np.arange(edge.size, dtype=np.int64)[:, None], nb.shape)[outside]
    ring_parts, block_parts = [], []
    for blk in stretch:
        b = blk[pair_e]
        ok = b >= 0
        ring_parts.append(pair_ring[ok])
        block_parts.append(b[ok])
    ring_rep = np.concatenate(ring_parts)
    block_rep = np.concatenate(block_parts)
    srt = np.lexsort((block_rep, ring_rep))
    ring_rep, block_rep = ring_rep[srt], block_rep[srt]
    keep = np.ones(srt.size, dtype=bool)
    keep[1:] = (ring_rep[1:] != ring_rep[:-1]) | (block_rep[1:] != block_rep[:-1])
    ring_rep, blocks = ring_rep[keep], block_rep[keep]
    new_group = np.ones(ring_rep.size, dtype=bool)
    new_group[1:] = ring_rep[1:] != ring_rep[:-1]
    group_ptr = np.append(np.flatnonzero(new_group), ring_rep.size).astype(np.int64)
    ring = ring_rep[new_group]

    pts, s, sag = _sampled_boundary(order, pixel, side)
    block_start = np.arange(4 * side, dtype=np.int64) * s
    block_len = np.full(4 * side, s, dtype=np.int64)
    centers, radii = mk.block_caps(pts, block_start, block_len)
    return MarginSelector(
        order=order,
        pixel=pixel,
        radius_arcsec=radius_arcsec,
        tolerance_arcsec=_tolerance(sag),
        mode="ring",
        ring_order=m,
        ranges=healpix.pixels_to_healpix29_ranges(m, ring),
        _ring=ring.astype(np.int64),
        _group_ptr=group_ptr,
        _group_blocks=blocks.astype(np.int64),
        _block_start=block_start,
        _block_len=block_len,
        _block_center=centers,
        _block_radius=radii,
        _points=pts,
    )


def _tolerance(sag_arcsec: float) -> float:
    return 2.0 * sag_arcsec + 1e-7


def _plan_cone(order: int, pixel: int, radius_arcsec: float) -> MarginSelector:
    pts, _s, sag = _sampled_boundary(order, pixel, 1)
    nseg = pts.shape[0]
    block_start = np.arange(0, nseg, _CONE_BLOCK, dtype=np.int64)
    block_len = np.minimum(_CONE_BLOCK, nseg - block_start).astype(np.int64)
    centers, radii = mk.block_caps(pts, block_start, block_len)
    tol = _tolerance(sag)
    ra, dec = healpix.pixel_center(order, np.array([pixel]))
    cone_deg = 1.01 * healpix.max_pixel_radius_deg(order) + (radius_arcsec + tol) * _ARCSEC_DEG
    cover_order = 0
    while cover_order < INDEX_ORDER and healpix.pixel_resolution_deg(cover_order + 1) >= cone_deg / 4.0:
        cover_order += 1
    cover = healpix.cone_cover(cover_order, float(ra[0]), float(dec[0]), cone_deg)
    return MarginSelector(
        order=order,
        pixel=pixel,
        radius_arcsec=radius_arcsec,
        tolerance_arcsec=tol,
        mode="cone",
        ring_order=cover_order,
        ranges=healpix.pixels_to_healpix29_ranges(cover_order, cover),
        _ring=np.zeros(1, dtype=np.int64),
        _group_ptr=np.array([0, block_start.size], dtype=np.int64),
        _group_blocks=np.arange(block_start.size, dtype=np.int64),
        _block_start=block_start,
        _block_len=block_len,
        _block_center=centers,
        _block_radius=radii,
        _points=pts,
    )


def _ranges_of(orders: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pixels = pixels.astype(np.int64)
    return healpix.first_descendant(pixels, orders, INDEX_ORDER), healpix.first_descendant(pixels + 1, orders, INDEX_ORDER)


def margin_sources(orders: np.ndarray, pixels: np.ndarray, radius_arcsec: float) -> list[np.ndarray]:
    """For each partition, the positions of the other partitions that may hold its margin rows.

    A conservative superset, cheap enough for any number of partitions: with
    ``j = min(k, margin order)`` and ``c`` the target's ancestor at order ``j``, every row
    within ``r`` of the target lies in ``c`` or its 8 neighbours at order ``j``.

    Parameters
    ----------
    orders, pixels
        The catalog's partitions (any order; they must not overlap).
    radius_arcsec
        Margin radius.
    """
    orders = np.asarray(orders, dtype=np.int64)
    pixels = np.asarray(pixels, dtype=np.int64)
    m = margin_order(radius_arcsec)
    starts, ends = _ranges_of(orders, pixels)
    by_start = np.argsort(starts, kind="stable")
    s_sorted, e_sorted = starts[by_start], ends[by_start]
    out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * orders.size
    j_all = np.minimum(orders, m)
    for j in np.unique(j_all):
        sel = np.flatnonzero(j_all == j)
        anc = healpix.ancestor(pixels[sel], orders[sel], j)
        nb = healpix.neighbours(int(j), anc)
        region = np.concatenate([anc[:, None], nb], axis=1)  # (n, 9), -1 = none
        lo = np.where(region >= 0, healpix.first_descendant(region, int(j), INDEX_ORDER), 0)
        hi = np.where(region >= 0, healpix.first_descendant(region + 1, int(j), INDEX_ORDER), 0)
        # partitions intersecting [lo, hi): first with end > lo .. last with start < hi
        first = np.searchsorted(e_sorted, lo, side="right")
        last = np.searchsorted(s_sorted, hi, side="left")
        for row, target in enumerate(sel):
            found = [by_start[a:b] for a, b in zip(first[row], last[row], strict=True) if b > a]
            if found:
                idx = np.unique(np.concatenate(found))
                out[target] = idx[idx != target]
    return out


def margin_rows(
    selector: MarginSelector,
    tables: Iterable[pa.Table],
    *,
    ra_column: str = "ra",
    dec_column: str = "dec",
) -> pa.Table | None:
    """The margin rows of ``selector``'s partition found in ``tables`` (rows of other partitions).

    Returns one table sorted by ``_healpix_29``, or None when no table has a margin row.
    """
    pieces = []
    for table in tables:
        if table.num_rows == 0:
            continue
        idx = selector.select(
            table.column(healpix.INDEX_COLUMN).to_numpy(),
            table.column(ra_column).to_numpy(),
            table.column(dec_column).to_numpy(),
        )
        if idx.size:
            pieces.append(table.take(pa.array(idx)))
    if not pieces:
        return None
    out = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
    h = out.column(healpix.INDEX_COLUMN).to_numpy()
    if h.size > 1 and not bool(np.all(h[1:] >= h[:-1])):
        out = out.take(pa.array(np.argsort(h, kind="stable")))
    return out
