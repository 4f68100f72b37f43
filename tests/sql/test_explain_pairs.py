"""SQL and the Python method chain build the same plan: for each pair, the SQL query's
``explain()`` contains the chain's ``explain()`` unchanged (under a header with the query
and the SQL nodes above it), both are :class:`~proxcompute.plan.Explanation`, and they
return the same rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import proxcompute
from proxcompute.catalog import from_dataframe, open_catalog
from proxcompute.plan import Explanation
from proxcompute.synthetic import generate_catalog

COLS = ["id", "ra", "dec", "mag"]


@pytest.fixture(scope="module")
def cats(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    from_dataframe(generate_catalog(30_000, seed=31), name="s", max_rows=2_000).to_catalog(root / "s")
    t = generate_catalog(30_000, seed=31).sample(800, random_state=3)
    t = t.assign(ra=(t.ra + 0.1 / 3600.0) % 360.0)  # 0.1" away from an s row
    from_dataframe(t, name="t", max_rows=2_000).to_catalog(root / "t")
    return open_catalog(root / "s"), open_catalog(root / "t")


PAIRS = {
    "cone": (
        "SELECT id, ra, dec, mag FROM s WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 45, 30, 3))",
        lambda s, t: s.cone_search(45, 30, 3 * 3600.0)[COLS],
    ),
    "box": (
        "SELECT id, ra, dec, mag FROM s WHERE CONTAINS(POINT(ra, dec), BOX('ICRS', 40, 25, 10, 6)) = 1",
        lambda s, t: s.box_search((35.0, 45.0), (22.0, 28.0))[COLS],
    ),
    "box_wrapping_ra_0": (
        "SELECT id, ra, dec, mag FROM s WHERE CONTAINS(POINT(ra, dec), BOX('ICRS', 0, -10, 20, 8)) = 1",
        lambda s, t: s.box_search((350.0, 10.0), (-14.0, -6.0))[COLS],
    ),
    "polygon": (
        "SELECT id, ra, dec, mag FROM s WHERE 1 = CONTAINS(POINT(ra, dec), POLYGON(40, 20, 50, 20, 50, 30, 40, 30))",
        lambda s, t: s.polygon_search([(40, 20), (50, 20), (50, 30), (40, 30)])[COLS],
    ),
    "filters": (
        "SELECT id, ra, dec, mag FROM s WHERE mag < 19 AND flag IN (1, 2) AND color >= 0.1",
        lambda s, t: s.where("mag < 19").where("flag in [1, 2]").where("color >= 0.1")[COLS],
    ),
    "projection": ("SELECT id, mag FROM s", lambda s, t: s[["id", "mag"]]),
    "cone_filters_projection": (
        "SELECT id, mag FROM s WHERE DISTANCE(POINT(ra, dec), POINT(45, 30)) < 2 AND mag > 18",
        lambda s, t: s.cone_search(45, 30, 7200.0).where("mag > 18")[["id", "mag"]],
    ),
    "crossmatch_join": (
        "SELECT a.id, b.id FROM t AS a JOIN s AS b "
        "ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, 1.0/3600))",
        lambda s, t: t[["id", "_healpix_29", "ra", "dec"]].crossmatch(
            s[["id", "_healpix_29", "ra", "dec"]], radius_arcsec=1.0, how="all", suffixes=("_l_", "_r_"),
            ensure_margin=True,
        )[["id__l_", "id__r_"]],
    ),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_sql_explain_contains_the_chain_explain_unchanged(cats, name):
    s, t = cats
    query, chain_of = PAIRS[name]
    res = proxcompute.sql(query, {"s": s, "t": t})
    chain = chain_of(s, t)
    text, want = res.explain(), chain.explain()
    assert type(text) is type(want) is Explanation
    assert str(want) in str(text)
    assert str(text).startswith("SQL: " + " ".join(query.split()))


@pytest.mark.parametrize("name", sorted(set(PAIRS) - {"crossmatch_join"}))
def test_sql_and_chain_return_the_same_rows(cats, name):
    s, t = cats
    query, chain_of = PAIRS[name]
    got = proxcompute.sql(query, {"s": s, "t": t}).compute()
    pd.testing.assert_frame_equal(got, chain_of(s, t).compute())
    assert len(got) > 0


def test_crossmatch_join_pairs_equal_brute_force(cats):
    s, t = cats
    query, _ = PAIRS["crossmatch_join"]
    got = proxcompute.sql(query, {"s": s, "t": t}).compute()
    sd, td = s.compute(), t.compute()
    ra1, dec1 = np.radians(td.ra.to_numpy())[:, None], np.radians(td.dec.to_numpy())[:, None]
    ra2, dec2 = np.radians(sd.ra.to_numpy())[None, :], np.radians(sd.dec.to_numpy())[None, :]
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    sep = np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))) * 3600.0
    i, j = np.nonzero(sep <= 1.0)
    want = set(zip(td.id.to_numpy()[i].tolist(), sd.id.to_numpy()[j].tolist(), strict=True))
    assert set(zip(got["id"].tolist(), got["id_2"].tolist(), strict=True)) == want
    assert len(want) >= 800
