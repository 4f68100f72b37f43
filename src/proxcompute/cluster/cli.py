"""``proxcompute cluster …``: list and show cluster profiles.

The lead wires this with ``app.add_typer(cluster_app, name="cluster")``; errors are
:class:`~proxcompute.cluster.ClusterError` (a ProxError) and print as one line.
"""

from __future__ import annotations

import typer
import yaml
from rich.console import Console
from rich.table import Table

from proxcompute.cluster.backends import job_script
from proxcompute.cluster.spec import JOBQUEUE_BACKENDS, list_profiles, load_profile

__all__ = ["cluster_app"]

cluster_app = typer.Typer(
    help="Cluster profiles: local, SLURM, PBS, SGE, dask-gateway.", no_args_is_help=True
)


@cluster_app.command("list")
def list_cmd() -> None:
    """List the known cluster profiles and the file each comes from."""
    table = Table(title="cluster profiles")
    for col in ("name", "backend", "workers", "cores", "memory", "walltime", "source"):
        table.add_column(col, overflow="fold")
    for name, spec in list_profiles().items():
        if spec.adaptive:
            workers = f"{spec.adaptive[0]}–{spec.adaptive[1]}"
        else:
            workers = "per core" if spec.workers is None else str(spec.workers)
        table.add_row(
            name,
            spec.backend,
            workers,
            str(spec.cores),
            spec.memory_str or "auto",
            spec.walltime_str or "-",
            spec.source,
        )
    Console(width=200).print(table)


@cluster_app.command("show")
def show_cmd(profile: str = typer.Argument(..., help="profile name, e.g. local or slurm")) -> None:
    """Show a resolved profile and, for batch back ends, the job script it would submit."""
    spec = load_profile(profile)
    typer.echo(yaml.safe_dump(spec.to_dict(), sort_keys=False).rstrip())
    if spec.backend in JOBQUEUE_BACKENDS:
        typer.echo("\n# job script (not submitted):")
        typer.echo(job_script(spec).rstrip())
