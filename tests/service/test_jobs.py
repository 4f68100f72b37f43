"""The UWS job store and runner, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import random
import string
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from proxcompute.errors import SqlError
from proxcompute.service.job_runner import JobRunner
from proxcompute.service.jobs import (
    ABORTED,
    ALLOWED_FROM,
    COMPLETED,
    ERROR,
    EXECUTING,
    PENDING,
    QUEUED,
    RESTART_MESSAGE,
    SHUTDOWN_MESSAGE,
    Job,
    JobNotFound,
    JobOutcome,
    JobStore,
    PhaseError,
    parse_uws_time,
    utcnow,
    uws_time,
)

STORED_PHASES = (PENDING, QUEUED, EXECUTING, COMPLETED, ERROR, ABORTED)


@pytest.fixture
def store(db_url):
    s = JobStore(db_url)
    yield s
    s.dispose()


def new_job(store: JobStore, owner: str | None = "alice", **params) -> Job:
    params = params or {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "SELECT 1"}
    return store.create(
        owner, params, queue="short", execution_duration=0, destruction=utcnow() + timedelta(days=7)
    )


def outcome_file(tmp_path, job_id: str, text: str = "<VOTABLE/>") -> JobOutcome:
    d = tmp_path / "results" / job_id
    d.mkdir(parents=True, exist_ok=True)
    p = d / "result.vot"
    p.write_text(text)
    return JobOutcome(str(p), "application/x-votable+xml", p.stat().st_size, rows=3, overflow=True)


def drive_to(store: JobStore, job: Job, phase: str, tmp_path) -> Job:
    """Move a fresh PENDING job to ``phase`` along allowed transitions."""
    if phase == PENDING:
        return job
    if phase == ABORTED:
        return store.transition(job.id, ABORTED)
    job = store.transition(job.id, QUEUED)
    if phase == QUEUED:
        return job
    job = store.transition(job.id, EXECUTING)
    if phase == EXECUTING:
        return job
    if phase == COMPLETED:
        return store.finish(job.id, outcome_file(tmp_path, job.id))
    assert phase == ERROR
    return store.fail(job.id, "boom")


def wait_final(store: JobStore, job_id: str, owner: str | None, timeout: float = 10.0) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = store.wait_for_change(job_id, owner, None, min(2.0, max(0.0, deadline - time.monotonic())))
        if job.is_final or time.monotonic() >= deadline:
            return job


# --------------------------------------------------------------------------------------------
# time helpers (no database)


def test_uws_time_is_utc_with_z():
    cet = timezone(timedelta(hours=1))
    assert uws_time(datetime(2026, 11, 22, 0, 40, 50, 123456, tzinfo=cet)) == "2026-11-21T23:40:50.123Z"
    assert uws_time(datetime(2026, 11, 21, 23, 40, 50)) == "2026-11-21T23:40:50.000Z"
    assert "+00:00" not in uws_time(utcnow())


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-21T23:40:50.123Z",
        "2026-11-21T23:40:50.123000Z",  # pyvo: %Y-%m-%dT%H:%M:%S.%fZ
        "2026-11-21T23:40:50.123+00:00",
        "2026-11-22T00:40:50.123+01:00",
        "2026-11-21T23:40:50.123",
        " 2026-11-21 23:40:50.123z ",
    ],
)
def test_parse_uws_time(text):
    assert parse_uws_time(text) == datetime(2026, 11, 21, 23, 40, 50, 123000, tzinfo=UTC)


def test_parse_uws_time_without_fraction_and_errors():
    assert parse_uws_time("2026-11-21T23:40:50Z") == datetime(2026, 11, 21, 23, 40, 50, tzinfo=UTC)
    with pytest.raises(ValueError, match="invalid timestamp"):
        parse_uws_time("next tuesday")


# --------------------------------------------------------------------------------------------
# store


def test_create_and_get(store):
    params = {"request": "doQuery", "LANG": "ADQL", "QUERY": "SELECT * FROM t WHERE a < 1 & b", "RUNID": "r1"}
    job = store.create("alice", params, queue="short", execution_duration=30, destruction=None)
    assert len(job.id) == 12 and set(job.id) <= set(string.ascii_letters + string.digits + "-_")
    assert job.phase == PENDING and job.owner == "alice" and job.run_id == "r1" and job.queue == "short"
    assert list(job.parameters) == ["REQUEST", "LANG", "QUERY", "RUNID"]
    assert job.parameters["QUERY"] == params["QUERY"]
    assert job.start_time is None and job.end_time is None and job.destruction is None
    assert job.execution_duration == 30
    assert job.creation_time.tzinfo is not None and abs(job.creation_time - utcnow()) < timedelta(seconds=10)
    assert store.get(job.id, "alice") == job
    ids = {new_job(store).id for _ in range(20)}
    assert len(ids) == 20


def test_jobs_survive_a_new_store(db_url, tmp_path):
    s1 = JobStore(db_url)
    a = new_job(s1, "alice", QUERY="SELECT 2", LANG="ADQL")
    b = drive_to(s1, new_job(s1, None), COMPLETED, tmp_path)
    c = drive_to(s1, new_job(s1, "bob"), ERROR, tmp_path)
    s1.set_progress(b.id, 3, 18)  # ignored: no longer EXECUTING
    s1.dispose()

    s2 = JobStore(db_url)  # "restarted server"
    try:
        assert s2.get(a.id, "alice") == a
        assert list(s2.get(a.id, "alice").parameters) == ["QUERY", "LANG"]
        got_b = s2.get(b.id, None)
        assert got_b == b
        assert got_b.phase == COMPLETED and got_b.result_rows == 3 and got_b.overflow is True
        assert got_b.result_mime == "application/x-votable+xml" and got_b.result_size == len("<VOTABLE/>")
        assert got_b.start_time <= got_b.end_time
        assert s2.get(c.id, "bob").error_message == "boom"
    finally:
        s2.dispose()


def test_an_older_job_table_is_upgraded_in_place(db_url, tmp_path):
    """A job database written by a release without the progress_rows column keeps its jobs and gains the column."""
    import sqlalchemy as sa

    s1 = JobStore(db_url)
    old = new_job(s1)
    with s1.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE jobs DROP COLUMN progress_rows"))
    s1.dispose()
    s2 = JobStore(db_url)
    try:
        kept = s2.get(old.id, "alice")
        assert kept.parameters == old.parameters and kept.progress_rows is None
        job = drive_to(s2, new_job(s2), EXECUTING, tmp_path)
        s2.set_progress(job.id, 4, 10, rows=123_456_789_012)  # beyond 32 bits
        got = s2.get(job.id, "alice")
        assert (got.progress_done, got.progress_total, got.progress_rows) == (4, 10, 123_456_789_012)
    finally:
        s2.dispose()


def test_owner_isolation(store):
    a = new_job(store, "alice")
    anon = new_job(store, None)
    for owner in ("bob", None, "Alice"):
        with pytest.raises(JobNotFound):
            store.get(a.id, owner)
    with pytest.raises(JobNotFound):
        store.get(anon.id, "alice")
    assert store.get(anon.id, None).id == anon.id
    assert [j.id for j in store.list("alice")] == [a.id]
    assert [j.id for j in store.list(None)] == [anon.id]
    assert store.list("bob") == []
    with pytest.raises(JobNotFound):
        store.set_parameters(a.id, "bob", {"QUERY": "x"})
    with pytest.raises(JobNotFound):
        store.set_destruction(a.id, None, utcnow())
    with pytest.raises(JobNotFound):
        store.set_execution_duration(a.id, "bob", 5)
    with pytest.raises(JobNotFound):
        store.transition(a.id, ABORTED, owner="bob")
    with pytest.raises(JobNotFound):
        store.delete(a.id, "bob")
    with pytest.raises(JobNotFound):
        store.wait_for_change(a.id, "bob", None, 0.1)
    with pytest.raises(JobNotFound):
        store.get("nonexistent00", "alice")
    assert store.get(a.id, "alice").phase == PENDING  # untouched


def test_list_filters(store, tmp_path):
    jobs = []
    for _ in range(5):
        jobs.append(new_job(store, "alice"))
        time.sleep(0.01)
    new_job(store, "bob")
    drive_to(store, jobs[1], COMPLETED, tmp_path)
    drive_to(store, jobs[3], COMPLETED, tmp_path)
    drive_to(store, jobs[4], ERROR, tmp_path)
    ids = [j.id for j in jobs]

    assert [j.id for j in store.list("alice")] == ids  # oldest first
    assert [j.id for j in store.list("alice", phases=[COMPLETED])] == [ids[1], ids[3]]
    assert [j.id for j in store.list("alice", phases=[COMPLETED, ERROR])] == [ids[1], ids[3], ids[4]]
    assert store.list("alice", phases=[EXECUTING]) == []
    # AFTER is strictly after the given creation time
    assert [j.id for j in store.list("alice", after=jobs[2].creation_time)] == ids[3:]
    # LAST: the N most recent (after the other filters), most recent first
    assert [j.id for j in store.list("alice", last=2)] == [ids[4], ids[3]]
    assert [j.id for j in store.list("alice", phases=[PENDING], last=1)] == [ids[2]]
    assert [j.id for j in store.list("alice", phases=[COMPLETED], after=jobs[1].creation_time, last=5)] == [
        ids[3]
    ]
    assert store.list("alice", last=0) == []
    assert store.active_count("alice") == 0
    drive_to(store, jobs[0], QUEUED, tmp_path)
    drive_to(store, jobs[2], EXECUTING, tmp_path)
    assert store.active_count("alice") == 2 and store.active_count("bob") == 0
    assert store.active_count(None) == 0


def test_every_transition(store, tmp_path):
    verbs = {QUEUED: "RUN", ABORTED: "ABORT"}
    for src, dst in itertools.product(STORED_PHASES, (QUEUED, EXECUTING, COMPLETED, ERROR, ABORTED)):
        job = drive_to(store, new_job(store), src, tmp_path)
        assert job.phase == src
        kwargs = {"outcome": outcome_file(tmp_path, job.id)} if dst == COMPLETED else {}
        if src in ALLOWED_FROM[dst]:
            after = store.transition(job.id, dst, **kwargs)
            assert after.phase == dst == store.get(job.id, "alice").phase
            assert (after.start_time is not None) == (dst == EXECUTING or job.start_time is not None)
            assert (after.end_time is not None) == (dst in (COMPLETED, ERROR, ABORTED))
        else:
            with pytest.raises(PhaseError) as info:
                store.transition(job.id, dst, **kwargs)
            if dst in verbs:
                assert str(info.value) == f"cannot {verbs[dst]} a job in phase {src}"
            else:
                assert str(info.value).endswith(f"a job in phase {src}")
            assert store.get(job.id, "alice") == job  # nothing changed
    # the exact allowed set (UWS 1.1, plus QUEUED -> ERROR for refusals/restarts)
    allowed = {(s, d) for d, srcs in ALLOWED_FROM.items() for s in srcs}
    assert allowed == {
        (PENDING, QUEUED),
        (PENDING, ABORTED),
        (QUEUED, EXECUTING),
        (QUEUED, ABORTED),
        (QUEUED, ERROR),
        (EXECUTING, COMPLETED),
        (EXECUTING, ERROR),
        (EXECUTING, ABORTED),
    }
    job = new_job(store)
    with pytest.raises(ValueError):
        store.transition(job.id, PENDING)
    with pytest.raises(ValueError):
        store.transition(job.id, COMPLETED, expect=(PENDING,))
    with pytest.raises(PhaseError, match="cannot RUN a job in phase COMPLETED"):
        store.transition(drive_to(store, job, COMPLETED, tmp_path).id, QUEUED)


def test_parameters_duration_destruction(store, tmp_path):
    job = new_job(store, "alice", REQUEST="doQuery", LANG="ADQL", QUERY="SELECT 1")
    job = store.set_parameters(job.id, "alice", {"runId": "TAPLINT-002", "query": "SELECT 2"})
    assert list(job.parameters) == ["REQUEST", "LANG", "QUERY", "RUNID"]
    assert job.parameters["QUERY"] == "SELECT 2" and job.run_id == "TAPLINT-002"
    job = store.set_parameters(job.id, "alice", {"UPLOAD": "t1,param:t1"}, uploads={"t1": "/x/t1.vot"})
    assert job.uploads == {"t1": "/x/t1.vot"} and job.parameters["UPLOAD"] == "t1,param:t1"

    assert store.set_execution_duration(job.id, "alice", 42).execution_duration == 42
    with pytest.raises(ValueError):
        store.set_execution_duration(job.id, "alice", -1)
    when = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert store.set_destruction(job.id, "alice", when).destruction == when

    store.transition(job.id, QUEUED)
    assert store.set_execution_duration(job.id, "alice", 43).execution_duration == 43
    with pytest.raises(PhaseError, match="cannot change the parameters of a job in phase QUEUED"):
        store.set_parameters(job.id, "alice", {"QUERY": "SELECT 3"})
    store.transition(job.id, EXECUTING)
    with pytest.raises(PhaseError, match="phase EXECUTING"):
        store.set_execution_duration(job.id, "alice", 44)
    later = when + timedelta(days=1)
    assert store.set_destruction(job.id, "alice", later).destruction == later  # any phase
    assert store.get(job.id, "alice").parameters["QUERY"] == "SELECT 2"


def test_concurrent_parameter_updates_are_not_lost(store):
    job = new_job(store)

    def post(i):
        store.set_parameters(job.id, "alice", {f"P{i}": str(i)})

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    params = store.get(job.id, "alice").parameters
    assert {f"P{i}" for i in range(8)} <= set(params)


def test_concurrent_transitions_never_give_an_impossible_history(store, tmp_path):
    """Threads hammer RUN, start, ABORT, finish and fail on the same jobs at once."""
    n_jobs = 6
    jobs = [new_job(store) for _ in range(n_jobs)]
    outcomes = {j.id: outcome_file(tmp_path, j.id) for j in jobs}
    successes: dict[str, list[str]] = {j.id: [] for j in jobs}
    lock = threading.Lock()
    actions = {
        QUEUED: lambda jid: store.transition(jid, QUEUED),
        EXECUTING: lambda jid: store.transition(jid, EXECUTING),
        ABORTED: lambda jid: store.transition(jid, ABORTED),
        COMPLETED: lambda jid: store.finish(jid, outcomes[jid]),
        ERROR: lambda jid: store.fail(jid, "failed"),
    }
    barrier = threading.Barrier(len(actions) * 2)

    def hammer(phase, seed):
        rng = random.Random(seed)
        barrier.wait()
        for _ in range(6):
            for job in rng.sample(jobs, len(jobs)):
                try:
                    actions[phase](job.id)
                except PhaseError:
                    continue
                with lock:
                    successes[job.id].append(phase)

    threads = [
        threading.Thread(target=hammer, args=(phase, seed)) for seed, phase in enumerate(list(actions) * 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    final_seen = set()
    for job in jobs:
        done = successes[job.id]
        assert len(done) == len(set(done)), done  # no phase entered twice
        finals = [p for p in done if p in (COMPLETED, ERROR, ABORTED)]
        assert len(finals) <= 1, done
        if EXECUTING in done:
            assert QUEUED in done
        if COMPLETED in done:
            assert EXECUTING in done
        if ERROR in done:
            assert QUEUED in done
        stored = store.get(job.id, "alice")
        expected = (
            finals[0]
            if finals
            else (EXECUTING if EXECUTING in done else QUEUED if QUEUED in done else PENDING)
        )
        assert stored.phase == expected, (done, stored.phase)
        assert (stored.result_path is not None) == (stored.phase == COMPLETED)
        assert (stored.start_time is not None) == (EXECUTING in done)
        final_seen.add(stored.phase)
    assert final_seen & {COMPLETED, ERROR, ABORTED}


def test_wait_for_change(store, tmp_path):
    job = new_job(store)
    # nothing happens: returns after the timeout, unchanged
    t0 = time.monotonic()
    assert store.wait_for_change(job.id, "alice", PENDING, 0.3).phase == PENDING
    assert 0.25 <= time.monotonic() - t0 < 2
    # phase already differs: at once
    t0 = time.monotonic()
    assert store.wait_for_change(job.id, "alice", QUEUED, 5).phase == PENDING
    assert time.monotonic() - t0 < 0.5

    timer = threading.Timer(0.2, lambda: store.transition(job.id, QUEUED))
    timer.start()
    t0 = time.monotonic()
    got = store.wait_for_change(job.id, "alice", None, 5)
    assert got.phase == QUEUED and time.monotonic() - t0 < 1.5
    timer.join()

    # a change made through another store (as by another process) is seen by polling
    other = JobStore(str(store.url.render_as_string(hide_password=False)))
    try:
        timer = threading.Timer(0.2, lambda: other.transition(job.id, ABORTED))
        timer.start()
        got = store.wait_for_change(job.id, "alice", QUEUED, 5)
        assert got.phase == ABORTED
        timer.join()
    finally:
        other.dispose()
    # final phases never block
    t0 = time.monotonic()
    assert store.wait_for_change(job.id, "alice", ABORTED, 5).phase == ABORTED
    assert time.monotonic() - t0 < 0.5
    # deleted while waiting -> JobNotFound
    job2 = new_job(store)
    timer = threading.Timer(0.2, lambda: store.delete(job2.id, "alice"))
    timer.start()
    with pytest.raises(JobNotFound):
        store.wait_for_change(job2.id, "alice", None, 5)
    timer.join()


def test_delete_and_expired_remove_files(store, tmp_path):
    job = drive_to(store, new_job(store), COMPLETED, tmp_path)
    result = tmp_path / "results" / job.id / "result.vot"
    assert result.exists()
    store.delete(job.id, "alice")
    assert not result.parent.exists()
    with pytest.raises(JobNotFound):
        store.get(job.id, "alice")

    past = store.create(
        None, {}, queue="short", execution_duration=0, destruction=utcnow() - timedelta(seconds=1)
    )
    future = new_job(store, None)
    never = store.create(None, {}, queue="short", execution_duration=0, destruction=None)
    assert [j.id for j in store.expired()] == [past.id]
    assert {j.id for j in store.expired(utcnow() + timedelta(days=30))} == {past.id, future.id}
    assert never.id not in {j.id for j in store.expired(utcnow() + timedelta(days=3650))}


# --------------------------------------------------------------------------------------------
# runner


class Recorder:
    """An ``execute`` whose behaviour each test chooses per job through ``plan``."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.started: dict[str, threading.Event] = {}
        self.release = threading.Event()
        self.plan = "ok"
        self.cancel_seen: dict[str, bool] = {}

    def __call__(self, job, progress, cancel):
        plan = self.plan
        if plan not in ("ignore-cancel", "raise-on-cancel"):
            self.started.setdefault(job.id, threading.Event()).set()
        if plan == "ok":
            self.release.wait(10)
            for i in range(1, 4):
                progress(i, 3, 1000 * i)
            return outcome_file(self.tmp_path, job.id)
        if plan == "prox":
            raise SqlError("unknown column", "no column 'foo'", line=1, column=8)
        if plan == "crash":
            return 1 / 0
        if plan in ("ignore-cancel", "raise-on-cancel"):
            out = outcome_file(self.tmp_path, job.id, "partial")
            self.started.setdefault(job.id, threading.Event()).set()
            while not cancel.wait(0.02):
                pass
            self.cancel_seen[job.id] = True
            if plan == "raise-on-cancel":
                raise RuntimeError("cancelled")
            return out
        raise AssertionError(plan)


@pytest.fixture
def recorder(tmp_path):
    rec = Recorder(tmp_path)
    yield rec
    rec.release.set()


@pytest.fixture
def make_runner(store, recorder):
    runners = []

    def make(**kwargs):
        kwargs.setdefault("queues", {"short": 60, "long": 0})
        kwargs.setdefault("sweep_seconds", 60)
        runner = JobRunner(store, recorder, **kwargs)
        runners.append(runner)
        return runner

    yield make
    recorder.release.set()
    for r in runners:
        r.shutdown(wait=True)


def test_runner_success_and_run_is_synchronous(store, recorder, make_runner):
    runner = make_runner()
    job = new_job(store)
    ran = runner.run(job.id, "alice")
    assert ran.phase == QUEUED  # returned only after QUEUED was stored
    assert store.get(job.id, "alice").phase in (QUEUED, EXECUTING)
    assert recorder.started.setdefault(job.id, threading.Event()).wait(5)
    assert store.get(job.id, "alice").phase == EXECUTING
    with pytest.raises(PhaseError, match="cannot RUN a job in phase EXECUTING"):
        runner.run(job.id, "alice")
    recorder.release.set()
    done = wait_final(store, job.id, "alice")
    assert done.phase == COMPLETED, done.error_message
    assert done.result_rows == 3 and done.overflow and done.result_size == len("<VOTABLE/>")
    assert (done.progress_done, done.progress_total, done.progress_rows) == (3, 3, 3000)
    assert done.start_time is not None and done.end_time >= done.start_time
    with pytest.raises(JobNotFound):
        runner.run(job.id, "bob")


def test_runner_prox_error_and_crash(store, recorder, make_runner):
    runner = make_runner()
    recorder.plan = "prox"
    job = new_job(store)
    runner.run(job.id, "alice")
    done = wait_final(store, job.id, "alice")
    assert (
        done.phase == ERROR
        and done.error_message == "SQL unknown column error at line 1, column 8: no column 'foo'"
    )

    recorder.plan = "crash"
    job = new_job(store)
    runner.run(job.id, "alice")
    done = wait_final(store, job.id, "alice")
    assert done.phase == ERROR
    assert done.error_message == "internal error: ZeroDivisionError: division by zero"


@pytest.mark.parametrize("plan", ["ignore-cancel", "raise-on-cancel"])
def test_runner_abort_while_executing(store, recorder, make_runner, tmp_path, plan):
    runner = make_runner(results_dir=tmp_path / "results")
    recorder.plan = plan
    job = new_job(store)
    runner.run(job.id, "alice")
    assert recorder.started.setdefault(job.id, threading.Event()).wait(5)
    partial = tmp_path / "results" / job.id / "result.vot"
    assert partial.exists()
    with pytest.raises(JobNotFound):
        runner.abort(job.id, "bob")
    aborted = runner.abort(job.id, "alice")
    assert aborted.phase == ABORTED
    deadline = time.monotonic() + 5
    while partial.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert recorder.cancel_seen.get(job.id)
    assert not partial.exists()
    runner.shutdown(wait=True)  # every worker thread has returned: nothing can change the job any more
    final = store.get(job.id, "alice")
    assert final.phase == ABORTED and final.result_path is None and final.error_message is None
    with pytest.raises(PhaseError, match="cannot ABORT a job in phase ABORTED"):
        runner.abort(job.id, "alice")


def test_runner_abort_pending_and_queued(store, recorder, make_runner):
    runner = make_runner(workers_per_queue={"short": 1})
    a = new_job(store)
    assert runner.abort(a.id, "alice").phase == ABORTED
    # one worker: the second job waits QUEUED behind the first
    first, second = new_job(store), new_job(store)
    runner.run(first.id, "alice")
    runner.run(second.id, "alice")
    assert recorder.started.setdefault(first.id, threading.Event()).wait(5)
    assert store.get(second.id, "alice").phase == QUEUED  # the only worker is busy with the first
    assert runner.abort(second.id, "alice").phase == ABORTED
    recorder.release.set()
    assert wait_final(store, first.id, "alice").phase == COMPLETED
    # one worker takes jobs in order: once a third job has run, the aborted second had its turn
    third = new_job(store)
    runner.run(third.id, "alice")
    assert wait_final(store, third.id, "alice").phase == COMPLETED
    assert second.id not in recorder.started
    assert store.get(second.id, "alice").phase == ABORTED


def test_runner_timeout(store, recorder, make_runner, tmp_path):
    runner = make_runner(queues={"short": 1, "medium": 3600, "long": 0}, results_dir=tmp_path / "results")
    recorder.plan = "ignore-cancel"
    job = new_job(store)
    t0 = time.monotonic()
    runner.run(job.id, "alice")
    done = wait_final(store, job.id, "alice")
    elapsed = time.monotonic() - t0
    assert done.phase == ERROR and 0.9 <= elapsed < 4
    assert done.error_message == (
        "execution time limit of 1 s exceeded (queue 'short'); resubmit with QUEUE=medium"
    )
    # the worker returns its (partial) result later: it must not overwrite ERROR, and is removed
    partial = tmp_path / "results" / job.id / "result.vot"
    deadline = time.monotonic() + 5
    while partial.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not partial.exists()
    assert store.get(job.id, "alice").phase == ERROR

    # the job's own (shorter) execution duration applies too
    job2 = store.create("alice", {}, queue="long", execution_duration=1, destruction=None)
    runner.run(job2.id, "alice")
    done = wait_final(store, job2.id, "alice")
    assert done.error_message == (
        "execution time limit of 1 s exceeded (queue 'long'); resubmit with a larger EXECUTIONDURATION"
    )
    runner.shutdown(wait=True)  # every worker has returned: the late results did not overwrite ERROR
    assert store.get(job.id, "alice").phase == ERROR
    assert store.get(job2.id, "alice").phase == ERROR


def test_timeout_message_names_the_next_longer_queue(store, make_runner):
    from proxcompute.service.job_runner import _Running

    runner = make_runner(queues={"short": 60, "medium": 3600, "long": 0, "tiny": 5})
    msg = runner._timeout_message(_Running("x", "short", 60, None, threading.Event()))
    assert msg == "execution time limit of 60 s exceeded (queue 'short'); resubmit with QUEUE=medium"
    msg = runner._timeout_message(_Running("x", "medium", 3600, None, threading.Event()))
    assert msg.endswith("resubmit with QUEUE=long")
    runner2 = make_runner(queues={"short": 60, "long": 600})
    msg = runner2._timeout_message(_Running("x", "long", 600, None, threading.Event()))
    assert msg == "execution time limit of 600 s exceeded (queue 'long')"


def test_runner_unknown_queue(store, make_runner):
    runner = make_runner()
    job = store.create("alice", {}, queue="nope", execution_duration=0, destruction=None)
    with pytest.raises(PhaseError, match="unknown queue 'nope'"):
        runner.run(job.id, "alice")
    assert store.get(job.id, "alice").phase == PENDING


def test_runner_destruction_sweep(store, recorder, make_runner, tmp_path):
    runner = make_runner(sweep_seconds=0.1, results_dir=tmp_path / "results")
    # a completed job, past its destruction time
    recorder.release.set()
    upload = tmp_path / "uploads" / "t1.vot"
    upload.parent.mkdir()
    upload.write_text("x")
    job = store.create(
        "alice",
        {"UPLOAD": "t1,param:t1"},
        queue="short",
        execution_duration=0,
        destruction=None,
        uploads={"t1": str(upload)},
    )
    runner.run(job.id, "alice")
    assert wait_final(store, job.id, "alice").phase == COMPLETED
    result_dir = tmp_path / "results" / job.id
    assert result_dir.exists()
    # a running job that also expires: it is stopped and removed
    recorder.plan = "ignore-cancel"
    running = new_job(store)
    runner.run(running.id, "alice")
    assert recorder.started.setdefault(running.id, threading.Event()).wait(5)
    keep = new_job(store)
    past = utcnow() - timedelta(seconds=1)
    store.set_destruction(job.id, "alice", past)
    store.set_destruction(running.id, "alice", past)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(store.list("alice")) > 1:
        time.sleep(0.05)
    assert [j.id for j in store.list("alice")] == [keep.id]
    assert not result_dir.exists() and not upload.exists()
    deadline = time.monotonic() + 5
    while not recorder.cancel_seen.get(running.id) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert recorder.cancel_seen.get(running.id)
    while (tmp_path / "results" / running.id / "result.vot").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not (tmp_path / "results" / running.id / "result.vot").exists()


def test_runner_delete_running_job(store, recorder, make_runner, tmp_path):
    runner = make_runner(results_dir=tmp_path / "results")
    recorder.plan = "raise-on-cancel"
    job = new_job(store)
    runner.run(job.id, "alice")
    assert recorder.started.setdefault(job.id, threading.Event()).wait(5)
    with pytest.raises(JobNotFound):
        runner.delete(job.id, "bob")
    runner.delete(job.id, "alice")
    with pytest.raises(JobNotFound):
        store.get(job.id, "alice")
    deadline = time.monotonic() + 5
    while not recorder.cancel_seen.get(job.id) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert recorder.cancel_seen.get(job.id)
    while (tmp_path / "results" / job.id).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not (tmp_path / "results" / job.id).exists()


def test_restart_marks_interrupted_jobs_error(db_url, tmp_path, recorder):
    s1 = JobStore(db_url)
    executing = drive_to(s1, new_job(s1), EXECUTING, tmp_path)
    queued = drive_to(s1, new_job(s1, None), QUEUED, tmp_path)
    pending = new_job(s1)
    completed = drive_to(s1, new_job(s1), COMPLETED, tmp_path)
    s1.dispose()  # the server died

    s2 = JobStore(db_url)
    runner = JobRunner(s2, recorder, queues={"short": 60})
    try:
        for jid, owner in ((executing.id, "alice"), (queued.id, None)):
            job = s2.get(jid, owner)
            assert job.phase == ERROR and job.error_message == RESTART_MESSAGE
            assert job.end_time is not None
        assert s2.get(pending.id, "alice").phase == PENDING
        assert s2.get(completed.id, "alice") == completed
        # the restarted server runs the pending job normally
        recorder.release.set()
        runner.run(pending.id, "alice")
        assert wait_final(s2, pending.id, "alice").phase == COMPLETED
    finally:
        runner.shutdown()
        s2.dispose()


def test_shutdown_ends_running_jobs_in_error(store, recorder, make_runner):
    runner = make_runner()
    recorder.plan = "ignore-cancel"
    job = new_job(store)
    runner.run(job.id, "alice")
    assert recorder.started.setdefault(job.id, threading.Event()).wait(5)
    runner.shutdown(wait=True)
    done = store.get(job.id, "alice")
    assert done.phase == ERROR and done.error_message == SHUTDOWN_MESSAGE
    with pytest.raises(RuntimeError):
        runner.run(new_job(store).id, "alice")


def test_run_abort_finish_race_with_runner(store, recorder, make_runner, tmp_path):
    """RUN then an immediate ABORT while the worker may be finishing: a consistent end state."""
    runner = make_runner(workers_per_queue={"short": 4})
    recorder.release.set()
    jobs = [new_job(store) for _ in range(12)]
    for i, job in enumerate(jobs):
        runner.run(job.id, "alice")
        if i % 3:
            time.sleep(0.001 * (i % 4))
            try:
                runner.abort(job.id, "alice")
            except PhaseError:
                pass  # already completed
    for job in jobs:
        done = wait_final(store, job.id, "alice")
        result = tmp_path / "results" / job.id / "result.vot"
        if done.phase == COMPLETED:
            assert result.exists() and done.result_path == str(result)
        else:
            assert done.phase == ABORTED and done.result_path is None
            deadline = time.monotonic() + 5
            while result.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not result.exists()


def test_portal_sessions_in_the_job_database(store, monkeypatch):
    """The portal's sessions: stored by digest, expiring, their anonymous jobs kept, the oldest swept past the cap."""
    from proxcompute.service.portal import sessions as sessions_mod

    clock = [1_000_000.0]
    monkeypatch.setattr(sessions_mod.time, "time", lambda: clock[0])
    sessions = sessions_mod.SessionStore(store, idle_seconds=600, max_age_seconds=3600, max_sessions=4)
    a = sessions.new()
    assert sessions.get(a.id).csrf == a.csrf and sessions.get(a.id).user is None
    assert sessions.get("not-a-session") is None and sessions.get(None) is None
    sessions.add_job(a, "job1")
    sessions.add_job(a, "job2")
    sessions.forget_job(a, "job1")
    assert sessions.get(a.id).job_ids == {"job2"}  # read back from the database

    b = sessions.rotate(a, "alice")
    assert sessions.get(a.id) is None and b.id != a.id and b.csrf != a.csrf
    assert sessions.get(b.id).user == "alice"
    clock[0] += 599  # used within the idle time: alive, and its last use recorded
    assert sessions.get(b.id) is not None
    clock[0] += 599
    assert sessions.get(b.id) is not None
    clock[0] += 601  # idle too long
    assert sessions.get(b.id) is None
    c = sessions.new("bob")
    for _ in range(8):  # used every 500 s: never idle, but older than max_age at the end
        clock[0] += 500
        alive = sessions.get(c.id)
    assert alive is None

    clock[0] += 10_000
    made = []
    for _ in range(6):  # more than max_sessions: the sweep keeps the most recently used half
        clock[0] += 61
        made.append(sessions.new())
    assert 2 <= len(sessions) <= 4
    assert sessions.get(made[-1].id) is not None and sessions.get(made[0].id) is None

