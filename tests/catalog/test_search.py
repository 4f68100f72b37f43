"""Cone, box and polygon searches equal a brute force over all rows."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from proxcompute.errors import InvalidRegionError
from proxcompute.kernels import cone_mask
from proxcompute.sky import Box, Cone


def ids(df) -> list[int]:
    return sorted(int(i) for i in df["id"])


def reference_box(ra, dec, ra_range, dec_range) -> np.ndarray:
    """Box membership by plain numpy comparisons (RA range wraps through 0 when min > max)."""
    lo, hi = ra_range
    if hi - lo >= 360.0:
        in_ra = np.ones(len(ra), dtype=bool)
    elif lo <= hi:
        in_ra = (ra >= lo) & (ra <= hi)
    else:
        in_ra = (ra >= lo) | (ra <= hi)
    return in_ra & (dec >= dec_range[0]) & (dec <= dec_range[1])


def reference_polygon(ra, dec, vertices) -> np.ndarray:
    """Spherical-polygon membership computed another way: gnomonic (TAN) projection about the
    vertices' mean direction with astropy's WCS (great circles become straight lines), then
    matplotlib's planar point-in-polygon test. Points 90 degrees or more from the centre
    cannot be inside a polygon smaller than a hemisphere."""
    from astropy.wcs import WCS
    from matplotlib.path import Path

    v = SkyCoord([a for a, _ in vertices], [d for _, d in vertices], unit="deg")
    mean = v.cartesian.xyz.value.mean(axis=1)
    centre = SkyCoord(*mean, representation_type="cartesian").spherical
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [centre.lon.deg, centre.lat.deg]
    w.wcs.crpix = [0.0, 0.0]
    w.wcs.cdelt = [1.0, 1.0]
    points = SkyCoord(ra, dec, unit="deg")
    near = points.separation(SkyCoord(centre.lon, centre.lat)).deg < 89.0
    out = np.zeros(len(ra), dtype=bool)
    px, py = w.wcs_world2pix(ra[near], dec[near], 0)
    vx, vy = w.wcs_world2pix(v.ra.deg, v.dec.deg, 0)
    out[near] = Path(np.column_stack([vx, vy])).contains_points(np.column_stack([px, py]))
    return out


CONES = [
    (45.0, 30.0, 1800.0),  # dense cluster
    (0.0, 90.0, 3600.0),  # north pole
    (123.0, -89.5, 7200.0),  # around the south pole
    (359.9, 10.0, 2400.0),  # across RA = 0
    (0.05, -5.0, 900.0),  # across RA = 0 from the other side
    (45.0, 0.0, 30000.0),  # big, crosses order-0 pixel edges
    (90.0, 41.8103, 1500.0),  # on an order-0 pixel boundary
    (200.0, -20.0, 1.0),  # tiny, likely empty
    (10.0, 20.0, 180.0 * 3600.0),  # whole sky
]


@pytest.mark.parametrize(("ra", "dec", "radius"), CONES)
def test_cone_equals_brute_force(cat, sky_df, ra, dec, radius):
    got = cat.cone_search(ra, dec, radius).compute()
    mask = cone_mask(sky_df["ra"].to_numpy(), sky_df["dec"].to_numpy(), ra, dec, radius / 3600.0)
    assert ids(got) == ids(sky_df[mask])
    assert cat.cone_search(ra, dec, radius).count() == int(mask.sum())


def test_cone_matches_astropy_away_from_the_edge(stored_cat, sky_df):
    ra, dec, radius = 359.8, 10.0, 10800.0
    got = set(stored_cat.cone_search(ra, dec, radius * u.arcsec).compute()["id"])
    sep = SkyCoord(sky_df["ra"], sky_df["dec"], unit="deg").separation(SkyCoord(ra, dec, unit="deg")).arcsec
    sure_in = set(sky_df["id"][sep < radius - 1e-6])
    sure_out = set(sky_df["id"][sep > radius + 1e-6])
    assert sure_in <= got
    assert not (got & sure_out)
    assert sure_in


def test_radius_quantity(stored_cat):
    a = stored_cat.cone_search(45.0, 30.0, 0.5 * u.deg).count()
    b = stored_cat.cone_search(45.0 * u.deg, 30.0 * u.deg, 1800.0).count()
    assert a == b > 0


BOXES = [
    ((40.0, 50.0), (25.0, 35.0)),
    ((350.0, 10.0), (-20.0, 20.0)),  # wraps through RA = 0
    ((0.0, 360.0), (88.0, 90.0)),  # polar cap
    ((100.0, 300.0), (-90.0, -85.0)),
    ((10.0, 10.5), (0.0, 0.1)),  # tiny
]


@pytest.mark.parametrize(("ra", "dec"), BOXES)
def test_box_equals_brute_force(cat, sky_df, ra, dec):
    got = cat.box_search(ra=ra, dec=dec).compute()
    mask = reference_box(sky_df["ra"].to_numpy(), sky_df["dec"].to_numpy(), ra, dec)
    assert ids(got) == ids(sky_df[mask])


POLYGONS = [
    [(40, 25), (50, 25), (50, 35), (40, 35)],
    [(355, -10), (5, -10), (5, 10), (355, 10)],  # across RA = 0
    [(0, 80), (120, 80), (240, 80)],  # around the north pole
    [(100, -10), (140, -10), (120, 30)],
]


@pytest.mark.parametrize("vertices", POLYGONS)
def test_polygon_equals_brute_force(cat, sky_df, vertices):
    got = cat.polygon_search(vertices).compute()
    mask = reference_polygon(sky_df["ra"].to_numpy(), sky_df["dec"].to_numpy(), vertices)
    assert ids(got) == ids(sky_df[mask])
    assert len(got) > 0


def test_regions_intersect_in_any_order(cat, sky_df):
    cone = Cone(45.0, 30.0, 3600.0)
    box = Box(44.0, 47.0, 29.0, 30.5)
    a = cat.cone_search(45.0, 30.0, 3600.0).box_search(ra=(44.0, 47.0), dec=(29.0, 30.5)).where("mag < 21")
    b = cat.where("mag < 21").search(box).search(cone)
    ra, dec = sky_df["ra"].to_numpy(), sky_df["dec"].to_numpy()
    sep = SkyCoord(ra, dec, unit="deg").separation(SkyCoord(45.0, 30.0, unit="deg")).deg
    mask = (sep <= 1.0) & reference_box(ra, dec, (44.0, 47.0), (29.0, 30.5)) & (sky_df["mag"] < 21).to_numpy()
    assert ids(a.compute()) == ids(b.compute()) == ids(sky_df[mask])
    assert mask.sum() > 0


def test_disjoint_regions_are_empty_and_touch_nothing(cat):
    empty = cat.cone_search(45.0, 30.0, 60.0).cone_search(225.0, -30.0, 60.0)
    assert empty.partitions == []
    df = empty.compute()
    assert len(df) == 0
    assert list(df.columns) == cat.columns
    assert empty.count() == 0
    assert len(empty.head()) == 0


def test_empty_result_keeps_dtypes(cat):
    df = cat.cone_search(200.0, -20.0, 0.01)[["id", "mag", "name"]].compute()
    assert len(df) == 0
    assert str(df["id"].dtype) == "int64"
    assert str(df["mag"].dtype) == "float64"


def test_pruning_reads_few_partitions(stored_cat):
    small = stored_cat.cone_search(45.0, 30.0, 60.0)
    assert 1 <= len(small.partitions) <= 4 < len(stored_cat.partitions)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.cone_search(10.0, 0.0, 0.0), "radius_arcsec must be > 0"),
        (lambda c: c.cone_search(10.0, 0.0, -5.0), "radius_arcsec must be > 0"),
        (lambda c: c.cone_search(10.0, 91.0, 5.0), "dec must be within"),
        (lambda c: c.cone_search("abc", 0.0, 5.0), "ra must be a number"),
        (lambda c: c.cone_search(float("nan"), 0.0, 5.0), "ra must be finite"),
        (lambda c: c.cone_search(10.0, 0.0, 5.0 * u.kg), "cannot convert"),
        (lambda c: c.box_search(ra=(1.0, 2.0), dec=(10.0, -10.0)), "dec_min"),
        (lambda c: c.box_search(ra=1.0, dec=(0.0, 1.0)), "ra=\\(min, max\\)"),
        (lambda c: c.polygon_search([(0, 0), (1, 1)]), "at least 3 vertices"),
        (lambda c: c.search("not a region"), "Cone, Box or Polygon"),
    ],
)
def test_bad_regions(mem_cat, call, match):
    with pytest.raises(InvalidRegionError, match=match):
        call(mem_cat)


def test_region_on_projected_catalog(cat, sky_df):
    got = cat[["id", "mag"]].cone_search(45.0, 30.0, 1800.0).compute()
    mask = cone_mask(sky_df["ra"].to_numpy(), sky_df["dec"].to_numpy(), 45.0, 30.0, 0.5)
    assert list(got.columns) == ["id", "mag"]
    assert ids(got) == ids(sky_df[mask])
    assert np.isfinite(got["mag"]).all()
