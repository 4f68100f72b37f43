"""Per-partition operators on Arrow tables and numpy arrays (no dask)."""

from proxcompute.ops.coords import validated_coordinates
from proxcompute.ops.expr import (
    And,
    Arith,
    Column,
    Compare,
    Expr,
    Func,
    IsIn,
    IsNull,
    Literal,
    Neg,
    Not,
    Or,
    kind_of,
)
from proxcompute.ops.filters import apply_filters, count_matches, filter_by_ranges, region_mask
from proxcompute.ops.ranges import intersect_ranges, overlaps, ranges_mask, slice_by_ranges
from proxcompute.ops.stats import ColumnStats, may_match

__all__ = [
    "And",
    "Arith",
    "Column",
    "ColumnStats",
    "Compare",
    "Expr",
    "Func",
    "IsIn",
    "IsNull",
    "Literal",
    "Neg",
    "Not",
    "Or",
    "apply_filters",
    "count_matches",
    "filter_by_ranges",
    "intersect_ranges",
    "kind_of",
    "may_match",
    "overlaps",
    "ranges_mask",
    "region_mask",
    "slice_by_ranges",
    "validated_coordinates",
]
