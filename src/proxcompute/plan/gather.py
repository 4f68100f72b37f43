"""A query that cannot run partition by partition, as a plan source.

Subqueries, CTEs, set operations and joins that are neither positional nor on columns run
as one DuckDB query over their inputs, each brought whole into one place. As a
:class:`~proxcompute.plan.source.Source` with a single pseudo-partition, such a query is an
ordinary plan (``Scan`` of a :class:`GatherSource`): :mod:`proxcompute.execute` runs it like
any other, computing each input's plan with the reader, and ``explain()`` shows the inputs'
plans and the DuckDB query.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from proxcompute.plan.nodes import PlanNode, render_tree
from proxcompute.plan.optimizer import optimize
from proxcompute.plan.source import Source
from proxcompute.storage import PartitionPixel

__all__ = ["GATHER_PIXEL", "GatherSource", "unique_names"]

GATHER_PIXEL = PartitionPixel(0, 0)
"""The single pseudo-partition of a :class:`GatherSource` (it stands for the whole result)."""


def unique_names(names: list[str]) -> list[str]:
    """``names`` with repeats renamed ``name_2``, ``name_3``, ... (first come keeps its name).

    >>> unique_names(["id", "ra", "id", "id"])
    ['id', 'ra', 'id_2', 'id_3']
    """
    out: list[str] = []
    for name in names:
        new, k = name, 2
        while new in out:
            new = f"{name}_{k}"
            k += 1
        out.append(new)
    return out


class GatherSource(Source):
    """The rows of one DuckDB query ``sql`` over whole inputs.

    Parameters
    ----------
    inputs
        Table name in ``sql`` -> the plan that produces it, or an Arrow table (TAP_SCHEMA,
        uploads).
    sql
        The DuckDB query over those names.
    schema
        The query's output schema (from running it on the inputs' empty tables). Repeated
        names (``SELECT *`` over a join) get ``_2``, ``_3``, ... as the select-list names do.
    """

    catalog_type = "object"

    def __init__(self, inputs: Mapping[str, PlanNode | pa.Table], sql: str, schema: pa.Schema) -> None:
        self.inputs = {k: v if isinstance(v, pa.Table) else optimize(v) for k, v in inputs.items()}
        self.sql = sql
        self.schema = pa.schema([f.with_name(n) for f, n in zip(schema, unique_names(schema.names), strict=True)])
        self.name = "query"
        self.ra_column, self.dec_column = "ra", "dec"
        self.pixels = (GATHER_PIXEL,)
        self.total_rows = -1

    def describe(self) -> str:
        return f"one DuckDB query over {len(self.inputs)} input(s) brought whole into one place, not distributed"

    def explain_inputs(self) -> list[str]:
        """Each input's plan (or table) and the DuckDB query, for ``explain()``."""
        lines = []
        for name, value in self.inputs.items():
            if isinstance(value, pa.Table):
                lines.append(f"input {name}: a table of {value.num_rows:,} rows [{', '.join(value.column_names)}]")
            else:
                lines.append(f"input {name}:")
                lines += ["  " + line for line in render_tree(value).splitlines()]
        lines.append(f"query (DuckDB over the inputs): {self.sql}")
        return lines
