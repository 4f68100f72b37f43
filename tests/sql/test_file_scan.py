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


@pytest.fixture(scope="module")
def nan_and_null(tmp_path_factory):
    """A stored catalog whose ``mag`` has NaN and NULL rows, and ``flag`` NULL rows."""
    import pyarrow as pa

    df = generate_catalog(9_000, seed=22)
    rng = np.random.default_rng(22)
    nan = rng.random(len(df)) < 0.05
    null = ~nan & (rng.random(len(df)) < 0.05)
    mag = pa.array(np.where(nan, np.nan, df["mag"].to_numpy()), mask=null, from_pandas=False)
    flag = pa.array(df["flag"].to_numpy(), mask=rng.random(len(df)) < 0.03)
    table = pa.Table.from_pandas(df.drop(columns=["mag", "flag"]), preserve_index=False)
    table = table.append_column("mag", mag).append_column("flag", flag)
    path = tmp_path_factory.mktemp("nannull") / "cat"
    from_dataframe(table.to_pandas(), name="cat", max_rows=1_000).to_catalog(path)
    # to_pandas turns NULL into NaN: put the exact NULL/NaN mix back into the stored files
    import pyarrow.parquet as pq

    for f in path.rglob("Npix=*.parquet"):
        t = pq.read_table(f)
        ids = t.column("id").to_numpy()
        order = np.searchsorted(df["id"].to_numpy(), ids)
        t = t.set_column(t.schema.get_field_index("mag"), "mag", mag.take(pa.array(order)))
        t = t.set_column(t.schema.get_field_index("flag"), "flag", flag.take(pa.array(order)))
        pq.write_table(t, f, row_group_size=300)
    return path, mag, flag


_WHERE = {  # the filter, and its meaning in numpy (IEEE comparisons; a NULL never matches)
    "mag < 20": lambda m, f, d: m < 20,
    "mag >= 18.5 AND flag = 2": lambda m, f, d: (m >= 18.5) & (f == 2),
    "20 > mag": lambda m, f, d: m < 20,
    "mag != 19.0": lambda m, f, d: m != 19.0,
    "flag <> 1 AND mag > 0 AND dec < 30": lambda m, f, d: (f != 1) & (m > 0) & (d < 30),
}


@pytest.mark.parametrize("where", sorted(_WHERE))
def test_filtered_count_by_duckdb_equals_the_reader_and_numpy(nan_and_null, where, monkeypatch):
    """A count whose filter is a conjunction of comparisons is one DuckDB scan of the files,
    with the reader's answer and numpy's: NULL rows never match, NaN only for ``!=``."""
    from proxcompute.execute import partition, run

    path, mag, flag = nan_and_null
    cat = proxcompute.open_catalog(path)
    df = generate_catalog(9_000, seed=22)
    m = np.asarray(mag.to_numpy(zero_copy_only=False), dtype=float)
    f = np.asarray(flag.fill_null(-99).to_numpy(), dtype=float)
    with np.errstate(invalid="ignore"):
        hit = _WHERE[where](m, f, df["dec"].to_numpy())
    for name, arr in (("mag", mag), ("flag", flag)):
        if name in where:
            hit &= ~np.asarray(arr.is_null())
    want = int(hit.sum())
    assert np.isnan(m).any() and mag.null_count and flag.null_count
    pandas_where = where.replace("AND", "and").replace("<>", "!=").replace(" = ", " == ")

    def reader_count():
        with monkeypatch.context() as mp:
            mp.setattr(run, "filtered_count", lambda *a, **k: None)
            return proxcompute.sql(f"SELECT COUNT(*) AS n FROM c WHERE {where}", {"c": path}).compute()["n"][0]

    def no_reader(*a, **k):
        raise AssertionError("the count read partitions with the reader")

    with monkeypatch.context() as mp:
        mp.setattr(run, "count_partition", no_reader)
        by_duckdb = proxcompute.sql(f"SELECT COUNT(*) AS n FROM c WHERE {where}", {"c": path}).compute()["n"][0]
        assert cat.where(pandas_where).count() == by_duckdb
    assert by_duckdb == reader_count() == want
    assert partition.count_partition is not no_reader


def test_filtered_count_with_a_region_or_a_disjunction_uses_the_reader(nan_and_null, monkeypatch):
    from proxcompute.execute import run

    path, _, _ = nan_and_null
    calls = []
    real = run.filtered_count
    monkeypatch.setattr(run, "filtered_count", lambda *a, **k: calls.append(real(*a, **k)) or calls[-1])
    proxcompute.sql("SELECT COUNT(*) FROM c WHERE mag < 20 OR flag = 1", {"c": path}).compute()
    proxcompute.sql(
        "SELECT COUNT(*) FROM c WHERE mag < 20 AND 1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 5, 30))", {"c": path}
    ).compute()
    assert calls and all(c is None for c in calls)
