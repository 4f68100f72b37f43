"""proxcompute.cluster(profile): compute on it, current(), and `cluster up/status/down` joined by others."""

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

import proxcompute as pc
from proxcompute.catalog import from_dataframe
from proxcompute.cli import main
from proxcompute.synthetic import generate_catalog


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    d = tmp_path / "state"
    monkeypatch.setenv("PROXCOMPUTE_STATE_DIR", str(d))
    return d


@pytest.mark.timeout(300)
def test_cluster_context_makes_computations_run_on_it(state_dir):
    cat = from_dataframe(generate_catalog(30_000, seed=1), max_rows=1_000)
    want = cat.where("mag < 20").count()
    assert pc.cluster.current() is None
    with pc.cluster("local", workers=2, processes=False) as client:
        assert pc.cluster.current() is not None and pc.cluster.current().client is client
        assert "dashboard" in repr(pc.cluster.current()) and "profile='local'" in repr(pc.cluster.current())
        assert cat.where("mag < 20").count() == want
        kinds = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
        assert any(k.startswith("proxcompute-count") for k in kinds), kinds
    assert pc.cluster.current() is None
    assert cat.where("mag < 20").count() == want  # back to local threads


def test_unknown_profile_and_bad_overrides_are_refused_before_starting(state_dir):
    with pytest.raises(pc.ProxError, match="nope"):
        pc.cluster("nope")
    with pytest.raises(pc.ProxError, match="memory"):
        pc.cluster("local", memory="lots")


@pytest.mark.timeout(300)
def test_up_status_join_down(state_dir, tmp_path, capsys):
    root = tmp_path / "root"
    df = generate_catalog(20_000, seed=2)
    from_dataframe(df, name="g", max_rows=1_000).to_catalog(root / "g")
    env = dict(os.environ, PROXCOMPUTE_STATE_DIR=str(state_dir), PROXCOMPUTE_PROGRESS="0")
    up = subprocess.Popen([sys.executable, "-m", "proxcompute.cli", "cluster", "up", "local", "--workers", "2"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (state_dir / "local.json").exists():
            assert up.poll() is None, up.stdout.read()
            assert time.monotonic() < deadline, "cluster up did not start"
            time.sleep(0.2)
        entry = json.loads((state_dir / "local.json").read_text())
        assert entry["scheduler"].startswith("tcp://") and entry["pid"] == up.pid
        children = psutil.Process(up.pid).children(recursive=True)
        assert main(["cluster", "status"]) == 0
        assert "local" in capsys.readouterr().out
        # another command joins the running cluster instead of starting one
        assert main(["sql", "SELECT COUNT(*) AS n FROM g WHERE mag < 20", "--catalog-root", str(root),
                     "--cluster", "local"]) == 0  # fmt: skip
        assert str(int((df['mag'] < 20).sum())) in capsys.readouterr().out
        with pc.cluster("local") as client:
            assert client.scheduler.address == entry["scheduler"]
            kinds = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
            assert any(k.startswith("proxcompute") for k in kinds), kinds
        assert main(["cluster", "down", "local"]) == 0
        assert up.wait(timeout=60) == 0
        assert not (state_dir / "local.json").exists()
        _, alive = psutil.wait_procs(children, timeout=30)  # the workers exit with their nanny
        assert not [c for c in alive if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert main(["cluster", "down", "local"]) == 1  # nothing up: a clear error
    finally:
        if up.poll() is None:
            up.kill()
