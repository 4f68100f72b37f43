"""Queries that cannot run partition by partition, and what every compiled query is.

Subqueries, CTEs, set operations and joins other than positional ones run as one DuckDB
query over the catalogs they name (projected to the columns the query uses), collected
into the process: refused above :data:`GATHER_MAX_ROWS` rows with a message saying how to
write the query so it distributes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa
from sqlglot import exp

from proxcompute.catalog import Catalog
from proxcompute.errors import SqlError
from proxcompute.plan import PlanNode, Scan
from proxcompute.plan.gather import GatherSource
from proxcompute.sky import INDEX_COLUMN
from proxcompute.sql.dialect import ADQL
from proxcompute.sql.engine import run_sql
from proxcompute.sql.geometry import translate_geometry
from proxcompute.sql.operators import q
from proxcompute.sql.parse import line_col, position
from proxcompute.sql.registry import CatalogRegistry
from proxcompute.sql.resolve import resolve_table

__all__ = ["GATHER_MAX_ROWS", "CompiledQuery", "check_select_shape", "compile_gather", "locate", "rows_estimate"]

GATHER_MAX_ROWS = 20_000_000
"""Largest number of catalog rows a query that cannot be distributed may bring into one process."""


@dataclass(frozen=True)
class CompiledQuery:
    """A checked query: its plan (or, for ``gather``, the catalogs and one DuckDB query).

    ``mode`` says how it runs: ``catalog`` (the input catalog's rows are the answer),
    ``rows`` (row-by-row SQL per partition, then sort/limit/distinct), ``aggregate``
    (partial aggregates per partition, merged), ``two-level`` (the rows per partition, the
    query over their union) or ``gather`` (not distributed).
    """

    text: str
    mode: str
    plan: PlanNode
    """The plan: the input catalog's plan with the relational nodes SQL adds on top (for
    ``gather``, a ``Scan`` of a :class:`~proxcompute.plan.gather.GatherSource`)."""
    catalog: Catalog | None
    """The input catalog (regions, predicates, projection and positional join pushed in)."""
    output_names: tuple[str, ...]
    notes: tuple[str, ...] = ()
    gather: dict = field(default_factory=dict)
    """``gather`` mode: table name -> Catalog (projected) or Arrow table."""
    gather_sql: str | None = None
    """``gather`` mode: the DuckDB query over the gathered tables."""


def check_select_shape(select: exp.Select) -> None:
    """Refuse what sqlglot parses but we would otherwise silently drop."""
    if not select.expressions:
        raise SqlError("syntax", "SELECT needs at least one column or expression before FROM", 1, 1)
    for node in select.walk():
        if isinstance(node, exp.Star) and any(
            node.args.get(k) for k in ("except", "replace", "rename", "except_")
        ):
            raise SqlError("unsupported", "SELECT * EXCLUDE/REPLACE/RENAME is not ADQL", *position(select))
        if isinstance(node, exp.TableAlias) and node.args.get("columns"):
            raise SqlError(
                "unsupported", "column alias lists (AS t(a, b)) are not supported", *position(node)
            )


def rows_estimate(cat: Catalog) -> int:
    """The rows a catalog's source records (a huge number when unknown)."""
    n = cat.plan.source.total_rows
    return n if n >= 0 else 1 << 62


def locate(text: str, node: exp.Expression) -> tuple[int | None, int | None]:
    """Where ``node`` is in the query: from token positions, else by finding its text."""
    line, col = position(node)
    if line is not None:
        return line, col
    needle = " ".join(node.sql(dialect=ADQL).split()).lower()
    flat = text.lower()
    idx = flat.find(needle)
    if idx < 0:
        return None, None
    return line_col(text, idx)


def compile_gather(text: str, root: exp.Query, registry: CatalogRegistry) -> CompiledQuery:
    """Plan a query that cannot run partition by partition: the catalogs it names, in one DuckDB."""
    for sel in root.find_all(exp.Select):
        check_select_shape(sel)
    ctes = {c.alias.lower() for c in root.find_all(exp.CTE)}
    tables = [t for t in root.find_all(exp.Table) if t.name.lower() not in ctes or t.args.get("db")]
    referenced = {i.name.lower() for i in root.find_all(exp.Identifier)}  # columns, USING lists, ...
    star = any(
        isinstance(n, exp.Star) or (isinstance(n, exp.Column) and isinstance(n.this, exp.Star))
        for sel in root.find_all(exp.Select)
        for n in sel.expressions
    )
    gather: dict[str, Catalog] = {}
    seen: dict[int, str] = {}
    total = 0
    for t in tables:
        inp = resolve_table(t, registry)
        key = id(inp.ref.opener)
        if key not in seen:
            seen[key] = f"__g{len(seen)}"
            cat = inp.catalog
            if isinstance(cat, pa.Table):
                gather[seen[key]] = cat
                n = cat.num_rows
            else:
                cols = list(cat.columns) if star else [c for c in cat.columns if c.lower() in referenced]
                gather[seen[key]] = cat[cols or [INDEX_COLUMN]]
                n = rows_estimate(inp.catalog)
            total += n
            if total > GATHER_MAX_ROWS:
                raise SqlError(
                    "unsupported",
                    f"this query joins or nests in a way that cannot run partition by partition, so it would "
                    f"bring {inp.ref.qualified!r} ({n:,} rows) into one process (limit {GATHER_MAX_ROWS:,} rows). "
                    "Write it as a single-table query, a positional join (DISTANCE/CONTAINS between two "
                    "catalogs), or save a filtered subset first (to_catalog) and query that.",
                    *position(t),
                )
        alias = t.args.get("alias")
        name = seen[key]
        t.set("this", q(name))
        t.set("db", None)
        if alias is None:
            t.set(
                "alias",
                exp.TableAlias(this=q(inp.alias) if inp.alias_quoted else exp.to_identifier(inp.alias)),
            )
    names = _name_outer_select(root)
    out = translate_geometry(root)
    final_sql = out.sql(dialect="duckdb")
    empties = {k: (c.schema.empty_table()) for k, c in gather.items()}
    try:
        schema = run_sql(final_sql, empties).schema
    except SqlError as exc:
        missing = re.search(
            r'(?i)column "([^"]+)" (?:not found|referenced that exists|does not exist)', exc.message
        )
        if missing or "does not have a column" in exc.message:
            name = missing.group(1) if missing else ""
            hit = next((c for c in root.find_all(exp.Column) if c.name.lower() == name.lower()), None)
            where = position(hit) if hit is not None else (None, None)
            raise SqlError(
                "unknown column", f"column {name!r} is not available here ({exc.message})", *where
            ) from None
        raise
    inputs = {k: c if isinstance(c, pa.Table) else c.plan for k, c in gather.items()}
    plan = Scan(GatherSource(inputs, final_sql, schema))
    return CompiledQuery(text, "gather", plan, None, tuple(names), (), gather, final_sql)


def _name_outer_select(root: exp.Query) -> list[str]:
    """Alias the outermost select list with the names single-table queries would get."""
    lead = root
    while isinstance(lead, exp.SetOperation):
        lead = lead.this
    if not isinstance(lead, exp.Select) or any(
        isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
        for e in lead.expressions
    ):
        return []
    names: list[str] = []
    items = []
    for i, item in enumerate(lead.expressions):
        if isinstance(item, exp.Alias):
            name = item.alias
        elif isinstance(item, exp.Column):
            name = item.name
        elif isinstance(item, exp.Func):
            name = (item.name if isinstance(item, exp.Anonymous) else item.sql_name()).lower()
        else:
            name = f"col{i + 1}"
        base, k = name, 2
        while name in names:
            name = f"{base}_{k}"
            k += 1
        names.append(name)
        items.append(exp.alias_(item.unalias() if isinstance(item, exp.Alias) else item, q(name)))
    lead.set("expressions", items)
    return names
