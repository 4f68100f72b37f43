"""Crossmatch kernels against astropy, pair for pair, with poles, RA wrap and dense clusters."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord, search_around_sky

from proxcompute.kernels import crossmatch as xm
from proxcompute.kernels.healpix_nested import radec_to_nested


def _sorted(ra, dec):
    idx = radec_to_nested(29, ra, dec)
    o = np.argsort(idx, kind="stable")
    return idx[o], ra[o], dec[o]


def _data(seed=0, n_right=60_000, n_left=8_000):
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n_right)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n_right)))
    # dense cluster, a cap at each pole, a strip across RA = 0
    c = n_right // 6
    ra[:c] = (30.0 + rng.normal(0, 0.02, c)) % 360
    dec[:c] = 10.0 + rng.normal(0, 0.02, c)
    ra[c : 2 * c] = rng.uniform(0, 360, c)
    dec[c : 2 * c] = 90.0 - rng.uniform(0, 0.05, c)
    ra[2 * c : 3 * c] = rng.uniform(0, 360, c)
    dec[2 * c : 3 * c] = -90.0 + rng.uniform(0, 0.05, c)
    ra[3 * c : 4 * c] = rng.uniform(-0.05, 0.05, c) % 360
    dec[3 * c : 4 * c] = rng.uniform(-5, 5, c)
    pick = rng.integers(0, n_right, n_left)
    lra = (ra[pick] + rng.normal(0, 2 / 3600, n_left)) % 360
    ldec = np.clip(dec[pick] + rng.normal(0, 2 / 3600, n_left), -90, 90)
    return _sorted(lra, ldec), _sorted(ra, dec)


@pytest.mark.parametrize("radius_arcsec", [1.0, 5.0, 60.0])
def test_nearest_equals_astropy(radius_arcsec):
    (li, lra, ldec), (ri, rra, rdec) = _data()
    r = radius_arcsec / 3600
    order = xm.bucket_order_for(r, len(ri), 41253 / 12)
    right = xm.RightBuckets(ri, rra, rdec, order)
    idx, sep = xm.nearest_k(li, lra, ldec, right, r)
    ref_idx, ref_sep, _ = SkyCoord(lra * u.deg, ldec * u.deg).match_to_catalog_sky(SkyCoord(rra * u.deg, rdec * u.deg))
    ok = ref_sep.arcsec <= radius_arcsec
    assert np.array_equal(np.where(ok, ref_idx, -1), idx[:, 0])
    np.testing.assert_allclose(sep[ok, 0], ref_sep.arcsec[ok], atol=1e-8)
    assert ok.sum() > 1000


def test_all_pairs_and_k_nearest_equal_astropy():
    (li, lra, ldec), (ri, rra, rdec) = _data(seed=1)
    radius_arcsec = 20.0
    r = radius_arcsec / 3600
    right = xm.RightBuckets(ri, rra, rdec, xm.bucket_order_for(r, len(ri), 41253 / 12))
    L, R, S = xm.all_pairs(li, lra, ldec, right, r)
    il, ir, d2d, _ = search_around_sky(
        SkyCoord(lra * u.deg, ldec * u.deg), SkyCoord(rra * u.deg, rdec * u.deg), radius_arcsec * u.arcsec
    )
    ref_sep = d2d.arcsec
    assert set(zip(L.tolist(), R.tolist(), strict=True)) == set(zip(il.tolist(), ir.tolist(), strict=True))
    assert len(L) > 10_000
    mine, theirs = np.lexsort((R, L)), np.lexsort((ir, il))
    np.testing.assert_allclose(S[mine], ref_sep[theirs], atol=1e-8)  # separations pair for pair (arcsec)
    # k nearest = the k astropy pairs of each left row with the smallest astropy separation
    k = 3
    idx, _ = xm.nearest_k(li, lra, ldec, right, r, k=k)
    order = np.lexsort((ref_sep, il))
    il_s, ir_s, sep_s = il[order], ir[order], ref_sep[order]
    starts = np.searchsorted(il_s, np.arange(len(li)))
    ends = np.searchsorted(il_s, np.arange(len(li)), side="right")
    checked = 0
    for i in range(0, len(li), 7):
        expected = ir_s[starts[i] : ends[i]][:k]
        got = idx[i][idx[i] >= 0]
        seps = sep_s[starts[i] : ends[i]]
        if len(seps) > k and seps[k] - seps[k - 1] < 1e-9:
            continue  # a tie at the k-th place: either right row is a correct answer
        assert np.array_equal(got, expected), i
        checked += 1
    assert checked > 1000
    # min radius: exactly the astropy pairs at or beyond 5 arcsec (pairs within 1e-9 arcsec of
    # the bound may fall either way in floating point)
    min_arcsec = 5.0
    L2, R2, _ = xm.all_pairs(li, lra, ldec, right, r, min_radius_deg=min_arcsec / 3600)
    got = set(zip(L2.tolist(), R2.tolist(), strict=True))
    far = ref_sep >= min_arcsec
    sure_in = set(zip(il[far & (ref_sep > min_arcsec + 1e-9)].tolist(), ir[far & (ref_sep > min_arcsec + 1e-9)].tolist(), strict=True))
    maybe = set(zip(il[np.abs(ref_sep - min_arcsec) <= 1e-9].tolist(), ir[np.abs(ref_sep - min_arcsec) <= 1e-9].tolist(), strict=True))
    assert sure_in <= got and got - sure_in <= maybe
    assert 0 < len(sure_in) < len(L)


def test_bucket_order_keeps_radius_inside_the_neighbour_ring():
    for r_arcsec in (0.5, 1, 10, 600, 3600):
        order = xm.bucket_order_for(r_arcsec / 3600, 10_000_000, 41253)
        assert r_arcsec / 3600 <= xm.BUCKET_RADIUS_FACTOR * xm._resolution_deg(order)


def test_empty_inputs():
    right = xm.RightBuckets(np.empty(0, np.int64), np.empty(0), np.empty(0), 5)
    idx, sep = xm.nearest_k(np.array([0]), np.array([0.0]), np.array([0.0]), right, 1 / 3600)
    assert idx.tolist() == [[-1]] and np.isnan(sep).all()
    assert all(len(a) == 0 for a in xm.all_pairs(np.array([0]), np.array([0.0]), np.array([0.0]), right, 1 / 3600))
