"""Catalog.join equals pandas merge (inner and left), with and without the right's index.

Matching rows are anywhere on the sky (the right's reference ids are random), including the
poles and RA = 0/360 (conftest.make_sky), with duplicate keys on both sides and null keys.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sky_data import make_sky

from proxcompute import ColumnNotFoundError, PlanError, from_dataframe, ingest, open_catalog
from proxcompute.ingest.index import build_index


@pytest.fixture(scope="module")
def left_df():
    df = make_sky(8_000, seed=21)
    df["sid"] = [f"S{i}" for i in df["id"]]
    return df


@pytest.fixture(scope="module")
def right_df(left_df):
    rng = np.random.default_rng(22)
    df = make_sky(6_000, seed=23).rename(columns={"id": "rid"})
    df["ref"] = rng.choice(
        np.append(left_df["id"].to_numpy(), [-1, -2]), len(df)
    )  # duplicates, some unmatched
    df.loc[df.index[::97], "ref"] = pd.NA  # null keys never match
    df["ref"] = df["ref"].astype("Int64")
    df["sref"] = ["S" + str(v) if v is not pd.NA else None for v in df["ref"]]
    return df


@pytest.fixture(scope="module")
def stored(left_df, right_df, tmp_path_factory):
    d = tmp_path_factory.mktemp("join")
    right_df.to_parquet(d / "right.parquet", index=False)
    ingest(d / "right.parquet", d / "right", max_rows=500, margin_arcsec=0, workers=2, show_progress=False)
    plain = d / "plain"
    open_catalog(d / "right").to_catalog(plain)  # the same rows, no index
    build_index(d / "right", "ref", workers=2, show_progress=False)
    return {"indexed": d / "right", "plain": plain}


def _reference(left_df, right_df, left_on, right_on, how):
    r = right_df[right_df[right_on].notna()]
    ref = left_df.merge(r, left_on=left_on, right_on=right_on, how=how, suffixes=("_l", "_r"))
    return sorted(zip(ref["id"], ref["rid"].fillna(-999).astype(np.int64), strict=True))


def _pairs(out):
    return sorted(zip(out["id_l"], out["rid_r"].fillna(-999).astype(np.int64), strict=True))


@pytest.mark.parametrize("how", ["inner", "left"])
@pytest.mark.parametrize("kind", ["indexed", "plain", "memory"])
def test_join_equals_pandas_merge(left_df, right_df, stored, how, kind):
    left = from_dataframe(left_df, name="l", max_rows=400)
    right = from_dataframe(right_df, name="r") if kind == "memory" else open_catalog(stored[kind])
    out = left.join(right, left_on="id", right_on="ref", how=how, suffixes=("l", "r")).compute()
    assert _pairs(out) == _reference(left_df, right_df, "id", "ref", how)
    # every left and right column comes along, values intact
    row = out.dropna(subset=["rid_r"]).iloc[0]
    src = right_df[right_df["rid"] == row["rid_r"]].iloc[0]
    assert row["mag_r"] == src["mag"] and row["ref_r"] == row["id_l"]
    assert {"ra_l", "dec_l", "ra_r", "sid_l"} <= set(out.columns)


@pytest.mark.parametrize("kind", ["indexed", "plain", "memory"])
def test_float_keys_against_integer_keys_compare_as_numbers(left_df, right_df, stored, kind):
    """3.0 equals 3 and 3.5 equals nothing, whichever side holds the floats (as in SQL)."""
    half = np.where(left_df["id"] % 3 == 0, 0.5, 0.0)
    fleft = left_df.assign(fref=left_df["id"].astype(np.float64) + half)
    right = from_dataframe(right_df, name="r") if kind == "memory" else open_catalog(stored[kind])
    out = from_dataframe(fleft, name="l", max_rows=400).join(right, "fref", "ref", suffixes=("l", "r")).compute()
    r = right_df[right_df["ref"].notna()].assign(ref=lambda d: d["ref"].astype(np.float64))
    want = fleft.merge(r, left_on="fref", right_on="ref")
    assert sorted(zip(out["id_l"], out["rid_r"], strict=True)) == sorted(zip(want["id"], want["rid"], strict=True))
    assert 0 < len(want) < len(left_df.merge(r, left_on="id", right_on="ref"))
    # the floats on the right: an integer left key meets a float right key
    fright = right_df.assign(fref=right_df["ref"].astype("Float64") + np.where(right_df.index % 4 == 0, 0.25, 0.0))
    out = from_dataframe(left_df, name="l").join(from_dataframe(fright, name="r"), "id", "fref",
                                                 suffixes=("l", "r")).compute()  # fmt: skip
    want = left_df.assign(fid=left_df["id"].astype(np.float64)).merge(
        fright[fright["fref"].notna()].astype({"fref": np.float64}), left_on="fid", right_on="fref"
    )
    assert sorted(zip(out["id_l"], out["rid_r"], strict=True)) == sorted(zip(want["id"], want["rid"], strict=True))
    assert len(want) > 0


def test_the_index_is_used_and_explained(left_df, stored):
    left = from_dataframe(left_df, name="l")
    text = str(left.join(open_catalog(stored["indexed"]), "id", "ref").explain())
    assert "inner join of 'l' with 'right' on id = ref" in text
    assert "through the index catalog" in text and "right_ref_index" in text
    text = str(left.join(open_catalog(stored["plain"]), "id", "ref").explain())
    assert "in-memory map" in text


def test_string_keys_chaining_and_to_catalog(left_df, right_df, stored, tmp_path):
    left = from_dataframe(left_df, name="l", max_rows=400)
    joined = left.join(open_catalog(stored["plain"]), "sid", "sref", suffixes=("l", "r"))
    want = left_df.merge(right_df.dropna(subset=["sref"]), left_on="sid", right_on="sref")
    assert len(joined.compute()) == len(want)
    bright = joined.where("mag_l < 20").cone_search(0.0, 90.0, 3 * 3600)
    w = want[(want["mag_x"] < 20) & (want["dec_x"] >= 87)]
    out = bright.to_catalog(tmp_path / "j").compute()
    assert sorted(out["rid_r"]) == sorted(w["rid"])
    assert out.columns[0] == "_healpix_29"


def test_left_keeps_projection_and_filters(left_df, right_df, stored):
    left = from_dataframe(left_df, name="l").where("flag == 2")[["id", "ra", "dec"]]
    right = open_catalog(stored["indexed"]).where("mag > 19")[["ref", "rid"]]
    out = left.join(right, "id", "ref", suffixes=("l", "r")).compute()
    assert list(out.columns) == ["_healpix_29", "id_l", "ra_l", "dec_l", "ref_r", "rid_r"]
    ref = left_df[left_df["flag"] == 2].merge(right_df[(right_df["mag"] > 19) & right_df["ref"].notna()],
                                              left_on="id", right_on="ref")  # fmt: skip
    assert sorted(zip(out["id_l"], out["rid_r"], strict=True)) == sorted(
        zip(ref["id"], ref["rid"], strict=True)
    )


def test_bad_input(left_df, stored):
    left = from_dataframe(left_df, name="l")
    right = open_catalog(stored["plain"])
    with pytest.raises(ColumnNotFoundError, match="nope"):
        left.join(right, "nope", "ref")
    with pytest.raises(ColumnNotFoundError, match="nope"):
        left.join(right, "id", "nope")
    with pytest.raises(PlanError, match="different kinds"):
        left.join(right, "sid", "ref")
    with pytest.raises(PlanError, match="how"):
        left.join(right, "id", "ref", how="outer")
    with pytest.raises(PlanError, match="suffixes"):
        left.join(right, "id", "ref", suffixes=("x", "x"))
