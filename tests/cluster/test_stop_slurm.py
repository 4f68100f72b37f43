"""clusters/slurm/stop_slurm.sh cancels only the jobs proxcompute submitted, not every job of the user.

squeue and scancel are replaced by scripts on PATH that print a queue and record what is
cancelled; STOP_SLURM_JOBS_ONLY=1 leaves any real SLURM daemons on the machine running. The
daemons it stops (slurmd, slurmctld, and munged for setup_slurm.sh's ClusterName=proxci) are
`sleep` processes behind pid files in a temporary STOP_SLURM_RUN_DIR.
"""

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import psutil

SCRIPT = Path(__file__).resolve().parents[2] / "clusters" / "slurm" / "stop_slurm.sh"

QUEUE = """101 proxc-slurm
102 someone-elses-analysis
103 proxcompute-pipeline
104 proxc-local
105 interactive
"""


def test_only_our_jobs_are_cancelled(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cancelled = tmp_path / "cancelled"
    asked = tmp_path / "squeue-args"
    (bin_dir / "squeue").write_text(f"#!/bin/sh\necho \"$@\" > {asked}\ncat <<'Q'\n{QUEUE}Q\n")
    (bin_dir / "scancel").write_text(f"#!/bin/sh\nfor id in \"$@\"; do echo $id >> {cancelled}; done\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", STOP_SLURM_JOBS_ONLY="1")
    subprocess.run(["bash", str(SCRIPT)], env=env, check=True, timeout=60)
    assert sorted(cancelled.read_text().split()) == ["101", "103", "104"]
    assert f"--user={subprocess.run(['id', '-un'], capture_output=True, text=True).stdout.strip()}" in asked.read_text()


def test_nothing_of_ours_queued_cancels_nothing(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cancelled = tmp_path / "cancelled"
    (bin_dir / "squeue").write_text("#!/bin/sh\necho '7 other-job'\n")
    (bin_dir / "scancel").write_text(f"#!/bin/sh\necho called \"$@\" >> {cancelled}\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", STOP_SLURM_JOBS_ONLY="1")
    subprocess.run(["bash", str(SCRIPT)], env=env, check=True, timeout=60)
    assert not cancelled.exists()



def _detached_sleep() -> int:
    """The pid of a `sleep` that is not our child (as a daemon is not), so a kill ends it at once."""
    out = subprocess.run(["bash", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True,
                         check=True)  # fmt: skip
    return int(out.stdout)


def _ended(pid: int, timeout: float = 10.0) -> bool:
    try:
        proc = psutil.Process(pid)
        proc.wait(timeout=timeout) if proc.status() != psutil.STATUS_ZOMBIE else None
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


def _kill(pids) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _fake_daemons(tmp_path, cluster_name: str):
    """Three `sleep` processes standing in for slurmd, slurmctld and munged, with their pid files."""
    run = tmp_path / "run"
    run.mkdir()
    pids = {name: _detached_sleep() for name in ("slurmd", "slurmctld", "munged")}
    for name, pid in pids.items():
        (run / f"{name}.pid").write_text(str(pid))
    conf = tmp_path / "slurm.conf"
    conf.write_text(f"ClusterName={cluster_name}\nSlurmUser=slurm\n")
    empty_queue = tmp_path / "bin"
    empty_queue.mkdir()
    (empty_queue / "squeue").write_text("#!/bin/sh\n")
    (empty_queue / "squeue").chmod(0o755)
    env = dict(os.environ, PATH=f"{empty_queue}:{os.environ['PATH']}", STOP_SLURM_RUN_DIR=str(run),
               SLURM_CONF=str(conf), MUNGED_PIDFILE=str(run / "munged.pid"))  # fmt: skip
    return pids, run, env


def test_munged_of_our_one_node_slurm_is_stopped_too(tmp_path):
    pids, run, env = _fake_daemons(tmp_path, "proxci")
    try:
        subprocess.run(["bash", str(SCRIPT)], env=env, check=True, timeout=60)
        assert all(_ended(pid) for pid in pids.values())
        assert not list(run.iterdir())
    finally:
        _kill(pids.values())


def test_munged_of_another_slurm_is_left_running(tmp_path):
    pids, run, env = _fake_daemons(tmp_path, "production")
    try:
        subprocess.run(["bash", str(SCRIPT)], env=env, check=True, timeout=60)
        assert _ended(pids["slurmd"]) and _ended(pids["slurmctld"])
        assert psutil.Process(pids["munged"]).status() != psutil.STATUS_ZOMBIE  # not ours to stop
        assert (run / "munged.pid").exists()
    finally:
        _kill(pids.values())
