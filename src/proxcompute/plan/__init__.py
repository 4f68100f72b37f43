"""Logical plans: nodes, the where() parser, optimizer rules and explain rendering (no dask)."""

from proxcompute.plan.explain import Explanation, PartitionRead, ReadSummary, render_explain
from proxcompute.plan.nodes import (
    Filter,
    PlanNode,
    Project,
    RegionFilter,
    Scan,
    find_scan,
    is_filtered,
    output_schema,
    render_tree,
    replace_source,
    transform_up,
    with_extra_columns,
)
from proxcompute.plan.optimizer import RULES, OptFlags, optimize
from proxcompute.plan.parse import parse_predicate
from proxcompute.plan.source import MemorySource, Source, StoredSource

__all__ = [
    "RULES",
    "Explanation",
    "Filter",
    "MemorySource",
    "OptFlags",
    "PartitionRead",
    "PlanNode",
    "Project",
    "ReadSummary",
    "RegionFilter",
    "Scan",
    "Source",
    "StoredSource",
    "find_scan",
    "is_filtered",
    "optimize",
    "output_schema",
    "parse_predicate",
    "render_explain",
    "render_tree",
    "replace_source",
    "transform_up",
    "with_extra_columns",
]
