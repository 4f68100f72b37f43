"""Rule: a ``Limit`` directly over a ``Sort`` becomes one ``TopN``.

Sorting everything to keep ten rows is wasteful: a ``TopN`` lets each partition keep only
its best ``n + offset`` rows, and the merge orders those few. Same rows, same order.
"""

from __future__ import annotations

from proxcompute.plan.nodes import PlanNode, transform_up
from proxcompute.plan.relational import Limit, Sort, TopN

__all__ = ["fuse_top_n"]


def _fuse(node: PlanNode) -> PlanNode:
    if isinstance(node, Limit) and node.n is not None and isinstance(node.child, Sort):
        return TopN(node.child.child, node.child.keys, node.n, node.offset)
    return node


def fuse_top_n(plan: PlanNode) -> PlanNode:
    """``plan`` with every ``Limit(Sort(x))`` replaced by ``TopN(x)``."""
    return transform_up(plan, _fuse)
