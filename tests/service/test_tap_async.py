"""UWS async jobs through pyvo, astroquery and raw HTTP against a real `proxcompute serve`."""

import time

import httpx
import numpy as np
import pytest
import pyvo
from tap_server import running_server

import proxcompute
from proxcompute.catalog import from_dataframe
from proxcompute.synthetic import generate_catalog


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("asyncroot")
    from_dataframe(generate_catalog(60_000, seed=23), name="gaia", max_rows=2_000).to_catalog(root / "survey" / "gaia")
    with running_server(root) as url:
        yield url, root


@pytest.fixture(scope="module")
def tap(served):
    return pyvo.dal.TAPService(served[0])


def test_pyvo_run_async_equals_sql(tap, served):
    _, root = served
    q = "SELECT flag, COUNT(*) AS n, AVG(mag) AS m FROM survey.gaia GROUP BY flag ORDER BY flag"
    got = tap.run_async(q).to_table()
    want = proxcompute.sql(q, catalog_root=root).compute()
    np.testing.assert_array_equal(np.asarray(got["n"]), want["n"].to_numpy())
    np.testing.assert_allclose(np.asarray(got["m"]), want["m"].to_numpy(), rtol=1e-12)


def test_job_lifecycle_document_and_plain_text_endpoints(tap, served):
    _ = served
    job = tap.submit_job("SELECT TOP 10 id FROM survey.gaia ORDER BY id", runid="lifecycle-1")
    assert job.phase == "PENDING"
    base = job.url
    for field in ("phase", "executionduration", "destruction", "quote", "owner"):
        r = httpx.get(f"{base}/{field}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert httpx.get(f"{base}/phase").text == "PENDING"
    job.run()
    job.wait()
    assert job.phase == "COMPLETED"
    assert len(job.fetch_result()) == 10
    doc = httpx.get(base).text
    assert "<uws:runId>lifecycle-1</uws:runId>" in doc and 'done="' in doc  # jobInfo progress
    assert doc.count("Z</uws:creationTime>") == 1
    job.delete()
    assert httpx.get(base).status_code == 404


def test_async_error_reaches_pyvo_as_query_error(tap):
    job = tap.submit_job("SELECT nope FROM survey.gaia")
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"])
    assert job.phase == "ERROR"
    with pytest.raises(pyvo.dal.DALQueryError, match="column 'nope' not found"):
        job.raise_if_error()
    r = httpx.get(job.url + "/error")
    assert r.status_code == 200 and '<INFO name="QUERY_STATUS" value="ERROR">' in r.text
    job.delete()


def test_abort_a_running_job_cancels_it(served):
    url, _ = served
    q = ("SELECT a.id, b.id FROM survey.gaia AS a JOIN survey.gaia AS b "
         "ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 1.5")  # fmt: skip  (millions of pairs: seconds)
    r = httpx.post(url + "/async", data={"LANG": "ADQL", "QUERY": q, "PHASE": "RUN"})
    assert r.status_code == 303
    job_url = r.headers["location"]
    deadline = time.monotonic() + 30
    while (phase := httpx.get(job_url + "/phase").text) != "EXECUTING":
        assert phase in ("PENDING", "QUEUED"), f"the job ended ({phase}) before it could be aborted"
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    r = httpx.post(job_url + "/phase", data={"PHASE": "ABORT"})
    assert r.status_code == 303, r.text  # 400 if the job had finished in between
    assert httpx.get(job_url + "/phase").text == "ABORTED"
    assert httpx.get(job_url + "/results/result").status_code == 404


@pytest.mark.parametrize(
    "method, path, data, status",
    [
        ("get", "/async/doesnotexist", None, 404),
        ("post", "/async/doesnotexist/phase", {"PHASE": "RUN"}, 404),
        ("get", "/async/doesnotexist/results/result", None, 404),
    ],
)
def test_unknown_jobs_are_404(served, method, path, data, status):
    r = getattr(httpx, method)(served[0] + path, **({"data": data} if data else {}))
    assert r.status_code == status and "QUERY_STATUS" in r.text


def test_forbidden_phase_changes(served):
    url, _ = served
    r = httpx.post(url + "/async", data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM survey.gaia", "PHASE": "RUN"})
    job_url = r.headers["location"]
    httpx.get(job_url, params={"WAIT": "-1"}, timeout=30)
    for _ in range(100):
        if httpx.get(job_url + "/phase").text == "COMPLETED":
            break
        time.sleep(0.05)
    r = httpx.post(job_url + "/phase", data={"PHASE": "RUN"})
    assert r.status_code == 400 and "COMPLETED" in r.text
    r = httpx.post(job_url + "/phase", data={"PHASE": "SUSPEND"})
    assert r.status_code == 400
    r = httpx.post(job_url + "/parameters", data={"QUERY": "SELECT 1"})
    assert r.status_code == 400


def test_job_list_filters(served, tap):
    url, _ = served
    job = tap.submit_job("SELECT TOP 1 id FROM survey.gaia")
    listed = httpx.get(url + "/async", params={"PHASE": "PENDING"}).text
    assert job.job_id in listed
    assert job.job_id not in httpx.get(url + "/async", params={"PHASE": "COMPLETED"}).text
    assert httpx.get(url + "/async", params={"LAST": "1"}).text.count("<uws:jobref") == 1
    job.delete()


def test_astroquery_async(served):
    from astroquery.utils.tap.core import TapPlus

    tap = TapPlus(url=served[0], verbose=False)
    job = tap.launch_job_async("SELECT TOP 3 id FROM survey.gaia ORDER BY id", background=False)
    assert list(job.get_results()["id"]) == sorted(job.get_results()["id"])


def test_restarted_server_still_knows_jobs(tmp_path):
    root = tmp_path / "root"
    from_dataframe(generate_catalog(2_000, seed=1), name="g").to_catalog(root / "g")
    with running_server(root) as url:
        job = pyvo.dal.TAPService(url).submit_job("SELECT COUNT(*) AS n FROM g")
        job.run()
        job.wait()
        job_id = job.job_id
    with running_server(root) as url:
        r = httpx.get(f"{url}/async/{job_id}")
        assert r.status_code == 200 and "COMPLETED" in r.text
        result = httpx.get(f"{url}/async/{job_id}/results/result")
        assert result.status_code == 200 and b"QUERY_STATUS" in result.content


def test_quote_estimates_the_cost_before_running(served):
    import re
    from datetime import datetime

    url, _ = served

    def t(text):
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")

    queries = {
        "cone": "SELECT id FROM survey.gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 45, 30, 0.01))",
        "group": "SELECT flag, COUNT(*) AS n, AVG(mag) AS m FROM survey.gaia GROUP BY flag",
        "count": "SELECT COUNT(*) FROM survey.gaia",  # answered from the stored row counts
    }
    expected = {}
    for name, q in queries.items():
        r = httpx.post(url + "/async", data={"LANG": "ADQL", "QUERY": q})
        doc = httpx.get(r.headers["location"]).text
        quote = httpx.get(r.headers["location"] + "/quote").text
        created = re.search(r"<uws:creationTime>([^<]+)</uws:creationTime>", doc).group(1)
        assert f"<uws:quote>{quote}</uws:quote>" in doc
        expected[name] = (t(quote) - t(created)).total_seconds()
    # the small cone reads one row group; the GROUP BY every row of every partition
    assert 0 <= expected["cone"] < expected["group"]
    assert expected["count"] < expected["group"]
    bad = httpx.post(url + "/async", data={"LANG": "ADQL", "QUERY": "SELECT nope FROM nothing"})
    assert httpx.get(bad.headers["location"] + "/quote").text == ""
