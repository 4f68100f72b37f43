"""Which Dask scheduler runs a computation: an explicit client, the current one, or a local cluster."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

__all__ = ["current_client", "local_client", "pop_client", "push_client"]

_pushed: list = []
"""Clients made current by :func:`push_client` (``proxcompute.cluster(...)``), newest last."""


def push_client(client) -> None:
    """Make ``client`` the one computations use until :func:`pop_client` (stacked)."""
    _pushed.append(client)


def pop_client(client) -> None:
    """Stop using ``client`` (pushed by :func:`push_client`)."""
    if client in _pushed:
        _pushed.remove(client)


def current_client():
    """The active ``distributed.Client`` if there is one, else None.

    A client made current by ``proxcompute.cluster(...)`` comes first, then Dask's default
    client. Whoever made a client imported ``distributed``; if it is not imported there is
    none, and we do not pay its ~0.3 s import to find that out.
    """
    for client in reversed(_pushed):
        if getattr(client, "status", "running") not in ("closed", "closing"):
            return client
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import default_client

        return default_client()
    except (ValueError, ImportError):
        return None


@contextlib.contextmanager
def local_client(workers: int | None = None, client=None, *, processes: bool = True) -> Iterator[object]:
    """Yield ``client``, or the current client, or a temporary local cluster of ``workers``.

    With ``processes`` the temporary cluster runs one single-threaded worker process per
    worker; without, one worker process-less cluster with ``workers`` threads (cheaper to
    start and lighter on memory, for work that releases the GIL). It is shut down on exit.
    """
    if client is not None:
        yield client
        return
    existing = current_client()
    if existing is not None:
        yield existing
        return
    from distributed import Client, LocalCluster

    n = int(workers or os.cpu_count() or 1)
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    cluster = LocalCluster(
        n_workers=n if processes else 1,
        threads_per_worker=1 if processes else n,
        processes=processes,
        dashboard_address=":0",  # a free port: never collide with another cluster
        silence_logs=logging.CRITICAL,
    )
    c = Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()
