"""A real single-node SLURM, installed and started by clusters/slurm/setup_slurm.sh.

Runs where the machine allows it (root and apt-get: CI does); skipped with the reason
elsewhere. A crossmatch runs on workers that SLURM starts as batch jobs through the
``slurm`` backend, and closing the cluster leaves no job in ``squeue``.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import proxcompute as pc
from proxcompute.cluster import load_profile, start_cluster
from proxcompute.synthetic import generate_catalog

SLURM_DIR = Path(__file__).resolve().parents[2] / "clusters" / "slurm"
PROFILE = """
proxcompute:
  cluster:
    slurm-test:
      backend: slurm
      workers: 2
      cores: 1
      processes: 1
      memory: 1GiB
      walltime: "00:10:00"
      partition: short
      limits:
        partitions:
          short: {{max_memory: 8GiB, max_walltime: "00:30:00", max_cores: 2}}
      jobqueue:
        interface: lo
        log_directory: {logs}
"""


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root to install and start slurmctld/slurmd/munge"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "needs apt-get (Debian) to install SLURM"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = _why_not()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"SLURM tests cannot run in CI: {reason}")
        pytest.skip(f"SLURM tests skipped: {reason}")
    started = time.perf_counter()
    proc = subprocess.run(["bash", str(SLURM_DIR / "setup_slurm.sh")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(f"SLURM up in {time.perf_counter() - started:.1f} s: {proc.stdout.strip()}")
    yield
    subprocess.run(["bash", str(SLURM_DIR / "stop_slurm.sh")], capture_output=True, text=True, timeout=120)


def _jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_crossmatch_on_slurm_workers_and_no_jobs_left(slurm, tmp_path, monkeypatch):
    profile = tmp_path / "slurm-test.yaml"
    profile.write_text(PROFILE.format(logs=tmp_path / "logs"))
    monkeypatch.setenv("PROXCOMPUTE_CLUSTERS", str(profile))
    survey = pc.from_dataframe(generate_catalog(60_000, seed=3), name="survey", max_rows=4_000)
    survey = survey.to_catalog(tmp_path / "survey")
    targets = generate_catalog(6_000, seed=4).rename(columns={"id": "tid"})
    matched = pc.crossmatch(targets, survey, radius_arcsec=600.0, ensure_margin=True)
    expected = matched.compute()
    assert len(expected) > 100

    spec = load_profile("slurm-test")
    started = time.perf_counter()
    with start_cluster(spec) as client:
        client.wait_for_workers(2, timeout=120)
        up = time.perf_counter() - started
        assert len(_jobs()) == 2  # one batch job per worker
        got = matched.compute(client=client)
        assert sorted(zip(got.tid_targets, got.id_survey, strict=True)) == sorted(
            zip(expected.tid_targets, expected.id_survey, strict=True)
        )
    print(f"2 SLURM workers up in {up:.1f} s")
    deadline = time.time() + 30
    while _jobs() and time.time() < deadline:
        time.sleep(0.2)
    assert _jobs() == []


def test_pipeline_runs_as_one_sbatch_job_in_runner_mode(slurm, tmp_path):
    """clusters/slurm/pipeline.sbatch: scheduler, pipeline and workers are the ranks of one job."""
    import sys

    df = generate_catalog(20_000, seed=8)
    (tmp_path / "raw").mkdir()
    df.to_parquet(tmp_path / "raw" / "a.parquet")
    (tmp_path / "pipe.yaml").write_text(
        "name: sbatch-pipe\n"
        "steps:\n"
        "  - name: survey\n"
        "    ingest: {inputs: [raw/a.parquet], out: catalogs/survey, max_rows: 2000}\n"
        "  - name: bright\n"
        "    sql: {query: 'SELECT COUNT(*) AS n FROM survey WHERE mag < 20', catalogs: {survey: catalogs/survey},\n"
        "          out: bright.csv}\n"
    )
    env = dict(os.environ, PROXCOMPUTE=str(Path(sys.executable).with_name("proxcompute")),
               PROXCOMPUTE_INTERFACE="lo", PROXCOMPUTE_PROGRESS="0")  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(
        ["sbatch", "--wait", f"--chdir={tmp_path}", f"--output={tmp_path}/job.log",
         str(SLURM_DIR / "pipeline.sbatch"), "pipe.yaml"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    log = (tmp_path / "job.log").read_text() if (tmp_path / "job.log").exists() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + log
    print(f"pipeline as one sbatch job: {time.perf_counter() - started:.1f} s")
    assert int((tmp_path / "bright.csv").read_text().splitlines()[1]) == int((df["mag"] < 20).sum())
    assert _jobs() == []


def test_a_job_slurm_refuses_is_reported_before_submission(slurm, tmp_path, monkeypatch):
    """A node feature SLURM does not have: its own message, raised before any job is queued."""
    profile = tmp_path / "slurm-bad.yaml"
    profile.write_text(PROFILE.format(logs=tmp_path / "logs").replace("slurm-test:", "slurm-bad:")
                       .replace("interface: lo", "interface: lo\n        job_extra_directives: ['--constraint=gpu']"))  # fmt: skip
    monkeypatch.setenv("PROXCOMPUTE_CLUSTERS", str(profile))
    with pytest.raises(pc.ProxError, match="refused the worker job before submission") as info:
        with start_cluster(load_profile("slurm-bad")):
            pass
    print(f"reported: {info.value}")
    assert _jobs() == []
