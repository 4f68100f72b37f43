"""SQL GROUP BY on columns compiles to the generic Aggregate node (the one sky maps use) and
agrees with pandas, NULLs included; forms it cannot express stay DuckDB SQL nodes."""

from __future__ import annotations

import numpy as np
import pytest

import proxcompute
from proxcompute.plan import optimize
from proxcompute.plan.aggregate import Aggregate
from proxcompute.plan.relational import SqlAggregate, SqlMerge


@pytest.fixture(scope="module")
def stars(sql_df, stars_mem):
    return sql_df, stars_mem  # NULLs in mag, color, band and name (tests/sql/conftest.py)


def _nodes(plan):
    out, node = [], plan
    while True:
        out.append(type(node))
        if not node.children:
            return out
        (node,) = node.children


def test_group_by_columns_equals_pandas(stars):
    df, cat = stars
    q = (
        "SELECT band, flag, COUNT(*) AS n, COUNT(mag) AS nm, SUM(flag) AS sf, AVG(mag) AS m, "
        "STDDEV(mag) AS sd, MIN(color) AS lo, MAX(color) AS hi FROM stars GROUP BY band, flag"
    )
    res = proxcompute.sql(q, {"stars": cat})
    assert Aggregate in _nodes(res.plan) and SqlAggregate not in _nodes(res.plan)
    got = res.compute().sort_values(["band", "flag"], na_position="first").reset_index(drop=True)
    g = df.assign(band=df.band.astype("float64")).groupby(["band", "flag"], dropna=False)
    want = (
        g.agg(n=("id", "size"), nm=("mag", "count"), sf=("flag", "sum"), m=("mag", "mean"),
              sd=("mag", "std"), lo=("color", "min"), hi=("color", "max"))
        .reset_index()
        .sort_values(["band", "flag"], na_position="first")
        .reset_index(drop=True)
    )
    assert len(got) == len(want) and got["band"].isna().sum() == want["band"].isna().sum() == 4
    np.testing.assert_array_equal(got["n"].to_numpy(), want["n"].to_numpy())
    np.testing.assert_array_equal(got["nm"].to_numpy(), want["nm"].to_numpy())
    np.testing.assert_array_equal(got["sf"].to_numpy(), want["sf"].to_numpy())
    for c in ("m", "sd", "lo", "hi"):
        np.testing.assert_allclose(got[c].to_numpy(dtype=float), want[c].to_numpy(dtype=float), rtol=1e-9)


def test_count_star_is_counted_and_order_limit_sit_above_the_aggregate(stars):
    df, cat = stars
    res = proxcompute.sql("SELECT COUNT(*) AS n FROM stars WHERE mag < 20", {"stars": cat})
    assert proxcompute.execute.strategy(optimize(res.plan)) == "count"
    assert res.compute()["n"].tolist() == [int((df.mag < 20).sum())]
    res = proxcompute.sql("SELECT TOP 2 flag AS f, COUNT(*) AS n FROM stars GROUP BY flag ORDER BY n DESC", {"stars": cat})
    want = df.groupby("flag").size().sort_values(ascending=False).head(2)
    got = res.compute()
    assert got.columns.tolist() == ["f", "n"]
    assert got["f"].tolist() == want.index.tolist() and got["n"].tolist() == want.tolist()


@pytest.mark.parametrize(
    ("query", "node"),
    [
        ("SELECT FLOOR(mag) AS b, COUNT(*) FROM stars GROUP BY FLOOR(mag)", SqlAggregate),  # expression key
        ("SELECT flag, COUNT(*) FROM stars GROUP BY flag HAVING COUNT(*) > 3", SqlAggregate),
        ("SELECT band, MIN(name) FROM stars GROUP BY band", SqlAggregate),  # a string column
        ("SELECT flag, COUNT(DISTINCT band) FROM stars GROUP BY flag", SqlMerge),
    ],
)
def test_forms_the_generic_node_cannot_express_stay_duckdb(stars, query, node):
    res = proxcompute.sql(query, {"stars": stars[1]})
    assert node in _nodes(res.plan) and Aggregate not in _nodes(res.plan)
    assert "DuckDB" in res.explain()


def test_ivo_healpix_index_group_by_is_a_healpix_key_and_equals_healpy(stars):
    healpy = pytest.importorskip("healpy")
    df, cat = stars
    q = "SELECT ivo_healpix_index(6, ra, dec) AS pix, COUNT(*) AS n, AVG(mag) AS m FROM stars GROUP BY ivo_healpix_index(6, ra, dec)"
    res = proxcompute.sql(q, {"stars": cat})
    agg = optimize(res.plan)
    assert isinstance(agg, Aggregate) and agg.healpix_key is not None and agg.healpix_key.order == 6
    got = res.compute().sort_values("pix").reset_index(drop=True)
    pix = healpy.ang2pix(2**6, df.ra.to_numpy(), df.dec.to_numpy(), nest=True, lonlat=True)
    want = df.assign(pix=pix).groupby("pix").agg(n=("id", "size"), m=("mag", "mean")).reset_index()
    np.testing.assert_array_equal(got["pix"].to_numpy(), want["pix"].to_numpy())
    np.testing.assert_array_equal(got["n"].to_numpy(), want["n"].to_numpy())
    np.testing.assert_allclose(got["m"].to_numpy(dtype=float), want["m"].to_numpy(dtype=float), rtol=1e-9)
    # the same numbers through the DuckDB UDF path (HAVING keeps it in SQL)
    udf = proxcompute.sql(q + " HAVING COUNT(*) > 0", {"stars": cat}).compute().sort_values("pix")
    assert udf["pix"].tolist() == got["pix"].tolist() and udf["n"].tolist() == got["n"].tolist()


def test_one_pass_duckdb_aggregate_equals_the_per_partition_engine(tmp_path):
    """execute runs an Aggregate over a stored catalog in one DuckDB pass when nothing observes
    it; NaN must be skipped like NULL there too, and a HealpixKey is the shifted index."""
    from proxcompute import execute
    from proxcompute.catalog import from_dataframe, open_catalog
    from proxcompute.synthetic import generate_catalog

    df = generate_catalog(40_000, seed=12)
    df.loc[df.index % 7 == 0, "mag"] = np.nan
    from_dataframe(df, name="c", max_rows=4_000).to_catalog(tmp_path / "c")
    cat = open_catalog(tmp_path / "c")
    q = (
        "SELECT ivo_healpix_index(3, ra, dec) AS pix, flag, COUNT(*) AS n, COUNT(mag) AS nm, AVG(mag) AS m, "
        "STDDEV(mag) AS sd, MIN(mag) AS lo, SUM(flag) AS sf FROM c GROUP BY ivo_healpix_index(3, ra, dec), flag"
    )
    res = proxcompute.sql(q, {"c": cat})
    assert execute.strategy(optimize(res.plan)) == "single-scan"
    one_pass = res.compute()
    with execute.observe(execute.TaskObserver()):
        assert execute.strategy(optimize(res.plan)) == "aggregate"
        per_partition = res.compute()  # DuckDB partial states, the aggregate's exact merge
    assert isinstance(res.plan, Aggregate)
    numpy_engine = execute.aggregate_table(res.plan).to_pandas()  # ops.aggregate's numpy states
    pd_sort = ["pix", "flag"]
    b = numpy_engine.sort_values(pd_sort).reset_index(drop=True)
    for got in (one_pass, per_partition):
        a = got.sort_values(pd_sort).reset_index(drop=True)
        assert a.dtypes.tolist() == b.dtypes.tolist()
        for c in ("pix", "flag", "n", "nm", "sf"):
            assert a[c].tolist() == b[c].tolist()
        for c in ("m", "sd", "lo"):
            np.testing.assert_allclose(a[c].to_numpy(dtype=float), b[c].to_numpy(dtype=float), rtol=1e-9)
    a = one_pass
    assert int(a["nm"].sum()) == int(df["mag"].notna().sum())
