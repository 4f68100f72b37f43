"""Joins on equal columns (``a JOIN b ON a.id = b.id``, ``USING (id)``, ``LEFT JOIN``) as
:meth:`proxcompute.Catalog.join`.

The compiler (:mod:`proxcompute.sql.compile`) finds the key, pushes each side's own filters
into that side (for a ``LEFT JOIN`` only the left's ``WHERE`` terms and the right's ``ON``
terms, which is what they mean), and calls ``left.join(right, left_on, right_on, how=...)``:
the plan node of :mod:`proxcompute.plan.join`, partitioned like the left, reading only the
right partitions and row groups holding each left partition's keys (through the right's index
catalog of the key when it has one).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from proxcompute.catalog import Catalog
from proxcompute.errors import PlanError, SqlError
from proxcompute.sql.id_search import has_index
from proxcompute.sql.parse import position
from proxcompute.sql.resolve import Input, Resolved, unknown_column

__all__ = ["EquiKey", "equi_key", "join_on_key", "using_keys"]


@dataclass(frozen=True)
class EquiKey:
    """``inputs[0].left_column = inputs[1].right_column``, written at ``node``."""

    left_column: str
    right_column: str
    node: exp.Expression


def equi_key(node: exp.Expression, resolved: Resolved) -> EquiKey | None:
    """``a.x = b.y`` between the two inputs' plain columns as an :class:`EquiKey`, else None."""
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if not isinstance(node, exp.EQ):
        return None
    sides = [s.unnest() if isinstance(s, exp.Paren) else s for s in (node.this, node.expression)]
    if not all(isinstance(s, exp.Column) and id(s) in resolved.columns for s in sides):
        return None
    (i, a), (j, b) = (resolved.columns[id(s)] for s in sides)
    if {i, j} != {0, 1}:
        return None
    return EquiKey(a, b, node) if i == 0 else EquiKey(b, a, node)


def using_keys(join: exp.Join, inputs: list[Input]) -> list[EquiKey]:
    """The keys of ``JOIN ... USING (c, ...)``; a column missing on either side is an error."""
    keys = []
    for ident in join.args.get("using") or []:
        name, quoted = ident.name, bool(ident.args.get("quoted"))
        found = []
        for inp in inputs:
            column = inp.find(name, quoted)
            if column is None:
                raise unknown_column(ident, name, inp.columns, f"table {inp.alias!r} (USING)")
            found.append(column)
        keys.append(EquiKey(found[0], found[1], ident))
    return keys


def join_on_key(
    left: Catalog, right: Catalog, key: EquiKey, *, how: str, suffixes: tuple[str, str], aliases: tuple[str, str]
) -> tuple[Catalog, bool, str]:
    """``left.join(right, ...)`` on ``key``; an inner join puts the side with an index on the right.

    Returns
    -------
    (Catalog, bool, str)
        The joined catalog, whether the inputs were swapped (the result is partitioned like
        ``right``), and a note for ``explain()``.

    Raises
    ------
    SqlError
        ``type``: the key columns hold different kinds of values (at the key in the query).
    """
    written = (
        f"{aliases[0]}.{key.left_column} ({left.schema.field(key.left_column).type}) with "
        f"{aliases[1]}.{key.right_column} ({right.schema.field(key.right_column).type})"
    )
    swapped = how == "inner" and not has_index(right, key.right_column) and has_index(left, key.left_column)
    if swapped:
        left, right = right, left
        key = EquiKey(key.right_column, key.left_column, key.node)
        aliases = (aliases[1], aliases[0])
    try:
        out = left.join(right, left_on=key.left_column, right_on=key.right_column, how=how, suffixes=suffixes)
    except PlanError as exc:
        reason = str(exc).partition(": ")[2] or str(exc)
        raise SqlError("type", f"cannot join {written}: {reason}", *position(key.node)) from None
    through = (
        f"the index catalog of {aliases[1]}.{key.right_column}"
        if has_index(right, key.right_column)
        else f"an in-memory map of {aliases[1]}.{key.right_column}"
    )
    note = (
        f"{aliases[0]} {how.upper()} JOIN {aliases[1]} ON {aliases[0]}.{key.left_column} = "
        f"{aliases[1]}.{key.right_column} -> join, partitioned like {aliases[0]!r}; right rows located "
        f"through {through}"
    )
    return out, swapped, note
