"""Rule: fold ``RegionFilter`` and ``Filter`` nodes that sit on a Scan into the Scan itself.

The Scan then applies them while reading a partition, which lets later rules prune
partitions and row groups with them.
"""

from __future__ import annotations

from dataclasses import replace

from proxcompute.plan.nodes import Filter, PlanNode, RegionFilter, Scan, transform_up
from proxcompute.plan.rules.push_filters import conjunction

__all__ = ["filters_into_scan"]


def _fold(node: PlanNode) -> PlanNode:
    if isinstance(node, RegionFilter) and isinstance(node.child, Scan):
        scan = node.child
        if node.region in scan.regions:
            return scan
        return replace(scan, regions=(*scan.regions, node.region))
    if isinstance(node, Filter) and isinstance(node.child, Scan):
        scan = node.child
        preds = [scan.predicate] if scan.predicate is not None else []
        return replace(scan, predicate=conjunction([*preds, node.predicate]))
    return node


def filters_into_scan(plan: PlanNode) -> PlanNode:
    """``plan`` with filters directly above its Scan moved into it."""
    return transform_up(plan, _fold)
