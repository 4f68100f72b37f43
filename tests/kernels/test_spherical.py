"""Kernels against astropy / brute force on positions including poles and RA wrap."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from proxcompute import kernels


def _random_points(n, seed=0):
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return ra, dec


@pytest.mark.parametrize(
    ("ra0", "dec0", "radius_deg"),
    [(10.0, 20.0, 1.0), (0.1, 0.0, 2.0), (359.9, -10.0, 2.0), (42.0, 89.5, 1.5), (200.0, -89.9, 0.7), (5.0, 5.0, 90.0)],
)
def test_cone_mask_matches_astropy(ra0, dec0, radius_deg):
    ra, dec = _random_points(200_000, seed=int(ra0))
    # add points right around the centre, across RA=0 and over the pole
    extra_ra = (ra0 + np.linspace(-3, 3, 601)) % 360
    extra_dec = np.clip(dec0 + np.linspace(-3, 3, 601), -90, 90)
    ra = np.concatenate([ra, extra_ra])
    dec = np.concatenate([dec, extra_dec])
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(ra0 * u.deg, dec0 * u.deg)).deg
    got = kernels.cone_mask(ra, dec, ra0, dec0, radius_deg)
    expected = sep <= radius_deg
    # disagreements allowed only within rounding of the boundary
    diff = got != expected
    assert np.all(np.abs(sep[diff] - radius_deg) < 1e-9)
    assert expected.sum() > 0


def test_cone_mask_empty_input():
    assert kernels.cone_mask(np.array([]), np.array([]), 0.0, 0.0, 1.0).shape == (0,)


def test_separation_arcsec_small_and_large():
    ra1, dec1 = _random_points(10_000, seed=3)
    rng = np.random.default_rng(4)
    # tiny offsets (milli-arcsec to arcsec) and large ones
    ra2 = ra1 + rng.normal(0, 1e-4, ra1.size)
    dec2 = np.clip(dec1 + rng.normal(0, 1e-4, ra1.size), -90, 90)
    ref = SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra2 * u.deg, dec2 * u.deg)).arcsec
    got = kernels.separation_arcsec(ra1, dec1, ra2, dec2)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    ra3, dec3 = _random_points(10_000, seed=5)
    ref = SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra3 * u.deg, dec3 * u.deg)).arcsec
    np.testing.assert_allclose(kernels.separation_arcsec(ra1, dec1, ra3, dec3), ref, rtol=1e-10)


def test_box_mask_wraps_ra():
    ra = np.array([355.0, 5.0, 180.0, 0.0, 359.999, 10.0])
    dec = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert kernels.box_mask(ra, dec, 350.0, 10.0, -1.0, 1.0).tolist() == [True, True, False, True, True, True]
    assert kernels.box_mask(ra, dec, 0.0, 360.0, -1.0, 1.0).all()


def test_polygon_mask_against_great_circle_sides():
    ra, dec = _random_points(50_000, seed=7)
    verts = np.array([[350.0, -10.0], [20.0, -10.0], [20.0, 15.0], [350.0, 15.0]])
    xyz = kernels.radec_to_xyz(verts[:, 0], verts[:, 1])
    normals = np.cross(xyz, np.roll(xyz, -1, axis=0))
    pts = kernels.radec_to_xyz(ra, dec)
    brute = np.all(pts @ normals.T >= 0, axis=1)
    got = kernels.polygon_mask(ra, dec, normals / np.linalg.norm(normals, axis=1)[:, None])
    assert np.array_equal(got, brute)
    assert brute.sum() > 100
