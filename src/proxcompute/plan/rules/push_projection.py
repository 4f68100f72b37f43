"""Rule: read only the columns the plan needs.

The columns required above the Scan (the projection, plus what un-pushed filters use) become
the Scan's output columns; a projection sitting directly on the Scan is absorbed into it.
"""

from __future__ import annotations

from dataclasses import replace

from proxcompute.plan.nodes import Filter, PlanNode, Project, RegionFilter, Scan

__all__ = ["push_projection"]


def push_projection(plan: PlanNode) -> PlanNode:
    """``plan`` with the Scan reading only the required columns."""
    if isinstance(plan, Project) and isinstance(plan.child, Scan):
        return replace(plan.child, columns=plan.columns)
    required = set(plan.output_columns())
    node = plan
    while not isinstance(node, Scan):
        if isinstance(node, Project):
            required = set(node.columns)
        elif isinstance(node, Filter):
            required |= node.predicate.columns()
        elif isinstance(node, RegionFilter):
            required |= {node.source.ra_column, node.source.dec_column}
        else:  # a barrier (user function, aggregate): columns never move through it
            return plan
        (node,) = node.children
    scan = node
    available = scan.output_columns()
    cols = tuple(c for c in available if c in required)
    if cols == tuple(available):
        return plan
    new_scan = replace(scan, columns=cols)

    def rebuild(n: PlanNode) -> PlanNode:
        return new_scan if isinstance(n, Scan) else n.with_child(rebuild(n.children[0]))

    return rebuild(plan)
