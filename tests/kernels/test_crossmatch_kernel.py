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


def _runs_of(ri, rra, rdec, n_runs, seed=5):
    """The right rows dealt into ``n_runs`` sorted runs, one after the other (like a partition
    followed by its margin)."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, n_runs, len(ri))
    rows = np.concatenate([np.flatnonzero(which == k) for k in range(n_runs)])  # stays sorted per run
    return ri[rows], rra[rows], rdec[rows]


@pytest.mark.parametrize("n_runs", [1, 2, 40])
@pytest.mark.parametrize("rows_per_deg2", [None, 1e9, 1e4, 10.0])
def test_sorted_runs_and_lookup_orders_equal_astropy(n_runs, rows_per_deg2):
    """Right rows in several sorted runs (searched run by run, or sorted once past MAX_RUNS),
    at every lookup order the density allows: nearest and all pairs equal astropy's."""
    (li, lra, ldec), (ri, rra, rdec) = _data(seed=3)
    radius_arcsec = 5.0
    r = radius_arcsec / 3600
    qi, qra, qdec = _runs_of(ri, rra, rdec, n_runs)
    right = xm.RightBuckets(qi, qra, qdec, xm.bucket_order_for(r), rows_per_deg2=rows_per_deg2)
    assert (right.perm is not None) == (n_runs > xm.MAX_RUNS)
    if rows_per_deg2 == 1e9:
        assert right.lookup_order == right.order  # too dense for coarser lookups
    if rows_per_deg2 in (None, 10.0):
        assert right.lookup_order == right.order - xm.SUB_LEVELS
    idx, sep = xm.nearest_k(li, lra, ldec, right, r)
    left_sky = SkyCoord(lra * u.deg, ldec * u.deg)
    right_sky = SkyCoord(qra * u.deg, qdec * u.deg)
    ref_idx, ref_sep, _ = left_sky.match_to_catalog_sky(right_sky)
    ok = ref_sep.arcsec <= radius_arcsec
    assert np.array_equal(np.where(ok, ref_idx, -1), idx[:, 0])
    np.testing.assert_allclose(sep[ok, 0], ref_sep.arcsec[ok], atol=1e-8)
    L, R, S = xm.all_pairs(li, lra, ldec, right, r)
    il, ir, d2d, _ = search_around_sky(left_sky, right_sky, radius_arcsec * u.arcsec)
    assert set(zip(L.tolist(), R.tolist(), strict=True)) == set(zip(il.tolist(), ir.tolist(), strict=True))
    np.testing.assert_allclose(S[np.lexsort((R, L))], d2d.arcsec[np.lexsort((ir, il))], atol=1e-8)
    assert len(L) > 5_000 and ok.sum() > 1_000


def test_ties_keep_the_first_row_in_healpix_order():
    """Equal separations (duplicated rows, one in each run): the first given wins, and the
    order is the same as if the runs had been merged by _healpix_29 (a stable sort)."""
    ra = np.array([10.0, 10.0 + 1 / 3600, 10.0 - 2 / 3600])
    dec = np.array([20.0, 20.0, 20.0])
    index = radec_to_nested(29, ra, dec)
    run = np.argsort(index, kind="stable")
    rows = np.concatenate([run, run])  # the same three points twice: a partition, then its "margin"
    right = xm.RightBuckets(index[rows], ra[rows], dec[rows], xm.bucket_order_for(5 / 3600))
    li = radec_to_nested(29, np.array([10.0]), np.array([20.0]))
    idx, sep = xm.nearest_k(li, np.array([10.0]), np.array([20.0]), right, 5 / 3600, k=6)
    merged = np.argsort(index[rows], kind="stable")  # positions in _healpix_29 order, stable
    rank = np.empty(len(rows), np.int64)
    rank[merged] = np.arange(len(rows))
    expected = sorted(range(len(rows)), key=lambda j: (round(sep_of(j, ra[rows], dec[rows]), 9), rank[j]))
    assert idx[0].tolist() == expected
    assert rows[idx[0]].tolist() == [0, 0, 1, 1, 2, 2]  # nearest first, each duplicate twice
    assert sep[0, :2].tolist() == [0.0, 0.0]
    L, R, S = xm.all_pairs(li, np.array([10.0]), np.array([20.0]), right, 5 / 3600)
    assert L.tolist() == [0] * 6 and R.tolist() == expected
    np.testing.assert_array_equal(S, sep[0])


def sep_of(j, ra, dec):
    return float(SkyCoord(ra[j] * u.deg, dec[j] * u.deg).separation(SkyCoord(10 * u.deg, 20 * u.deg)).arcsec)
