"""Rule: move every filter below the projections and merge the predicates into one.

Filters commute with column selection (each was checked against the columns visible where
the user applied it), so the plan becomes ``[Project] -> [Filter] -> RegionFilter* -> Scan``:
at most one projection (the outermost: it defines the result), one predicate (the
conjunction of all, in the order written) and the regions in the order written.
"""

from __future__ import annotations

from proxcompute.ops.expr import And, Expr
from proxcompute.plan.nodes import Filter, PlanNode, Project, RegionFilter, Scan

__all__ = ["push_filters"]


def conjunction(predicates: list[Expr]) -> Expr:
    """``p1 and p2 and ...`` flattened (one term returns itself)."""
    terms: list[Expr] = []
    for p in predicates:
        terms.extend(p.terms if isinstance(p, And) else (p,))
    return terms[0] if len(terms) == 1 else And(tuple(terms))


def push_filters(plan: PlanNode) -> PlanNode:
    """Canonical ``[Project] -> [Filter] -> RegionFilter* -> Scan`` form of ``plan``."""
    top_columns: tuple[str, ...] | None = None
    predicates: list[Expr] = []
    regions: list = []
    node = plan
    while not isinstance(node, Scan):
        if isinstance(node, Project):
            if top_columns is None:
                top_columns = node.columns
        elif isinstance(node, Filter):
            predicates.append(node.predicate)
        elif isinstance(node, RegionFilter):
            regions.append(node.region)
        else:  # pragma: no cover - new node types must teach this rule
            return plan
        (node,) = node.children
    out: PlanNode = node
    for region in reversed(regions):
        out = RegionFilter(out, region)
    if predicates:
        out = Filter(out, conjunction(list(reversed(predicates))))
    if top_columns is not None and top_columns != tuple(out.output_columns()):
        out = Project(out, top_columns)
    return out
