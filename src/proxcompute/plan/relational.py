"""Relational plan nodes over a catalog plan: what SQL adds to the Python method chain.

A catalog plan (``Scan``, ``RegionFilter``, ``Filter``, ``Project``, a crossmatch Scan)
yields rows partition by partition. The nodes here sit above it:

* row by row, per partition: :class:`SqlMap` (a SELECT list and residual WHERE evaluated by
  the DuckDB operator) and :class:`Rename`;
* over all partitions, with a per-partition part and a final merge chosen by the executor
  (with :class:`~proxcompute.plan.aggregate.Aggregate`, the generic GROUP BY that sky maps
  use too, for what it can express):
  :class:`Limit` (TOP/LIMIT/OFFSET, in storage order), :class:`Sort` (ORDER BY),
  :class:`TopN` (ORDER BY with a limit; made by the ``fuse_top_n`` rule), :class:`Distinct`,
  :class:`SqlAggregate` (GROUP BY with expressions: DuckDB partial aggregates per partition,
  a DuckDB final merge) and :class:`SqlMerge` (the rest of a query over the union of the
  rows, e.g. ``COUNT(DISTINCT ...)``).

Optimizer rules treat every :class:`Operator` as a boundary: catalog rules rewrite the
catalog plan below it. Only :mod:`proxcompute.execute` decides how a node runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from proxcompute.errors import ColumnNotFoundError
from proxcompute.ops.sql_engine import SortKey
from proxcompute.plan.nodes import PlanNode, _Unary, output_schema

__all__ = [
    "Distinct",
    "Limit",
    "MergeOperator",
    "Operator",
    "Rename",
    "RowOperator",
    "Sort",
    "SortKey",
    "SqlAggregate",
    "SqlMap",
    "SqlMerge",
    "TopN",
    "catalog_plan",
    "has_operators",
    "render_operators",
]


class Operator(_Unary):
    """A node above the catalog plan (SQL's additions); rules rewrite below it."""

    def output_arrow_schema(self) -> pa.Schema:
        return output_schema(self.child)

    def output_columns(self) -> list[str]:
        return list(self.output_arrow_schema().names)


class RowOperator(Operator):
    """Works row by row inside each partition (the executor runs it with the partition)."""


class MergeOperator(Operator):
    """Needs every partition's rows: a per-partition part, then one final merge."""


def _short(sql: str, limit: int = 400) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= limit else sql[: limit - 3] + "..."


@dataclass(frozen=True, eq=False)
class SqlMap(RowOperator):
    """``sql`` (a SELECT over table ``__part``) run by DuckDB on each partition's rows.

    ``schema`` is the result's schema (bound on an empty input when compiled); ``pieces``
    are the query's row-wise parts with their positions, to point at the one that fails.
    """

    child: PlanNode
    sql: str
    schema: pa.Schema
    pieces: tuple[tuple[str, int | None, int | None], ...] = ()

    def output_arrow_schema(self) -> pa.Schema:
        return self.schema

    def label(self) -> str:
        return f"SqlMap (DuckDB, per partition): {_short(self.sql)}"


@dataclass(frozen=True, eq=False)
class Rename(RowOperator):
    """Rename columns: ``names`` pairs ``(old, new)``."""

    child: PlanNode
    names: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        available = self.child.output_columns()
        for old, _ in self.names:
            if old not in available:
                raise ColumnNotFoundError(old, available)

    def output_arrow_schema(self) -> pa.Schema:
        mapping = dict(self.names)
        schema = output_schema(self.child)
        return pa.schema([f.with_name(mapping.get(f.name, f.name)) for f in schema])

    def label(self) -> str:
        return "Rename " + ", ".join(f"{a} -> {b}" for a, b in self.names)


@dataclass(frozen=True, eq=False)
class Limit(MergeOperator):
    """The rows after the first ``offset``, at most ``n`` of them (None: all), in storage order."""

    child: PlanNode
    n: int | None
    offset: int = 0

    def label(self) -> str:
        n = "all" if self.n is None else f"{self.n:,}"
        return f"Limit {n}" + (f" offset {self.offset:,}" if self.offset else "")


def _check_keys(child: PlanNode, keys: tuple[SortKey, ...]) -> None:
    available = child.output_columns()
    for k in keys:
        if k.column not in available:
            raise ColumnNotFoundError(k.column, available)


@dataclass(frozen=True, eq=False)
class Sort(MergeOperator):
    """Order all rows by ``keys``."""

    child: PlanNode
    keys: tuple[SortKey, ...]

    def __post_init__(self) -> None:
        _check_keys(self.child, self.keys)

    def label(self) -> str:
        return "Sort by " + ", ".join(map(str, self.keys))


@dataclass(frozen=True, eq=False)
class TopN(MergeOperator):
    """The first ``n`` rows by ``keys`` after skipping ``offset``: each partition keeps its
    best ``n + offset``, the merge keeps the best of those."""

    child: PlanNode
    keys: tuple[SortKey, ...]
    n: int
    offset: int = 0

    def __post_init__(self) -> None:
        _check_keys(self.child, self.keys)

    def label(self) -> str:
        off = f" offset {self.offset:,}" if self.offset else ""
        return f"TopN {self.n:,}{off} by " + ", ".join(map(str, self.keys))


@dataclass(frozen=True, eq=False)
class Distinct(MergeOperator):
    """Distinct rows (each partition's distinct rows, then distinct over those)."""

    child: PlanNode

    def label(self) -> str:
        return "Distinct"


@dataclass(frozen=True, eq=False)
class SqlAggregate(MergeOperator):
    """GROUP BY that the generic aggregate cannot express, as DuckDB SQL.

    ``partial_sql`` (over ``__part``) runs per partition and gives ``partial_schema``;
    ``final_sql`` (over ``__partials``, their union) merges them into ``schema``.
    """

    child: PlanNode
    partial_sql: str
    final_sql: str
    schema: pa.Schema
    partial_schema: pa.Schema
    pieces: tuple[tuple[str, int | None, int | None], ...] = ()

    def output_arrow_schema(self) -> pa.Schema:
        return self.schema

    def label(self) -> str:
        return (
            f"SqlAggregate (DuckDB partial per partition: {_short(self.partial_sql)}; "
            f"DuckDB final merge: {_short(self.final_sql)})"
        )


@dataclass(frozen=True, eq=False)
class SqlMerge(MergeOperator):
    """``sql`` (over ``__partials``) run by DuckDB once, on the union of every partition's rows."""

    child: PlanNode
    sql: str
    schema: pa.Schema

    def output_arrow_schema(self) -> pa.Schema:
        return self.schema

    def label(self) -> str:
        return f"SqlMerge (DuckDB over the union of the partitions): {_short(self.sql)}"


def catalog_plan(plan: PlanNode) -> PlanNode:
    """The catalog plan below the lowest relational node (``plan`` itself when it has none)."""
    out, node = plan, plan
    while node.children:
        if isinstance(node, Operator):
            out = node.child
        (node,) = node.children
    return out


def has_operators(plan: PlanNode) -> bool:
    """Whether any relational node is in ``plan``."""
    return catalog_plan(plan) is not plan


def render_operators(plan: PlanNode, indent: str = "  ") -> str:
    """The relational nodes of ``plan`` as an indented tree, down to its catalog plan."""
    lines, node, depth, bottom = [], plan, 0, catalog_plan(plan)
    while node is not bottom:
        lines.append(f"{indent * depth}{node.label()}")
        (node,) = node.children
        depth += 1
    lines.append(f"{indent * depth}[input: the catalog plan explained below]")
    return "\n".join(lines)
