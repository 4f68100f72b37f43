"""Regions: validation, conservative covers, exact containment."""

import numpy as np
import pytest

from proxcompute.errors import InvalidRegionError
from proxcompute.sky import Box, Cone, Polygon, healpix


def _points(n=300_000, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))


REGIONS = [
    Cone(0.0, 0.0, 3600.0),
    Cone(359.95, 30.0, 600.0),
    Cone(10.0, 89.9, 1800.0),
    Cone(123.0, -45.0, 20.0),
    Box(350.0, 10.0, -5.0, 5.0),
    Box(100.0, 140.0, 80.0, 90.0),
    Box(0.0, 360.0, -90.0, -85.0),
    Polygon([(10.0, 10.0), (20.0, 10.0), (15.0, 20.0)]),
    Polygon([(355.0, -3.0), (5.0, -3.0), (5.0, 3.0), (355.0, 3.0)]),
]


@pytest.mark.parametrize("region", REGIONS, ids=str)
@pytest.mark.parametrize("order", [3, 7])
def test_cover_is_conservative(region, order):
    ra, dec = _points()
    inside = region.contains(ra, dec)
    pix = healpix.radec_to_pixel(order, ra[inside], dec[inside])
    cover = region.cover(order)
    assert np.isin(pix, cover).all()


@pytest.mark.parametrize("region", REGIONS, ids=str)
def test_healpix29_ranges_hold_every_inside_point(region):
    ra, dec = _points(seed=2)
    inside = region.contains(ra, dec)
    idx = healpix.radec_to_healpix29(ra[inside], dec[inside])
    ranges = region.healpix29_ranges()
    pos = np.searchsorted(ranges[:, 1], idx, side="right")
    assert np.all(ranges[pos, 0] <= idx)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Cone(0, 0, 0), "radius_arcsec must be > 0"),
        (lambda: Cone(0, 0, -1), "radius_arcsec must be > 0"),
        (lambda: Cone(0, 91, 1), "dec must be within"),
        (lambda: Cone(float("nan"), 0, 1), "ra must be finite"),
        (lambda: Cone("abc", 0, 1), "ra must be a number"),
        (lambda: Box(0, 10, 5, -5), "dec_min"),
        (lambda: Polygon([(0, 0), (1, 1)]), "at least 3 vertices"),
        (lambda: Polygon([(0, 0), (10, 0), (5, 2), (10, 10), (0, 10)]), "not convex"),
    ],
)
def test_invalid_regions_are_named(make, message):
    with pytest.raises(InvalidRegionError, match=message):
        make()


def test_polygon_orientation_does_not_matter():
    ra, dec = _points(seed=3)
    a = Polygon([(10.0, 10.0), (20.0, 10.0), (15.0, 20.0)]).contains(ra, dec)
    b = Polygon([(15.0, 20.0), (20.0, 10.0), (10.0, 10.0)]).contains(ra, dec)
    assert np.array_equal(a, b) and a.sum() > 0


def test_edge_subpixels_are_the_border():
    border = healpix.edge_subpixels(2, 17, 5)
    inner = np.arange(17 << 6, 18 << 6)
    nb = healpix.neighbours(5, inner)
    outside = ~np.isin(nb, inner) & (nb >= 0)
    expected = inner[outside.any(axis=1)]
    assert np.array_equal(np.sort(border), np.sort(expected))


@pytest.mark.parametrize("radius_arcsec", [0.5, 4.0, 90.0])
def test_discs_cover_ranges_hold_every_point_within_the_radius(radius_arcsec):
    """Centres at the poles, on RA = 0/360 and anywhere; points at up to the radius from them."""
    rng = np.random.default_rng(5)
    n = 3_000
    ra = np.concatenate([rng.uniform(0, 360, n), rng.uniform(-0.01, 0.01, n) % 360, rng.uniform(0, 360, n)])
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-60, 60, n),
                          rng.choice([-1, 1], n) * (90 - rng.uniform(0, 0.01, n))])  # fmt: skip
    ranges = healpix.discs_cover_ranges(ra, dec, radius_arcsec / 3600.0)
    # a point at a random bearing, exactly at (just under) the radius, on the sphere
    r = np.radians(radius_arcsec / 3600.0) * 0.999999
    bearing = rng.uniform(0, 2 * np.pi, ra.size)
    d0, a0 = np.radians(dec), np.radians(ra)
    d1 = np.arcsin(np.sin(d0) * np.cos(r) + np.cos(d0) * np.sin(r) * np.cos(bearing))
    a1 = a0 + np.arctan2(np.sin(bearing) * np.sin(r) * np.cos(d0), np.cos(r) - np.sin(d0) * np.sin(d1))
    idx = healpix.radec_to_healpix29(np.degrees(a1) % 360, np.degrees(d1))
    pos = np.searchsorted(ranges[:, 1], idx, side="right")
    assert np.all(pos < len(ranges)) and np.all(ranges[pos, 0] <= idx)
