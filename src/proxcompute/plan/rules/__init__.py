"""Optimizer rules: each a pure ``Plan -> Plan`` function in its own module."""

from proxcompute.plan.rules.filters_into_scan import filters_into_scan
from proxcompute.plan.rules.fuse_top_n import fuse_top_n
from proxcompute.plan.rules.prune_partitions import prune_partitions
from proxcompute.plan.rules.push_filters import push_filters
from proxcompute.plan.rules.push_projection import push_projection

__all__ = ["filters_into_scan", "fuse_top_n", "prune_partitions", "push_filters", "push_projection"]
