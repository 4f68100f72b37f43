"""``proxcompute.cluster(profile, **overrides)``: start a cluster from a profile and compute on it."""

from __future__ import annotations

import atexit
import contextlib
import threading
from typing import Any

from proxcompute.cluster._state import live_entries
from proxcompute.cluster.backends import start_cluster
from proxcompute.cluster.spec import ClusterSpec, load_profile
from proxcompute.execute.scheduler import pop_client, push_client

__all__ = ["Cluster", "cluster", "current"]

_active: list[Cluster] = []
_lock = threading.Lock()


class Cluster:
    """A running Dask cluster started from a profile; every computation uses it until closed.

    Use it as a context manager (``with proxcompute.cluster("slurm") as client:``; leaving
    the block closes the cluster and cancels its batch jobs) or keep it open in a notebook
    (``c = proxcompute.cluster("local")``, then ``c.close()``; open clusters are closed at
    interpreter exit, so no batch job outlives the session). Attributes of the
    ``distributed.Client`` are available on it (``c.dashboard_link``, ``c.submit``, ...).
    """

    def __init__(self, spec: ClusterSpec, *, join: bool = True) -> None:
        self.spec = spec
        self._stack = contextlib.ExitStack()
        self.joined = None
        running = live_entries().get(spec.name) if join else None
        if running is not None:  # a `proxcompute cluster up` of this profile: use it, do not start another
            from distributed import Client

            self.client = Client(running["scheduler"], set_as_default=False, timeout=30)
            self._stack.callback(self.client.close)
            self.joined = running
        else:
            self.client = self._stack.enter_context(start_cluster(spec))
        push_client(self.client)
        with _lock:
            _active.append(self)

    @property
    def profile(self) -> str:
        """Name of the profile this cluster was started from."""
        return self.spec.name

    def close(self) -> None:
        """Stop the cluster (workers and batch jobs shut down); a joined one is only disconnected."""
        with _lock:
            if self in _active:
                _active.remove(self)
        pop_client(self.client)
        self._stack.close()

    def __enter__(self) -> Any:
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        if name in ("client", "spec", "_stack"):
            raise AttributeError(name)
        return getattr(self.client, name)

    def _workers(self) -> int:
        try:
            return len(self.client.scheduler_info().get("workers", {}))
        except Exception:  # a closed client
            return 0

    def __repr__(self) -> str:
        link = getattr(self.client, "dashboard_link", None)
        return (
            f"<proxcompute Cluster profile={self.profile!r} backend={self.spec.backend!r} "
            f"workers={self._workers()} scheduler={getattr(self.client, 'scheduler', None) and self.client.scheduler.address!r}"
            f" dashboard={link!r}>"
        )

    def _repr_html_(self) -> str:
        link = getattr(self.client, "dashboard_link", None)
        dash = f"<a href='{link}' target='_blank'>{link}</a>" if link else "no dashboard"
        return (
            f"<div><b>proxcompute cluster</b> profile <code>{self.profile}</code> "
            f"({self.spec.backend}), {self._workers()} workers, dashboard: {dash}</div>"
        )


def cluster(profile: str = "local", **overrides: Any) -> Cluster:
    """Start a cluster from a cluster profile (shipped, or your own) and make it the one computations use.

    Parameters
    ----------
    profile
        ``local`` (default), ``slurm``, ``pbs``, ``sge``, ``gateway``, ``kubernetes`` or a
        user profile (``PROXCOMPUTE_CLUSTERS``, ``~/.config/proxcompute/clusters/``).
    **overrides
        Profile settings to change (a cluster already running from ``proxcompute cluster up``
        for this profile is joined instead of starting another): ``workers``, ``cores``, ``memory`` ("4GiB"), ``walltime``,
        ``partition``/``queue``, ``account``, ``adaptive=(min, max)`` ... Checked against the
        profile's limits before anything is submitted.

    Returns
    -------
    Cluster
        A context manager whose ``with`` value is the ``distributed.Client``.

    Examples
    --------
    >>> import proxcompute as pc
    >>> with pc.cluster("local", workers=2) as client:  # doctest: +SKIP
    ...     pc.open_catalog("catalogs/gaia").where("mag < 20").count()
    """
    return Cluster(load_profile(profile, **overrides))


def current() -> Cluster | None:
    """The most recently started cluster that is still open, or None."""
    with _lock:
        return _active[-1] if _active else None


@atexit.register
def _close_all() -> None:
    for c in list(_active):
        with contextlib.suppress(Exception):
            c.close()
