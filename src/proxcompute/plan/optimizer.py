"""Run the optimizer rules, in order; each can be switched off with :class:`OptFlags`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

from proxcompute.plan.nodes import Filter, PlanNode, Project, RegionFilter, Scan
from proxcompute.plan.rules import filters_into_scan, prune_partitions, push_filters, push_projection

__all__ = ["RULES", "OptFlags", "optimize"]

RULES: tuple[tuple[str, Callable[[PlanNode], PlanNode]], ...] = (
    ("push_filters", push_filters),
    ("filters_into_scan", filters_into_scan),
    ("prune_partitions", prune_partitions),
    ("push_projection", push_projection),
)
"""Rules in the order they run: ``(name, rule)``."""


@dataclass(frozen=True)
class OptFlags:
    """Which rules run (all by default); a rule switched off never changes the result."""

    push_filters: bool = True
    filters_into_scan: bool = True
    prune_partitions: bool = True
    push_projection: bool = True

    @classmethod
    def none(cls) -> OptFlags:
        """Every rule off: the plan runs exactly as written."""
        return cls(**{f.name: False for f in fields(cls)})


def optimize(plan: PlanNode, flags: OptFlags | None = None) -> PlanNode:
    """Apply the enabled :data:`RULES` to ``plan`` and return the optimized plan.

    A node the rules do not know (an aggregate, a user function) is a barrier: nothing is
    moved through it. The plan below it is optimized on its own (reading only the columns
    the node says it needs, if it says so with ``input_columns()``); the nodes above it
    stay as written.
    """
    flags = flags or OptFlags()
    if not any(getattr(flags, name) for name, _ in RULES):
        return plan
    above: list[PlanNode] = []
    node = plan
    while not isinstance(node, Scan) and isinstance(node, _RELATIONAL):
        above.append(node)
        node = node.children[0]
    if isinstance(node, Scan):
        for name, rule in RULES:
            if getattr(flags, name):
                plan = rule(plan)
        return plan
    child = node.children[0]
    need = getattr(node, "input_columns", None)
    if need is not None and flags.push_projection and tuple(need()) != tuple(child.output_columns()):
        child = Project(child, tuple(need()))
    out = node.with_child(optimize(child, flags))
    for parent in reversed(above):
        if isinstance(parent, Project) and isinstance(out, Project) and flags.push_projection:
            out = Project(out.child, parent.columns)  # the outer selection defines the columns
        else:
            out = parent.with_child(out)
    return out


_RELATIONAL = (Project, Filter, RegionFilter)
"""Nodes the rules know how to move."""
