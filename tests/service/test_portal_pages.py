"""The portal's pages over HTTP (the service's test client): each checked against pandas/astropy.

Catalog browser (rows, columns, units, coverage map), the query editor (examples, Run with a
row limit, Submit job, errors with their line and column), results (paging, downloads in
VOTable, CSV and Parquet, the sky plot), the job list and MyDB with its quota.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.io.votable import parse_single_table
from jinja2.filters import do_filesizeformat
from portal_support import CSRF, html_table, in_cone, survey
from starlette.testclient import TestClient

from proxcompute.catalog import from_dataframe
from proxcompute.service import ServiceConfig, create_app
from proxcompute.service.examples import examples

ALICE = "tok-alice-pages-0123"
CONE = (359.9, 5.0, 0.5)  # across the RA wrap, inside a dense cluster
QUERY = ("SELECT id, ra, dec, mag\nFROM gaia\n"
         f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {CONE[0]}, {CONE[1]}, {CONE[2]}))\nORDER BY id")  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("portalpages")
    df = survey()
    from_dataframe(df, name="gaia", max_rows=2_000).to_catalog(root / "gaia")
    config = ServiceConfig(root, tokens={ALICE: "alice"}, mydb_quota_bytes=5_000_000, upload_limit_bytes=2_000_000)
    with TestClient(create_app(config), follow_redirects=False) as client:
        yield client, df


def _csrf(client, path="/query"):
    return CSRF.search(client.get(path).text).group(1)


def _run(client, query, action="run", row_limit="1000", **extra):
    data = {"query": query, "action": action, "row_limit": row_limit, "csrf_token": _csrf(client), **extra}
    return client.post("/query", data=data)


def test_catalog_browser(served):
    client, df = served
    page = client.get("/").text
    listed = html_table(page, "catalogs")
    row = listed[listed.Table == "gaia"].iloc[0]
    assert int(row.Rows.replace(",", "")) == len(df)
    detail = client.get("/catalogs/gaia").text
    assert f">{len(df):,}<" in detail
    cols = html_table(detail, "columns")
    assert set(df.columns) <= set(cols.Name)
    units = dict(zip(cols.Name, cols.Unit, strict=True))
    assert units["ra"] == "deg" and units["dec"] == "deg"
    assert client.get("/catalogs/nosuch").status_code == 404


def test_coverage_map_is_drawn_once(served):
    client, _ = served
    first = client.get("/catalogs/gaia/coverage.png")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert first.content[:8] == b"\x89PNG\r\n\x1a\n"
    cache = client.app.state.portal.cache_dir
    files = sorted(cache.glob("coverage-*.png"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    assert client.get("/catalogs/gaia/coverage.png").content == first.content
    assert files[0].stat().st_mtime_ns == stamp  # served from the cache, not redrawn


def test_examples_come_from_the_service(served):
    client, _ = served
    page = client.get("/query").text
    shown = examples(client.app.state.tap.tables)
    for eid, title, _q, _t in shown:
        assert f"example={eid}" in page and title in page
    eid, _title, q, _t = shown[1]
    filled = client.get("/query", params={"example": eid}).text
    assert q.replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;") in filled


def test_run_shows_the_rows_pandas_finds_with_paging(served):
    client, df = served
    want = in_cone(df, *CONE).sort_values("id")
    assert 120 < len(want) < 1000  # a few pages, under the row limit
    r = _run(client, QUERY)
    assert r.status_code == 303
    job_url = r.headers["location"]
    page0 = client.get(job_url).text
    shown = html_table(page0, "result")
    assert list(shown.columns) == ["id", "ra", "dec", "mag"]
    assert shown.id.astype(int).tolist() == want.id.tolist()[:50]
    np.testing.assert_allclose(shown.ra.astype(float), want.ra.to_numpy()[:50], rtol=1e-9)
    assert f"of {len(want):,}" in page0
    last = (len(want) - 1) // 50
    tail = html_table(client.get(job_url, params={"page": last}).text, "result")
    assert tail.id.astype(int).tolist() == want.id.tolist()[last * 50 :]
    # the row limit truncates
    limited = client.get(_run(client, QUERY, row_limit="7").headers["location"]).text
    assert html_table(limited, "result").id.astype(int).tolist() == want.id.tolist()[:7]
    assert "truncated at the row limit" in limited


def test_downloads_match_pandas(served):
    client, df = served
    want = in_cone(df, *CONE).sort_values("id")
    job_url = _run(client, QUERY).headers["location"]
    csv = client.get(job_url + "/result.csv")
    assert csv.status_code == 200 and "attachment" in csv.headers["content-disposition"]
    got = pd.read_csv(io.BytesIO(csv.content))
    assert got.id.tolist() == want.id.tolist()
    np.testing.assert_allclose(got.mag, want.mag, rtol=1e-9)
    parquet = pq.read_table(io.BytesIO(client.get(job_url + "/result.parquet").content)).to_pandas()
    assert parquet.id.tolist() == want.id.tolist()
    vot = parse_single_table(io.BytesIO(client.get(job_url + "/result.votable").content)).to_table()
    assert list(vot["id"]) == want.id.tolist()
    assert str(vot["ra"].unit) == "deg"
    assert client.get(job_url + "/result.exe").status_code == 404


def test_sky_plot(served):
    client, _ = served
    job_url = _run(client, QUERY).headers["location"]
    png = client.get(job_url + "/sky.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    nopos = client.get(_run(client, "SELECT flag, COUNT(*) AS n FROM gaia GROUP BY flag").headers["location"])
    assert "sky-plot" not in nopos.text or client.get(nopos.url.path + "/sky.png").status_code == 404


def test_submit_job_progress_and_list(served):
    client, df = served
    r = _run(client, "SELECT COUNT(*) AS n FROM gaia WHERE mag < 20", action="submit", row_limit="")
    assert r.status_code == 303 and r.headers["location"].endswith("/jobs")
    listing = html_table(client.get("/jobs").text, "jobs")
    job_id = listing.Job.iloc[0]
    for _ in range(300):
        status = client.get(f"/jobs/{job_id}/status").json()
        if not status["active"]:
            break
        time.sleep(0.1)
    assert status["phase"] == "COMPLETED", status
    assert status["total"] and status["done"] == status["total"]
    page = client.get(f"/jobs/{job_id}").text
    assert int(html_table(page, "result").n.iloc[0]) == int((df.mag < 20).sum())
    row = html_table(client.get("/jobs").text, "jobs").set_index("Job").loc[job_id]
    assert row.Phase == "COMPLETED" and row["Run time"].endswith(" s")
    # a finished job cannot be aborted (a 4xx page, not a 500), but can be deleted
    token = _csrf(client, "/jobs")
    assert client.post(f"/jobs/{job_id}/abort", data={"csrf_token": token}).status_code == 400
    assert client.post(f"/jobs/{job_id}/delete", data={"csrf_token": token}).status_code == 303
    assert client.get(f"/jobs/{job_id}").status_code == 404


def test_errors_show_line_and_column(served):
    client, _ = served
    r = _run(client, "SELECT id,\n  ra\nFROM gaia\nWHERE nosuch > 1")
    assert r.status_code == 400
    assert 'id="query-error-position">line 4, column 7' in r.text
    assert "WHERE nosuch &gt; 1\n      ^" in r.text
    assert "nosuch" in r.text and "textarea" in r.text  # the editor is shown again with the query
    r = _run(client, "SELECT FROM WHERE")
    assert r.status_code == 400 and "syntax" in r.text
    for bad in ("abc", "0", "-5"):
        r = _run(client, "SELECT TOP 1 id FROM gaia", row_limit=bad)
        assert r.status_code == 400 and "row limit" in r.text


def test_mydb_and_quota(served):
    client, _ = served
    assert "sign in" in client.get("/mydb").text
    r = client.post("/signin", data={"token": ALICE, "csrf_token": _csrf(client, "/signin")})
    assert r.status_code == 303
    r = _run(client, "SELECT TOP 300 id, ra, dec, mag FROM gaia", table_name="top300")
    assert r.status_code == 303
    page = client.get("/mydb").text
    tables = html_table(page, "mydb-tables")
    assert tables.Table.tolist() == ["mydb.top300"]
    used = client.app.state.tap.mydb.usage("alice")
    assert used > 0
    assert f"Using <strong>{do_filesizeformat(used, True)}</strong> of 4.8 MiB" in page
    assert client.get("/catalogs/mydb.top300").status_code == 200
    token = _csrf(client, "/mydb")
    assert client.post("/mydb/top300/drop", data={"csrf_token": token}).status_code == 303
    assert "mydb.top300" not in client.get("/mydb").text


def test_abort_a_job_a_tap_client_created(served):
    client, _ = served
    if "Signed in as" not in client.get("/").text:
        client.post("/signin", data={"token": ALICE, "csrf_token": _csrf(client, "/signin")})
    # pyvo-style: a PENDING job created with alice's bearer token shows in her portal job list
    r = client.post("/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM gaia"},
                    headers={"Authorization": f"Bearer {ALICE}"})  # fmt: skip
    assert r.status_code == 303
    job_id = r.headers["location"].rsplit("/", 1)[-1]
    row = html_table(client.get("/jobs").text, "jobs").set_index("Job").loc[job_id]
    assert row.Phase == "PENDING" and "Abort" in row.Actions
    token = _csrf(client, "/jobs")
    assert client.post(f"/jobs/{job_id}/abort", data={"csrf_token": token}).status_code == 303
    assert client.get(f"/jobs/{job_id}/status").json()["phase"] == "ABORTED"
    assert "ABORTED" in client.get("/tap/async/" + job_id, headers={"Authorization": f"Bearer {ALICE}"}).text


def test_a_votable_job_from_a_tap_client_is_shown_and_converted(served):
    client, df = served
    if "Signed in as" not in client.get("/").text:
        client.post("/signin", data={"token": ALICE, "csrf_token": _csrf(client, "/signin")})
    auth = {"Authorization": f"Bearer {ALICE}"}
    r = client.post("/tap/async", headers=auth, data={"LANG": "ADQL", "PHASE": "RUN",
                    "QUERY": "SELECT TOP 70 id, ra, dec FROM gaia WHERE mag < 19 ORDER BY id"})  # fmt: skip
    job_id = r.headers["location"].rsplit("/", 1)[-1]
    for _ in range(300):
        if not client.get(f"/jobs/{job_id}/status").json()["active"]:
            break
        time.sleep(0.1)
    want = df[df.mag < 19].sort_values("id").head(70)
    page = client.get(f"/jobs/{job_id}", params={"page": 1}).text  # rows 51..70 of the VOTable result
    assert html_table(page, "result").id.astype(int).tolist() == want.id.tolist()[50:]
    got = pd.read_csv(io.BytesIO(client.get(f"/jobs/{job_id}/result.csv").content))
    assert got.id.tolist() == want.id.tolist()
    assert client.get(f"/jobs/{job_id}/sky.png").content[:4] == b"\x89PNG"


def test_job_list_pages_newest_first(tmp_path):
    """A user with a long history sees 50 jobs a page, newest first, with links to older and newer pages."""
    from datetime import timedelta

    from proxcompute.service.jobs import utcnow

    from_dataframe(survey(2_000), name="gaia", max_rows=1_000).to_catalog(tmp_path / "gaia")
    token = "tok-dave-pages-0123"
    with TestClient(create_app(ServiceConfig(tmp_path, tokens={token: "dave"})), follow_redirects=False) as client:
        store = client.app.state.tap.store
        made = [store.create("dave", {"QUERY": f"SELECT {i} FROM gaia"}, queue="short", execution_duration=0,
                             destruction=utcnow() + timedelta(days=1)).id for i in range(120)]  # fmt: skip
        newest_first = [j.id for j in store.list("dave", last=200)]
        assert sorted(newest_first) == sorted(made)
        r = client.post("/signin", data={"token": token, "csrf_token": _csrf(client, "/signin")})
        assert r.status_code == 303
        pages = []
        for n in range(3):
            page = client.get(f"/jobs?page={n}").text
            pages.append(list(html_table(page, "jobs").Job))
            assert ('id="older-jobs"' in page) == (n < 2) and ('id="newer-jobs"' in page) == (n > 0)
        assert [len(p) for p in pages] == [50, 50, 20]
        assert [j for p in pages for j in p] == newest_first
        beyond = client.get("/jobs?page=7").text
        assert "No older jobs" in beyond and 'id="newer-jobs"' in beyond and 'id="older-jobs"' not in beyond
        assert list(html_table(client.get("/jobs?page=-1").text, "jobs").Job) == pages[0]


def test_upload_a_table_and_join_it(served):
    """A visitor uploads a CSV from the editor and queries it as TAP_UPLOAD.<name>: a positional and an id join."""
    client, df = served
    rng = np.random.default_rng(8)
    picked = df.sample(40, random_state=8)
    targets = pd.DataFrame({"name": [f"t{i}" for i in range(40)], "ra": picked.ra.to_numpy(),
                            "dec": picked.dec.to_numpy(), "id": picked.id.to_numpy()})  # fmt: skip
    targets.loc[:4, "id"] = rng.integers(10**9, 2 * 10**9, 5)  # ids no catalog row has
    body = targets.to_csv(index=False).encode()

    def post(query, name="targets", data=body):
        form = {"query": query, "action": "submit", "row_limit": "", "upload_name": name, "csrf_token": _csrf(client)}
        return client.post("/query", data=form, files={"upload_file": ("targets.csv", data, "text/csv")})

    cone_deg = 2 / 3600
    r = post("SELECT t.name, g.id FROM TAP_UPLOAD.targets AS t JOIN gaia AS g "
             f"ON 1 = CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', t.ra, t.dec, {cone_deg}))")  # fmt: skip
    assert r.status_code == 303, r.text
    got = _job_result(client, r)
    want = sorted((row.name, int(i)) for row in targets.itertuples() for i in in_cone(df, row.ra, row.dec, cone_deg).id)
    assert sorted(zip(got.name, got.id.astype(int), strict=True)) == want and len(want) >= 40

    r = post("SELECT g.id, g.mag FROM gaia AS g JOIN TAP_UPLOAD.ids AS u ON g.id = u.id ORDER BY g.id", name="ids",
             data=targets[["id"]].to_csv(index=False).encode())  # fmt: skip
    got = _job_result(client, r)
    assert got.id.astype(int).tolist() == sorted(picked.id.tolist()[5:])

    # mistakes come back on the editor page, with the status of the same request to /async
    bad = post("SELECT * FROM TAP_UPLOAD.targets", name="1targets")
    assert bad.status_code == 400 and "1targets" in bad.text
    missing = _run(client, "SELECT * FROM TAP_UPLOAD.nothing")
    assert missing.status_code >= 400 and "nothing" in missing.text.lower()
    limit = client.app.state.tap.config.upload_limit_bytes
    huge = post("SELECT * FROM TAP_UPLOAD.targets", data=b"ra,dec\n" + b"1.0,2.0\n" * (limit // 8 + 1))
    assert huge.status_code == 400 and "upload limit" in huge.text


def _job_result(client, submitted) -> pd.DataFrame:
    """The CSV result of a job submitted from the editor, once it has finished."""
    job_id = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = client.get(submitted.headers["location"]).text
        rows = html_table(page, "jobs")
        job_id = rows.Job.iloc[0]
        status = client.get(f"/jobs/{job_id}/status").json()
        if not status["active"]:
            break
        time.sleep(0.1)
    assert status["phase"] == "COMPLETED", status
    return pd.read_csv(io.BytesIO(client.get(f"/jobs/{job_id}/result.csv").content))
