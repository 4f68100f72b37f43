"""Sky maps against numpy.bincount / pandas over healpy pixels, on data with poles, RA wrap and clusters."""

from __future__ import annotations

import math

import healpy
import numpy as np
import pandas as pd
import pytest

from proxcompute.catalog import from_dataframe
from proxcompute.errors import ColumnNotFoundError, InvalidOrderError, PlanError

AGGS = {
    "n": "count",
    "n_mag": ("mag", "count"),
    "sum_flag": ("flag", "sum"),
    "sum_mag": ("mag", "sum"),
    "mean_mag": ("mag", "mean"),
    "min_mag": ("mag", "min"),
    "max_color": ("color", "max"),
    "std_mag": ("mag", "std"),
}


@pytest.fixture(scope="module")
def holes_df(sky_df):
    """The sky with NaN and null magnitudes (ignored by every aggregate but count(*))."""
    df = sky_df.copy()
    df["mag"] = df["mag"].astype("Float64")
    df.loc[df.index % 17 == 0, "mag"] = np.nan
    df.loc[df.index % 23 == 0, "mag"] = pd.NA
    return df


def _pixels(df, order):
    """healpy's NESTED pixels; a point exactly on a pixel corner may sit in a touching pixel.

    The catalog's ``_healpix_29`` (its own kernel) puts points exactly on a pixel edge in a
    pixel touching them, not always healpy's: for those few rows (asserted to be only the
    exact corner points and to touch healpy's pixel) the row's own pixel is used.
    """
    nside = 2**order
    ra, dec = df["ra"].to_numpy(), df["dec"].to_numpy()
    pix = healpy.ang2pix(nside, ra, dec, nest=True, lonlat=True)
    if "_healpix_29" in df.columns:
        own = df["_healpix_29"].to_numpy() >> (2 * (29 - order))
    else:
        from proxcompute.sky import radec_to_healpix29

        own = radec_to_healpix29(ra, dec) >> (2 * (29 - order))
    differ = np.flatnonzero(pix != own)
    assert len(differ) <= 2, df.iloc[differ]
    for i in differ:
        assert (ra[i], dec[i]) in {(0.0, 0.0), (0.0, 45.0), (0.0, 90.0), (180.0, -90.0)}, (ra[i], dec[i])
        assert own[i] in healpy.get_all_neighbours(nside, pix[i], nest=True)
    pix[differ] = own[differ]
    return pix


def _reference(df, order):
    """Every aggregate computed independently: numpy.bincount of healpy pixels, pandas groupby."""
    npix = 12 * 4**order
    pix = _pixels(df, order)
    mag = df["mag"].to_numpy(dtype=np.float64, na_value=np.nan)
    ok = ~np.isnan(mag)
    n_mag = np.bincount(pix[ok], minlength=npix)
    sum_mag = np.bincount(pix[ok], weights=mag[ok], minlength=npix)
    g = pd.DataFrame({"pix": pix, "mag": mag, "color": df["color"].to_numpy()}).groupby("pix")
    ref = {
        "n": np.bincount(pix, minlength=npix),
        "n_mag": n_mag,
        "sum_flag": np.bincount(pix, weights=df["flag"].to_numpy(), minlength=npix),
        "sum_mag": sum_mag,
        "mean_mag": np.where(n_mag > 0, sum_mag / np.maximum(n_mag, 1), np.nan),
    }
    for name, col, fn in (
        ("min_mag", "mag", "min"),
        ("max_color", "color", "max"),
        ("std_mag", "mag", "std"),
    ):
        full = np.full(npix, np.nan)
        s = getattr(g[col], fn)()
        full[s.index.to_numpy()] = s.to_numpy()
        ref[name] = full
    return ref


def _check(sm, ref):
    for name, want in ref.items():
        got = sm.to_numpy(name)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9, equal_nan=True, err_msg=name)


@pytest.mark.parametrize("order", [0, 3, 6, 9])
def test_skymap_matches_bincount_of_healpy_pixels(holes_df, order, tmp_path):
    cat = from_dataframe(holes_df, name="sky", max_rows=300)
    _check(cat.skymap(order, AGGS), _reference(holes_df, order))
    stored = cat.to_catalog(tmp_path / "sky")  # many partitions from disk, on the thread pool
    _check(stored.skymap(order, AGGS), _reference(holes_df, order))


def test_high_order_map_is_hashed_and_matches_groupby(holes_df):
    order = 14  # 3.2 billion pixels: merged in a hash table, never a dense array
    sm = from_dataframe(holes_df, max_rows=300).skymap(order, {"n": "count", "m": ("mag", "mean")})
    assert not sm._state.dense
    ref = holes_df.assign(pixel=_pixels(holes_df, order)).groupby("pixel")
    want = pd.DataFrame({"n": ref.size(), "m": ref["mag"].mean().astype(float)}).reset_index()
    got = sm.to_pandas()
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)


def test_dense_and_hashed_merges_agree(holes_df):
    from proxcompute.ops import aggregate as agg

    cat = from_dataframe(holes_df, max_rows=300)
    dense = cat.skymap(5, AGGS)
    old = agg.DENSE_MAX_ORDER
    agg.DENSE_MAX_ORDER = 2
    try:
        hashed = cat.skymap(5, AGGS)
    finally:
        agg.DENSE_MAX_ORDER = old
    assert dense._state.dense and not hashed._state.dense
    for name in AGGS:
        np.testing.assert_array_equal(dense.to_numpy(name), hashed.to_numpy(name))
    pd.testing.assert_frame_equal(dense.to_pandas(), hashed.to_pandas())


def test_std_is_exact_across_partitions_with_a_large_offset():
    """Chan's merge: values around 1e6 with unit spread, split over many partitions."""
    rng = np.random.default_rng(3)
    n = 40_000
    df = pd.DataFrame({"ra": rng.uniform(0, 360, n), "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, n)))})
    df["x"] = 1e6 + rng.normal(0, 1, n)
    cat = from_dataframe(df, max_rows=200)
    assert len(cat.partitions) > 100
    sm = cat.skymap(0, {"s": ("x", "std"), "m": ("x", "mean")})
    pix = _pixels(df, 0)
    std, mean = [], []
    for p in range(12):  # exactly rounded sums (math.fsum), two passes
        x = df["x"].to_numpy()[pix == p]
        m = math.fsum(x) / len(x)
        mean.append(m)
        std.append(math.sqrt(math.fsum((x - m) ** 2) / (len(x) - 1)))
    np.testing.assert_allclose(sm.to_numpy("s"), std, rtol=1e-11)  # pandas' own std is off by 3e-11 here
    np.testing.assert_allclose(sm.to_numpy("m"), mean, rtol=1e-14)


def test_to_pandas_one_row_per_nonempty_pixel(holes_df):
    sm = from_dataframe(holes_df, max_rows=300).skymap(4, AGGS)
    df = sm.to_pandas()
    pix = _pixels(holes_df, 4)
    assert df["pixel"].tolist() == sorted(set(pix.tolist()))
    assert list(df.columns) == ["pixel", *AGGS]
    assert (df["n"] == np.bincount(pix)[df["pixel"]]).all()
    assert sm.nonempty_pixels == len(df) and sm.rows == len(holes_df)


def test_empty_pixels_are_zero_for_counts_and_nan_otherwise(mem_cat):
    sm = mem_cat.cone_search(45.0, 30.0, 3600.0).skymap(
        6, {"n": "count", "s": ("mag", "sum"), "m": ("mag", "mean")}
    )
    n = sm.to_numpy("n")
    assert n.dtype.kind == "i" and (n == 0).sum() > 0
    assert (sm.to_numpy("s")[n == 0] == 0).all()
    assert np.isnan(sm.to_numpy("m")[n == 0]).all()
    assert (sm.to_numpy("m", empty=healpy.UNSEEN)[n == 0] == healpy.UNSEEN).all()


def test_after_where_cone_search_crossmatch_and_map_partitions(mem_cat, sky_df):
    order = 5
    sub = mem_cat.where("mag < 20").cone_search(0.0, 0.0, 20 * 3600.0)
    want = sub.compute()
    np.testing.assert_array_equal(
        sub.skymap(order).to_numpy("n"), np.bincount(_pixels(want, order), minlength=12 * 4**order)
    )
    mapped = mem_cat.map_partitions(lambda df: df[df["flag"] == 1])
    ref = sky_df[sky_df["flag"] == 1]
    np.testing.assert_array_equal(
        mapped.skymap(order).to_numpy("n"), np.bincount(_pixels(ref, order), minlength=12 * 4**order)
    )
    right = sky_df.sample(500, random_state=1)
    xm = mem_cat.crossmatch(from_dataframe(right, name="r"), radius_arcsec=0.1)
    got = xm.skymap(order, {"n": "count", "m": ("mag_sky", "mean")})
    np.testing.assert_array_equal(
        got.to_numpy("n"), np.bincount(_pixels(right, order), minlength=12 * 4**order)
    )


def test_to_fits_is_read_by_healpy_nested(holes_df, tmp_path):
    sm = from_dataframe(holes_df, max_rows=300).skymap(4, {"n": "count", "mean_mag": ("mag", "mean")})
    path = sm.to_fits(tmp_path / "map.fits")
    n, mean = healpy.read_map(path, field=(0, 1), nest=True)
    np.testing.assert_array_equal(n, sm.to_numpy("n"))
    want = sm.to_numpy("mean_mag", empty=healpy.UNSEEN)
    np.testing.assert_allclose(mean, want)
    _, header = healpy.read_map(path, nest=None, h=True)
    header = dict(header)
    assert header["ORDERING"] == "NESTED" and header["NSIDE"] == 16
    ring = healpy.read_map(path, nest=False)  # healpy reorders using the header
    np.testing.assert_array_equal(healpy.reorder(ring, r2n=True), sm.to_numpy("n"))
    with pytest.raises(FileExistsError):
        sm.to_fits(path)
    sm.to_fits(path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["map.fits"]  # no temporary file left


def test_plot_mollweide_with_colour_bar(mem_cat):
    sm = mem_cat.skymap(3, {"n": "count", "m": ("mag", "mean")})
    ax = sm.plot("m", width=200)
    assert ax.get_title().endswith("m = mean(mag), order 3")
    assert len(ax.figure.axes) == 2  # the map and its colour bar
    img = sm.mollweide("n", width=200)
    assert img.shape == (100, 200) and np.isnan(img[0, 0]) and np.isfinite(img[50, 100])
    assert "SkyMap(order=3" in repr(sm) and "<img" in sm._repr_html_()


@pytest.mark.parametrize("order", [-1, 30, 2.5, True, "3"])
def test_order_outside_range_is_a_named_error(mem_cat, order):
    with pytest.raises(InvalidOrderError):
        mem_cat.skymap(order)


def test_bad_aggregates(mem_cat):
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'mag'"):
        mem_cat.skymap(3, {"m": ("magg", "mean")})
    with pytest.raises(PlanError, match="unknown aggregate 'median'"):
        mem_cat.skymap(3, {"m": ("mag", "median")})
    with pytest.raises(PlanError, match="needs a column"):
        mem_cat.skymap(3, {"m": "mean"})
    with pytest.raises(PlanError, match="numeric"):
        mem_cat.skymap(3, {"m": ("name", "mean")})
    with pytest.raises(PlanError, match="no aggregate 'x'"):
        mem_cat.skymap(1).to_numpy("x")
