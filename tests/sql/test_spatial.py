"""Spatial SQL against brute force and astropy, pair for pair, and against the method chain."""


import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord, search_around_sky

import proxcompute
from proxcompute.catalog import from_dataframe
from proxcompute.synthetic import generate_catalog


def _sep_deg(ra1, dec1, ra2, dec2):
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.minimum(1.0, np.sqrt(h))))


@pytest.fixture(scope="module")
def survey_df():
    df = generate_catalog(30_000, seed=11)
    rng = np.random.default_rng(5)
    # extra rows at the poles and around RA = 0 so regions cross those seams
    n = 3_000
    extra = pd.DataFrame(
        {
            "id": np.arange(len(df), len(df) + n),
            "ra": np.concatenate(
                [
                    rng.uniform(0, 360, n // 3),
                    rng.uniform(0, 360, n // 3),
                    rng.uniform(-3, 3, n - 2 * (n // 3)) % 360,
                ]
            ),
            "dec": np.concatenate(
                [
                    rng.uniform(87, 90, n // 3),
                    rng.uniform(-90, -87, n // 3),
                    rng.uniform(-3, 3, n - 2 * (n // 3)),
                ]
            ),
        }
    )
    for col in ("mag", "color", "flag"):
        extra[col] = df[col].iloc[:n].to_numpy()
    return pd.concat([df, extra], ignore_index=True)


@pytest.fixture(scope="module")
def survey(survey_df):
    return from_dataframe(survey_df, name="survey", max_rows=1_500)


CONES = [
    (45.0, 30.0, 2.0),
    (0.5, 0.0, 1.5),
    (359.7, -1.0, 2.0),
    (10.0, 89.0, 2.5),
    (200.0, -88.5, 3.0),
    (45.0, 30.0, 1 / 60),
]


@pytest.mark.parametrize("ra, dec, r", CONES)
@pytest.mark.parametrize("form", ["contains", "contains_reversed", "distance", "distance4", "intersects"])
def test_cone_equals_brute_force(survey, survey_df, ra, dec, r, form):
    where = {
        "contains": f"CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {r})) = 1",
        "contains_reversed": f"1 = CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, {r}))",
        "distance": f"DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra}, {dec})) <= {r}",
        "distance4": f"{r} >= DISTANCE(ra, dec, {ra}, {dec})",
        "intersects": f"INTERSECTS(CIRCLE('ICRS', {ra}, {dec}, {r}), POINT('ICRS', ra, dec)) = 1",
    }[form]
    res = proxcompute.sql(f"SELECT id FROM s WHERE {where}", {"s": survey})
    got = np.sort(res.compute()["id"].to_numpy())
    sep = _sep_deg(survey_df["ra"].to_numpy(), survey_df["dec"].to_numpy(), ra, dec)
    want = np.sort(survey_df["id"].to_numpy()[sep <= r])
    assert len(want) > 0 or r < 0.1
    np.testing.assert_array_equal(got, want)
    assert res.mode == "catalog"  # the region did all the work: no SQL engine per partition


def test_cone_prunes_partitions(survey):
    res = proxcompute.sql(
        "SELECT id FROM s WHERE CONTAINS(POINT(ra, dec), CIRCLE(45, 30, 0.1)) = 1", {"s": survey}
    )
    assert 1 <= len(res.partitions) < len(survey.partitions) / 4


def test_box_equals_brute_force(survey, survey_df):
    # ADQL BOX(center, width, height) as an RA/Dec range box, here wrapping through RA = 0
    q = "SELECT id FROM s WHERE CONTAINS(POINT('ICRS', ra, dec), BOX('ICRS', 0.0, 0.0, 4.0, 2.0)) = 1"
    got = np.sort(proxcompute.sql(q, {"s": survey}).compute()["id"].to_numpy())
    ra, dec = survey_df["ra"].to_numpy(), survey_df["dec"].to_numpy()
    inside = ((ra >= 358.0) | (ra <= 2.0)) & (np.abs(dec) <= 1.0)
    assert inside.sum() > 10
    np.testing.assert_array_equal(got, np.sort(survey_df["id"].to_numpy()[inside]))


def test_polygon_equals_method_chain(survey):
    verts = [(40, 25), (50, 25), (50, 35), (40, 35)]
    flat = ", ".join(f"{a}, {b}" for a, b in verts)
    q = f"SELECT id FROM s WHERE CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', {flat})) = 1"
    got = np.sort(proxcompute.sql(q, {"s": survey}).compute()["id"].to_numpy())
    want = np.sort(survey.polygon_search(verts).compute()["id"].to_numpy())
    assert len(want) > 100
    np.testing.assert_array_equal(got, want)


def test_distance_in_select_matches_astropy(survey, survey_df):
    q = "SELECT id, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 45, 30)) AS d FROM s WHERE mag < 21"
    out = proxcompute.sql(q, {"s": survey}).compute().sort_values("id")
    ref = survey_df[survey_df["mag"] < 21].sort_values("id")
    sep = SkyCoord(ref["ra"].to_numpy(), ref["dec"].to_numpy(), unit="deg").separation(
        SkyCoord(45, 30, unit="deg")
    )
    np.testing.assert_array_equal(out["id"].to_numpy(), ref["id"].to_numpy())
    np.testing.assert_allclose(out["d"].to_numpy(), sep.deg, rtol=0, atol=1e-9)


def test_region_in_or_runs_per_row(survey, survey_df):
    q = (
        "SELECT id FROM s WHERE CONTAINS(POINT(ra, dec), CIRCLE(45, 30, 1)) = 1 "
        "OR CONTAINS(POINT(ra, dec), CIRCLE(0, 0, 1)) = 1"
    )
    res = proxcompute.sql(q, {"s": survey})
    got = np.sort(res.compute()["id"].to_numpy())
    ra, dec = survey_df["ra"].to_numpy(), survey_df["dec"].to_numpy()
    inside = (_sep_deg(ra, dec, 45, 30) <= 1) | (_sep_deg(ra, dec, 0, 0) <= 1)
    np.testing.assert_array_equal(got, np.sort(survey_df["id"].to_numpy()[inside]))


def test_cone_plus_filters_equals_method_chain_plan_and_rows(survey):
    q = (
        "SELECT id, ra, dec, mag FROM s WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 45, 30, 2)) "
        "AND mag < 20 AND flag IN (1, 2)"
    )
    res = proxcompute.sql(q, {"s": survey})
    chain = (
        survey.cone_search(45, 30, 7200).where("mag < 20").where("flag in [1, 2]")[["id", "ra", "dec", "mag"]]
    )
    assert str(res.catalog.explain()) == str(chain.explain())
    assert str(chain.explain()) in res.explain()  # unchanged, under a header with the query
    pd.testing.assert_frame_equal(res.compute(), chain.compute())


@pytest.mark.parametrize("radius_arcsec", [5.0, 60.0])
@pytest.mark.parametrize(
    "template",
    [
        "SELECT a.id AS aid, b.id AS bid, DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) AS d "
        "FROM t AS a JOIN s AS b ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, {r}))",
        "SELECT a.id AS aid, b.id AS bid, DISTANCE(a.ra, a.dec, b.ra, b.dec) AS d "
        "FROM t a, s b WHERE DISTANCE(POINT(b.ra, b.dec), POINT(a.ra, a.dec)) < {r}",
        "SELECT b.id AS bid, a.id AS aid, DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) AS d "
        "FROM s AS b INNER JOIN t AS a ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) <= {r}",
    ],
)
def test_positional_join_equals_astropy(survey, survey_df, template, radius_arcsec):
    rng = np.random.default_rng(9)
    pick = survey_df.sample(2_000, random_state=3)
    targets = pd.DataFrame(
        {
            "id": np.arange(2_000) + 10_000_000,
            "ra": (pick["ra"].to_numpy() + rng.normal(0, 2 / 3600, 2_000)) % 360,
            "dec": np.clip(pick["dec"].to_numpy() + rng.normal(0, 2 / 3600, 2_000), -90, 90),
        }
    )
    q = template.format(r=radius_arcsec / 3600)
    res = proxcompute.sql(q, {"s": survey, "t": targets})
    assert "crossmatch" in res.explain()
    out = res.compute()
    got = set(zip(out["aid"].to_numpy().tolist(), out["bid"].to_numpy().tolist(), strict=True))
    tc = SkyCoord(targets["ra"].to_numpy(), targets["dec"].to_numpy(), unit="deg")
    sc = SkyCoord(survey_df["ra"].to_numpy(), survey_df["dec"].to_numpy(), unit="deg")
    it, isv, sep, _ = search_around_sky(tc, sc, radius_arcsec * u.arcsec)
    want = set(
        zip(targets["id"].to_numpy()[it].tolist(), survey_df["id"].to_numpy()[isv].tolist(), strict=True)
    )
    assert len(want) >= 1_500
    assert got == want
    d = dict(zip(zip(out["aid"], out["bid"], strict=True), out["d"], strict=True))
    ref = dict(
        zip(
            zip(targets["id"].to_numpy()[it], survey_df["id"].to_numpy()[isv], strict=True),
            sep.deg,
            strict=True,
        )
    )
    np.testing.assert_allclose([d[k] for k in ref], list(ref.values()), rtol=0, atol=1e-10)


def test_positional_join_with_region_and_filter_on_each_side(survey, survey_df):
    q = (
        "SELECT a.id AS aid, b.id AS bid FROM s AS a JOIN s AS b "
        "ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 0.05 "
        "WHERE CONTAINS(POINT(a.ra, a.dec), CIRCLE(45, 30, 3)) = 1 AND b.mag < 20 AND a.id <> b.id"
    )
    res = proxcompute.sql(q, {"s": survey})
    out = res.compute()
    got = set(zip(out["aid"].tolist(), out["bid"].tolist(), strict=True))
    ra, dec, ids, mag = (survey_df[c].to_numpy() for c in ("ra", "dec", "id", "mag"))
    a_idx = np.flatnonzero(_sep_deg(ra, dec, 45, 30) <= 3)
    want = set()
    for i in a_idx:
        near = np.flatnonzero((_sep_deg(ra, dec, ra[i], dec[i]) <= 0.05) & (mag < 20) & (ids != ids[i]))
        want.update((int(ids[i]), int(ids[j])) for j in near)
    assert len(want) > 100
    assert got == want


def test_join_with_aggregate_over_pairs(survey, survey_df):
    targets = survey_df.sample(500, random_state=1)[["id", "ra", "dec"]]
    q = (
        "SELECT COUNT(*) AS n, MAX(DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec))) AS dmax "
        "FROM t a JOIN s b ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) <= 0.02"
    )
    out = proxcompute.sql(q, {"s": survey, "t": targets}).compute()
    tc = SkyCoord(targets["ra"].to_numpy(), targets["dec"].to_numpy(), unit="deg")
    sc = SkyCoord(survey_df["ra"].to_numpy(), survey_df["dec"].to_numpy(), unit="deg")
    _, _, sep, _ = search_around_sky(tc, sc, 0.02 * u.deg)
    assert int(out["n"][0]) == len(sep)
    assert out["dmax"][0] == pytest.approx(sep.deg.max(), abs=1e-10)


def test_healpix_index_udf_matches_healpy(survey, survey_df):
    import healpy as hp

    q = "SELECT id, ivo_healpix_index(8, ra, dec) AS hpx FROM s WHERE mag < 18"
    out = proxcompute.sql(q, {"s": survey}).compute().sort_values("id")
    ref = survey_df[survey_df["mag"] < 18].sort_values("id")
    want = hp.ang2pix(2**8, ref["ra"].to_numpy(), ref["dec"].to_numpy(), nest=True, lonlat=True)
    np.testing.assert_array_equal(out["hpx"].to_numpy(), want)


def test_coord1_coord2(survey):
    out = proxcompute.sql(
        "SELECT TOP 5 COORD1(POINT('ICRS', ra, dec)) AS x, COORD2(POINT('ICRS', ra, dec)) AS y, ra, dec "
        "FROM s ORDER BY id",
        {"s": survey},
    ).compute()
    np.testing.assert_array_equal(out["x"], out["ra"])
    np.testing.assert_array_equal(out["y"], out["dec"])
