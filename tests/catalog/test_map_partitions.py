"""map_partitions against pandas on the whole table, margins against brute force, and every bad input."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from proxcompute.catalog import from_dataframe, open_catalog
from proxcompute.errors import PlanError, UserFunctionError
from proxcompute.ingest import ingest
from proxcompute.sky import INDEX_COLUMN

RADIUS_ARCSEC = 60.0


def colours(df: pd.DataFrame) -> pd.DataFrame:
    """A user function: derived magnitudes and colours, then a colour selection."""
    out = df.assign(r=df["mag"] - df["color"], g_r=df["color"].astype("float64"), bright=df["mag"] < 19.5)
    out["r_i"] = 0.5 * out["g_r"] + 0.1
    return out[out["g_r"] > 0.6]


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("id").reset_index(drop=True)


def test_matches_pandas_on_the_whole_table(cat, sky_df):
    got = cat.map_partitions(colours).compute()
    want = colours(sky_df)
    assert len(got) == len(want) and len(cat.partitions) > 20
    cols = [c for c in want.columns]
    pd.testing.assert_frame_equal(_sorted(got[cols]), _sorted(want), check_dtype=False)
    assert list(got.columns) == [INDEX_COLUMN, *cols]
    idx = got[INDEX_COLUMN].to_numpy()
    assert np.all(np.diff(idx) >= 0)  # still in catalog order


def test_meta_declares_the_schema_without_computing(cat, sky_df):
    calls = []

    def fn(df):
        calls.append(len(df))
        return colours(df)

    meta = {**{c: t for c, t in sky_df.dtypes.items()}, "r": "f8", "g_r": "f8", "bright": bool, "r_i": "f8"}
    mapped = cat.map_partitions(fn, meta=meta)
    assert calls == [] and mapped.columns == [INDEX_COLUMN, *meta]
    learned = cat.map_partitions(fn)
    assert len(calls) == 1  # one partition, once
    chained = learned.where("bright")[["id", "r", "g_r"]]
    assert len(calls) == 1  # the learned schema is kept, not recomputed
    assert str(learned.schema.field("bright").type) == "bool"
    got = chained.compute()
    want = colours(sky_df)
    want = want[want["bright"]]
    np.testing.assert_array_equal(np.sort(got["id"]), np.sort(want["id"]))


def test_chains_where_columns_cone_search_crossmatch_and_count(mem_cat, sky_df):
    mapped = mem_cat.map_partitions(colours)
    ref = colours(sky_df)
    sub = mapped.where("r < 19.5 and g_r > 0.9").cone_search(0.0, 0.0, 30 * 3600.0)[["id", "ra", "dec", "r"]]
    got = sub.compute()
    sep = np.degrees(
        np.arccos(np.clip(np.cos(np.radians(ref["dec"])) * np.cos(np.radians(ref["ra"])), -1, 1))
    )
    want = ref[(ref["r"] < 19.5) & (ref["g_r"] > 0.9) & (sep <= 30.0)]
    assert len(got) > 10
    assert sorted(got["id"]) == sorted(want["id"])
    assert sub.count() == len(want)
    assert list(got.columns) == ["id", "ra", "dec", "r"]
    right = sky_df.sample(400, random_state=2)
    xm = mapped.crossmatch(from_dataframe(right, name="r"), radius_arcsec=0.01).compute()
    assert sorted(xm["id_sky"]) == sorted(set(right["id"]) & set(ref["id"]))
    assert (xm["id_sky"] == xm["id_r"]).all()


def test_cone_search_needs_coordinates_in_the_result(mem_cat):
    dropped = mem_cat.map_partitions(lambda df: df[[INDEX_COLUMN, "id", "mag"]])
    with pytest.raises(PlanError, match="ra, dec"):
        dropped.cone_search(0.0, 0.0, 60.0)
    with pytest.raises(PlanError, match="ra"):
        dropped.crossmatch(mem_cat, radius_arcsec=1.0)


def test_include_pixel(cat):
    def tag(df, pixel):
        return df.assign(norder=pixel.order, npix=pixel.pixel)

    got = cat.map_partitions(tag, include_pixel=True).compute()
    shift = 2 * (29 - got["norder"].to_numpy())
    assert (got[INDEX_COLUMN].to_numpy() >> shift == got["npix"].to_numpy()).all()
    assert {(int(o), int(p)) for o, p in zip(got["norder"], got["npix"], strict=True)} == {
        (p.order, p.pixel) for p in cat.partitions
    }


def test_to_catalog_is_a_hats_catalog_lsdb_opens(mem_cat, sky_df, tmp_path):
    import lsdb

    out = mem_cat.map_partitions(colours).to_catalog(tmp_path / "colours")
    want = colours(sky_df)
    assert len(out) == len(want)
    theirs = lsdb.open_catalog(tmp_path / "colours").compute()
    assert len(theirs) == len(want)
    np.testing.assert_allclose(np.sort(theirs["r"].to_numpy()), np.sort(want["r"].to_numpy()))
    assert sorted(theirs["id"]) == sorted(want["id"])
    assert out.partitions == [p for p in mem_cat.partitions if p in set(out.partitions)]


# -- margins: local density against a brute-force neighbour count over the whole table --------


def _unit(df):
    ra, dec = np.radians(df["ra"].to_numpy()), np.radians(df["dec"].to_numpy())
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _neighbours(xyz_from, xyz_to, radius_arcsec):
    cos_r = np.cos(np.radians(radius_arcsec / 3600.0))
    out = np.zeros(len(xyz_from), dtype=np.int64)
    for lo in range(0, len(xyz_from), 1000):
        out[lo : lo + 1000] = (xyz_from[lo : lo + 1000] @ xyz_to.T >= cos_r).sum(axis=1)
    return out - 1  # not itself


def local_density(df: pd.DataFrame) -> pd.DataFrame:
    """Neighbours within RADIUS_ARCSEC of each row, counting margin rows too."""
    xyz = _unit(df)
    return df.assign(n_near=_neighbours(xyz, xyz, RADIUS_ARCSEC))


@pytest.fixture(scope="module")
def crowded(sky_df):
    rng = np.random.default_rng(11)
    k = 2_500
    knot = pd.DataFrame(
        {
            "id": np.arange(10**6, 10**6 + k),
            "ra": (rng.normal(0.0, 0.05, k)) % 360.0,
            "dec": rng.normal(0.0, 0.05, k),
            "mag": rng.normal(20, 1, k),
            "color": rng.normal(0.8, 0.3, k).astype(np.float32),
            "flag": rng.integers(0, 4, k, dtype=np.int16),
            "name": "knot",
        }
    )
    return pd.concat([sky_df, knot], ignore_index=True)


@pytest.fixture(scope="module")
def crowded_stored(crowded, tmp_path_factory):
    root = tmp_path_factory.mktemp("mp")
    crowded.to_parquet(root / "crowded.parquet", index=False)
    ingest(root / "crowded.parquet", root / "crowded", max_rows=300, margin_arcsec=RADIUS_ARCSEC, workers=1,
           show_progress=False)  # fmt: skip
    return open_catalog(root / "crowded")


def _brute_force(df):
    xyz = _unit(df)
    return pd.Series(_neighbours(xyz, xyz, RADIUS_ARCSEC), index=df["id"].to_numpy())


@pytest.mark.parametrize("kind", ["margin catalog", "neighbours on the fly"])
def test_local_density_with_margin_matches_brute_force(kind, crowded, crowded_stored):
    if kind == "margin catalog":
        cat, include = crowded_stored, True
    else:
        cat, include = from_dataframe(crowded, name="crowded", max_rows=300), RADIUS_ARCSEC
    got = cat.map_partitions(local_density, include_margin=include).compute()
    assert "_margin" not in got.columns and len(got) == len(crowded)
    want = _brute_force(crowded)
    np.testing.assert_array_equal(got.set_index("id")["n_near"].sort_index(), want.sort_index())
    # the test means something: without the margin, rows at partition edges lose neighbours
    alone = cat.map_partitions(local_density).compute().set_index("id")["n_near"].sort_index()
    assert (alone < want.sort_index()).sum() > 50


def test_margin_function_must_keep_the_margin_column(crowded_stored):
    with pytest.raises(UserFunctionError, match="_margin"):
        crowded_stored.map_partitions(lambda df: df.drop(columns=["_margin"]), include_margin=True)


def test_include_margin_without_a_margin_catalog(mem_cat):
    with pytest.raises(PlanError, match="no margin catalog"):
        mem_cat.map_partitions(local_density, include_margin=True)
    with pytest.raises(PlanError, match="> 0"):
        mem_cat.map_partitions(local_density, include_margin=-1.0)


# -- bad functions --------------------------------------------------------------------------


def broken(df):
    return df.assign(x=1 / 0)


def test_user_exception_names_the_partition_with_the_users_traceback(mem_cat):
    with pytest.raises(UserFunctionError) as err:
        mem_cat.map_partitions(broken)
    text = str(err.value)
    assert "Norder=" in text and "Npix=" in text and "ZeroDivisionError" in text
    assert "return df.assign(x=1 / 0)" in text  # the user's own line
    lazy = mem_cat.map_partitions(broken, meta={"x": float})
    with pytest.raises(UserFunctionError, match="Norder="):
        lazy.compute()


@pytest.mark.parametrize(
    ("fn", "meta", "match"),
    [
        (lambda df: df["mag"], None, "returned Series, not a pandas DataFrame"),
        (lambda df: None, None, "returned NoneType"),
        (lambda df: df.drop(columns=[INDEX_COLUMN]), None, "dropped _healpix_29"),
        (lambda df: df.assign(**{INDEX_COLUMN: df[INDEX_COLUMN] + 2**58}), None, "changed _healpix_29"),
        (lambda df: df.assign(extra=1.0), {"mag": float}, "contradict meta"),
        (lambda df: df[[INDEX_COLUMN, "name"]], {"name": "f8"}, "do not fit meta"),
    ],
)
def test_bad_return_values_are_named_errors(mem_cat, fn, meta, match):
    with pytest.raises(UserFunctionError, match=match):
        mem_cat.map_partitions(fn, meta=meta).compute()


def test_rows_returned_out_of_order_are_re_sorted(cat, sky_df):
    got = cat.map_partitions(lambda df: df.sample(frac=1.0, random_state=0)).compute()
    assert np.all(np.diff(got[INDEX_COLUMN].to_numpy()) >= 0)
    assert sorted(got["id"]) == sorted(sky_df["id"])


def test_not_a_callable(mem_cat):
    with pytest.raises(PlanError, match="callable"):
        mem_cat.map_partitions("colours", meta={"a": int})


# -- on a distributed cluster ---------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client():
    from proxcompute.execute import local_client

    with local_client(workers=2, processes=True) as client:
        yield client


def test_on_a_distributed_cluster(stored_cat, sky_df, dask_client):
    got = stored_cat.map_partitions(colours).compute(client=dask_client)
    pd.testing.assert_frame_equal(
        _sorted(got.drop(columns=[INDEX_COLUMN])), _sorted(colours(sky_df)), check_dtype=False
    )
    with pytest.raises(UserFunctionError, match=r"Norder=.*ZeroDivisionError") as err:
        stored_cat.map_partitions(broken, meta={"x": float}).compute(client=dask_client)
    assert "return df.assign(x=1 / 0)" in str(err.value)


def test_unpicklable_function_is_refused_before_submitting(stored_cat, dask_client):
    lock = threading.Lock()

    def locked(df):
        with lock:
            return df

    with pytest.raises(UserFunctionError, match="does not pickle"):
        stored_cat.map_partitions(
            locked, meta=dict(zip(stored_cat.columns, stored_cat.schema.types, strict=True))
        ).compute(client=dask_client)
