"""The `cluster` CLI sub-app."""

from typer.testing import CliRunner

from proxcompute.cluster import ClusterError
from proxcompute.cluster.cli import cluster_app

runner = CliRunner()


def test_list():
    result = runner.invoke(cluster_app, ["list"])
    assert result.exit_code == 0, result.output
    for name in ("local", "slurm", "pbs", "sge", "gateway", "kubernetes"):
        assert name in result.output
    assert "slurm.yaml" in result.output and "1GiB" in result.output


def test_show_local():
    result = runner.invoke(cluster_app, ["show", "local"])
    assert result.exit_code == 0, result.output
    assert "backend: local" in result.output and "job script" not in result.output


def test_show_slurm_renders_job_script():
    result = runner.invoke(cluster_app, ["show", "slurm"])
    assert result.exit_code == 0, result.output
    assert "memory: 1GiB" in result.output
    assert "#SBATCH -p short" in result.output and "distributed.cli.dask_worker" in result.output


def test_show_unknown_raises_cluster_error():
    result = runner.invoke(cluster_app, ["show", "slrum"])
    assert isinstance(result.exception, ClusterError)
    assert "did you mean 'slurm'" in str(result.exception)
