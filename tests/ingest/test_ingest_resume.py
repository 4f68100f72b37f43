"""Resume after an interruption, start over without it, overwrite."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from ingest_helpers import check_catalog, write_frame

from proxcompute.errors import CatalogExistsError, IngestError, InvalidCoordinatesError
from proxcompute.ingest import _tasks, ingest

N_FILES = 6


def run(inputs, out, client, **kw):
    kw.setdefault("margin_arcsec", 0)
    kw.setdefault("show_progress", False)
    kw.setdefault("max_rows", 2_000)
    return ingest(inputs, out, client=client, **kw)


class Interrupted(RuntimeError):
    pass


def recording(monkeypatch, stage: str, log: Path, fail_on: str | None = None):
    """Replace ``_tasks.<stage>_task`` by a wrapper that logs each call and can fail one task.

    Running calls are listed in ``log/../running`` (see :func:`settle`).
    """
    original = getattr(_tasks, f"{stage}_task")
    log.mkdir(parents=True, exist_ok=True)
    running = log.parent / "running"
    running.mkdir(exist_ok=True)

    def wrapper(item, **kwargs):
        (log / item.id).touch()
        flag = running / f"{stage}-{item.id}"
        flag.touch()
        try:
            if item.id == fail_on:
                wait_for_another(stage, item.id, log, running)  # so the resume has finished tasks to skip
                raise Interrupted(f"interrupted at {stage} {item.id}")
            return original(item, **kwargs)
        finally:
            flag.unlink()

    monkeypatch.setattr(_tasks, f"{stage}_task", wrapper)


def wait_for_another(stage: str, item_id: str, log: Path, running: Path, timeout: float = 30.0) -> None:
    """Block until a task of ``stage`` other than ``item_id`` has finished (its marker is written
    inside the task, so it is on disk), or ``timeout`` seconds passed (the test's own
    assertions then say that nothing finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = {p.name.removeprefix(f"{stage}-") for p in running.glob(f"{stage}-*")}
        if calls(log) - busy - {item_id}:
            return
        time.sleep(0.01)


def calls(log: Path) -> set[str]:
    return {p.name for p in log.iterdir()} if log.exists() else set()


def work(staging: Path) -> Path:
    (run,) = staging.glob("run-*")
    return run / "work"


def markers(staging: Path, stage: str) -> set[str]:
    return {p.stem for p in (work(staging) / stage).glob("*.json")}


def settle(tmp_path: Path, timeout: float = 20.0) -> None:
    """Wait until tasks cancelled by the interruption, still running in the client's
    threads, have finished (a thread cannot be stopped)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 5 and time.monotonic() < deadline:  # idle for 5 checks in a row
        quiet = 0 if any((tmp_path / "running").glob("*")) else quiet + 1
        time.sleep(0.05)
    assert quiet >= 5, "cancelled tasks still running"


@pytest.fixture
def files(sky, write_parts):
    return write_parts(sky, n=N_FILES)


def test_resume_after_interrupted_split(files, sky, tmp_path, client, monkeypatch):
    out = tmp_path / "cat"
    staging = tmp_path / "cat.tmp-ingest"
    last = f"f{N_FILES - 1:05d}-c0000"
    with monkeypatch.context() as m:
        recording(m, "split", tmp_path / "run1", fail_on=last)
        with pytest.raises(Interrupted):
            run(files, out, client)
        settle(tmp_path)
    assert not out.exists()
    assert (staging / "manifest.json").exists() and (work(staging) / "plan.json").exists()
    assert not list((work(staging) / "scan").glob("*.hist.npz")), "merged scan histograms are kept"
    done = markers(staging, "split")
    assert last not in done
    assert done, "no split task finished before the interruption"
    # a task whose marker is lost is redone too
    lost = sorted(done)[0]
    (work(staging) / "split" / f"{lost}.json").unlink()
    done.discard(lost)

    recording(monkeypatch, "scan", tmp_path / "scan2")
    recording(monkeypatch, "split", tmp_path / "split2")
    res = run(files, out, client, resume=True)
    assert calls(tmp_path / "scan2") == set(), "the finished scan stage was redone"
    all_chunks = {f"f{i:05d}-c0000" for i in range(N_FILES)}
    assert calls(tmp_path / "split2") == all_chunks - done
    check_catalog(out, sky, name="cat", max_rows=2_000)
    assert res.rows == len(sky)
    assert not staging.exists()


def test_resume_after_interrupted_reduce(files, sky, tmp_path, client, monkeypatch):
    out = tmp_path / "cat"
    staging = tmp_path / "cat.tmp-ingest"
    with monkeypatch.context() as m:
        recording(m, "reduce", tmp_path / "run1", fail_on="p000003")
        with pytest.raises(Interrupted):
            run(files, out, client)
        settle(tmp_path)
    assert not out.exists()
    done = markers(staging, "reduce")
    assert "p000003" not in done
    n_partitions = len(json.loads((work(staging) / "plan.json").read_text())["partitions"])

    recording(monkeypatch, "split", tmp_path / "split2")
    recording(monkeypatch, "reduce", tmp_path / "reduce2")
    run(files, out, client, resume=True)
    assert calls(tmp_path / "split2") == set()
    assert calls(tmp_path / "reduce2") == {f"p{k:06d}" for k in range(n_partitions)} - done
    check_catalog(out, sky, name="cat", max_rows=2_000)


def test_resume_with_other_arguments_is_refused(files, tmp_path, client, monkeypatch):
    out = tmp_path / "cat"
    with monkeypatch.context() as m:
        recording(m, "split", tmp_path / "run1", fail_on="f00000-c0000")
        with pytest.raises(Interrupted):
            run(files, out, client)
        settle(tmp_path)
    with pytest.raises(IngestError, match="max_rows"):
        run(files, out, client, resume=True, max_rows=3_000)
    files[0].write_bytes(files[0].read_bytes())  # same content, new modification time
    with pytest.raises(IngestError, match="input files"):
        run(files, out, client, resume=True)
    with pytest.raises(IngestError, match="input files"):
        run(files[:-1], out, client, resume=True)
    assert not out.exists()
    run(files, out, client)  # without resume: starts over
    assert out.exists() and not (tmp_path / "cat.tmp-ingest").exists()


def test_resume_with_drop_invalid_reuses_the_scan(sky, tmp_path, client, monkeypatch):
    df = sky.iloc[:4_000].copy()
    df.loc[5, "dec"] = 91.0
    f = write_frame(df, tmp_path / "bad.parquet")
    out = tmp_path / "cat"
    with pytest.raises(InvalidCoordinatesError):
        run(f, out, client)
    recording(monkeypatch, "scan", tmp_path / "scan2")
    res = run(f, out, client, resume=True, drop_invalid=True)
    assert calls(tmp_path / "scan2") == set()
    assert res.dropped_rows == 1 and res.rows == 3_999


def test_without_resume_a_stale_staging_dir_is_removed(files, sky, tmp_path, client):
    staging = tmp_path / "cat.tmp-ingest"
    (staging / "run-old" / "work" / "split").mkdir(parents=True)
    (staging / "run-old" / "work" / "plan.json").write_text('{"garbage": 1}')
    (staging / "junk.bin").write_bytes(b"x")
    run(files, tmp_path / "cat", client)
    check_catalog(tmp_path / "cat", sky, name="cat", max_rows=2_000)
    assert not staging.exists()


def test_resume_without_staging_starts_fresh(files, sky, tmp_path, client):
    run(files, tmp_path / "cat", client, resume=True)
    check_catalog(tmp_path / "cat", sky, name="cat", max_rows=2_000)


def test_overwrite(sky, tmp_path, client):
    out = tmp_path / "cat"
    a = write_frame(sky.iloc[:5_000], tmp_path / "a.parquet")
    b = write_frame(sky.iloc[5_000:], tmp_path / "b.parquet")
    run(a, out, client)
    with pytest.raises(CatalogExistsError):
        run(b, out, client)
    check_catalog(out, sky.iloc[:5_000], name="cat", max_rows=2_000)
    res = run(b, out, client, overwrite=True)
    assert res.rows == len(sky) - 5_000
    check_catalog(out, sky.iloc[5_000:], name="cat", max_rows=2_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet", "cat"]


def test_failed_overwrite_keeps_the_old_catalog(sky, tmp_path, client, monkeypatch):
    out = tmp_path / "cat"
    a = write_frame(sky.iloc[:5_000], tmp_path / "a.parquet")
    run(a, out, client)
    recording(monkeypatch, "reduce", tmp_path / "log", fail_on="p000000")
    with pytest.raises(Interrupted):
        run(a, out, client, overwrite=True, max_rows=1_000)
    settle(tmp_path)
    check_catalog(out, sky.iloc[:5_000], name="cat", max_rows=2_000)


CRASH_SCRIPT = """
import os, sys, time
from pathlib import Path
from distributed import Client
from proxcompute.ingest import _tasks, ingest

files, out, crash_on = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
original = _tasks.split_task
split_dir = Path(out + ".tmp-ingest")

def crashing(chunk, **kw):
    if chunk.id == crash_on:
        deadline = time.monotonic() + 10  # let the other chunks finish, then die hard
        while len(list(split_dir.glob("run-*/work/split/*.json"))) < len(files) - 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        os._exit(17)  # no cleanup, no finally: like a kill -9 or a power cut
    return original(chunk, **kw)

_tasks.split_task = crashing
with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as c:
    ingest(files, out, client=c, max_rows=2_000, margin_arcsec=0, show_progress=False)
"""


def test_resume_after_a_hard_crash(files, sky, tmp_path, client, monkeypatch):
    import subprocess
    import sys

    out = tmp_path / "cat"
    crash_on = f"f{N_FILES - 1:05d}-c0000"
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, ",".join(map(str, files)), str(out), crash_on],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 17, proc.stderr[-2000:]
    assert not out.exists()
    done = markers(tmp_path / "cat.tmp-ingest", "split")
    assert crash_on not in done and len(done) == N_FILES - 1

    recording(monkeypatch, "scan", tmp_path / "scan2")
    recording(monkeypatch, "split", tmp_path / "split2")
    run(files, out, client, resume=True)
    assert calls(tmp_path / "scan2") == set()
    assert calls(tmp_path / "split2") == {crash_on}
    check_catalog(out, sky, name="cat", max_rows=2_000)
