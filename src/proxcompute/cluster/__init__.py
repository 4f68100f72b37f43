"""Cluster profiles and the Dask clusters they start: local, SLURM, PBS, SGE, dask-gateway.

>>> from proxcompute.cluster import load_profile, start_cluster
>>> with start_cluster(load_profile("local", workers=2)) as client:  # doctest: +SKIP
...     client.submit(sum, [1, 1]).result()

Profiles are YAML files (see ``docs/clusters.md``); a profile is resolved once into a frozen
:class:`ClusterSpec` and validated against its limits before anything is started.
"""

import sys
import types
from typing import Any

from proxcompute.cluster._handle import Cluster, cluster, current
from proxcompute.cluster.backends import job_script, start_cluster
from proxcompute.cluster.spec import (
    ClusterError,
    ClusterSpec,
    list_profiles,
    load_profile,
    parse_memory,
    parse_walltime,
    validate,
)

__all__ = [
    "Cluster",
    "ClusterError",
    "ClusterSpec",
    "cluster",
    "current",
    "job_script",
    "list_profiles",
    "load_profile",
    "parse_memory",
    "parse_walltime",
    "start_cluster",
    "validate",
]


cluster.current = current  # proxcompute.cluster.current() whichever of the two proxcompute.cluster is


class _CallableModule(types.ModuleType):
    """``proxcompute.cluster`` is both this package and the :func:`cluster` function."""

    def __call__(self, profile: str = "local", **overrides: Any) -> Cluster:
        return cluster(profile, **overrides)


sys.modules[__name__].__class__ = _CallableModule
