"""Name resolution for single-level queries: tables to catalogs, columns to (input, column).

Errors point at the name in the query text and suggest the closest known name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import pyarrow as pa
from sqlglot import exp

from proxcompute.catalog import Catalog
from proxcompute.errors import SqlError
from proxcompute.sql.parse import position
from proxcompute.sql.registry import CatalogRegistry, TableRef

__all__ = ["Input", "Resolved", "resolve_columns", "resolve_table", "unknown_column"]


@dataclass
class Input:
    """One catalog read by the query, under the alias the query gives it."""

    alias: str
    alias_quoted: bool
    ref: TableRef
    catalog: Catalog
    node: exp.Table
    columns: list[str] = field(default_factory=list)

    def find(self, name: str, quoted: bool) -> str | None:
        if name in self.columns:
            return name
        if quoted:
            return None
        lowered = [c for c in self.columns if c.lower() == name.lower()]
        return lowered[0] if lowered else None

    def matches_alias(self, name: str, quoted: bool) -> bool:
        if self.alias_quoted or quoted:
            return name == self.alias
        return name.lower() == self.alias.lower()


def resolve_table(node: exp.Table, registry: CatalogRegistry) -> Input:
    """The :class:`Input` for a FROM/JOIN table, or an ``unknown table`` error."""
    ident = node.this
    name, quoted = ident.name, bool(ident.args.get("quoted"))
    schema = node.args.get("db")
    schema_name = schema.name if isinstance(schema, exp.Identifier) else None
    if node.args.get("catalog") is not None:
        raise SqlError("unknown table", f"table names have at most two parts: {node.sql()}", *position(node))
    ref = registry.lookup(name, schema_name, quoted=quoted)
    if ref is None:
        written = f"{schema_name}.{name}" if schema_name else name
        hint = registry.suggest(written) or registry.suggest(name)
        known = registry.names()
        msg = f"unknown table {written!r}."
        msg += f" Did you mean {hint!r}?" if hint else ""
        msg += f" Known tables: {', '.join(known[:20])}" if known else " No catalogs are available."
        raise SqlError("unknown table", msg, *position(node))
    alias_node = node.args.get("alias")
    if alias_node is not None and alias_node.this is not None:
        alias, alias_quoted = alias_node.this.name, bool(alias_node.this.args.get("quoted"))
    else:
        alias, alias_quoted = name, quoted
    catalog = registry.open(ref)
    columns = list(catalog.column_names if isinstance(catalog, pa.Table) else catalog.columns)
    return Input(alias, alias_quoted, ref, catalog, node, columns)


@dataclass
class Resolved:
    """Column references of a query mapped to ``(input index, column name)``."""

    columns: dict[int, tuple[int, str]]  # id(exp.Column) -> (input, column)
    select_aliases: set[str]


def resolve_columns(select: exp.Select, inputs: list[Input], using: frozenset[str] = frozenset()) -> Resolved:
    """Resolve every column of a single-level SELECT against its inputs.

    ``using`` holds the lower-cased columns of a ``JOIN ... USING (...)``: unqualified, they
    name the first input's column (equal to the second's wherever both exist).
    """
    aliases = {a.alias.lower() for a in select.expressions if isinstance(a, exp.Alias)}
    out: dict[int, tuple[int, str]] = {}
    for col in select.find_all(exp.Column):
        if isinstance(col.this, exp.Star):
            continue
        name, quoted = col.name, bool(col.this.args.get("quoted"))
        table = col.args.get("table")
        if table is not None:
            tname = table.name
            tquoted = bool(table.args.get("quoted"))
            hits = [i for i, inp in enumerate(inputs) if inp.matches_alias(tname, tquoted)]
            if not hits:
                hits = [i for i, inp in enumerate(inputs) if inp.ref.name.lower() == tname.lower()]
            if not hits:
                names = ", ".join(inp.alias for inp in inputs)
                raise SqlError(
                    "unknown table",
                    f"{tname!r} is not a table of this query (tables: {names})",
                    *position(table),
                )
            inp = inputs[hits[0]]
            actual = inp.find(name, quoted)
            if actual is None:
                raise unknown_column(col, name, inp.columns, f"table {inp.alias!r}")
            out[id(col)] = (hits[0], actual)
            continue
        found = [(i, inp.find(name, quoted)) for i, inp in enumerate(inputs)]
        found = [(i, c) for i, c in found if c is not None]
        if len(found) > 1 and name.lower() in using:
            found = found[:1]
        if len(found) > 1:
            where = ", ".join(f"{inputs[i].alias}.{c}" for i, c in found)
            raise SqlError(
                "unknown column", f"column {name!r} is ambiguous: write one of {where}", *position(col)
            )
        if not found:
            if name.lower() in aliases and _in_alias_scope(col):
                continue
            every = [c for inp in inputs for c in inp.columns]
            what = (
                f"table {inputs[0].alias!r}"
                if len(inputs) == 1
                else "tables " + ", ".join(repr(i.alias) for i in inputs)
            )
            raise unknown_column(col, name, every, what)
        out[id(col)] = found[0]
    return Resolved(out, aliases)


def _in_alias_scope(col: exp.Column) -> bool:
    """Select-list aliases may be used in ORDER BY, GROUP BY and HAVING."""
    node = col.parent
    while node is not None and not isinstance(node, exp.Select):
        if isinstance(node, (exp.Order, exp.Group, exp.Having)):
            return True
        node = node.parent
    return False


def unknown_column(col: exp.Expression, name: str, available: list[str], what: str) -> SqlError:
    """An ``unknown column`` error at ``col``, with the closest known name and the columns."""
    lowered = {c.lower(): c for c in available}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    hint = f" Did you mean {lowered[close[0]]!r}?" if close else ""
    shown = ", ".join(available[:25]) + (" ..." if len(available) > 25 else "")
    return SqlError(
        "unknown column", f"column {name!r} not found in {what}.{hint} Columns: {shown}", *position(col)
    )
