"""Per-partition margin planning: margin order, the geometric facts it relies on, tolerance,
sources, and the on-the-fly path."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pyarrow as pa
import pytest
from margin_reference import RADII

from proxcompute.errors import InvalidRegionError
from proxcompute.kernels import margin as mk
from proxcompute.ops import margin as om
from proxcompute.sky.healpix import INDEX_COLUMN, pixel_resolution_deg
from proxcompute.storage import read_catalog_meta, read_partition


def _nest(order, face, x, y):
    v = 0
    for b in range(order):
        v |= ((x >> b) & 1) << (2 * b)
        v |= ((y >> b) & 1) << (2 * b + 1)
    return (face << (2 * order)) + v


def test_margin_order():
    assert om.margin_order(10.0) == 13
    assert om.margin_order(1800.0) == 5
    assert om.margin_order(1.0) == 16
    for r in (0.001, 0.5, 3.0, 60.0, 3600.0):
        m = om.margin_order(r)
        assert pixel_resolution_deg(m) * 3600 >= om.MARGIN_ORDER_FACTOR * r
        assert m == 29 or pixel_resolution_deg(m + 1) * 3600 < om.MARGIN_ORDER_FACTOR * r
    for bad in (0.0, -1.0, float("nan"), float("inf"), 40 * 3600.0):
        with pytest.raises(InvalidRegionError):
            om.margin_order(bad)


@pytest.mark.parametrize("order", [3, 8, 12])
def test_ring_width_ratio_at_the_worst_pixels(order):
    """The distance from a pixel to the outside of its 8-neighbour ring is >= 0.673 x resolution.

    Checked at the pixels where it is smallest (along the edges between polar base pixels,
    two thirds of the way to the pole, and next to the pole) and at a few random ones.
    """
    side = 1 << order
    res = pixel_resolution_deg(order) * 3600
    near = [int(side * f) for f in (0.6, 0.66, 0.68, 0.7)] + [side - 1, side - 2, side - 3]
    pix = [_nest(order, f, side - 1, y) for f in (0, 2) for y in near] + [_nest(order, 4, 0, side // 2)]
    rng = np.random.default_rng(order)
    pix += rng.integers(0, 12 * 4**order, 5).tolist()
    worst = np.inf
    for p in pix:
        n1 = hp.get_all_neighbours(side, p, nest=True)
        n1 = n1[n1 >= 0]
        inner = {*n1.tolist(), p}
        n2 = hp.get_all_neighbours(side, n1, nest=True).ravel()
        ring2 = sorted({int(q) for q in n2 if q >= 0} - inner)
        own = np.asarray(hp.boundaries(side, p, step=32, nest=True)).T
        outer = np.concatenate([np.asarray(hp.boundaries(side, q, step=32, nest=True)).T for q in ring2])
        worst = min(worst, float(mk.polyline_distance_arcsec(outer, own).min()) / res)
    assert worst >= om.MIN_RING_WIDTH_RATIO
    assert om.MIN_RING_WIDTH_RATIO * om.MARGIN_ORDER_FACTOR > 1.3


def test_boundary_traversal_order_is_what_ring_mode_assumes(monkeypatch):
    monkeypatch.setattr(om, "_TRAVERSAL_CHECKED", False)  # run the check here; restored afterwards
    om._check_traversal()
    # the stretch of every border sub-pixel of a few pixels on every kind of face
    from proxcompute.sky.healpix import edge_subpixels, pixel_boundaries_xyz

    for order, pixel in [(0, 0), (0, 4), (0, 11), (2, 100), (3, 700), (1, 7)]:
        depth, s = 2, 3
        side = 1 << depth
        n = s * side
        ring = pixel_boundaries_xyz(order, pixel, n)
        subs = edge_subpixels(order, pixel, order + depth)
        gx, gy = om._compact_bits(subs - (pixel << (2 * depth)), depth)
        for e, x, y in zip(subs, gx, gy, strict=True):
            own = pixel_boundaries_xyz(order + depth, int(e), s)
            for edge, on, start in [
                (0, y == side - 1, (side - 1 - x) * s),
                (1, x == 0, n + (side - 1 - y) * s),
                (2, y == 0, 2 * n + x * s),
                (3, x == side - 1, 3 * n + y * s),
            ]:
                if on:
                    np.testing.assert_allclose(
                        own[edge * s : (edge + 1) * s], ring[start : start + s], atol=1e-12
                    )


@pytest.mark.parametrize(
    ("order", "pixel"),
    [(0, 0), (0, 5), (0, 8), (2, 3 * 16 + 15), (4, 255), (7, 4**7 - 1), (9, 11 * 4**9), (12, 5)],
)
@pytest.mark.parametrize("radius", [1.0, 10.0, 600.0])
def test_tolerance_is_tiny_everywhere(order, pixel, radius):
    sel = om.plan_margin(order, pixel, radius)
    assert 0 < sel.tolerance_arcsec <= 2 * om.SAG_TARGET_ARCSEC + 1e-6
    lo, hi = sel.healpix29_range
    r = sel.ranges
    assert np.all(r[:, 1] > r[:, 0]) and np.all(r[1:, 0] > r[:-1, 1])  # sorted and merged
    if sel.mode == "ring":
        assert not np.any((r[:, 0] < hi) & (r[:, 1] > lo))


def test_sources_cover_every_reference_margin_row(small_catalog, references):
    pixels = small_catalog.pixels
    orders = np.array([p.order for p in pixels])
    pix = np.array([p.pixel for p in pixels])
    part_of_id = dict(zip(small_catalog.df["id"].tolist(), small_catalog.df["_part"].tolist(), strict=True))
    for r in RADII:
        sources = om.margin_sources(orders, pix, r)
        for i in range(len(pixels)):
            assert i not in set(sources[i].tolist())
            need = {part_of_id[x] for x in references[r].must[i]}
            assert need <= set(sources[i].tolist()), (pixels[i], r)


@pytest.mark.parametrize("radius", RADII)
def test_on_the_fly_margin_equals_stored(small_catalog, built_margins, radius):
    from proxcompute.ingest.margin import margin_for_partition, plan_margin_tasks

    meta = read_catalog_meta(built_margins[radius][0])
    stored = set(meta.pixels)
    tasks = plan_margin_tasks(small_catalog.pixels, radius)
    rng = np.random.default_rng(0)
    for t in [tasks[i] for i in rng.choice(len(tasks), 25, replace=False)]:
        got = margin_for_partition(small_catalog.root, t.target, t.sources, margin_arcsec=radius)
        if got is None:
            assert t.target not in stored
            continue
        want = read_partition(meta.partition_path(t.target))
        assert got.equals(want), t.target
        # the ops-level path on whole tables (unsorted) gives the same rows
        sel = om.plan_margin(t.target.order, t.target.pixel, radius)
        tables = [read_partition(small_catalog.root / "dataset" / _rel(s)) for s in t.sources]
        shuffled = [tb.take(pa.array(rng.permutation(tb.num_rows))) for tb in tables]
        again = om.margin_rows(sel, shuffled)
        assert again is not None and again.column(INDEX_COLUMN).equals(want.column(INDEX_COLUMN))
        assert sorted(again.column("id").to_pylist()) == sorted(want.column("id").to_pylist())


def _rel(p):
    return f"Norder={p.order}/Dir={(p.pixel // 10000) * 10000}/Npix={p.pixel}.parquet"


def test_select_never_returns_rows_of_the_partition_itself():
    from proxcompute.sky.healpix import radec_to_healpix29

    rng = np.random.default_rng(2)
    for order, pixel, radius in [(3, 100, 10.0), (8, 5000, 3600.0)]:
        sel = om.plan_margin(order, pixel, radius)
        ra0, dec0 = hp.pix2ang(1 << order, pixel, nest=True, lonlat=True)
        ra = ra0 + rng.normal(0, 2.0, 20000)
        dec = np.clip(dec0 + rng.normal(0, 2.0, 20000), -90, 90)
        h = radec_to_healpix29(ra, dec)
        idx = sel.select(h, ra, dec)
        lo, hi = sel.healpix29_range
        assert idx.size > 0
        assert not np.any((h[idx] >= lo) & (h[idx] < hi))
