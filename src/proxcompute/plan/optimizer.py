"""Run the optimizer rules, in order; each can be switched off with :class:`OptFlags`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

from proxcompute.plan.nodes import PlanNode
from proxcompute.plan.rules import (
    filters_into_scan,
    fuse_top_n,
    prune_partitions,
    push_filters,
    push_projection,
)

__all__ = ["RULES", "OptFlags", "optimize"]

RULES: tuple[tuple[str, Callable[[PlanNode], PlanNode]], ...] = (
    ("push_filters", push_filters),
    ("filters_into_scan", filters_into_scan),
    ("prune_partitions", prune_partitions),
    ("push_projection", push_projection),
    ("fuse_top_n", fuse_top_n),
)
"""Rules in the order they run: ``(name, rule)``."""


@dataclass(frozen=True)
class OptFlags:
    """Which rules run (all by default); a rule switched off never changes the result."""

    push_filters: bool = True
    filters_into_scan: bool = True
    prune_partitions: bool = True
    push_projection: bool = True
    fuse_top_n: bool = True

    @classmethod
    def none(cls) -> OptFlags:
        """Every rule off: the plan runs exactly as written."""
        return cls(**{f.name: False for f in fields(cls)})


def optimize(plan: PlanNode, flags: OptFlags | None = None) -> PlanNode:
    """Apply the enabled :data:`RULES` to ``plan`` and return the optimized plan."""
    flags = flags or OptFlags()
    for name, rule in RULES:
        if getattr(flags, name):
            plan = rule(plan)
    return plan
