"""clusters/slurm/stop_slurm.sh cancels only the jobs proxcompute submitted, not every job of the user.

squeue and scancel are replaced by scripts on PATH that print a queue and record what is
cancelled; STOP_SLURM_JOBS_ONLY=1 leaves any real SLURM daemons on the machine running.
"""

import os
import subprocess
from pathlib import Path

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
