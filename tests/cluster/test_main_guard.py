"""A script starting a local cluster of processes without ``if __name__ == "__main__":``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")

UNGUARDED = """
import proxcompute as pc

def work():
    with pc.cluster("local", workers=1) as client:
        print("workers", len(client.scheduler_info()["workers"]))

work()
"""

GUARDED = """
import proxcompute as pc

def work():
    with pc.cluster("local", workers=1) as client:
        print("workers", len(client.scheduler_info()["workers"]))

if "__main__" == __name__:
    work()
"""


def _run(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PROXCOMPUTE_STATE_DIR=str(tmp_path / "state"))  # fmt: skip
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=240,
                          cwd=tmp_path)  # fmt: skip


def test_unguarded_script_gets_one_line_saying_what_to_do(tmp_path):
    proc = _run(tmp_path, UNGUARDED)
    assert proc.returncode != 0
    err = proc.stderr
    assert "Nanny failed to start" not in err and "bootstrapping phase" not in err
    last = err.strip().splitlines()[-1]
    assert "ClusterError: " in last
    assert 'under `if __name__ == "__main__":`' in last and "line 8 of" in last
    assert len(err.splitlines()) < 40  # one traceback of the user's script, not a wall of them
    assert "workers" not in proc.stdout


@pytest.mark.timeout(300)
def test_guarded_script_starts_its_cluster(tmp_path):
    proc = _run(tmp_path, GUARDED)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "workers 1" in proc.stdout
