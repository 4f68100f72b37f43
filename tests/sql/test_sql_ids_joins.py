"""SQL id searches and equi-joins build the Python chain's plan nodes (``Catalog.id_search``,
``Catalog.join``) and answer as pandas does (``isin``, ``merge``).

The sky (tests/catalog/conftest.make_sky) has dense clusters, crowds at both poles and along
RA = 0/360. ``sky`` is a collection with an index catalog of ``id``; ``plain`` holds the same
rows without one; ``labels`` refers to sky ids through ``ref`` (duplicates, unmatched values and
nulls), with an index of ``ref``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import proxcompute
from proxcompute import SqlError, ingest, open_catalog
from proxcompute.ingest.index import build_index
from proxcompute.plan import find_scan, optimize

_spec = importlib.util.spec_from_file_location(
    "_catalog_conftest_for_sql", Path(__file__).parents[1] / "catalog" / "conftest.py"
)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
make_sky = _module.make_sky

COLS = ["id", "ra", "dec", "mag"]


@pytest.fixture(scope="module")
def sky_df() -> pd.DataFrame:
    return make_sky(12_000, seed=41)


@pytest.fixture(scope="module")
def labels_df(sky_df) -> pd.DataFrame:
    rng = np.random.default_rng(42)
    df = make_sky(3_000, seed=43).rename(columns={"id": "rid", "name": "kind"})
    df["ref"] = rng.choice(np.append(sky_df["id"].to_numpy(), [-1, -2]), len(df))  # duplicates, unmatched
    df.loc[df.index[::89], "ref"] = pd.NA  # null keys never match
    df["ref"] = df["ref"].astype("Int64")
    return df


@pytest.fixture(scope="module")
def root(sky_df, labels_df, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sqlids")
    sky_df.to_parquet(d / "sky.parquet", index=False)
    labels_df.to_parquet(d / "labels.parquet", index=False)
    cats = d / "cats"
    ingest(d / "sky.parquet", cats / "sky", max_rows=600, margin_arcsec=5, workers=2, show_progress=False,
           index_columns=["id"])  # fmt: skip
    open_catalog(cats / "sky").to_catalog(cats / "plain", name="plain")  # the same rows, no index
    ingest(d / "labels.parquet", cats / "labels", max_rows=400, margin_arcsec=0, workers=2, show_progress=False)
    build_index(cats / "labels", "ref", workers=2, show_progress=False)
    return cats


def sql(query: str, root: Path):
    return proxcompute.sql(query, catalog_root=root)


def _in_list(values) -> str:
    return ", ".join(str(int(v)) for v in values)


def _partitions_holding(cat, index29: np.ndarray) -> set:
    """The partitions whose ``_healpix_29`` range holds one of ``index29`` (brute force)."""
    return {p for p in find_scan(cat.plan).partitions if np.any((index29 >= p.healpix29_range[0])
                                                                & (index29 < p.healpix29_range[1]))}  # fmt: skip


# -- id search --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_where_id_in_equals_pandas_isin_and_reads_only_partitions_holding_them(root, sky_df, seed):
    rng = np.random.default_rng(seed)
    ids = np.append(rng.choice(sky_df["id"].to_numpy(), 20, replace=False), [10**9, -5])  # two absent
    res = sql(f"SELECT id, ra, dec, mag FROM sky WHERE id IN ({_in_list(ids)}) AND mag < 21", root)
    got = res.compute()
    want = sky_df[sky_df["id"].isin(ids) & (sky_df["mag"] < 21)]
    assert sorted(got["id"]) == sorted(want["id"]) and len(want) > 10
    pd.testing.assert_frame_equal(
        got.sort_values("id").reset_index(drop=True), want[COLS].sort_values("id").reset_index(drop=True),
        check_dtype=False,
    )  # fmt: skip
    sky = open_catalog(root / "sky")
    holding = sky.where(f"id in [{_in_list(ids)}]")[["_healpix_29"]].compute()["_healpix_29"].to_numpy()
    read = set(find_scan(optimize(res.plan)).partitions)
    assert read == _partitions_holding(sky, holding)
    assert len(read) < len(sky.partitions) / 2


@pytest.mark.parametrize(
    ("where", "ids"),
    [("id = 4321", [4321]), ("4321 = id", [4321]), ("id IN (17)", [17]), ("id IN (3, 4.0, 3)", [3, 4])],
)
def test_equality_and_short_lists(root, sky_df, where, ids):
    res = sql(f"SELECT id, mag FROM sky WHERE {where}", root)
    assert sorted(res.compute()["id"]) == ids
    assert "id_search" in "\n".join(res._plan.notes)


def test_value_that_is_no_id_runs_as_a_filter(root):
    res = sql("SELECT id FROM sky WHERE id = 5.5", root)
    assert len(res.compute()) == 0
    assert not any("id_search" in n for n in res._plan.notes)


def test_sql_explain_contains_the_id_search_chain_unchanged(root, sky_df):
    ids = sky_df["id"].to_numpy()[::997]
    query = f"SELECT id, ra, dec, mag FROM sky WHERE id IN ({_in_list(ids)}) AND mag < 21"
    sky = open_catalog(root / "sky")
    chain = sky.id_search({"id": [int(i) for i in ids]}).where("mag < 21")[COLS]
    res = sql(query, root)
    assert str(chain.explain()) in str(res.explain())
    assert "id in [" in str(chain.explain())
    pd.testing.assert_frame_equal(res.compute(), chain.compute())


def test_without_an_index_the_same_query_scans(root, sky_df):
    ids = sky_df["id"].to_numpy()[::501]
    query = f"SELECT id, ra, dec, mag FROM plain WHERE id IN ({_in_list(ids)})"
    res = sql(query, root)
    plain = open_catalog(root / "plain")
    chain = plain.where(f"id in [{', '.join(str(int(i)) for i in ids)}]")[COLS]
    assert str(chain.explain()) in str(res.explain())
    assert sorted(res.compute()["id"]) == sorted(ids)
    assert len(find_scan(optimize(res.plan)).partitions) == len(plain.partitions)


def test_a_column_without_an_index_still_answers(root, sky_df):
    got = sql("SELECT id, flag FROM sky WHERE flag IN (1, 3) AND id < 3000", root).compute()
    want = sky_df[sky_df["flag"].isin([1, 3]) & (sky_df["id"] < 3000)]
    assert sorted(got["id"]) == sorted(want["id"]) and len(want) > 100


# -- joins on columns -------------------------------------------------------------------------


def _merge_pairs(left: pd.DataFrame, right: pd.DataFrame, left_on: str, right_on: str, how: str) -> list:
    r = right[right[right_on].notna()]
    ref = left.merge(r, left_on=left_on, right_on=right_on, how=how, suffixes=("_l", "_r"))
    return sorted(zip(ref["id"], ref["rid"].fillna(-999).astype(np.int64), strict=True))


def _pairs(out: pd.DataFrame) -> list:
    return sorted(zip(out["id"], out["rid"].fillna(-999).astype(np.int64), strict=True))


@pytest.mark.parametrize("how", ["inner", "left"])
def test_join_on_columns_equals_pandas_merge(root, sky_df, labels_df, how):
    join = "JOIN" if how == "inner" else "LEFT JOIN"
    res = sql(f"SELECT s.id, s.mag, l.rid, l.kind FROM sky AS s {join} labels AS l ON s.id = l.ref "
              "WHERE s.mag < 20.5", root)  # fmt: skip
    assert res.mode == "catalog"
    got = res.compute()
    want = _merge_pairs(sky_df[sky_df["mag"] < 20.5], labels_df, "id", "ref", how)
    assert _pairs(got) == want and len(want) > 500
    assert list(got.columns) == ["id", "mag", "rid", "kind"]


def test_left_join_keeps_the_on_filter_on_the_right(root, sky_df, labels_df):
    got = sql("SELECT s.id, l.rid FROM sky s LEFT JOIN labels l ON s.id = l.ref AND l.flag = 1 "
              "WHERE s.id < 4000", root).compute()  # fmt: skip
    want = _merge_pairs(sky_df[sky_df["id"] < 4000], labels_df[labels_df["flag"] == 1], "id", "ref", "left")
    assert _pairs(got) == want
    assert sum(r == -999 for _, r in want) > 100  # many left rows without a match keep their row


def test_left_join_where_on_the_right_filters_the_joined_rows(root, sky_df, labels_df):
    got = sql("SELECT s.id, l.rid FROM sky s LEFT JOIN labels l ON s.id = l.ref WHERE l.flag = 1", root).compute()
    merged = sky_df.merge(labels_df[labels_df["ref"].notna()], left_on="id", right_on="ref", how="left")
    want = sorted(zip(merged["id"][merged["flag_y"] == 1], merged["rid"][merged["flag_y"] == 1], strict=True))
    assert _pairs(got) == want and len(want) > 50


@pytest.mark.parametrize(("left", "right"), [("sky", "plain"), ("plain", "sky")])
def test_join_using_equals_pandas_merge(root, sky_df, left, right):
    res = sql(f"SELECT id, a.mag, b.flag FROM {left} a JOIN {right} b USING (id) WHERE a.mag < 19", root)
    got = res.compute()
    want = sky_df[sky_df["mag"] < 19].merge(sky_df, on="id", suffixes=("_a", "_b"))
    assert sorted(zip(got["id"], got["flag"], strict=True)) == sorted(zip(want["id"], want["flag_b"], strict=True))
    assert len(want) > 100 and res.mode == "catalog"
    assert any("through the index catalog of" in n for n in res._plan.notes)  # inner: the indexed side is right


def test_select_star_with_using_has_the_key_once(root):
    res = sql("SELECT * FROM plain a JOIN sky b USING (id) WHERE a.id < 10", root)
    cols = list(res.compute().columns)
    assert cols.count("id") == 1 and "id_2" not in cols


def test_aggregate_over_a_join(root, sky_df, labels_df):
    got = sql("SELECT l.flag, COUNT(*) AS n FROM sky s JOIN labels l ON s.id = l.ref GROUP BY l.flag "
              "ORDER BY l.flag", root).compute()  # fmt: skip
    m = sky_df.merge(labels_df[labels_df["ref"].notna()], left_on="id", right_on="ref")
    want = m.groupby("flag_y").size()
    assert got["n"].tolist() == want.tolist() and got["flag"].tolist() == want.index.tolist()


def test_sql_explain_contains_the_join_chain_unchanged(root):
    query = "SELECT s.id, s.mag, l.rid FROM sky AS s JOIN labels AS l ON s.id = l.ref WHERE s.mag < 20"
    sky, labels = open_catalog(root / "sky"), open_catalog(root / "labels")
    chain = sky.where("mag < 20")[["id", "mag"]].join(
        labels[["rid", "ref"]], left_on="id", right_on="ref", suffixes=("_l_", "_r_")
    )[["id__l_", "mag__l_", "rid__r_"]]
    res = sql(query, root)
    text, want = str(res.explain()), str(chain.explain())
    assert want in text
    assert "right rows located through the index catalog" in want
    got = res.compute()
    pd.testing.assert_frame_equal(got, chain.compute().set_axis(["id", "mag", "rid"], axis=1))


def test_id_search_and_join_together(root, sky_df, labels_df):
    ids = sky_df["id"].to_numpy()[::37]
    res = sql(f"SELECT s.id, l.rid FROM sky s JOIN labels l ON s.id = l.ref WHERE s.id IN ({_in_list(ids)})", root)
    want = _merge_pairs(sky_df[sky_df["id"].isin(ids)], labels_df, "id", "ref", "inner")
    assert _pairs(res.compute()) == want and len(want) > 5
    assert any("id_search" in n for n in res._plan.notes)


def test_joins_that_are_no_equi_join_still_gather(root):
    assert sql("SELECT a.id FROM sky a JOIN plain b ON a.id = b.id + 1 WHERE a.id < 5", root).mode == "gather"
    assert sql("SELECT a.id FROM sky a RIGHT JOIN plain b ON a.id = b.id WHERE b.id < 5", root).mode == "gather"


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "phase", "at", "words"),
    [
        ("SELECT id FROM sky WHERE id IN (1, 'a', 3)", "type", "'a'", ["mixes numbers and strings", "'a'"]),
        ("SELECT id FROM sky WHERE id IN ('x', 'y')", "type", "'x'", ["'id' holds numbers", "'x'"]),
        ("SELECT s.id FROM sky s JOIN labels l ON s.id = l.reff", "unknown column", "l.reff",
         ["'reff'", "table 'l'", "Did you mean 'ref'"]),
        ("SELECT s.id FROM sky s JOIN labels l USING (nope)", "unknown column", "nope", ["'nope'", "table 's'"]),
        ("SELECT s.id FROM sky s JOIN labels l ON s.id = l.kind", "type", "s.id = l.kind",
         ["cannot join s.id (int64) with l.kind (large_string)", "different kinds"]),
    ],
)  # fmt: skip
def test_bad_input_is_a_located_sql_error(root, query, phase, at, words):
    with pytest.raises(SqlError) as info:
        sql(query, root)
    err = info.value
    assert err.phase == phase
    assert (err.line, err.column) == (1, query.index(at) + 1)
    for w in words:
        assert w in err.message
