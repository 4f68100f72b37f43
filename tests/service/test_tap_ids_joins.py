"""Id searches and joins on columns through the TAP service's /sync: the same plan nodes as
``proxcompute.sql`` (``Catalog.id_search``, ``Catalog.join``), the same rows as pandas.

``sky`` is a collection with an index catalog of ``id``; ``labels`` points at sky ids through
``ref`` (duplicates, unmatched values, nulls) and has an index of ``ref``.
"""

from __future__ import annotations

import io

import httpx
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient
from tap_server import running_server

import proxcompute
import proxcompute.sql.compile as sql_compile
from proxcompute import ingest
from proxcompute.ingest.index import build_index
from proxcompute.service import ServiceConfig, create_app
from proxcompute.synthetic import generate_catalog

JOIN = ("SELECT s.id, s.mag, l.rid FROM survey.sky AS s {how} JOIN survey.labels AS l ON s.id = l.ref "
        "WHERE s.mag < 21")  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tapids")
    sky = generate_catalog(30_000, seed=71)
    rng = np.random.default_rng(72)
    labels = generate_catalog(4_000, seed=73).rename(columns={"id": "rid"})
    labels["ref"] = pd.array(rng.choice(np.append(sky["id"].to_numpy(), [-7]), len(labels)), dtype="Int64")
    labels.loc[labels.index[::50], "ref"] = pd.NA
    sky.to_parquet(d / "sky.parquet", index=False)
    labels.to_parquet(d / "labels.parquet", index=False)
    root = d / "root"
    ingest(d / "sky.parquet", root / "survey" / "sky", max_rows=3_000, margin_arcsec=0, workers=2,
           show_progress=False, index_columns=["id"])  # fmt: skip
    ingest(d / "labels.parquet", root / "survey" / "labels", max_rows=1_000, margin_arcsec=0, workers=2,
           show_progress=False)  # fmt: skip
    build_index(root / "survey" / "labels", "ref", workers=2, show_progress=False)
    return root, sky, labels


def _want(sky: pd.DataFrame, labels: pd.DataFrame, how: str) -> list:
    m = sky[sky["mag"] < 21].merge(labels[labels["ref"].notna()], left_on="id", right_on="ref", how=how)
    return sorted(zip(m["id"], m["rid"].fillna(-1).astype(np.int64), strict=True))


def _got(df: pd.DataFrame) -> list:
    return sorted(zip(df["id"], df["rid"].fillna(-1).astype(np.int64), strict=True))


@pytest.mark.parametrize("how", ["inner", "left"])
def test_sync_join_runs_as_the_join_node_and_equals_pandas_merge(data, monkeypatch, how):
    root, sky, labels = data
    query = JOIN.format(how="LEFT" if how == "left" else "")

    def no_gather(*args, **kwargs):
        raise AssertionError("an equi-join must not run as one gathered DuckDB query")

    monkeypatch.setattr(sql_compile, "compile_gather", no_gather)
    assert "join, partitioned like 's'" in str(proxcompute.sql(query, catalog_root=root).explain())
    with TestClient(create_app(ServiceConfig(root))) as client:
        r = client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": "csv"})
    assert r.status_code == 200, r.text
    got = pd.read_csv(io.StringIO(r.text))
    assert _got(got) == _want(sky, labels, how) and len(got) > 500


def test_sync_id_search_on_a_served_catalog_equals_pandas(data):
    root, sky, labels = data
    ids = sky["id"].to_numpy()[::409]
    query = f"SELECT id, ra, dec FROM survey.sky WHERE id IN ({', '.join(map(str, ids))})"
    with running_server(root) as url:
        r = httpx.post(url + "/sync", data={"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": "csv"}, timeout=60)
        assert r.status_code == 200, r.text
        got = pd.read_csv(io.StringIO(r.text))
        assert sorted(got["id"]) == sorted(ids)
        np.testing.assert_allclose(got.sort_values("id")["ra"], sky.set_index("id").loc[sorted(ids), "ra"])
        r = httpx.post(url + "/sync", data={"LANG": "ADQL", "QUERY": JOIN.format(how="LEFT"),
                                            "RESPONSEFORMAT": "csv"}, timeout=60)  # fmt: skip
        assert r.status_code == 200, r.text
        assert _got(pd.read_csv(io.StringIO(r.text))) == _want(sky, labels, "left")
        bad = httpx.post(url + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT s.id FROM survey.sky s JOIN "
                                              "survey.labels l ON s.id = l.nope"}, timeout=60)  # fmt: skip
        assert bad.status_code == 400 and "nope" in bad.text
    notes = "\n".join(proxcompute.sql(query, catalog_root=root)._plan.notes)
    assert "id_search" in notes
