"""MyDB: per-user result tables written by queries, queried back as mydb.<name>, private, with a quota."""

import time

import httpx
import numpy as np
import pytest
import pyvo
from starlette.testclient import TestClient
from tap_server import running_server

import proxcompute
from proxcompute.catalog import from_dataframe
from proxcompute.service import ServiceConfig, create_app
from proxcompute.synthetic import generate_catalog

ALICE, BOB = "tok-alice", "tok-bob"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("mydbroot")
    from_dataframe(generate_catalog(30_000, seed=31), name="gaia", max_rows=3_000).to_catalog(root / "survey" / "gaia")
    tokens = root.parent / "tokens.yaml"
    tokens.write_text(f"{ALICE}: alice\n{BOB}: bob\n")
    with running_server(root, "--tokens", str(tokens)) as url:
        yield url, root


def _session(token):
    import requests

    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


def _run(url, token, query, **extra):
    """An async job with TABLE_NAME etc.; returns the final job document."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.post(url + "/async", data={"LANG": "ADQL", "QUERY": query, "PHASE": "RUN", **extra}, headers=headers)
    assert r.status_code == 303, r.text
    job = r.headers["location"]
    for _ in range(600):
        doc = httpx.get(job, params={"WAIT": "5"}, headers=headers, timeout=30).text
        if any(f"<uws:phase>{p}</uws:phase>" in doc for p in ("COMPLETED", "ERROR", "ABORTED")):
            return job, doc
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_table_name_writes_a_catalog_that_later_queries_use(served):
    url, root = served
    q = "SELECT id, ra, dec, mag FROM survey.gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 45, 30, 8))"
    _, doc = _run(url, ALICE, q, TABLE_NAME="bright")
    assert "<uws:phase>COMPLETED</uws:phase>" in doc, doc
    alice = pyvo.dal.TAPService(url, session=_session(ALICE))
    n = alice.search("SELECT COUNT(*) AS n FROM mydb.bright").to_table()["n"][0]
    want = proxcompute.sql(q, catalog_root=root).compute()
    assert n == len(want) > 100
    # a region on a MyDB table prunes like any catalog, and it is listed in TAP_SCHEMA for its owner
    sub = alice.search("SELECT id FROM mydb.bright WHERE DISTANCE(POINT(ra, dec), POINT(45, 30)) < 1").to_table()
    d = np.degrees(np.arccos(np.clip(
        np.sin(np.radians(want.dec)) * np.sin(np.radians(30))
        + np.cos(np.radians(want.dec)) * np.cos(np.radians(30)) * np.cos(np.radians(want.ra - 45)), -1, 1)))  # fmt: skip
    assert sorted(sub["id"]) == sorted(want.id[d < 1])
    listed = alice.search("SELECT table_name FROM TAP_SCHEMA.tables WHERE schema_name = 'mydb'").to_table()
    assert "mydb.bright" in list(listed["table_name"])  # other tests on this server add tables of their own
    others = pyvo.dal.TAPService(url, session=_session(BOB))
    listed = others.search("SELECT table_name FROM TAP_SCHEMA.tables WHERE schema_name = 'mydb'").to_table()
    assert "mydb.bright" not in list(listed["table_name"])  # listed for its owner only


def test_destination_form_and_sync(served):
    url, _ = served
    r = httpx.post(url + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT TOP 50 id, ra, dec FROM survey.gaia",
                                        "DESTINATION": "mydb://top50"},
                   headers={"Authorization": f"Bearer {ALICE}"}, timeout=120)  # fmt: skip  (not httpx's 5 s)
    assert r.status_code == 200
    r = httpx.get(url + "/mydb", headers={"Authorization": f"Bearer {ALICE}"})
    assert "mydb.top50" in r.text


def test_other_users_and_anonymous_cannot_see_it(served):
    url, _ = served
    _run(url, ALICE, "SELECT TOP 10 id, ra, dec FROM survey.gaia", TABLE_NAME="private1")
    bob = pyvo.dal.TAPService(url, session=_session(BOB))
    with pytest.raises(pyvo.dal.DALQueryError, match="unknown table"):
        bob.search("SELECT * FROM mydb.private1")
    anon = pyvo.dal.TAPService(url)
    with pytest.raises(pyvo.dal.DALQueryError, match="unknown table"):
        anon.search("SELECT * FROM mydb.private1")
    assert httpx.delete(url + "/mydb/private1", headers={"Authorization": f"Bearer {BOB}"}).status_code == 400


def test_refusals(served):
    url, _ = served
    _, doc = _run(url, None, "SELECT TOP 5 id, ra, dec FROM survey.gaia", TABLE_NAME="anon")
    assert "<uws:phase>ERROR</uws:phase>" in doc and "bearer token" in doc
    _, doc = _run(url, ALICE, "SELECT flag, COUNT(*) AS n FROM survey.gaia GROUP BY flag", TABLE_NAME="nocoords")
    assert "<uws:phase>ERROR</uws:phase>" in doc and "coordinate columns" in doc
    r = httpx.post(url + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT 1", "TABLE_NAME": "../../etc"},
                   headers={"Authorization": f"Bearer {ALICE}"})  # fmt: skip
    assert r.status_code == 400 and "table name" in r.text
    _run(url, ALICE, "SELECT TOP 5 id, ra, dec FROM survey.gaia", TABLE_NAME="twice")
    _, doc = _run(url, ALICE, "SELECT TOP 5 id, ra, dec FROM survey.gaia", TABLE_NAME="twice")
    assert "exists; drop it first" in doc
    assert httpx.get(url + "/sync", headers={"Authorization": "Bearer wrong"},
                     params={"LANG": "ADQL", "QUERY": "SELECT 1"}).status_code == 401  # fmt: skip


def test_drop(served):
    url, _ = served
    _run(url, ALICE, "SELECT TOP 5 id, ra, dec FROM survey.gaia", TABLE_NAME="gone")
    h = {"Authorization": f"Bearer {ALICE}"}
    assert httpx.post(url + "/mydb/gone", data={"ACTION": "DELETE"}, headers=h).status_code == 204
    assert "mydb.gone" not in httpx.get(url + "/mydb", headers=h).text
    assert httpx.delete(url + "/mydb/gone", headers=h).status_code == 400


def test_quota(tmp_path):
    root = tmp_path / "root"
    from_dataframe(generate_catalog(20_000, seed=2), name="g", max_rows=5_000).to_catalog(root / "g")
    config = ServiceConfig(root, tokens={ALICE: "alice"}, mydb_quota_bytes=60_000)
    with TestClient(create_app(config)) as client:
        h = {"Authorization": f"Bearer {ALICE}"}
        ok = client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": "SELECT TOP 100 id, ra, dec FROM g",
                                            "TABLE_NAME": "small"}, headers=h)  # fmt: skip
        assert ok.status_code == 200
        big = client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM g", "TABLE_NAME": "big"},
                          headers=h)  # fmt: skip
        assert big.status_code == 403 and "quota (mydb_bytes)" in big.text
        assert "mydb.big" not in client.get("/tap/mydb", headers=h).text
