"""The single scan's file form: DuckDB reads the partition files of a plain scan itself.

Whichever way the rows are read, the answer is the one pandas gives on the whole table.
"""

import numpy as np
import pandas as pd
import pytest

import proxcompute
from proxcompute import execute
from proxcompute.catalog import from_dataframe
from proxcompute.execute.file_scan import plain_file_scan
from proxcompute.plan import optimize
from proxcompute.synthetic import generate_catalog


@pytest.fixture(scope="module")
def table():
    df = generate_catalog(12_000, seed=21)
    rng = np.random.default_rng(21)
    df.loc[rng.random(len(df)) < 0.05, "mag"] = np.nan  # NaN is skipped like NULL by every aggregate
    return df


@pytest.fixture(scope="module")
def stored(tmp_path_factory, table):
    path = tmp_path_factory.mktemp("filescan") / "cat"
    from_dataframe(table, name="cat", max_rows=1_500).to_catalog(path)
    return path


def _below_merge(res):
    node = optimize(res.plan)
    while node.children:
        (child,) = node.children
        if type(node).__name__ in ("SqlAggregate", "Aggregate", "Distinct"):
            return child
        node = child
    raise AssertionError("no merge node")


def test_plain_scans_are_read_by_duckdb_filtered_ones_by_the_reader(stored):
    plain = proxcompute.sql("SELECT FLOOR(dec) AS d, COUNT(*) AS n FROM c GROUP BY FLOOR(dec)", {"c": stored})
    filtered = proxcompute.sql(
        "SELECT flag, COUNT(*) AS n FROM c WHERE mag < 20 GROUP BY flag", {"c": stored}
    )
    cone = proxcompute.sql(
        "SELECT flag, COUNT(*) AS n FROM c WHERE CONTAINS(POINT(ra, dec), CIRCLE(10, 5, 30)) = 1 GROUP BY flag",
        {"c": stored},
    )
    assert execute.strategy(optimize(plain.plan)) == "single-scan"
    scan = plain_file_scan(_below_merge(plain))
    assert scan is not None and len(scan.files) == len(list(stored.rglob("Npix=*.parquet")))
    assert plain_file_scan(_below_merge(filtered)) is None
    assert plain_file_scan(_below_merge(cone)) is None


def test_expression_group_by_equals_pandas(stored, table):
    got = proxcompute.sql(
        "SELECT FLOOR(dec) AS d, COUNT(*) AS n, AVG(mag) AS m, MAX(mag) AS hi FROM c GROUP BY FLOOR(dec) ORDER BY d",
        {"c": stored},
    ).compute()
    ref = (
        table.assign(d=np.floor(table["dec"]))
        .groupby("d")
        .agg(n=("id", "size"), m=("mag", "mean"), hi=("mag", "max"))
    )
    assert got["d"].tolist() == ref.index.tolist()
    assert got["n"].tolist() == ref["n"].tolist()
    np.testing.assert_allclose(got["m"].to_numpy(float), ref["m"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(got["hi"].to_numpy(float), ref["hi"].to_numpy(), rtol=0)


def test_column_group_by_and_distinct_equal_pandas_and_the_reader_path(stored, table):
    q = "SELECT flag, COUNT(*) AS n, SUM(id) AS s, STDDEV(mag) AS sd, MIN(color) AS lo FROM c GROUP BY flag ORDER BY flag"
    files = proxcompute.sql(q, {"c": stored}).compute()
    with execute.observe(execute.TaskObserver()):  # observed: partition by partition through the reader
        reader = proxcompute.sql(q, {"c": stored}).compute()
    grouped = table.groupby("flag")
    ref = pd.DataFrame({"n": grouped.size(), "s": grouped["id"].sum(), "sd": grouped["mag"].std(),
                        "lo": grouped["color"].min()})  # fmt: skip
    for got in (files, reader):
        assert got["flag"].tolist() == ref.index.tolist()
        assert got["n"].tolist() == ref["n"].tolist() and got["s"].tolist() == ref["s"].tolist()
        np.testing.assert_allclose(got["sd"].to_numpy(float), ref["sd"].to_numpy(), rtol=1e-9)
        assert got["lo"].tolist() == ref["lo"].tolist()
    distinct = proxcompute.sql("SELECT DISTINCT flag FROM c", {"c": stored}).compute()
    assert sorted(distinct["flag"].tolist()) == sorted(table["flag"].unique().tolist())


def test_each_merge_kind_takes_the_file_path(stored, monkeypatch):
    from proxcompute.execute import file_scan

    calls = []
    real = file_scan.run_sql_over_files
    monkeypatch.setattr(file_scan, "run_sql_over_files", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    for q in ("SELECT flag, COUNT(*) AS n FROM c GROUP BY flag",  # the generic Aggregate
              "SELECT FLOOR(dec) AS d, COUNT(*) AS n FROM c GROUP BY FLOOR(dec)",  # SQL's partial/final aggregate
              "SELECT DISTINCT flag FROM c"):  # fmt: skip
        proxcompute.sql(q, {"c": stored}).compute()
    assert len(calls) == 3
