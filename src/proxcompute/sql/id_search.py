"""``WHERE col IN (...)`` and ``WHERE col = v`` on an indexed column as ``Catalog.id_search``.

When the catalog has a HATS index catalog of the column (listed in its collection, or the
``<catalog>_<column>_index`` sibling, what ``proxcompute index`` builds), the compiler calls
:meth:`~proxcompute.Catalog.id_search` with the values instead of ``where(...)``: the plan is
the one the Python chain ``cat.id_search({"id": [...]})`` builds (only the partitions and
``_healpix_29`` cells the index names are read). Without an index the predicate stays a
``where`` (a scan pruned by row-group statistics), so the answer is the same either way.
"""

from __future__ import annotations

from typing import Any

from proxcompute.catalog import Catalog
from proxcompute.errors import PlanError
from proxcompute.ops.expr import Column, Compare, Expr, IsIn, Literal
from proxcompute.plan import find_scan
from proxcompute.plan.ids import index_path, normalise_values

__all__ = ["has_index", "id_values", "split_id_search"]


def id_values(pred: Expr) -> tuple[str, tuple[Any, ...]] | None:
    """``(column, values)`` of ``column in [...]`` or ``column == value``, else None."""
    if isinstance(pred, IsIn) and not pred.negated and isinstance(pred.operand, Column):
        return pred.operand.name, tuple(pred.values)
    if (
        isinstance(pred, Compare)
        and pred.op == "=="
        and isinstance(pred.left, Column)
        and isinstance(pred.right, Literal)
    ):
        return pred.left.name, (pred.right.value,)
    return None


def has_index(catalog: Catalog, column: str) -> bool:
    """Whether ``catalog`` (its stored source) has an index catalog of ``column``."""
    return index_path(find_scan(catalog.plan).source, column, None) is not None


def _fits(catalog: Catalog, column: str, values: tuple[Any, ...]) -> bool:
    """Whether every value is exactly a value of the column's type (``id = 5.5`` is not)."""
    try:
        return len(normalise_values(column, values, catalog.schema.field(column).type)) > 0
    except PlanError:
        return False


def split_id_search(catalog: Catalog, predicates: list[Expr]) -> tuple[dict[str, tuple[Any, ...]], list[Expr]]:
    """The predicates an index answers, as ``id_search`` values, and the others (in order).

    A column takes one predicate (``id IN (1, 2) AND id = 2``: the second stays a ``where``).
    Values that do not fit the column's type, or a column without an index, stay a ``where``.
    """
    values: dict[str, tuple[Any, ...]] = {}
    rest: list[Expr] = []
    for pred in predicates:
        found = id_values(pred)
        if (
            found is None
            or found[0] in values
            or found[0] not in catalog.schema.names
            or not _fits(catalog, *found)
            or not has_index(catalog, found[0])
        ):
            rest.append(pred)
            continue
        values[found[0]] = found[1]
    return values, rest
