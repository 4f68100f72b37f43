"""A worker SIGKILLed in the middle of a crossmatch, a SQL aggregate or a TAP job.

Either the result equals the one without the kill (Dask reruns the lost tasks; checked pair
for pair against astropy and pandas), or, when Dask gives the task up
(``distributed.scheduler.allowed-failures``), a :class:`~proxcompute.errors.WorkerLostError`
naming the partition: raised in Python, one line from the CLI, an ERROR job in TAP, and no
catalog published. Never fewer rows.

The kill is driven by an event, not a sleep: a scheduler plugin (the local cluster's
scheduler runs in this process) SIGKILLs a busy worker when the first partition task of the
computation has finished, while the other tasks are in flight or queued.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord
from distributed.diagnostics.plugin import SchedulerPlugin

import proxcompute as pc
from proxcompute.cli import main
from proxcompute.ingest import ingest
from proxcompute.synthetic import generate_catalog

RADIUS_ARCSEC = 5.0
GROUP_BY = "SELECT flag, COUNT(*) AS n, SUM(mag) AS s FROM survey GROUP BY flag"

pytestmark = pytest.mark.timeout(300)


def _survey(n: int = 40_000, seed: int = 11) -> pd.DataFrame:
    """Uniform sky plus dense clusters, both polar caps and a strip across RA = 0/360."""
    df = generate_catalog(n, seed=seed)
    rng = np.random.default_rng(seed)
    k = n // 8
    df.loc[: k - 1, "ra"] = rng.uniform(0, 360, k)
    df.loc[: k - 1, "dec"] = 90.0 - rng.uniform(0, 0.5, k)
    df.loc[k : 2 * k - 1, "ra"] = rng.uniform(0, 360, k)
    df.loc[k : 2 * k - 1, "dec"] = -90.0 + rng.uniform(0, 0.5, k)
    df.loc[2 * k : 3 * k - 1, "ra"] = rng.uniform(-0.3, 0.3, k) % 360
    df.loc[2 * k : 3 * k - 1, "dec"] = rng.uniform(-4, 4, k)
    df.loc[3 * k : 4 * k - 1, "ra"] = 150.0 + rng.normal(0, 0.05, k)
    df.loc[3 * k : 4 * k - 1, "dec"] = 2.0 + rng.normal(0, 0.05, k)
    return df


def _targets(survey: pd.DataFrame, n: int = 6_000, seed: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(survey), n)
    return pd.DataFrame(
        {
            "tid": np.arange(n),
            "ra": (survey.ra.to_numpy()[pick] + rng.normal(0, 3 / 3600, n)) % 360,
            "dec": np.clip(survey.dec.to_numpy()[pick] + rng.normal(0, 3 / 3600, n), -90, 90),
        }
    )


def _nearest_reference(targets: pd.DataFrame, survey: pd.DataFrame) -> dict[int, int]:
    t = SkyCoord(targets.ra.to_numpy() * u.deg, targets.dec.to_numpy() * u.deg)
    s = SkyCoord(survey.ra.to_numpy() * u.deg, survey.dec.to_numpy() * u.deg)
    idx, sep, _ = t.match_to_catalog_sky(s)
    ok = sep.arcsec <= RADIUS_ARCSEC
    return dict(zip(targets.tid.to_numpy()[ok].tolist(), survey.id.to_numpy()[idx[ok]].tolist(), strict=True))


def _group_by_reference(survey: pd.DataFrame) -> pd.DataFrame:
    g = survey.groupby("flag").agg(n=("mag", "size"), s=("mag", "sum")).reset_index()
    return g.sort_values("flag").reset_index(drop=True)


def _check_group_by(got: pd.DataFrame, survey: pd.DataFrame) -> None:
    want = _group_by_reference(survey)
    got = got.sort_values("flag").reset_index(drop=True)
    assert got.flag.tolist() == want.flag.tolist()
    assert got.n.astype(int).tolist() == want.n.tolist()  # no row lost
    np.testing.assert_allclose(got.s.to_numpy(float), want.s.to_numpy(), rtol=1e-9)


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    survey = _survey()
    targets = _targets(survey)
    survey.to_parquet(root / "survey.parquet", index=False)
    ingest(root / "survey.parquet", root / "catalogs" / "survey", max_rows=1_500, margin_arcsec=10.0,
           workers=1, show_progress=False)  # fmt: skip
    left = pc.from_dataframe(targets, name="targets", max_rows=200).to_catalog(root / "targets")
    assert len(left.partitions) >= 20  # enough tasks that some are in flight or queued at the kill
    return {"root": root, "survey": survey, "targets": targets, "left": left}


@pytest.fixture
def cluster(monkeypatch):
    """Two single-threaded worker processes (each under a nanny, which restarts a killed one).

    A fresh cluster per test: no test depends on the nanny of another test's victim having
    brought its replacement up (on a heavily loaded machine a restart can time out).
    """
    monkeypatch.setenv("PROXCOMPUTE_PROGRESS", "0")
    with pc.cluster("local", workers=2, cores=1, processes=True) as client:
        client.wait_for_workers(2, timeout=180)
        yield client


class KillOnFirstResult(SchedulerPlugin):
    """SIGKILL a busy worker when the first task of ``label`` finishes.

    ``label`` is a partition-task label of execute (``write``, ``sql``: keys
    ``proxcompute-<label>-<tag>-<i>``) or the name of a function run by ``map_tasks``
    (``split_task``: keys ``split_task-<uuid>``).
    """

    name = "proxcompute-test-kill-on-first-result"

    def __init__(self, scheduler, pids: dict[str, int], label: str) -> None:
        self.scheduler = scheduler
        self.pids = pids
        # a partition task of execute (proxcompute-write-<tag>-<i>), or a named task (split_task-<uuid>)
        key = label if label.endswith("_task") else rf"proxcompute-{label}-[0-9a-f]{{12}}"
        self.pattern = re.compile(rf"{key}-[0-9a-f-]+$")
        self.killed = threading.Event()
        self.victim: str | None = None
        self.victim_tasks = 0
        self.rescheduled = 0  # tasks of the victim sent back to be run again

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if not isinstance(key, str) or not self.pattern.match(key):
            return
        if self.killed.is_set():
            if start == "processing" and finish in ("released", "waiting", "queued", "no-worker"):
                self.rescheduled += 1
            return
        if finish != "memory":
            return
        busy = {addr: len(ws.processing) for addr, ws in self.scheduler.workers.items() if addr in self.pids}
        victim = max(busy, key=busy.get)
        self.victim, self.victim_tasks = victim, busy[victim]
        os.kill(self.pids[victim], signal.SIGKILL)
        self.killed.set()


@contextlib.contextmanager
def kill_a_worker(client, label: str, *, allowed_failures: int | None = None, workers: int = 2):
    """Kill a busy worker once the first ``label`` task is done; afterwards wait until the rest are idle."""
    client.wait_for_workers(workers, timeout=180)
    scheduler = client.cluster.scheduler
    pids = client.run(os.getpid)
    plugin = KillOnFirstResult(scheduler, pids, label)
    saved = scheduler.allowed_failures
    if allowed_failures is not None:
        scheduler.allowed_failures = allowed_failures
    scheduler.add_plugin(plugin)
    try:
        yield plugin
    finally:
        scheduler.remove_plugin(plugin.name)
        scheduler.allowed_failures = saved
        _wait_until_idle(client, plugin.victim)
    assert plugin.killed.is_set(), "no worker was killed: the computation did not run on the cluster"
    assert plugin.victim_tasks >= 1, "the killed worker had no task in flight"
    with pytest.raises(ProcessLookupError):
        os.kill(pids[plugin.victim], 0)


def _wait_until_idle(client, victim: str | None, timeout: float = 180.0) -> None:
    """Wait until the scheduler has dropped the killed worker and no live worker runs a task.

    A cancelled task runs to its end on its worker; the checks on what is left on disk come
    after that.
    """
    deadline = time.monotonic() + timeout
    while True:
        workers = client.scheduler_info()["workers"]
        busy = client.run(lambda dask_worker: len(dask_worker.state.executing)) if workers else {}
        if victim not in workers and not any(busy.values()):
            return
        assert time.monotonic() < deadline, f"workers still busy or the victim still listed: {busy}"
        time.sleep(0.1)


def _leftovers(directory: Path, name: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(name))


def test_crossmatch_to_catalog_with_a_killed_worker_equals_astropy(cluster, sky, tmp_path):
    survey = pc.open_catalog(sky["root"] / "catalogs" / "survey")
    with kill_a_worker(cluster, "write") as plugin:
        out = sky["left"].crossmatch(survey, radius_arcsec=RADIUS_ARCSEC).to_catalog(tmp_path / "matched")
    assert plugin.rescheduled >= 1  # the killed worker's tasks ran again elsewhere
    got = out.compute()
    pairs = dict(zip(got.tid_targets.tolist(), got.id_survey.tolist(), strict=True))
    assert len(pairs) == len(got)
    want = _nearest_reference(sky["targets"], sky["survey"])
    assert len(want) > 3_000
    assert pairs == want
    assert _leftovers(tmp_path, "matched") == ["matched"]


def test_crossmatch_given_up_raises_worker_lost_and_publishes_nothing(cluster, sky, tmp_path):
    survey = pc.open_catalog(sky["root"] / "catalogs" / "survey")
    with kill_a_worker(cluster, "write", allowed_failures=0), pytest.raises(pc.WorkerLostError) as info:
        sky["left"].crossmatch(survey, radius_arcsec=RADIUS_ARCSEC).to_catalog(tmp_path / "matched")
    assert isinstance(info.value, pc.ProxError)
    assert re.search(r"worker lost: .*write of partition Norder=\d+/Npix=\d+ died 1 time", str(info.value))
    assert info.value.worker.startswith("tcp://")
    # nothing published, and no staging directory left behind once the other worker is idle
    assert _leftovers(tmp_path, "matched") == []


def test_sql_group_by_with_a_killed_worker_equals_pandas(cluster, sky):
    root = sky["root"] / "catalogs"
    with kill_a_worker(cluster, "sql") as plugin:
        got = pc.sql(GROUP_BY, catalog_root=root).compute()
    assert plugin.rescheduled >= 1
    _check_group_by(got, sky["survey"])


def test_sql_given_up_is_one_line_from_the_cli(cluster, sky, capsys):
    root = sky["root"] / "catalogs"
    with kill_a_worker(cluster, "sql", allowed_failures=0), pytest.raises(pc.WorkerLostError, match="partition Norder="):
        pc.sql(GROUP_BY, catalog_root=root).compute()
    capsys.readouterr()
    with kill_a_worker(cluster, "sql", allowed_failures=0, workers=1):
        code = main(["sql", GROUP_BY, "--catalog-root", str(root)])  # runs on the current cluster
    assert code != 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "worker lost" in lines[0] and "partition Norder=" in lines[0], err
    assert "Traceback" not in err


def _run_job(http, query: str) -> tuple[str, str]:
    r = http.post("/async", data={"LANG": "ADQL", "QUERY": query, "PHASE": "RUN", "FORMAT": "csv"},
                  follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    job = r.headers["location"].split("/tap", 1)[1]
    phase = ""
    deadline = time.monotonic() + 120
    while phase not in ("COMPLETED", "ERROR", "ABORTED"):
        assert time.monotonic() < deadline, f"job {job} still {phase}"
        http.get(job, params={"WAIT": "10"})  # UWS blocking wait: returns when the phase changes
        phase = http.get(job + "/phase").text.strip()
    return job, phase


def test_tap_job_with_a_killed_worker_completes_or_errors_with_the_reason(cluster, sky, tmp_path):
    from starlette.testclient import TestClient

    from proxcompute.service import ServiceConfig, create_app

    config = ServiceConfig(sky["root"] / "catalogs", data_dir=tmp_path / "data")
    with TestClient(create_app(config, client=cluster), base_url="http://testserver/tap") as http:
        with kill_a_worker(cluster, "sql") as plugin:
            job, phase = _run_job(http, GROUP_BY)
        assert phase == "COMPLETED" and plugin.rescheduled >= 1
        r = http.get(job + "/results/result")
        assert r.status_code == 200
        from io import StringIO

        _check_group_by(pd.read_csv(StringIO(r.text)), sky["survey"])

        with kill_a_worker(cluster, "sql", allowed_failures=0, workers=1):  # the replacement may still be starting
            job, phase = _run_job(http, GROUP_BY)
        assert phase == "ERROR"
        error = http.get(job + "/error").text
        assert "worker lost" in error and "partition Norder=" in error, error
        assert "internal error" not in error

        # /sync writes the whole result before answering: the loss is a 4xx with the reason, not a cut body
        with kill_a_worker(cluster, "sql", allowed_failures=0, workers=1):
            r = http.post("/sync", data={"LANG": "ADQL", "QUERY": GROUP_BY, "FORMAT": "csv"})
        assert r.status_code == 400 and "worker lost" in r.text, (r.status_code, r.text)


def _exit_on_row_zero(df: pd.DataFrame) -> pd.DataFrame:
    """A user function that kills its worker on one partition, every time (as running out of memory would)."""
    if (df["id"] == 0).any():
        os._exit(1)
    return df


def test_a_task_that_kills_every_worker_is_given_up_after_dask_default_retries(cluster, sky):
    """Default allowed-failures (3): the partition's task runs on 4 workers, all die, then WorkerLostError."""
    cat = pc.open_catalog(sky["root"] / "catalogs" / "survey")
    with pytest.raises(pc.WorkerLostError) as info:
        cat.map_partitions(_exit_on_row_zero).compute()
    assert info.value.attempts == 4  # allowed-failures + 1
    # Dask blames every task the dying workers held: the one named may be a neighbour in the queue
    named = re.search(r"holding the compute of partition (Norder=\d+/Npix=\d+) died 4 time\(s\)", str(info.value))
    assert named and named.group(1) in {str(p) for p in cat.partitions}, str(info.value)


def test_ingest_with_a_killed_worker_or_given_up_then_resumed(cluster, sky, tmp_path):
    survey = sky["survey"]
    inputs = tmp_path / "raw"
    inputs.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(survey)), 8)):  # 8 split tasks: some queued at the kill
        survey.iloc[rows].to_parquet(inputs / f"part{i}.parquet", index=False)
    want = sorted(survey.id.tolist())

    with kill_a_worker(cluster, "split_task") as plugin:
        pc.ingest(inputs, tmp_path / "a", max_rows=1_500, margin_arcsec=10.0, client=cluster, show_progress=False)
    assert plugin.rescheduled >= 1
    assert sorted(pc.open_catalog(tmp_path / "a").compute()["id"].tolist()) == want

    with kill_a_worker(cluster, "split_task", allowed_failures=0), pytest.raises(pc.WorkerLostError) as info:
        pc.ingest(inputs, tmp_path / "b", max_rows=1_500, margin_arcsec=10.0, client=cluster, show_progress=False)
    assert "ingest: split task for" in str(info.value)
    assert not (tmp_path / "b").exists()  # nothing published; the finished stages are kept to resume
    pc.ingest(inputs, tmp_path / "b", max_rows=1_500, margin_arcsec=10.0, client=cluster, show_progress=False,
              resume=True)  # fmt: skip
    assert sorted(pc.open_catalog(tmp_path / "b").compute()["id"].tolist()) == want
