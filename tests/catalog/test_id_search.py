"""id_search through HATS index catalogs equals pandas ``isin``; index building and its errors.

The sky has dense clusters, crowds at both poles and along RA = 0/360 (conftest.make_sky).
Index files are cut small here (many files, many row groups, equal values straddling row
groups) so the lookup's edge cases are exercised on a small catalog.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sky_data import make_sky

import proxcompute.ingest.index as index_mod
from proxcompute import (
    CatalogExistsError,
    ColumnNotFoundError,
    PlanError,
    from_dataframe,
    ingest,
    open_catalog,
)
from proxcompute.cli import main
from proxcompute.execute import describe_reads
from proxcompute.ingest.index import build_index
from proxcompute.plan import optimize
from proxcompute.storage.index import collection_indexes, read_index_meta


@pytest.fixture(scope="module")
def sky():
    df = make_sky(20_000, seed=11)
    df["sid"] = [f"S{i:07d}" for i in df["id"]]  # string ids
    df["group"] = (df["id"] % 97).astype(np.int64)  # many equal values per id
    return df


@pytest.fixture(scope="module")
def collection(sky, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(index_mod, "BUCKET_ROWS", 3_000)
    mp.setattr(index_mod, "INDEX_ROW_GROUP_ROWS", 128)
    try:
        d = tmp_path_factory.mktemp("ids")
        sky.to_parquet(d / "sky.parquet", index=False)
        ingest(d / "sky.parquet", d / "sky", max_rows=800, margin_arcsec=5, workers=2, show_progress=False,
               index_columns=["id", "sid"])  # fmt: skip
        build_index(d / "sky", "group", workers=2, show_progress=False)
    finally:
        mp.undo()
    return d / "sky"


def _ids(df: pd.DataFrame) -> list:
    return sorted(df["id"].tolist())


def test_index_layout_is_listed_and_sorted(collection, sky):
    assert collection_indexes(collection) == {
        c: str(collection / f"sky_{c}_index") for c in ("id", "sid", "group")
    }
    assert (
        "all_indexes=id sky_id_index sid sky_sid_index group sky_group_index"
        in (collection / "collection.properties").read_text()
    )
    meta = read_index_meta(collection / "sky_id_index")
    assert meta.total_rows == len(sky)
    assert len(meta.files) >= 5 and len(meta.rg_min) >= 100
    assert (np.diff(meta.rg_min.astype(np.int64)) > 0).all()
    props = (collection / "sky_id_index" / "hats.properties").read_text()
    assert "dataproduct_type=index" in props and "hats_index_column=id" in props
    assert (collection / "sky_id_index" / "dataset" / "_metadata").exists()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_id_search_equals_pandas_isin(collection, sky, seed):
    rng = np.random.default_rng(seed)
    cat = open_catalog(collection)
    present = rng.choice(sky["id"].to_numpy(), 300, replace=False)
    poles_and_wrap = sky["id"].to_numpy()[
        (sky["dec"].abs() > 88.5) | (sky["ra"] < 0.5) | (sky["ra"] > 359.5)
    ][:50]
    ids = np.concatenate([present, poles_and_wrap, [-5, 10**12]])  # and two that are nowhere
    got = cat.id_search({"id": ids}).compute()
    want = sky[sky["id"].isin(ids)]
    assert _ids(got) == _ids(want)
    pd.testing.assert_frame_equal(
        got.drop(columns="_healpix_29").sort_values("id").reset_index(drop=True),
        want.sort_values("id").reset_index(drop=True),
        check_dtype=False,
    )


def test_reads_only_the_partitions_and_row_groups_holding_the_ids(collection, sky):
    cat = open_catalog(collection)
    ids = sky["id"].to_numpy()[[5, 7_000, 15_000]]
    search = cat.id_search({"id": ids})
    holding = {p for p in cat.partitions if any(p.healpix29_range[0] <= h < p.healpix29_range[1]
                                                for h in search.compute()["_healpix_29"])}  # fmt: skip
    assert set(search.partitions) == holding
    reads = describe_reads(optimize(search.plan))
    assert len(reads.partitions) == 3 < len(cat.partitions)
    assert sum(r.row_groups_read for r in reads.partitions) <= 3
    text = str(search.explain())
    assert "partitions: 3 of" in text and "id in [" in text


def test_string_ids_and_several_columns(collection, sky):
    cat = open_catalog(collection)
    sids = ["S0000003", "S0012345", "nobody"]
    assert _ids(cat.id_search({"sid": sids}).compute()) == _ids(sky[sky["sid"].isin(sids)])
    both = cat.id_search({"group": [4, 5], "id": list(range(0, 2_000))}).compute()
    assert _ids(both) == _ids(sky[sky["group"].isin([4, 5]) & (sky["id"] < 2_000)])
    # a single value, and chaining with a region and where()
    one = cat.id_search({"id": int(sky["id"].iloc[10])})
    assert one.count() == 1
    chained = cat.where("mag < 20").id_search({"group": 7}).cone_search(45.0, 30.0, 2 * 3600)
    want = sky[(sky["mag"] < 20) & (sky["group"] == 7)]
    from proxcompute.sky import Cone

    want = want[Cone(45.0, 30.0, 2 * 3600).contains(want["ra"].to_numpy(), want["dec"].to_numpy())]
    assert _ids(chained.compute()) == _ids(want)


def test_duplicated_values_straddling_row_groups(collection, sky):
    cat = open_catalog(collection)
    got = cat.id_search({"group": [0, 50, 96]}).compute()
    assert _ids(got) == _ids(sky[sky["group"].isin([0, 50, 96])])


def test_no_matches_and_empty_list(collection):
    cat = open_catalog(collection)
    assert len(cat.id_search({"id": [-1, -2]}).compute()) == 0
    assert cat.id_search({"id": []}).count() == 0


def test_without_index_error_or_scan(collection, sky, tmp_path):
    cat = open_catalog(collection)
    with pytest.raises(PlanError, match=r"proxcompute index .* --column mag"):
        cat.id_search({"mag": [20.0]})
    assert _ids(cat.id_search({"flag": [3]}, scan=True).compute()) == _ids(sky[sky["flag"] == 3])
    mem = from_dataframe(sky, name="mem")
    with pytest.raises(PlanError, match="scan=True"):
        mem.id_search({"id": [1]})
    assert _ids(mem.id_search({"id": [1, 2]}, scan=True).compute()) == [1, 2]
    with pytest.raises(ColumnNotFoundError, match="nope"):
        cat.id_search({"nope": [1]})
    with pytest.raises(PlanError, match="values"):
        cat.id_search({})
    with pytest.raises(PlanError, match="type"):
        cat.id_search({"id": ["abc"]})


def test_explicit_index_catalog_and_a_bare_catalog(collection, sky, tmp_path):
    bare = open_catalog(collection)[["id", "ra", "dec", "mag"]].to_catalog(tmp_path / "bare")
    with pytest.raises(PlanError, match="no index"):
        bare.id_search({"id": [1]})
    res = build_index(tmp_path / "bare", "id", workers=1, show_progress=False)
    assert res.path == tmp_path / "bare_id_index" and res.rows == len(sky)
    assert _ids(open_catalog(tmp_path / "bare").id_search({"id": [1, 2, 3]}).compute()) == [1, 2, 3]
    elsewhere = build_index(
        tmp_path / "bare", "id", out=tmp_path / "ix" / "other", workers=1, show_progress=False
    )
    got = bare.id_search({"id": [4]}, index_catalogs={"id": elsewhere.path}).compute()
    assert got["id"].tolist() == [4]
    with pytest.raises(CatalogExistsError):
        build_index(tmp_path / "bare", "id", workers=1, show_progress=False)


def test_build_errors_leave_nothing(collection, tmp_path):
    with pytest.raises(ColumnNotFoundError, match="nope"):
        build_index(collection, "nope", show_progress=False)
    assert not list(collection.glob("*nope*")) and not list(collection.glob(".*tmp*"))
    with pytest.raises(ColumnNotFoundError, match="nope"):
        ingest(collection / "sky" / "dataset", tmp_path / "x", index_columns=["nope"], margin_arcsec=0, workers=1,
               show_progress=False)  # fmt: skip
    assert not (tmp_path / "x").exists()


def test_cli_index(collection, tmp_path, capsys):
    bare = open_catalog(collection)[["id", "ra", "dec"]].to_catalog(tmp_path / "c")
    assert main(["index", str(tmp_path / "c"), "--column", "id"]) == 0
    assert "index of 'id'" in capsys.readouterr().out
    assert bare.id_search({"id": [9]}).count() == 1
    assert main(["index", str(tmp_path / "c"), "--column", "nope"]) == 1
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err
    assert main(["index", str(tmp_path / "c"), "--column", "id"]) == 1  # exists
    assert "already exists" in capsys.readouterr().err
