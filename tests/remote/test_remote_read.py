"""Every read operation on a catalog served over HTTP (nginx) and S3 (moto) gives the same rows
as on the local copy, and cones the same ids as brute force with astropy."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord
from remote_servers import CLUSTER, MARGIN_ARCSEC

import proxcompute as pc
from proxcompute.catalog import open_catalog

SUFFIXES = ("left", "right")
CONES = [  # (ra, dec, radius_arcsec): the dense cluster, the north pole, across RA = 0/360
    (*CLUSTER, 60.0),
    (10.0, 89.9, 1800.0),
    (0.05, 0.5, 1200.0),
]


def _open(remote, name="survey"):
    return open_catalog(remote.url(name), storage_options=remote.storage_options)


def _sorted(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return df.sort_values(by).reset_index(drop=True)


def _brute_cone(df: pd.DataFrame, ra: float, dec: float, radius_arcsec: float) -> np.ndarray:
    sep = SkyCoord(df.ra.to_numpy() * u.deg, df.dec.to_numpy() * u.deg).separation(SkyCoord(ra * u.deg, dec * u.deg))
    return np.sort(df.id.to_numpy()[sep.arcsec <= radius_arcsec])


@pytest.fixture(scope="module")
def local(served_root):
    return open_catalog(served_root / "survey")


def test_open_reads_the_same_metadata(remote, local):
    cat = _open(remote)
    assert str(cat.path).startswith(remote.url("survey"))
    assert (cat.name, len(cat), cat.columns) == (local.name, len(local), local.columns)
    assert cat.partitions == local.partitions
    assert cat.schema.equals(local.schema)
    assert cat.margin is not None and len(cat.margin) == len(local.margin)
    assert cat.margin.margin_threshold_arcsec == MARGIN_ARCSEC


@pytest.mark.parametrize("cone", CONES, ids=["cluster", "pole", "ra-wrap"])
def test_cone_equals_local_and_brute_force(remote, local, survey_df, cone):
    got = _open(remote).cone_search(*cone).compute()
    want = local.cone_search(*cone).compute()
    pd.testing.assert_frame_equal(_sorted(got, ["id"]), _sorted(want, ["id"]))
    expected = _brute_cone(survey_df, *cone)
    assert len(expected) > 10
    np.testing.assert_array_equal(np.sort(got.id.to_numpy()), expected)


def test_box_polygon_and_where_equal_local(remote, local):
    cat = _open(remote)
    cases = [
        lambda c: c.box_search(ra=(359.5, 0.5), dec=(-1.0, 1.0)),
        lambda c: c.polygon_search([(149.8, 1.8), (150.3, 1.9), (150.1, 2.3)]),
        lambda c: c.where("mag < 18.5 and flag == 1")[["id", "ra", "dec", "mag"]],
    ]
    for make in cases:
        got, want = make(cat).compute(), make(local).compute()
        assert len(want) > 10
        pd.testing.assert_frame_equal(_sorted(got, ["id"]), _sorted(want, ["id"]))


def test_crossmatch_remote_with_local_and_remote(remote, local, served_root, targets_df):
    survey = _open(remote)
    want = _sorted(
        pc.crossmatch(open_catalog(served_root / "targets"), local, radius_arcsec=5, suffixes=SUFFIXES).compute(), ["tid_left"]
    )
    remote_x_remote = pc.crossmatch(_open(remote, "targets"), survey, radius_arcsec=5, suffixes=SUFFIXES).compute()
    local_x_remote = pc.crossmatch(open_catalog(served_root / "targets"), survey, radius_arcsec=5, suffixes=SUFFIXES).compute()
    remote_x_local = pc.crossmatch(_open(remote, "targets"), local, radius_arcsec=5, suffixes=SUFFIXES).compute()
    assert len(want) > 0.9 * len(targets_df)
    for got in (remote_x_remote, local_x_remote, remote_x_local):
        pd.testing.assert_frame_equal(_sorted(got, ["tid_left"]), want)
    table = pc.crossmatch(targets_df, survey, radius_arcsec=5, how="left", suffixes=SUFFIXES).compute()  # a target list
    assert len(table) == len(targets_df) and table.id_right.notna().sum() == len(want)


def test_partitions_stored_as_directories(remote, served_root):
    cat = _open(remote, "npixdir")
    assert cat.plan.source.meta.npix_suffix == "/"
    local = open_catalog(served_root / "npixdir")
    assert len(cat) == len(local)
    for make in (lambda c: c.where("dec > 0"), lambda c: c.cone_search(*CLUSTER, 900)):
        got, want = make(cat).compute(), make(local).compute()
        assert len(want) > 10
        pd.testing.assert_frame_equal(got, want)


def test_sql_on_a_remote_catalog(remote, local):
    cat = _open(remote)
    cone = "1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 150.0, 2.0, 0.05))"
    queries = [
        f"SELECT id, mag FROM s WHERE {cone} AND mag < 21 ORDER BY id",
        "SELECT flag, COUNT(*) AS n, AVG(mag) AS m FROM s GROUP BY flag ORDER BY flag",
        "SELECT TOP 5 id, mag FROM s WHERE dec > 89.5 ORDER BY mag",
    ]
    for q in queries:
        got = pc.sql(q, {"s": cat}).compute()
        want = pc.sql(q, {"s": local}).compute()
        assert len(want) > 0
        pd.testing.assert_frame_equal(got, want)


def test_sql_names_a_catalog_by_url(nginx, local):
    q = "SELECT COUNT(*) AS n FROM s WHERE mag < 20"
    assert pc.sql(q, {"s": nginx.url + "survey"}).compute().n[0] == pc.sql(q, {"s": local}).compute().n[0]


def test_to_catalog_writes_a_local_copy(remote, local, tmp_path):
    out = _open(remote).cone_search(*CLUSTER, 600).to_catalog(tmp_path / "cluster")
    assert out.path == tmp_path / "cluster"
    got = open_catalog(tmp_path / "cluster").compute()
    want = local.cone_search(*CLUSTER, 600).compute()
    pd.testing.assert_frame_equal(_sorted(got, ["id"]), _sorted(want, ["id"]))


def test_to_catalog_refuses_a_url(nginx):
    with pytest.raises(pc.StorageError, match="writes a local directory"):
        open_catalog(nginx.url + "targets").to_catalog(nginx.url + "copy")


def test_on_a_dask_cluster(remote, local):
    """Worker processes read the remote catalog themselves: its URL and storage options travel
    with the plan, and each process opens its own connections."""
    distributed = pytest.importorskip("distributed")
    query = _open(remote).cone_search(*CLUSTER, 600).where("mag < 21")
    kwargs = {"processes": True, "n_workers": 1, "threads_per_worker": 1, "dashboard_address": ":0"}
    with distributed.Client(**kwargs) as client:
        got = query.compute(client=client)
    want = local.cone_search(*CLUSTER, 600).where("mag < 21").compute()
    assert len(want) > 100
    pd.testing.assert_frame_equal(_sorted(got, ["id"]), _sorted(want, ["id"]))


def test_id_search_scans_a_remote_catalog(nginx, local):
    cat = open_catalog(nginx.url + "survey")
    ids = [5, 41_000, 75_999]
    with pytest.raises(pc.PlanError, match="scan=True"):
        cat.id_search({"id": ids}).compute()
    got = cat.id_search({"id": ids}, scan=True).compute()
    want = local.id_search({"id": ids}, scan=True).compute()
    assert sorted(got.id) == ids
    pd.testing.assert_frame_equal(_sorted(got, ["id"]), _sorted(want, ["id"]))
