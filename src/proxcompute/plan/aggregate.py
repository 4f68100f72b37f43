"""The ``Aggregate`` plan node: group rows by keys and reduce columns, exactly across partitions.

One aggregation engine for every front: ``Catalog.skymap`` builds an :class:`Aggregate`
keyed by a :class:`HealpixKey` (the NESTED pixel at an order), and SQL ``GROUP BY`` compiles
to the same node. The executor computes a partial state per partition and merges them
(:mod:`proxcompute.ops.aggregate`); only :mod:`proxcompute.execute` decides how.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from proxcompute.errors import ColumnNotFoundError, PlanError
from proxcompute.ops.aggregate import (
    AGG_FUNCS,
    Aggregation,
    AggSpec,
    HealpixKey,
    aggregate_schema,
    check_order,
    is_numeric,
    key_name,
)
from proxcompute.plan.nodes import PlanNode, _Unary, output_schema
from proxcompute.sky import INDEX_COLUMN

__all__ = ["AGG_FUNCS", "AggSpec", "Aggregate", "HealpixKey", "check_order", "key_name"]


@dataclass(frozen=True, eq=False)
class Aggregate(_Unary):
    """Group the child's rows by ``keys`` and compute ``aggregates`` per group.

    Output: one row per non-empty group, the key columns then the aggregate columns. With
    no keys, one row for the whole input. Checked when built: unknown columns raise
    :class:`~proxcompute.errors.ColumnNotFoundError`, non-numeric columns (other than for
    ``count``) and duplicate output names raise :class:`~proxcompute.errors.PlanError`.

    Examples
    --------
    >>> from proxcompute.plan import MemorySource, Scan
    >>> from proxcompute.synthetic import generate_catalog
    >>> scan = Scan(MemorySource.from_pandas(generate_catalog(1_000, seed=1), name="c"))
    >>> agg = Aggregate(scan, (HealpixKey(3),), (AggSpec("n", "count"), AggSpec("m", "mean", "mag")))
    >>> agg.output_columns()
    ['pixel', 'n', 'm']
    >>> agg.label()
    'Aggregate by healpix(3) AS pixel: count(*) AS n, mean(mag) AS m'
    """

    child: PlanNode
    keys: tuple[str | HealpixKey, ...]
    aggregates: tuple[AggSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(self.keys))
        object.__setattr__(self, "aggregates", tuple(self.aggregates))
        if not self.aggregates and not self.keys:
            raise PlanError("an aggregate needs at least one key or one aggregate")
        schema = output_schema(self.child)
        available = schema.names
        for key in self.keys:
            col = INDEX_COLUMN if isinstance(key, HealpixKey) else key
            if not isinstance(key, HealpixKey | str):
                raise PlanError(f"a group key is a column name or a HealpixKey, got {key!r}")
            if col not in available:
                raise ColumnNotFoundError(col, available)
        for spec in self.aggregates:
            if spec.column is None:
                continue
            if spec.column not in available:
                raise ColumnNotFoundError(spec.column, available)
            if spec.func != "count" and not is_numeric(schema.field(spec.column).type):
                raise PlanError(
                    f"{spec.func}() needs a numeric column; {spec.column!r} is {schema.field(spec.column).type}"
                )
        names = [key_name(k) for k in self.keys] + [a.name for a in self.aggregates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise PlanError(f"output column(s) named twice in the aggregate: {', '.join(dupes)}")

    @property
    def healpix_key(self) -> HealpixKey | None:
        """The key when the only key is a :class:`HealpixKey` (a sky map), else None."""
        if len(self.keys) == 1 and isinstance(self.keys[0], HealpixKey):
            return self.keys[0]
        return None

    def aggregation(self) -> Aggregation:
        """What the executor computes (keys, aggregates and the child's schema)."""
        return Aggregation(self.keys, self.aggregates, output_schema(self.child))

    def input_columns(self) -> list[str]:
        """Columns of the child the aggregation reads."""
        cols: list[str] = []
        for key in self.keys:
            cols.append(INDEX_COLUMN if isinstance(key, HealpixKey) else key)
        cols += [a.column for a in self.aggregates if a.column is not None]
        return list(dict.fromkeys(cols))

    def output_columns(self) -> list[str]:
        return [key_name(k) for k in self.keys] + [a.name for a in self.aggregates]

    def output_arrow_schema(self) -> pa.Schema:
        """Arrow schema of the result (integer sums stay int64; mean/std are float64)."""
        return aggregate_schema(self.keys, self.aggregates, output_schema(self.child))

    def label(self) -> str:
        keys = ", ".join(k.label() if isinstance(k, HealpixKey) else k for k in self.keys) or "(all rows)"
        return f"Aggregate by {keys}: {', '.join(a.label() for a in self.aggregates)}"
