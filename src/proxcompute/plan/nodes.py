"""Logical plan nodes: a tree of immutable nodes over one :class:`Scan`.

The user's method chain builds ``Project``/``Filter``/``RegionFilter`` nodes over a bare
``Scan``; optimizer rules (``proxcompute.plan.rules``) move work into the Scan (regions,
predicate, columns, pruned partitions and ``_healpix_29`` ranges). Every plan, optimized
or not, means the same rows: the executor interprets any tree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from proxcompute.errors import ColumnNotFoundError, PlanError
from proxcompute.ops.expr import Expr
from proxcompute.plan.source import Source
from proxcompute.sky import INDEX_COLUMN, Region
from proxcompute.storage import PartitionPixel

__all__ = [
    "Filter",
    "PlanNode",
    "Project",
    "RegionFilter",
    "Scan",
    "find_scan",
    "is_filtered",
    "output_schema",
    "render_tree",
    "replace_source",
    "transform_up",
    "with_extra_columns",
]


class PlanNode(ABC):
    """Base of plan nodes. Subclasses are frozen dataclasses compared by identity."""

    @property
    def children(self) -> tuple[PlanNode, ...]:
        child = getattr(self, "child", None)
        return (child,) if child is not None else ()

    def with_child(self, child: PlanNode) -> PlanNode:
        return replace(self, child=child)  # type: ignore[type-var]

    @abstractmethod
    def output_columns(self) -> list[str]:
        """Names of the columns this node produces, in order."""

    @abstractmethod
    def label(self) -> str:
        """One line describing the node (for ``explain``)."""

    source: Source
    """The source of the Scan at the bottom of the plan."""


class _Unary(PlanNode):
    """A node with one ``child``; its source is the child's."""

    child: PlanNode

    @property
    def source(self) -> Source:  # type: ignore[override]
        return find_scan(self).source


@dataclass(frozen=True, eq=False)
class Scan(PlanNode):
    """Read partitions of ``source``.

    Attributes filled by optimizer rules:

    ``columns``: the columns the scan outputs (None: all);
    ``regions``/``predicate``: filters applied while reading;
    ``pixels``: the partitions to read (None: all);
    ``ranges``: merged ``_healpix_29`` ranges outside which no row can match.
    """

    source: Source
    columns: tuple[str, ...] | None = None
    regions: tuple[Region, ...] = ()
    predicate: Expr | None = None
    pixels: tuple[PartitionPixel, ...] | None = None
    ranges: np.ndarray | None = None

    @property
    def children(self) -> tuple[PlanNode, ...]:
        return ()

    @property
    def partitions(self) -> tuple[PartitionPixel, ...]:
        """The partitions this scan reads, in storage order."""
        return self.source.pixels if self.pixels is None else self.pixels

    def output_columns(self) -> list[str]:
        return list(self.columns) if self.columns is not None else self.source.columns

    def read_columns(self) -> list[str]:
        """Columns read from storage: output plus what the pushed filters need."""
        need = list(self.output_columns())
        extra = []
        if self.regions:
            extra += [self.source.ra_column, self.source.dec_column]
        if self.predicate is not None:
            extra += sorted(self.predicate.columns())
        if self.ranges is not None:
            extra.append(INDEX_COLUMN)
        for c in extra:
            if c not in need:
                need.append(c)
        return need

    def label(self) -> str:
        n = len(self.source.pixels)
        rows = f"{self.source.total_rows:,} rows" if self.source.total_rows >= 0 else "rows unknown"
        return f"Scan {self.source.name!r} ({self.source.describe()}; {n} partitions, {rows})"


@dataclass(frozen=True, eq=False)
class RegionFilter(_Unary):
    """Keep rows inside ``region`` (on the source's coordinate columns)."""

    child: PlanNode
    region: Region

    def output_columns(self) -> list[str]:
        return self.child.output_columns()

    def label(self) -> str:
        return f"RegionFilter {self.region}"


@dataclass(frozen=True, eq=False)
class Filter(_Unary):
    """Keep rows where ``predicate`` is true."""

    child: PlanNode
    predicate: Expr

    def output_columns(self) -> list[str]:
        return self.child.output_columns()

    def label(self) -> str:
        return f"Filter {self.predicate}"


@dataclass(frozen=True, eq=False)
class Project(_Unary):
    """Keep ``columns``, in that order."""

    child: PlanNode
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        available = self.child.output_columns()
        seen = set()
        for c in self.columns:
            if c not in available:
                raise ColumnNotFoundError(c, available)
            if c in seen:
                raise PlanError(f"column {c!r} is selected twice")
            seen.add(c)

    def output_columns(self) -> list[str]:
        return list(self.columns)

    def label(self) -> str:
        return f"Project [{', '.join(self.columns)}]"


def find_scan(plan: PlanNode) -> Scan:
    """The Scan at the bottom of ``plan``."""
    node = plan
    while not isinstance(node, Scan):
        (node,) = node.children
    return node


def transform_up(plan: PlanNode, fn: Callable[[PlanNode], PlanNode]) -> PlanNode:
    """Rewrite bottom-up: ``fn`` sees each node after its child has been rewritten."""
    if isinstance(plan, Scan):
        return fn(plan)
    (child,) = plan.children
    new_child = transform_up(child, fn)
    node = plan if new_child is child else plan.with_child(new_child)
    return fn(node)


def replace_source(plan: PlanNode, source: Source) -> PlanNode:
    """The same plan over another source (e.g. a catalog's margin)."""
    return transform_up(plan, lambda n: replace(n, source=source) if isinstance(n, Scan) else n)


def is_filtered(plan: PlanNode) -> bool:
    """Whether the plan may drop rows (so the row count is unknown without computing)."""
    node: PlanNode | None = plan
    while node is not None:
        if isinstance(node, (Filter, RegionFilter)):
            return True
        if isinstance(node, Scan):
            return bool(node.regions) or node.predicate is not None or node.pixels is not None
        node = node.children[0]
    return False


def with_extra_columns(plan: PlanNode, extra: Sequence[str]) -> PlanNode:
    """``plan`` with every projection also keeping ``extra`` columns (put first).

    Used when writing a catalog, which must hold ``_healpix_29`` and the coordinates.
    """

    def widen(node: PlanNode) -> PlanNode:
        if isinstance(node, Project):
            cols = [c for c in extra if c in node.child.output_columns()]
            cols += [c for c in node.columns if c not in cols]
            return Project(node.child, tuple(cols))
        if isinstance(node, Scan) and node.columns is not None:
            cols = [c for c in extra if c in node.source.columns]
            return replace(node, columns=tuple(cols + [c for c in node.columns if c not in cols]))
        return node

    return transform_up(plan, widen)


def output_schema(plan: PlanNode) -> pa.Schema:
    """Arrow schema of the plan's result.

    A node that makes new columns (an aggregate, a user function) describes them with an
    ``output_arrow_schema()`` method; other nodes take their columns' fields from below.
    """
    own = getattr(plan, "output_arrow_schema", None)
    if own is not None:
        return own()
    schema = plan.source.schema if isinstance(plan, Scan) else output_schema(plan.children[0])
    return pa.schema([schema.field(c) for c in plan.output_columns()])


def render_tree(plan: PlanNode, indent: str = "  ") -> str:
    """The plan as an indented tree, root first."""
    lines = []
    node: PlanNode | None = plan
    depth = 0
    while node is not None:
        lines.append(f"{indent * depth}{node.label()}")
        if isinstance(node, Scan):
            lines.extend(f"{indent * (depth + 1)}{d}" for d in _scan_details(node))
            break
        node = node.children[0]
        depth += 1
    return "\n".join(lines)


def _scan_details(scan: Scan) -> list[str]:
    out = []
    inputs = getattr(scan.source, "explain_inputs", None)  # derived sources (crossmatch)
    if inputs is not None:
        out.extend(inputs())
    if scan.columns is not None:
        out.append(f"columns: {', '.join(scan.columns) if scan.columns else '(none: count only)'}")
    for r in scan.regions:
        out.append(f"region: {r}")
    if scan.predicate is not None:
        out.append(f"predicate: {scan.predicate}")
    if scan.pixels is not None:
        out.append(f"partitions: {len(scan.pixels)} of {len(scan.source.pixels)} after pruning")
    if scan.ranges is not None:
        out.append(f"_healpix_29 ranges: {len(scan.ranges)}")
    return out
