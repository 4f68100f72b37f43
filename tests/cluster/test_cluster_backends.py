"""Job scripts rendered by dask-jobqueue (nothing submitted), a local cluster, the gateway guard."""

import sys

import pytest

from proxcompute.cluster import ClusterError, job_script, load_profile, start_cluster

WORKER_CMD = "-m distributed.cli.dask_worker"


def test_slurm_job_script():
    script = job_script(load_profile("slurm", account="astro", memory="4GiB", walltime="00:45:00", cores=2))
    assert "#SBATCH -p short" in script
    assert "#SBATCH -A astro" in script
    assert "#SBATCH -t 00:45:00" in script
    assert "#SBATCH --mem=4G" in script
    assert "#SBATCH --cpus-per-task=2" in script
    assert WORKER_CMD in script
    assert "--memory-limit 4.00GiB" in script


def test_slurm_gb_is_rounded_up_not_down():
    # 4GB = 3.73GiB: the job asks for at least what the worker may use.
    script = job_script(load_profile("slurm", memory="4GB"))
    assert "#SBATCH --mem=4G" in script and "--memory-limit 3.73GiB" in script


def test_pbs_job_script():
    script = job_script(
        load_profile("pbs", account="astro", partition="long", walltime="10:00:00", memory="2GiB")
    )
    assert "#PBS -q long" in script
    assert "#PBS -A astro" in script
    assert "#PBS -l walltime=10:00:00" in script
    assert "mem=2048MB" in script
    assert WORKER_CMD in script


def test_sge_job_script():
    script = job_script(load_profile("sge", account="astro", memory="2GiB"))
    assert "#$ -q short.q" in script
    assert "#$ -P astro" in script
    assert "#$ -l h_rt=00:30:00" in script
    assert "#$ -l h_vmem=2048M" in script
    assert "#$ -S /bin/bash" in script  # from the profile's jobqueue passthrough
    assert WORKER_CMD in script


def test_job_script_refuses_other_backends():
    with pytest.raises(ClusterError, match="not one of"):
        job_script(load_profile("local"))


def test_local_cluster_computes_and_closes():
    with start_cluster(load_profile("local", workers=1, processes=False)) as client:
        assert client.submit(lambda a, b: a + b, 1, 1).result() == 2
        assert len(client.scheduler_info()["workers"]) == 1
        cluster = client.cluster
    assert client.status == "closed"
    assert cluster.status.name == "closed"


def test_local_cluster_closes_on_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt):
        with start_cluster(load_profile("local", workers=1, processes=False)) as client:
            cluster = client.cluster
            raise KeyboardInterrupt
    assert cluster.status.name == "closed"


def test_gateway_without_dask_gateway_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_gateway", None)  # as if it were not installed
    with pytest.raises(ClusterError, match="pip install dask-gateway"):
        with start_cluster(load_profile("gateway")):
            pass


def test_local_cluster_with_processes():
    with start_cluster(load_profile("local", workers=1)) as client:
        assert client.submit(lambda a, b: a + b, 1, 1).result() == 2
        cluster = client.cluster
    assert cluster.status.name == "closed"


def test_jobqueue_path_scales_and_closes_on_interrupt(monkeypatch):
    """The SLURM path with dask-jobqueue's class swapped for a LocalCluster: scale, then close."""
    from distributed import LocalCluster

    from proxcompute.cluster import backends

    made = {}

    def fake_cls(**kw):
        made["kw"] = kw
        made["cluster"] = LocalCluster(n_workers=0, processes=False, dashboard_address=":0")
        return made["cluster"]

    monkeypatch.setattr(backends, "_jobqueue_class", lambda backend: fake_cls)
    with pytest.raises(KeyboardInterrupt):
        with start_cluster(load_profile("slurm", workers=1, account="astro")) as client:
            client.wait_for_workers(1, timeout=30)
            assert client.submit(lambda: 1 + 1).result() == 2
            raise KeyboardInterrupt
    kw = made["kw"]
    assert (kw["queue"], kw["account"], kw["memory"], kw["walltime"]) == (
        "short",
        "astro",
        "1GiB",
        "00:30:00",
    )
    assert kw["scheduler_options"]["dashboard_address"] == ":0"
    assert made["cluster"].status.name == "closed"
