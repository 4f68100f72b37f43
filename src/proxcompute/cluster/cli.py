"""``proxcompute cluster …``: list/show profiles; up/status/down a cluster.

The lead wires this with ``app.add_typer(cluster_app, name="cluster")``; errors are
:class:`~proxcompute.cluster.ClusterError` (a ProxError) and print as one line.
"""

from __future__ import annotations

import os

import typer
import yaml
from rich.console import Console
from rich.table import Table

from proxcompute.cluster.backends import job_script
from proxcompute.cluster.spec import JOBQUEUE_BACKENDS, ClusterError, list_profiles, load_profile

__all__ = ["cluster_app"]

cluster_app = typer.Typer(
    help="Cluster profiles (local, SLURM, PBS, SGE, dask-gateway) and clusters started from them.",
    no_args_is_help=True,
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


@cluster_app.command("up")
def up_cmd(
    profile: str = typer.Argument("local", help="profile name, e.g. local or slurm"),
    workers: int = typer.Option(None, "--workers", help="number of workers (default: the profile's)"),
) -> None:
    """Start a cluster and keep it running until Ctrl-C or `proxcompute cluster down`.

    Other commands (``--cluster PROFILE``) and ``proxcompute.cluster(PROFILE)`` join it.
    """
    import signal
    import threading

    from proxcompute.cluster._handle import Cluster
    from proxcompute.cluster._state import forget, live_entries, record

    if profile in live_entries():
        entry = live_entries()[profile]
        raise ClusterError(f"profile {profile!r} is already up (pid {entry['pid']}, {entry['scheduler']})")
    overrides = {} if workers is None else {"workers": workers}
    stop = threading.Event()
    console = Console(stderr=True)
    console.print(f"starting cluster profile {profile!r} ...")
    handle = Cluster(load_profile(profile, **overrides), join=False)
    try:
        client = handle.client
        n = handle.spec.workers or 0
        if n and not handle.spec.adaptive:
            client.wait_for_workers(n, timeout=600)
        link = _proxied(client.dashboard_link)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # Ctrl-C during start-up: KeyboardInterrupt
            signal.signal(sig, lambda *_: stop.set())
        record(profile, client.scheduler.address, link, handle.spec.backend)
        typer.echo(f"scheduler: {client.scheduler.address}")
        typer.echo(f"dashboard: {link}")
        typer.echo(f"workers:   {len(client.scheduler_info().get('workers', {}))}")
        typer.echo("(Ctrl-C or `proxcompute cluster down` stops it)")
        while not stop.wait(1.0):
            pass
    finally:
        console.print(f"stopping cluster profile {profile!r} ...")
        forget(profile, os.getpid())
        handle.close()
        console.print("stopped; no workers or batch jobs left")


def _proxied(link: str | None) -> str | None:
    """The dashboard through jupyter-server-proxy when running under JupyterHub."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if not link or not prefix:
        return link
    try:
        import jupyter_server_proxy  # noqa: F401
    except ImportError:
        return link
    from urllib.parse import urlsplit

    parts = urlsplit(link)
    return f"{prefix.rstrip('/')}/proxy/{parts.port}{parts.path}"


@cluster_app.command("status")
def status_cmd() -> None:
    """Clusters started with `proxcompute cluster up` that are still running."""
    from proxcompute.cluster._state import live_entries

    entries = live_entries()
    if not entries:
        typer.echo("no cluster is up")
        return
    table = Table(title="clusters up")
    for col in ("profile", "backend", "workers", "scheduler", "dashboard", "pid"):
        table.add_column(col, overflow="fold")
    for name, e in entries.items():
        workers = "?"
        try:
            from distributed import Client

            with Client(e["scheduler"], timeout=5, set_as_default=False) as c:
                workers = str(len(c.scheduler_info().get("workers", {})))
        except Exception:  # unreachable scheduler: shown, not fatal
            workers = "unreachable"
        table.add_row(name, e.get("backend", ""), workers, e["scheduler"], str(e.get("dashboard")), str(e["pid"]))
    Console(width=200).print(table)


@cluster_app.command("down")
def down_cmd(
    profile: str = typer.Argument(None, help="profile to stop (default: every cluster that is up)"),
    timeout: float = typer.Option(120.0, help="seconds to wait for the cluster to stop"),
) -> None:
    """Stop clusters started with `proxcompute cluster up` (their batch jobs are cancelled)."""
    import signal
    import time

    from proxcompute.cluster._state import live_entries

    entries = live_entries()
    targets = [profile] if profile else list(entries)
    if profile and profile not in entries:
        raise ClusterError(f"no cluster of profile {profile!r} is up (up: {', '.join(entries) or 'none'})")
    for name in targets:
        pid = int(entries[name]["pid"])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and name in live_entries():
            time.sleep(0.2)
        if name in live_entries():
            raise ClusterError(f"cluster {name!r} (pid {pid}) did not stop within {timeout:g} s")
        typer.echo(f"{name}: stopped")
