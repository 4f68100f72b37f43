"""UWS 1.1 documents: element order per UWS.xsd, nils, UTC ``Z`` times, escaping, and pyvo."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from proxcompute.service.jobs import Job, JobOutcome, JobStore, utcnow
from proxcompute.service.uws_xml import (
    UWS_NS,
    XLINK_NS,
    XSI_NS,
    job_document,
    job_list,
    parameters_document,
    results_document,
)

U = f"{{{UWS_NS}}}"
NIL = f"{{{XSI_NS}}}nil"
HREF = f"{{{XLINK_NS}}}href"
JOB_URL = "http://host/tap/async/q7f3a9cXYZ01"

# UWS.xsd (1.1-REC-20161024) JobSummary: (name, minOccurs, nillable)
JOB_SEQUENCE = [
    ("jobId", 1, False),
    ("runId", 0, False),
    ("ownerId", 1, True),
    ("phase", 1, False),
    ("quote", 0, True),
    ("creationTime", 0, False),
    ("startTime", 1, True),
    ("endTime", 1, True),
    ("executionDuration", 1, False),
    ("destruction", 1, True),
    ("parameters", 0, False),
    ("results", 1, False),
    ("errorSummary", 0, False),
    ("jobInfo", 0, False),
]
# ShortJobDescription (jobref)
JOBREF_SEQUENCE = [("phase", 1, False), ("runId", 0, False), ("ownerId", 0, True), ("creationTime", 0, False)]
UWS_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TIME_ELEMENTS = {"quote", "creationTime", "startTime", "endTime", "destruction"}

QUERY = "SELECT TOP 5 * FROM gaia WHERE a < 3 AND b > 2 & \"c\" <> 'd' -- \x01 ]]>"


def make_job(phase="PENDING", **kw) -> Job:
    t0 = datetime(2026, 11, 21, 23, 40, 50, 123456, tzinfo=UTC)
    base = dict(
        id="q7f3a9cXYZ01",
        owner=None,
        run_id=None,
        phase=phase,
        queue="short",
        parameters={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": QUERY, "UPLOAD": "t1,param:t1"},
        creation_time=t0,
        start_time=None,
        end_time=None,
        execution_duration=600,
        destruction=t0 + timedelta(days=7),
        uploads={"t1": "/data/uploads/q7f3a9cXYZ01/t1.vot"},
    )
    if phase in ("EXECUTING", "COMPLETED", "ERROR"):
        base["start_time"] = t0 + timedelta(seconds=1)
    if phase in ("COMPLETED", "ERROR", "ABORTED"):
        base["end_time"] = t0 + timedelta(seconds=2, microseconds=5)
    if phase == "COMPLETED":
        base.update(
            result_path="/data/results/q7f3a9cXYZ01/result.vot",
            result_mime="application/x-votable+xml",
            result_size=51234,
            result_rows=20,
            overflow=True,
        )
    if phase == "ERROR":
        base["error_message"] = "SQL syntax error at line 1, column 7: expected <select> & 'FROM'"
    base.update(kw)
    return Job(**base)


def check_sequence(elem, sequence):
    """Children are exactly an in-order subsequence of ``sequence``, required ones present."""
    names = [c.tag.removeprefix(U) for c in elem]
    order = [n for n, _, _ in sequence]
    assert all(c.tag.startswith(U) for c in elem), names
    assert len(names) == len(set(names)), names
    assert all(n in order for n in names), names
    assert [order.index(n) for n in names] == sorted(order.index(n) for n in names), names
    for name, min_occurs, _nillable in sequence:
        if min_occurs:
            assert name in names, f"required {name} missing"
    for child in elem:
        name = child.tag.removeprefix(U)
        nillable = dict((n, nl) for n, _, nl in sequence)[name]
        if child.get(NIL) is not None:
            assert (
                nillable and child.get(NIL) == "true" and not (child.text or "").strip() and len(child) == 0
            )
        elif name in TIME_ELEMENTS:
            assert UWS_TIME.match(child.text), (name, child.text)
    return names


def parse(doc: bytes) -> ET.Element:
    assert doc.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(doc)


@pytest.mark.parametrize("phase", ["PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED"])
def test_job_document_structure(phase):
    job = make_job(
        phase,
        progress_done=3 if phase == "EXECUTING" else None,
        progress_total=18 if phase == "EXECUTING" else None,
    )
    root = parse(job_document(job, JOB_URL))
    assert root.tag == f"{U}job" and root.get("version") == "1.1"
    names = check_sequence(root, JOB_SEQUENCE)
    assert root.find(f"{U}jobId").text == job.id == JOB_URL.rsplit("/", 1)[1]
    assert root.find(f"{U}phase").text == phase
    assert root.find(f"{U}ownerId").get(NIL) == "true"
    assert root.find(f"{U}quote").get(NIL) == "true"
    assert "runId" not in names
    assert root.find(f"{U}executionDuration").text == "600"
    assert root.find(f"{U}creationTime").text == "2026-11-21T23:40:50.123Z"
    assert root.find(f"{U}destruction").text == "2026-11-28T23:40:50.123Z"
    assert (root.find(f"{U}startTime").get(NIL) is None) == (phase in ("EXECUTING", "COMPLETED", "ERROR"))
    assert (root.find(f"{U}endTime").get(NIL) is None) == (phase in ("COMPLETED", "ERROR", "ABORTED"))

    params = root.find(f"{U}parameters")
    got = {p.get("id"): p.text for p in params}
    assert list(got)[:4] == ["REQUEST", "LANG", "QUERY", "UPLOAD"]
    assert got["QUERY"] == QUERY.replace("\x01", "\ufffd")  # escaped, and XML-safe
    t1 = params[4]
    assert t1.get("id") == "t1" and t1.get("byReference") == "true" and t1.text == f"{JOB_URL}/parameters/t1"

    results = list(root.find(f"{U}results"))
    if phase == "COMPLETED":
        [res] = results
        assert res.tag == f"{U}result" and res.get("id") == "result"
        assert res.get(HREF) == f"{JOB_URL}/results/result"
        assert res.get("mime-type") == "application/x-votable+xml" and res.get("size") == "51234"
    else:
        assert results == []

    err = root.find(f"{U}errorSummary")
    if phase == "ERROR":
        assert err.get("type") == "fatal" and err.get("hasDetail") == "true"
        assert [c.tag for c in err] == [f"{U}message"]
        assert err.find(f"{U}message").text == job.error_message
    else:
        assert err is None

    info = root.find(f"{U}jobInfo")
    assert info.find("queue").text == "short"
    progress = info.find("progress")
    if phase == "EXECUTING":  # a day-old start: the time left is 5x the time so far
        assert {k: progress.get(k) for k in ("done", "total")} == {"done": "3", "total": "18"}
        assert set(progress.attrib) == {"done", "total", "secondsLeft"}  # no rows reported: no rate
        assert float(progress.get("secondsLeft")) > 5 * 86_400
    else:
        assert progress is None
    if phase == "COMPLETED":
        assert info.find("rows").text == "20" and info.find("rows").get("overflow") == "true"


def test_progress_rate_and_time_left():
    """jobInfo shows how fast a running job reads and how long it has to go (clients and the portal show it)."""
    start = datetime(2026, 11, 21, 23, 40, 51, 123456, tzinfo=UTC)
    job = make_job("EXECUTING", progress_done=3, progress_total=18, progress_rows=30_000_000)
    assert job.start_time == start
    rate, left = job.progress_rates(now=start + timedelta(seconds=10))
    assert rate == pytest.approx(3_000_000) and left == pytest.approx(50.0)  # 15 partitions at 10 s / 3
    assert make_job("EXECUTING", progress_done=0, progress_total=18).progress_rates() == (None, None)
    assert make_job("COMPLETED", progress_done=18, progress_total=18, progress_rows=9).progress_rates() == (None, None)
    root = parse(job_document(job, JOB_URL))
    progress = root.find(f"{U}jobInfo").find("progress")
    assert progress.get("rows") == "30000000"
    assert 0 < float(progress.get("rowsPerSecond")) < 3_000_000  # started a while ago
    assert float(progress.get("secondsLeft")) > 0

    from proxcompute.client._xml import parse_job

    status = parse_job(job_document(job, JOB_URL))
    assert status["progress"] == (3, 18)
    assert status["rows_per_second"] == float(progress.get("rowsPerSecond"))
    assert status["seconds_left"] == float(progress.get("secondsLeft"))


def test_job_document_owner_runid_quote():
    job = make_job(
        "PENDING",
        owner="alice <a&b>",
        run_id="TAPLINT-002",
        quote=datetime(2027, 1, 1, tzinfo=UTC),
        destruction=None,
    )
    root = parse(job_document(job, JOB_URL + "/"))
    names = check_sequence(root, JOB_SEQUENCE)
    assert names[:5] == ["jobId", "runId", "ownerId", "phase", "quote"]
    assert root.find(f"{U}runId").text == "TAPLINT-002"
    assert root.find(f"{U}ownerId").text == "alice <a&b>" and root.find(f"{U}ownerId").get(NIL) is None
    assert root.find(f"{U}quote").text == "2027-01-01T00:00:00.000Z"
    assert root.find(f"{U}destruction").get(NIL) == "true"


def test_no_plus_zero_zero_anywhere():
    for phase in ("PENDING", "COMPLETED", "ERROR"):
        doc = job_document(make_job(phase), JOB_URL)
        assert b"+00:00" not in doc


def test_job_list():
    jobs = [make_job("COMPLETED"), make_job("PENDING", id="abc", run_id="r<1>", owner="bob")]
    root = parse(job_list(jobs, "http://host/tap/async/"))
    assert root.tag == f"{U}jobs" and root.get("version") == "1.1"
    refs = list(root)
    assert [r.tag for r in refs] == [f"{U}jobref"] * 2
    assert [r.get("id") for r in refs] == ["q7f3a9cXYZ01", "abc"]
    assert refs[1].get(HREF) == "http://host/tap/async/abc"
    assert check_sequence(refs[0], JOBREF_SEQUENCE) == ["phase", "ownerId", "creationTime"]
    assert check_sequence(refs[1], JOBREF_SEQUENCE) == ["phase", "runId", "ownerId", "creationTime"]
    assert refs[1].find(f"{U}runId").text == "r<1>"
    assert parse(job_list([], "http://host/tap/async")).tag == f"{U}jobs"


def test_results_and_parameters_documents():
    root = parse(results_document(make_job("COMPLETED"), JOB_URL))
    assert root.tag == f"{U}results"
    [res] = list(root)
    assert res.get(HREF) == f"{JOB_URL}/results/result" and res.get("id") == "result"
    empty = parse(results_document(make_job("EXECUTING"), JOB_URL))
    assert empty.tag == f"{U}results" and list(empty) == []

    root = parse(parameters_document(make_job()))
    assert root.tag == f"{U}parameters"
    assert [p.get("id") for p in root] == ["REQUEST", "LANG", "QUERY", "UPLOAD"]
    root = parse(parameters_document(make_job(), JOB_URL))
    assert [p.get("id") for p in root] == ["REQUEST", "LANG", "QUERY", "UPLOAD", "t1"]
    assert parse(parameters_document(make_job(parameters={}, uploads={}))).tag == f"{U}parameters"


def test_attribute_values_keep_whitespace():
    job = make_job(parameters={"A\tB": "x"}, uploads={})
    root = parse(parameters_document(job))
    assert root[0].get("id") == "A\tB"


# --------------------------------------------------------------------------------------------
# pyvo 1.9.1 reads what we write

# pyvo is a test dependency: imported by the tests that use it (a missing pyvo fails those
# tests, not the whole module)
def _uws():
    from pyvo.io import uws

    return uws


def _pyvo_job(job: Job):
    return _uws().parse_job(io.BytesIO(job_document(job, JOB_URL)))


def test_pyvo_parses_completed_job():
    job = make_job("COMPLETED", run_id="r1", progress_done=18, progress_total=18)
    parsed = _pyvo_job(job)
    assert parsed.version == "1.1"
    assert parsed.jobid == job.id and parsed.phase == "COMPLETED" and parsed.runid == "r1"
    assert parsed.ownerid in (None, "")
    assert parsed.creationtime.isot == "2026-11-21T23:40:50.123"
    assert parsed.starttime.isot == "2026-11-21T23:40:51.123"
    assert parsed.endtime.isot == "2026-11-21T23:40:52.123"
    assert parsed.destruction.isot == "2026-11-28T23:40:50.123"
    assert int(parsed.executionduration.sec) == 600
    [result] = [r for r in parsed.results if r.href.endswith("results/result")]
    assert result.id_ == "result" and result.size == 51234 and result.mimetype == "application/x-votable+xml"
    params = {p.id_: p.content for p in parsed.parameters}
    assert params["QUERY"] == QUERY.replace("\x01", "\ufffd") and params["LANG"] == "ADQL"
    assert parsed.errorsummary is None
    assert parsed.jobinfo is not None and "progress" in parsed.jobinfo


def test_pyvo_parses_error_and_pending_jobs():
    parsed = _pyvo_job(make_job("ERROR"))
    assert parsed.phase == "ERROR"
    assert parsed.errorsummary.type_ == "fatal" and parsed.errorsummary.has_detail is True
    assert parsed.errorsummary.message.content == make_job("ERROR").error_message
    assert len(parsed.results) == 0

    parsed = _pyvo_job(make_job("PENDING"))
    assert parsed.phase == "PENDING"
    assert parsed.starttime is None and parsed.endtime is None and parsed.quote is None


def test_pyvo_parses_job_list():
    jobs = [make_job("COMPLETED"), make_job("EXECUTING", id="abc")]
    parsed = _uws().parse_job_list(io.BytesIO(job_list(jobs, "http://host/tap/async")))
    assert [(j.jobid, j.phase) for j in parsed] == [("q7f3a9cXYZ01", "COMPLETED"), ("abc", "EXECUTING")]
    assert parsed[0].creationtime.isot == "2026-11-21T23:40:50.123"


def test_documents_from_a_real_store(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    try:
        job = store.create(
            None,
            {"QUERY": "SELECT 1 < 2"},
            queue="short",
            execution_duration=0,
            destruction=utcnow() + timedelta(days=1),
        )
        store.transition(job.id, "QUEUED")
        store.transition(job.id, "EXECUTING")
        store.set_progress(job.id, 3, 18, rows=3_000)
        running = store.get(job.id, None)
        url = f"http://host/tap/async/{job.id}"
        parsed = _uws().parse_job(io.BytesIO(job_document(running, url)))
        assert parsed.phase == "EXECUTING" and parsed.endtime is None
        assert (
            abs((parsed.starttime.datetime.replace(tzinfo=UTC) - running.start_time).total_seconds()) < 0.002
        )
        root = parse(job_document(running, url))
        progress = root.find(f"{U}jobInfo").find("progress")
        assert {k: progress.get(k) for k in ("done", "total", "rows")} == {"done": "3", "total": "18", "rows": "3000"}
        assert float(progress.get("rowsPerSecond")) > 0 and float(progress.get("secondsLeft")) >= 0
        p = tmp_path / "r.vot"
        p.write_text("<VOTABLE/>")
        done = store.finish(job.id, JobOutcome(str(p), "text/xml", 10, rows=1))
        parsed = _uws().parse_job(io.BytesIO(job_document(done, url)))
        assert parsed.phase == "COMPLETED" and parsed.results[0].href == f"{url}/results/result"
        assert replace(done, phase="COMPLETED") == done
    finally:
        store.dispose()
