"""Compile a checked ADQL AST into a :class:`SqlPlan`: a lazy Catalog plus per-partition SQL.

A single-catalog query (or a positional join of two catalogs) becomes

1. the *input*: a :class:`~proxcompute.Catalog` built with the same methods a Python user
   calls: constant ``CONTAINS``/``DISTANCE`` tests on the catalog's own coordinates become
   ``search(region)`` (partition pruning, ``_healpix_29`` row-group ranges, the exact kernel),
   simple column predicates become ``where(...)`` (pushed to the Parquet scan), the columns
   the query reads become a projection, and a circle test between two catalogs becomes
   ``crossmatch(..., how="all")``;
2. what is left, run per partition by DuckDB over the input's Arrow table, then merged:

   ========== ============================================================================
   mode       merge
   ========== ============================================================================
   catalog    nothing left for SQL: the input's rows are the answer (renamed, TOP = head)
   rows       per-partition SELECT (with ORDER BY + LIMIT when given), then a final
              ORDER BY/LIMIT or DISTINCT over the partials, or a concat in storage order
   aggregate  per-partition partial aggregates (AVG = SUM + COUNT), final GROUP BY
   two-level  per-partition filter and projection, then the whole query on the result
   gather     anything else (subqueries, CTEs, set operations, non-positional joins): the
              named catalogs (projected) in one DuckDB, refused above a size limit
   ========== ============================================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from sqlglot import exp

from proxcompute.catalog import Catalog
from proxcompute.errors import SqlError
from proxcompute.ops.expr import Column, Compare, Expr, IsIn, Literal, kind_of
from proxcompute.plan import Scan, StoredSource
from proxcompute.sky import INDEX_COLUMN
from proxcompute.sql.dialect import ADQL
from proxcompute.sql.engine import FILE_PLACEHOLDER, run_sql
from proxcompute.sql.geometry import const_value, spatial_test, to_region, translate_geometry
from proxcompute.sql.parse import line_col, parse_query, position
from proxcompute.sql.registry import CatalogRegistry
from proxcompute.sql.resolve import Input, Resolved, resolve_columns, resolve_table

__all__ = ["GATHER_MAX_ROWS", "SqlPlan", "compile_query"]

GATHER_MAX_ROWS = 20_000_000
"""Largest number of catalog rows a query that cannot be distributed may bring into one process."""

MAX_ROWS_LIMIT = 10**15
"""Largest TOP/LIMIT/OFFSET accepted."""

PART = "__part"
PARTIALS = "__partials"
LEFT_SUFFIX, RIGHT_SUFFIX = "_l_", "_r_"
_DECOMPOSABLE = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max)


@dataclass
class SqlPlan:
    """How a query runs; see the module docstring for the modes."""

    text: str
    mode: str
    catalog: Catalog | None = None
    partition_sql: str | None = None
    final_sql: str | None = None
    limit: int | None = None
    offset: int = 0
    output_names: list[str] = field(default_factory=list)
    rename: dict[str, str] = field(default_factory=dict)
    gather: dict[str, Catalog] = field(default_factory=dict)
    partial_schema: pa.Schema | None = None
    notes: list[str] = field(default_factory=list)
    count_only: bool = False
    direct_root: str | None = None
    """Catalog directory whose partition files DuckDB reads itself (``direct_sql``)."""
    pieces: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    """Row-wise pieces of the query (select items, WHERE terms) as SQL with their positions."""
    direct_sql: str | None = None
    """``partition_sql`` with the pushed predicates, over the partition file instead of ``__part``."""


def _q(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _col(name: str) -> exp.Column:
    return exp.Column(this=_q(name))


def _flatten_and(node: exp.Expression | None) -> list[exp.Expression]:
    if node is None:
        return []
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _flatten_and(node.this) + _flatten_and(node.expression)
    return [node]


def _int_arg(node: exp.Expression | None, what: str) -> int | None:
    if node is None:
        return None
    value = node.args.get("expression")
    v = const_value(value) if value is not None else None
    if v is None or v < 0 or v != int(v):
        raise SqlError("syntax", f"{what} must be a non-negative whole number", *position(value or node))
    if v > MAX_ROWS_LIMIT:
        raise SqlError("limit", f"{what} {v:.0f} is larger than the most rows a query may ask for "
                       f"({MAX_ROWS_LIMIT:,})", *position(value or node))  # fmt: skip
    return int(v)


def compile_query(text: str, registry: CatalogRegistry) -> SqlPlan:
    """Parse, check and plan ``text`` against the catalogs of ``registry``."""
    root = parse_query(text)
    if isinstance(root, exp.Select) and _is_single_level(root):
        plan = _compile_select(text, root, registry)
        if plan is not None:
            return plan
    return _compile_gather(text, root, registry)


def _is_single_level(select: exp.Select) -> bool:
    if select.args.get("with_") is not None or select.args.get("with") is not None:
        return False
    source = select.args.get("from_") or select.args.get("from")
    if source is None or not isinstance(source.this, exp.Table):
        return False
    for join in select.args.get("joins") or []:
        if not isinstance(join.this, exp.Table):
            return False
    return not any(isinstance(n, (exp.Subquery, exp.Select)) for n in select.walk() if n is not select)


# -- single-level queries --------------------------------------------------------------------


def _compile_select(text: str, select: exp.Select, registry: CatalogRegistry) -> SqlPlan | None:
    source = select.args.get("from_") or select.args.get("from")
    joins = list(select.args.get("joins") or [])
    if len(joins) > 1:
        return None
    for join in joins:
        side = (join.args.get("side") or "").upper()
        kind = (join.args.get("kind") or "").upper()
        if side or kind not in ("", "INNER", "CROSS") or join.args.get("using"):
            return None
    _check_select_shape(select)
    inputs = [resolve_table(source.this, registry)] + [resolve_table(j.this, registry) for j in joins]
    if any(isinstance(inp.catalog, pa.Table) for inp in inputs):
        return None  # plain tables (TAP_SCHEMA, uploads without coordinates) run in one DuckDB
    if len(inputs) == 2 and inputs[0].alias.lower() == inputs[1].alias.lower():
        raise SqlError(
            "syntax", f"two tables are called {inputs[0].alias!r}: give them aliases", *position(joins[0])
        )
    _expand_stars(select, inputs)
    resolved = resolve_columns(select, inputs)

    conjuncts = _flatten_and(select.args.get("where").this if select.args.get("where") else None)
    for join in joins:
        conjuncts += _flatten_and(join.args.get("on"))
    regions: list[list] = [[] for _ in inputs]
    predicates: list[list[Expr]] = [[] for _ in inputs]
    residual: list[exp.Expression] = []
    join_radius: float | None = None
    join_pair: tuple[int, int] | None = None
    notes: list[str] = []
    consumed_conjuncts: list[exp.Expression] = []
    pushed_conjuncts: list[exp.Expression] = []
    for conj in conjuncts:
        test = spatial_test(conj)
        if test is not None:
            owner = _coordinate_owner(test.point, resolved, inputs)
            if owner is not None:
                region = to_region(test.shape)
                if region is not None:
                    regions[owner].append(region)
                    consumed_conjuncts.append(conj)
                    notes.append(f"{inputs[owner].alias}: {test.node.sql()} -> region {region}")
                    continue
                if test.shape.kind == "CIRCLE" and len(inputs) == 2 and join_pair is None:
                    centre = _coordinate_owner(tuple(test.shape.args[:2]), resolved, inputs)
                    radius = const_value(test.shape.args[2])
                    if centre is not None and centre != owner and radius is not None:
                        if radius <= 0:
                            raise SqlError("type", "a join radius must be > 0", *position(test.node))
                        join_pair, join_radius = (owner, centre), radius
                        consumed_conjuncts.append(conj)
                        continue
        pushed = _to_predicate(conj, resolved, inputs)
        if pushed is not None:
            predicates[pushed[0]].append(pushed[1])
            consumed_conjuncts.append(conj)
            pushed_conjuncts.append(conj)
            continue
        residual.append(conj)
    if len(inputs) == 2 and join_pair is None:
        return None  # not a positional join: run it as a general join

    consumed = {id(c) for conj in consumed_conjuncts for c in conj.find_all(exp.Column)}
    needed: list[list[str]] = [[] for _ in inputs]
    for key, (i, c) in resolved.columns.items():
        if key not in consumed and c not in needed[i]:
            needed[i].append(c)
    cats = []
    for i, inp in enumerate(inputs):
        cat = inp.catalog
        for region in regions[i]:
            cat = cat.search(region)
        for pred in predicates[i]:
            cat = cat.where(str(pred))
        if len(inputs) == 2:
            cols = list(needed[i])
            for c in (INDEX_COLUMN, cat.ra_column, cat.dec_column):
                if c not in cols:
                    cols.append(c)
            cat = cat[cols]
        cats.append(cat)

    colmap: dict[tuple[int, str], str] = {}
    if len(inputs) == 1:
        catalog = cats[0]
        for c in inputs[0].columns:
            colmap[(0, c)] = c
    else:
        a, b = join_pair
        rows = [_rows_estimate(inputs[k].catalog) for k in (a, b)]
        left, right = (a, b) if rows[0] <= rows[1] else (b, a)
        catalog = cats[left].crossmatch(
            cats[right], radius_arcsec=join_radius * 3600.0, how="all",
            suffixes=(LEFT_SUFFIX, RIGHT_SUFFIX), ensure_margin=True,
        )  # fmt: skip
        for c in inputs[left].columns:
            colmap[(left, c)] = c if c == INDEX_COLUMN else f"{c}_{LEFT_SUFFIX}"
        for c in inputs[right].columns:
            if c != INDEX_COLUMN:
                colmap[(right, c)] = f"{c}_{RIGHT_SUFFIX}"
        notes.append(
            f'{inputs[a].alias} x {inputs[b].alias}: positional join within {join_radius * 3600:g}" -> '
            f"crossmatch (all pairs), partitioned like {inputs[left].alias!r}"
        )
    direct = None
    source = inputs[0].catalog.plan.source
    if (
        len(inputs) == 1
        and not regions[0]
        and isinstance(source, StoredSource)
        and source.meta.is_standard_layout  # DuckDB reads Npix=n.parquet files holding _healpix_29
        and _is_bare(inputs[0].catalog)
    ):
        direct = (str(source.root), pushed_conjuncts)
    return _finish(text, select, inputs, resolved, colmap, catalog, residual, notes, needed[0], direct)


def _is_bare(cat: Catalog) -> bool:
    """A catalog exactly as opened (no searches or filters added in Python)."""
    plan = cat.plan
    return isinstance(plan, Scan) and (
        plan.columns,
        plan.regions,
        plan.predicate,
        plan.pixels,
        plan.ranges,
    ) == (None, (), None, None, None)


def _check_select_shape(select: exp.Select) -> None:
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


def _rows_estimate(cat: Catalog) -> int:
    n = cat.plan.source.total_rows
    return n if n >= 0 else 1 << 62


def _expand_stars(select: exp.Select, inputs: list[Input]) -> None:
    items: list[exp.Expression] = []
    for item in select.expressions:
        if isinstance(item, exp.Star):
            chosen = list(range(len(inputs)))
        elif isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
            tname = item.args["table"].name
            chosen = [i for i, inp in enumerate(inputs) if inp.matches_alias(tname, False)]
            if not chosen:
                raise SqlError("unknown table", f"{tname!r} is not a table of this query", *position(item))
        else:
            items.append(item)
            continue
        for i in chosen:
            for c in inputs[i].columns:
                if len(inputs) > 1 and c == INDEX_COLUMN:
                    continue  # ambiguous in a join (the result keeps the left row's index)
                items.append(exp.Column(this=_q(c), table=_q(inputs[i].alias) if len(inputs) > 1 else None))
    select.set("expressions", items)


def _coordinate_owner(point: tuple, resolved: Resolved, inputs: list[Input]) -> int | None:
    """The input whose own (ra, dec) columns ``point`` is, or None."""
    ra, dec = (p.unnest() if isinstance(p, exp.Paren) else p for p in point)
    if not (isinstance(ra, exp.Column) and isinstance(dec, exp.Column)):
        return None
    r, d = resolved.columns.get(id(ra)), resolved.columns.get(id(dec))
    if r is None or d is None or r[0] != d[0]:
        return None
    cat = inputs[r[0]].catalog
    return r[0] if (r[1], d[1]) == (cat.ra_column, cat.dec_column) else None


def _to_predicate(node: exp.Expression, resolved: Resolved, inputs: list[Input]) -> tuple[int, Expr] | None:
    """A conjunct as a pushable :mod:`proxcompute.ops.expr` predicate on one input, or None.

    Only forms whose SQL meaning equals the predicate's exactly (including NULLs) are pushed:
    ``column op literal``, ``BETWEEN`` literals and ``IN`` a literal list.
    """
    node = node.unnest() if isinstance(node, exp.Paren) else node

    def column(n: exp.Expression) -> tuple[int, Column] | None:
        n = n.unnest() if isinstance(n, exp.Paren) else n
        if not isinstance(n, exp.Column) or id(n) not in resolved.columns:
            return None
        i, name = resolved.columns[id(n)]
        field = inputs[i].catalog.schema.field(name)
        return i, Column(name, kind_of(field.type))

    def literal(n: exp.Expression, kind: str) -> Literal | None:
        n = n.unnest() if isinstance(n, exp.Paren) else n
        if kind == "string" and isinstance(n, exp.Literal) and n.is_string:
            return Literal(n.this)
        if kind == "number":
            v = const_value(n)
            if v is not None:
                return Literal(int(v) if v == int(v) and abs(v) < 2**53 and "." not in n.sql() else v)
        return None

    ops = {exp.EQ: "==", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
    flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
    op = ops.get(type(node))
    if op is not None:
        for a, b, o in ((node.this, node.expression, op), (node.expression, node.this, flipped[op])):
            c = column(a)
            if c is not None and c[1].kind in ("number", "string"):
                lit = literal(b, c[1].kind)
                if lit is not None:
                    return c[0], Compare(o, c[1], lit)
        return None
    if isinstance(node, exp.Between):
        c = column(node.this)
        if c is not None and c[1].kind in ("number", "string"):
            lo, hi = literal(node.args["low"], c[1].kind), literal(node.args["high"], c[1].kind)
            if lo is not None and hi is not None:
                from proxcompute.ops.expr import And

                return c[0], And((Compare(">=", c[1], lo), Compare("<=", c[1], hi)))
        return None
    if isinstance(node, exp.In) and not node.args.get("query"):
        c = column(node.this)
        if c is not None and c[1].kind in ("number", "string"):
            values = [literal(v, c[1].kind) for v in node.expressions]
            if values and all(v is not None for v in values):
                return c[0], IsIn(c[1], tuple(v.value for v in values))
    return None


def _output_name(item: exp.Expression, resolved: Resolved, inputs: list[Input], index: int) -> str:
    if isinstance(item, exp.Alias):
        return item.alias
    if isinstance(item, exp.Column) and id(item) in resolved.columns:
        return resolved.columns[id(item)][1]
    if isinstance(item, exp.Column):
        return item.name
    if isinstance(item, exp.Func):
        return (item.name if isinstance(item, exp.Anonymous) else item.sql_name()).lower()
    return f"col{index}"


def _finish(
    text: str,
    select: exp.Select,
    inputs: list[Input],
    resolved: Resolved,
    colmap: dict[tuple[int, str], str],
    catalog: Catalog,
    residual: list[exp.Expression],
    notes: list[str],
    needed: list[str],
    direct: tuple[str, list[exp.Expression]] | None = None,
) -> SqlPlan:
    limit = _int_arg(select.args.get("limit"), "TOP/LIMIT")
    offset = _int_arg(select.args.get("offset"), "OFFSET") or 0
    distinct = select.args.get("distinct") is not None
    if distinct and select.args["distinct"].args.get("on") is not None:
        raise SqlError("unsupported", "DISTINCT ON is not supported", *position(select.args["distinct"]))

    # output names, unique, in select order
    names: list[str] = []
    for i, item in enumerate(select.expressions):
        name = _output_name(item, resolved, inputs, i + 1)
        base, k = name, 2
        while name in names:
            name = f"{base}_{k}"
            k += 1
        names.append(name)

    def rewrite(node: exp.Expression) -> exp.Expression:
        def fix(n: exp.Expression) -> exp.Expression:
            if isinstance(n, exp.Column) and id(n) in resolved.columns:
                target = resolved.columns[id(n)]
                if target not in colmap:
                    raise SqlError(
                        "unsupported",
                        f"{n.sql()}: a positional join keeps only the {target[1]} of the table its result is partitioned by",
                        *position(n),
                    )
                new = _col(colmap[target])
                new.this.meta.update(n.this.meta)
                new.meta["catalog_column"] = True
                return new
            return n

        return translate_geometry(node.transform(fix, copy=False))

    item_targets = [
        resolved.columns.get(id(it.unalias() if isinstance(it, exp.Alias) else it))
        for it in select.expressions
    ]
    items = [rewrite(it.unalias() if isinstance(it, exp.Alias) else it) for it in select.expressions]
    where = None
    if residual:
        where = exp.and_(*[rewrite(c) for c in residual])
    pushed_where = [rewrite(c) for c in direct[1]] if direct else []
    group = [rewrite(g) for g in (select.args["group"].expressions if select.args.get("group") else [])]
    having = rewrite(select.args["having"].this) if select.args.get("having") else None
    order = list(select.args["order"].expressions) if select.args.get("order") else []

    # ORDER BY / GROUP BY may name an output column by alias or position
    def by_output(node: exp.Expression) -> int | None:
        v = node.unnest() if isinstance(node, exp.Paren) else node
        if isinstance(v, exp.Literal) and not v.is_string:
            k = int(float(v.this))
            if not 1 <= k <= len(names):
                raise SqlError("syntax", f"position {k} is not in the select list", *position(v))
            return k - 1
        if isinstance(v, exp.Column) and id(v) in resolved.columns:
            target = resolved.columns[id(v)]
            hits = [j for j, t in enumerate(item_targets) if t == target]
            return hits[0] if hits else None
        if isinstance(v, exp.Column) and not v.table:
            hits = [j for j, n in enumerate(names) if n.lower() == v.name.lower()]
            if hits:
                return hits[0]
        return None

    group = [items[j].copy() if (j := by_output(g)) is not None else g for g in group]
    order_keys: list[tuple[exp.Expression, bool, int | None]] = []
    for o in order:
        j = by_output(o.this)
        direction = (bool(o.args.get("desc")), bool(o.args.get("nulls_first")))
        order_keys.append((rewrite(o.this) if j is None else items[j].copy(), direction, j))

    projected = catalog[needed or [INDEX_COLUMN]] if len(inputs) == 1 else catalog
    plan = SqlPlan(
        text=text, mode="rows", catalog=projected, limit=limit, offset=offset, output_names=names, notes=notes
    )
    snapshot = (
        [e.copy() for e in items],
        [g.copy() for g in group],
        having.copy() if having is not None else None,
        [(k.copy(), d, j) for k, d, j in order_keys],
        where.copy() if where is not None else None,
    )
    has_agg = any(isinstance(n, exp.AggFunc) for e in items + ([having] if having else []) for n in e.walk())
    has_agg |= any(isinstance(n, exp.AggFunc) for k, _, _ in order_keys for n in k.walk())
    if has_agg or group:
        _plan_aggregate(plan, items, names, where, group, having, order_keys, distinct)
    elif (
        where is None
        and not distinct
        and not order_keys
        and all(isinstance(e, exp.Column) for e in items)
        and len({e.name for e in items}) == len(items)
    ):
        cols = [e.name for e in items]
        plan.mode = "catalog"
        plan.catalog = catalog[cols]
        plan.rename = {c: n for c, n in zip(cols, names, strict=True) if c != n}
    else:
        _plan_rows(plan, items, names, where, order_keys, distinct)
    if direct is not None and plan.mode != "catalog":
        # DuckDB reads the partition files itself (3x faster than Arrow + DuckDB for scans),
        # with the pushed-down predicates back in its WHERE
        plan.direct_root = direct[0]
        if pushed_where:
            s_items, s_group, s_having, s_order, s_where = snapshot
            everything = exp.and_(*([s_where] if s_where is not None else []), *pushed_where)
            again = SqlPlan(text=text, mode=plan.mode, catalog=projected, limit=limit, offset=offset)
            {"aggregate": _plan_aggregate, "two-level": _plan_two_level}.get(plan.mode, _plan_rows)(
                again,
                *_builder_args(plan.mode, s_items, names, everything, s_group, s_having, s_order, distinct),
            )
            plan.direct_sql = again.partition_sql
        else:
            plan.direct_sql = plan.partition_sql
        plan.direct_sql = plan.direct_sql.replace(f'FROM "{PART}"', f'FROM "{FILE_PLACEHOLDER}"')
        plan.count_only = False
    s_items, s_group, s_having, _, s_where = snapshot
    plan.pieces = [
        (e.sql(dialect="duckdb"), *locate(text, e))
        for e in [*s_items, *_flatten_and(s_where), *s_group]
        if not any(isinstance(n, exp.AggFunc) for n in e.walk())
    ]
    _bind(plan)
    return plan


def _builder_args(mode, items, names, where, group, having, order_keys, distinct):
    if mode in ("aggregate", "two-level"):
        return items, names, where, group, having, order_keys, distinct
    return items, names, where, order_keys, distinct


def _select_sql(
    items,
    names,
    *,
    source,
    where=None,
    group=None,
    having=None,
    order=None,
    limit=None,
    offset=None,
    distinct=False,
):
    sel = exp.Select(expressions=[exp.alias_(e, _q(n)) for e, n in zip(items, names, strict=True)])
    sel = sel.from_(exp.Table(this=_q(source)))
    if distinct:
        sel.set("distinct", exp.Distinct())
    if where is not None:
        sel = sel.where(where)
    if group:
        sel = sel.group_by(*group)
    if having is not None:
        sel = sel.having(having)
    if order:
        sel = sel.order_by(*[exp.Ordered(this=k, desc=d[0], nulls_first=d[1]) for k, d in order])
    if limit is not None:
        sel = sel.limit(limit)
    if offset:
        sel = sel.offset(offset)
    return sel.sql(dialect="duckdb")


def _plan_rows(plan, items, names, where, order_keys, distinct) -> None:
    n_keep = None if plan.limit is None else plan.limit + plan.offset
    hidden, hidden_names, final_order = [], [], []
    for k, (key, desc, j) in enumerate(order_keys):
        if j is not None:
            final_order.append((_col(names[j]), desc))
        elif distinct:
            raise SqlError(
                "unsupported",
                "with SELECT DISTINCT, ORDER BY must use columns of the select list",
                *position(key),
            )
        else:
            hidden.append(key.copy())
            hidden_names.append(f"__o{k}")
            final_order.append((_col(f"__o{k}"), desc))
    part_order = [(k.copy(), d) for (k, d, _) in order_keys] if order_keys else None
    plan.partition_sql = _select_sql(
        items + hidden, names + hidden_names, source=PART, where=where,
        order=part_order, limit=n_keep if (order_keys or not distinct) else None, distinct=distinct,
    )  # fmt: skip
    if order_keys or distinct:
        plan.final_sql = _select_sql(
            [_col(n) for n in names], names, source=PARTIALS, order=final_order or None,
            limit=plan.limit, offset=plan.offset, distinct=distinct,
        )  # fmt: skip
    plan.mode = "rows"


def _plan_aggregate(plan, items, names, where, group, having, order_keys, distinct) -> None:
    aggs: list[exp.AggFunc] = []
    occurrences: list[exp.AggFunc] = []
    exprs = items + ([having] if having is not None else []) + [k for k, _, j in order_keys if j is None]
    for e in exprs:
        for n in e.walk():
            if isinstance(n, exp.AggFunc):
                occurrences.append(n)
                if not any(n == a for a in aggs):
                    aggs.append(n)
    decomposable = all(
        isinstance(a, _DECOMPOSABLE)
        and a.find(exp.Distinct) is None
        and not any(isinstance(x, exp.AggFunc) and x is not a for x in a.walk())
        for a in aggs
    )
    if not decomposable or distinct:
        _plan_two_level(plan, items, names, where, group, having, order_keys, distinct)
        return
    plan.mode = "aggregate"
    part_items, part_names = [], []
    for i, g in enumerate(group):
        part_items.append(g.copy())
        part_names.append(f"__g{i}")
    finals_by_agg: list[exp.Expression] = []
    for j, a in enumerate(aggs):
        arg = a.this
        if isinstance(a, exp.Count):
            part_items.append(a.copy())
            part_names.append(f"__a{j}")
            finals_by_agg.append(
                exp.Coalesce(this=exp.Sum(this=_col(f"__a{j}")), expressions=[exp.Literal.number(0)])
            )
        elif isinstance(a, exp.Avg):
            part_items += [exp.Sum(this=arg.copy()), exp.Count(this=arg.copy())]
            part_names += [f"__a{j}s", f"__a{j}c"]
            finals_by_agg.append(
                exp.Div(
                    this=exp.Cast(this=exp.Sum(this=_col(f"__a{j}s")), to=exp.DataType.build("DOUBLE")),
                    expression=exp.Nullif(
                        this=exp.Sum(this=_col(f"__a{j}c")), expression=exp.Literal.number(0)
                    ),
                )
            )
        else:
            part_items.append(a.copy())
            part_names.append(f"__a{j}")
            finals_by_agg.append(type(a)(this=_col(f"__a{j}")))
    finals = {id(n): finals_by_agg[next(j for j, a in enumerate(aggs) if a == n)] for n in occurrences}
    group_sql = {g.sql(dialect="duckdb"): f"__g{i}" for i, g in enumerate(group)}

    def to_final(e: exp.Expression) -> exp.Expression:
        def fix(n: exp.Expression) -> exp.Expression:
            if id(n) in finals:
                return finals[id(n)].copy()
            key = n.sql(dialect="duckdb") if isinstance(n, exp.Expression) else None
            if key in group_sql and not isinstance(n, exp.Identifier):
                return _col(group_sql[key])
            return n

        return e.transform(fix, copy=False)

    plan.partition_sql = _select_sql(part_items, part_names, source=PART, where=where, group=group or None)
    final_items = [to_final(e) for e in items]
    final_having = to_final(having) if having is not None else None
    final_order = [(_col(names[j]) if j is not None else to_final(k), d) for k, d, j in order_keys]
    lowered = {n.lower() for n in names}
    for e in final_items + ([final_having] if final_having is not None else []) + [k for k, _ in final_order]:
        for col in e.find_all(exp.Column):
            if col.meta.get("catalog_column") or (
                not col.name.startswith(("__g", "__a")) and col.name.lower() not in lowered
            ):
                raise SqlError(
                    "type", f"column {col.name!r} must appear in GROUP BY or inside an aggregate function",
                    *position(col),
                )  # fmt: skip
    plan.final_sql = _select_sql(
        final_items, names, source=PARTIALS, group=[_col(f"__g{i}") for i in range(len(group))] or None,
        having=final_having, order=final_order or None, limit=plan.limit, offset=plan.offset,
    )  # fmt: skip
    plan.count_only = (
        where is None and not group and having is None and len(aggs) == 1 and isinstance(aggs[0], exp.Count)
        and isinstance(aggs[0].this, exp.Star) and len(items) == 1 and items[0] is aggs[0]
        and not plan.offset and plan.limit != 0
    )  # fmt: skip


def _plan_two_level(plan, items, names, where, group, having, order_keys, distinct) -> None:
    plan.mode = "two-level"
    used: list[str] = []
    for e in items + group + ([having] if having is not None else []) + [k for k, _, _ in order_keys]:
        for c in e.find_all(exp.Column):
            if c.name not in used and c.name in plan.catalog.columns:
                used.append(c.name)
    if not used:
        used = [INDEX_COLUMN]
    plan.partition_sql = _select_sql([_col(c) for c in used], used, source=PART, where=where)
    plan.final_sql = _select_sql(
        items, names, source=PARTIALS, group=group or None, having=having,
        order=[(k, d) for k, d, _ in order_keys] or None, limit=plan.limit, offset=plan.offset, distinct=distinct,
    )  # fmt: skip


def _bind(plan: SqlPlan) -> None:
    """Run the SQL on empty inputs: type errors surface now, and the partial schema is known.

    On a type error, each piece of the query (select items, WHERE, GROUP BY ...) is bound on
    its own to find the one at fault and point at it.
    """
    empty = plan.catalog.schema.empty_table()
    if plan.partition_sql is None:
        return
    try:
        partial = run_sql(plan.partition_sql, {PART: empty})
    except SqlError as exc:
        raise locate_error(exc, plan.pieces, {PART: empty}) from None
    plan.partial_schema = partial.schema
    if plan.final_sql is not None:
        run_sql(plan.final_sql, {PARTIALS: partial})


# -- everything else: one DuckDB over the named catalogs ------------------------------------


def locate_error(exc: SqlError, pieces: list[tuple[str, int | None, int | None]], tables: dict) -> SqlError:
    """``exc`` with the position of the query piece that fails on ``tables`` on its own, if any."""
    if exc.line is not None:
        return exc
    for sql, line, col in pieces:
        try:
            run_sql(f"SELECT {sql} FROM {PART}", tables)
        except SqlError as inner:
            return SqlError(inner.phase, inner.message, line, col)
    return exc


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


def _compile_gather(text: str, root: exp.Query, registry: CatalogRegistry) -> SqlPlan:
    for sel in root.find_all(exp.Select):
        _check_select_shape(sel)
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
                n = _rows_estimate(inp.catalog)
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
        t.set("this", _q(name))
        t.set("db", None)
        if alias is None:
            t.set(
                "alias",
                exp.TableAlias(this=_q(inp.alias) if inp.alias_quoted else exp.to_identifier(inp.alias)),
            )
    names = _name_outer_select(root)
    out = translate_geometry(root)
    plan = SqlPlan(text=text, mode="gather", gather=gather, final_sql=out.sql(dialect="duckdb"))
    empties = {k: (c.schema.empty_table()) for k, c in gather.items()}
    try:
        run_sql(plan.final_sql, empties)
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
    plan.output_names = names
    return plan


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
        items.append(exp.alias_(item.unalias() if isinstance(item, exp.Alias) else item, _q(name)))
    lead.set("expressions", items)
    return names


def describe_gather(plan: SqlPlan) -> Any:  # pragma: no cover - used by explain
    return {k: c.name for k, c in plan.gather.items()}
