"""Our numba HEALPix NESTED arithmetic equals healpy, pixel for pixel."""

import healpy as hp
import numpy as np
import pytest

from proxcompute import kernels
from proxcompute.kernels import healpix_nested as hn


def _positions(n=300_000, seed=0):
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    near_pole_ra = rng.uniform(0, 360, 2000)
    near_pole_dec = 90.0 - rng.uniform(0, 1e-4, 2000)
    near_edge_dec = 41.8103148957786 + rng.uniform(-1e-6, 1e-6, 2000)  # z = 2/3 transition
    return (
        np.concatenate([ra, near_pole_ra, near_pole_ra, near_pole_ra, 360.0 - rng.uniform(0, 1e-9, 100)]),
        np.concatenate([dec, near_pole_dec, -near_pole_dec, near_edge_dec, rng.uniform(-90, 90, 100)]),
    )


@pytest.mark.parametrize("order", [0, 1, 4, 10, 13, 20, 29])
def test_radec_to_nested_equals_healpy(order):
    ra, dec = _positions(seed=order)
    got = hn.radec_to_nested(order, ra, dec)
    expected = hp.ang2pix(1 << order, ra, dec, nest=True, lonlat=True)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("order", [0, 1, 4, 29])
def test_points_exactly_on_pixel_edges_get_a_touching_pixel(order):
    # Exactly on an edge or corner either side is right (healpy's colatitude conversion
    # makes z = 6e-17 at dec = 0, so it may pick the other side); the pixel must touch it.
    sr, sd = np.meshgrid(
        np.array([0.0, 45.0, 90.0, 180.0, 270.0, 315.0]),
        np.array([90.0, -90.0, 0.0, 41.8103148957786, -41.8103148957786]),
    )
    ra, dec = sr.ravel(), sd.ravel()
    pix = hn.radec_to_nested(order, ra, dec)
    cra, cdec = hn.nested_to_radec(order, pix)
    sep = kernels.separation_arcsec(ra, dec, cra, cdec)
    assert np.all(sep <= np.degrees(hn.max_pixel_radius_rad(order)) * 3600 * (1 + 1e-9))


@pytest.mark.parametrize("order", [0, 2, 9, 17, 29])
def test_pixel_centres_equal_healpy(order):
    rng = np.random.default_rng(order)
    pix = rng.integers(0, 12 * 4**order, 50_000)
    ra, dec = hn.nested_to_radec(order, pix)
    hra, hdec = hp.pix2ang(1 << order, pix, nest=True, lonlat=True)
    np.testing.assert_allclose(dec, hdec, atol=1e-9)
    assert np.all(np.abs((ra - hra + 180.0) % 360.0 - 180.0) < 1e-9)


@pytest.mark.parametrize("order", [0, 5, 12, 29])
def test_max_pixel_radius_equals_healpy(order):
    assert hn.max_pixel_radius_rad(order) == pytest.approx(hp.max_pixrad(1 << order), rel=1e-12)


@pytest.mark.parametrize(
    ("ra", "dec", "radius_deg", "order"),
    [(10.0, 20.0, 1 / 60, 13), (0.0, 89.99, 0.5, 10), (359.9, -45.0, 2.0, 8), (100.0, 0.0, 30.0, 5), (5.0, -89.0, 3.0, 9)],
)
def test_cone_cover_contains_healpy_inclusive_cover_and_every_point(ra, dec, radius_deg, order):
    cover = hn.cone_cover_nested(order, ra, dec, radius_deg)
    inclusive = hp.query_disc(
        1 << order, hp.ang2vec(ra, dec, lonlat=True), np.radians(radius_deg), inclusive=True, nest=True, fact=4
    )
    assert np.isin(inclusive, cover).all()
    assert len(cover) <= 2 * len(inclusive) + 20  # not wildly larger
    rng = np.random.default_rng(1)
    n = 200_000
    span = min(radius_deg * 3 / max(np.cos(np.radians(dec)), 1e-3), 180.0)
    pra = (ra + rng.uniform(-1, 1, n) * span) % 360
    pdec = np.clip(dec + rng.uniform(-1, 1, n) * radius_deg * 3, -90, 90)
    inside = kernels.cone_mask(pra, pdec, ra, dec, radius_deg)
    assert inside.sum() > 0
    assert np.isin(hn.radec_to_nested(order, pra[inside], pdec[inside]), cover).all()


@pytest.mark.parametrize("order", [0, 1, 2, 5, 13, 29])
def test_neighbours_equal_healpy(order):
    npix = 12 * 4**order
    pix = np.arange(npix) if npix <= 50_000 else np.random.default_rng(order).integers(0, npix, 50_000)
    got = np.sort(hn.neighbours_nested(order, pix), axis=1)
    expected = np.sort(hp.get_all_neighbours(1 << order, pix, nest=True).T, axis=1)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("order", [0, 1, 3, 7, 13, 20])
def test_boundaries_equal_healpy(order):
    rng = np.random.default_rng(order)
    for pix in [0, 12 * 4**order - 1, *rng.integers(0, 12 * 4**order, 20).tolist()]:
        for step in (1, 3, 17):
            expected = hp.boundaries(1 << order, int(pix), step=step, nest=True).T
            np.testing.assert_allclose(hn.boundaries_xyz(order, pix, step), expected, atol=1e-14)
