"""UWS jobs in worker processes: run_in_worker itself, and a real `proxcompute serve` whose sync
queries answer while a long job runs, whose ABORT ends the worker, and whose jobs keep their
progress and error messages."""

import os
import re
import signal
import threading
import time

import cloudpickle
import httpx
import numpy as np
import psutil
import pytest
import pyvo

import proxcompute
from proxcompute.catalog import from_dataframe
from proxcompute.errors import SqlError
from proxcompute.service import serve_in_background
from proxcompute.service.job_process import WorkerFailed, run_in_worker
from proxcompute.sql import CatalogRegistry
from proxcompute.synthetic import generate_catalog

# -- run_in_worker ------------------------------------------------------------------------


def test_result_progress_and_priority_come_from_the_child():
    def work(n, progress, cancel):
        for i in range(n):
            progress(i + 1, n)
        return {"pid": os.getpid(), "nice": os.nice(0), "squares": [i * i for i in range(n)]}

    seen = []
    out = run_in_worker(work, 5, lambda d, t: seen.append((d, t)), threading.Event(), nice=7)
    assert out["squares"] == [0, 1, 4, 9, 16]
    assert seen == [(i, 5) for i in range(1, 6)]
    assert out["pid"] != os.getpid()
    assert out["nice"] == min(19, os.nice(0) + 7)


def test_errors_keep_the_messages_of_in_process_work():
    def user_error(_, progress, cancel):
        raise SqlError("unknown column", "column 'nope' not found")

    def crash(_, progress, cancel):
        raise ValueError("boom")

    with pytest.raises(WorkerFailed) as info:
        run_in_worker(user_error, None, None, threading.Event())
    assert str(info.value) == str(SqlError("unknown column", "column 'nope' not found"))
    with pytest.raises(WorkerFailed, match=r"^internal error: ValueError: boom$"):
        run_in_worker(crash, None, None, threading.Event())


def test_a_child_that_dies_is_an_error_naming_the_signal():
    def die(_, progress, cancel):
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(WorkerFailed, match="killed by signal 9"):
        run_in_worker(die, None, None, threading.Event())


def test_cancel_is_cooperative_first_then_kills(tmp_path):
    def cooperative(path, progress, cancel):
        path.write_text(str(os.getpid()))
        while not cancel.is_set():
            time.sleep(0.01)
        return "stopped"

    def stubborn(path, progress, cancel):
        path.write_text(str(os.getpid()))
        time.sleep(3600)

    for fn, grace, bound in ((cooperative, 30.0, 10.0), (stubborn, 0.5, 10.0)):
        pid_file = tmp_path / f"{fn.__name__}.pid"
        cancel = threading.Event()
        threading.Thread(target=lambda p=pid_file, c=cancel: (_wait_for(p.exists, 30), c.set()), daemon=True).start()
        t0 = time.monotonic()
        try:
            out = run_in_worker(fn, pid_file, None, cancel, grace_seconds=grace)
        except WorkerFailed as exc:  # killed: no outcome
            assert fn is stubborn and "killed by signal 9" in str(exc)
        else:
            assert fn is cooperative and out == "stopped"
        assert time.monotonic() - t0 < bound
        assert not psutil.pid_exists(int(pid_file.read_text())) or psutil.Process(
            int(pid_file.read_text())
        ).status() == psutil.STATUS_ZOMBIE


def test_a_registry_travels_without_its_caches(tmp_path):
    from_dataframe(generate_catalog(3_000, seed=4), name="g", max_rows=500).to_catalog(tmp_path / "s" / "g")
    reg = CatalogRegistry(catalog_root=tmp_path).extended({"extra.t": generate_catalog(10, seed=5)})
    q = "SELECT COUNT(*) AS n FROM s.g WHERE mag < 20"
    want = int(proxcompute.sql(q, reg).compute()["n"][0])  # opens the catalog: caches filled
    copy = cloudpickle.loads(cloudpickle.dumps(reg))
    assert copy.names() == reg.names()
    assert int(proxcompute.sql(q, copy).compute()["n"][0]) == want
    assert len(proxcompute.sql("SELECT * FROM extra.t", copy).compute()) == 10


def _wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- a real server ------------------------------------------------------------------------

LONG_JOIN = ("SELECT COUNT(*) AS n FROM survey.gaia AS a JOIN survey.gaia AS b "
             "ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 3")  # fmt: skip  (many pairs: long)
CONE = "SELECT id FROM survey.gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 45, 30, 0.5))"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobproc")
    from_dataframe(generate_catalog(120_000, seed=31), name="gaia", max_rows=4_000).to_catalog(root / "survey" / "gaia")
    with serve_in_background(root) as srv:
        yield srv, root


def _job_workers(server_pid: int) -> list[psutil.Process]:
    """The job worker processes: children of the server's forkserver."""
    out = []
    for child in psutil.Process(server_pid).children():
        try:
            if any("forkserver" in part for part in child.cmdline()):
                out.extend(child.children())
        except psutil.NoSuchProcess:
            pass
    return out


def _start(url: str, query: str) -> str:
    r = httpx.post(url + "/async", data={"LANG": "ADQL", "QUERY": query, "PHASE": "RUN"})
    assert r.status_code == 303, r.text
    job_url = r.headers["location"]
    _wait_for(lambda: httpx.get(job_url + "/phase").text not in ("PENDING", "QUEUED"), 60)
    return job_url


def test_sync_queries_answer_while_a_long_job_executes_and_abort_ends_its_worker(server):
    srv, root = server
    job_url = _start(srv.url, LONG_JOIN)
    assert httpx.get(job_url + "/phase").text == "EXECUTING"
    _wait_for(lambda: _job_workers(srv.process.pid), 30)
    workers = _job_workers(srv.process.pid)
    assert len(workers) == 1
    _wait_for(lambda: workers[0].nice() >= 10, 30)  # a lower priority than the service's, once it started
    tap = pyvo.dal.TAPService(srv.url)
    want = proxcompute.sql(CONE, catalog_root=root).compute()["id"].to_numpy()
    for _ in range(5):
        got = tap.search(CONE)
        np.testing.assert_array_equal(np.sort(np.asarray(got["id"])), np.sort(want))
    assert httpx.get(job_url + "/phase").text == "EXECUTING", "the job ended: it cannot show the overlap"
    r = httpx.post(job_url + "/phase", data={"PHASE": "ABORT"})
    assert r.status_code == 303, r.text
    assert httpx.get(job_url + "/phase").text == "ABORTED"
    psutil.wait_procs(workers, timeout=20)  # stopped at once, killed after 5 s at the latest
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    assert httpx.get(job_url + "/results/result").status_code == 404


def test_a_killed_worker_ends_the_job_in_error_with_the_reason(server):
    srv, _ = server
    job_url = _start(srv.url, LONG_JOIN)
    _wait_for(lambda: _job_workers(srv.process.pid), 30)
    _job_workers(srv.process.pid)[0].kill()
    _wait_for(lambda: httpx.get(job_url + "/phase").text != "EXECUTING", 30)
    assert httpx.get(job_url + "/phase").text == "ERROR"
    assert "worker process was killed by signal 9" in httpx.get(job_url + "/error").text
    # the service goes on: the next job runs
    job_url = _start(srv.url, "SELECT COUNT(*) AS n FROM survey.gaia")
    _wait_for(lambda: httpx.get(job_url + "/phase").text == "COMPLETED", 60)


def test_progress_and_errors_of_jobs_in_workers(server):
    srv, root = server
    tap = pyvo.dal.TAPService(srv.url)
    job = tap.submit_job("SELECT flag, COUNT(*) AS n FROM survey.gaia WHERE mag < 21 GROUP BY flag")
    job.run()
    job.wait(phases=["COMPLETED", "ERROR"], timeout=120)
    assert job.phase == "COMPLETED"
    want = proxcompute.sql("SELECT flag, COUNT(*) AS n FROM survey.gaia WHERE mag < 21 GROUP BY flag",
                           catalog_root=root).compute().sort_values("flag")  # fmt: skip
    got = job.fetch_result().to_table().to_pandas().sort_values("flag")
    np.testing.assert_array_equal(got["n"].to_numpy(), want["n"].to_numpy())
    done, total = map(int, re.search(r'<progress done="(\d+)" total="(\d+)"', httpx.get(job.url).text).groups())
    n_partitions = len(proxcompute.open_catalog(root / "survey" / "gaia").partitions)
    assert total >= n_partitions > 1 and done == total  # the worker's progress reached the job
    rows = int(re.search(r'<progress [^>]*rows="(\d+)"', httpx.get(job.url).text).group(1))
    assert rows == 120_000  # the stored rows of the partitions done: all of them
    bad = tap.submit_job("SELECT nope FROM survey.gaia")
    bad.run()
    bad.wait(phases=["COMPLETED", "ERROR"], timeout=120)
    assert bad.phase == "ERROR"
    with pytest.raises(pyvo.dal.DALQueryError, match="column 'nope' not found"):
        bad.raise_if_error()


def test_a_bad_job_nice_is_refused_by_name(tmp_path):
    import subprocess
    import sys

    from proxcompute.service import ServiceConfig

    with pytest.raises(ValueError, match="job_nice=20 must be between 0 and 19"):
        ServiceConfig(tmp_path, job_nice=20)
    proc = subprocess.run([sys.executable, "-m", "proxcompute.cli", "serve", "--catalog-root", str(tmp_path),
                           "--job-nice", "-1"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "job_nice=-1 must be between 0 and 19" in proc.stderr


def test_a_worker_whose_service_dies_exits(tmp_path):
    from_dataframe(generate_catalog(120_000, seed=32), name="gaia", max_rows=4_000).to_catalog(
        tmp_path / "survey" / "gaia"
    )
    srv = serve_in_background(tmp_path)
    try:
        job_url = _start(srv.url, LONG_JOIN)
        _wait_for(lambda: _job_workers(srv.process.pid), 30)
        workers = _job_workers(srv.process.pid)
        forkservers = [p for p in psutil.Process(srv.process.pid).children() if "forkserver" in " ".join(p.cmdline())]
        assert httpx.get(job_url + "/phase").text == "EXECUTING"
    finally:
        srv.process.kill()  # no shutdown: the pipe to the worker just closes
        srv.process.wait()
    _, alive = psutil.wait_procs(workers + forkservers, timeout=20)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "a job worker outlived its service"
