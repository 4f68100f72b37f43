"""Compile a checked ADQL AST into plan nodes: the Python chain's plan, plus SQL's nodes.

A single-catalog query (or a positional join of two catalogs) becomes

1. the *input*: a :class:`~proxcompute.Catalog` built with the same methods a Python user
   calls: constant ``CONTAINS``/``DISTANCE`` tests on the catalog's own coordinates become
   ``search(region)`` (partition pruning, ``_healpix_29`` row-group ranges, the exact kernel),
   simple column predicates become ``where(...)`` (pushed to the Parquet scan), the columns
   the query reads become a projection, and a circle test between two catalogs becomes
   ``crossmatch(..., how="all")``; its plan is the one the Python chain builds;
2. what is left, as relational nodes above that plan (:mod:`proxcompute.sql.operators`):
   ``SqlMap``, ``Rename``, ``Sort``, ``Limit``, ``Distinct``, ``SqlAggregate``, ``SqlMerge``.

Anything else (subqueries, CTEs, set operations, non-positional joins) runs in one DuckDB
over the named catalogs (:mod:`proxcompute.sql.gather`). Only :mod:`proxcompute.execute`
decides how a plan runs.
"""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from proxcompute.catalog import Catalog
from proxcompute.errors import SqlError
from proxcompute.ops.expr import Column, Compare, Expr, IsIn, Literal, kind_of
from proxcompute.plan.relational import Limit, Rename, SqlMerge
from proxcompute.sky import INDEX_COLUMN
from proxcompute.sql.equijoin import EquiKey, equi_key, join_on_key, using_keys
from proxcompute.sql.gather import CompiledQuery, check_select_shape, compile_gather, locate, rows_estimate
from proxcompute.sql.geometry import const_value, spatial_test, to_region, translate_geometry
from proxcompute.sql.id_search import split_id_search
from proxcompute.sql.operators import plan_aggregate, plan_rows
from proxcompute.sql.parse import parse_query, position
from proxcompute.sql.registry import CatalogRegistry
from proxcompute.sql.resolve import Input, Resolved, resolve_columns, resolve_table

__all__ = ["CompiledQuery", "compile_query"]

MAX_ROWS_LIMIT = 10**15
"""Largest TOP/LIMIT/OFFSET accepted."""

LEFT_SUFFIX, RIGHT_SUFFIX = "_l_", "_r_"


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


def compile_query(text: str, registry: CatalogRegistry) -> CompiledQuery:
    """Parse, check and plan ``text`` against the catalogs of ``registry``."""
    root = parse_query(text)
    if isinstance(root, exp.Select) and _is_single_level(root):
        plan = _compile_select(text, root, registry)
        if plan is not None:
            return plan
    return compile_gather(text, root, registry)


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


def _join_side(joins: list[exp.Join]) -> str | None:
    """``inner`` or ``left`` for the joins a plan can express (none or one), else None."""
    if len(joins) > 1:
        return None
    for join in joins:
        if join.args.get("method"):  # NATURAL, ASOF, ...
            return None
        side = (join.args.get("side") or "").upper()
        kind = (join.args.get("kind") or "").upper()
        if side == "LEFT" and kind in ("", "OUTER"):
            return "left"
        if side or kind not in ("", "INNER", "CROSS"):
            return None
    return "inner"


def _compile_select(text: str, select: exp.Select, registry: CatalogRegistry) -> CompiledQuery | None:
    source = select.args.get("from_") or select.args.get("from")
    joins = list(select.args.get("joins") or [])
    how = _join_side(joins)
    if how is None:
        return None
    left_join = how == "left"
    check_select_shape(select)
    inputs = [resolve_table(source.this, registry)] + [resolve_table(j.this, registry) for j in joins]
    if any(isinstance(inp.catalog, pa.Table) for inp in inputs):
        return None  # plain tables (TAP_SCHEMA, uploads without coordinates) run in one DuckDB
    if len(inputs) == 2 and inputs[0].alias.lower() == inputs[1].alias.lower():
        raise SqlError(
            "syntax", f"two tables are called {inputs[0].alias!r}: give them aliases", *position(joins[0])
        )
    using = using_keys(joins[0], inputs) if joins else []
    _expand_stars(select, inputs, {k.right_column for k in using})
    resolved = resolve_columns(select, inputs, frozenset(k.left_column.lower() for k in using))

    where = select.args.get("where")
    conjuncts = [(c, False) for c in _flatten_and(where.this if where else None)]
    for join in joins:
        conjuncts += [(c, True) for c in _flatten_and(join.args.get("on"))]

    def pushable(owner: int, from_on: bool) -> bool:
        """May a test of one input filter it before the join? In a LEFT JOIN only the left's
        WHERE terms and the right's ON terms (an ON term on the left keeps unmatched rows)."""
        return not left_join or owner == (1 if from_on else 0)

    regions: list[list] = [[] for _ in inputs]
    predicates: list[list[Expr]] = [[] for _ in inputs]
    residual: list[exp.Expression] = []
    equi: list[EquiKey] = list(using)
    join_radius: float | None = None
    join_pair: tuple[int, int] | None = None
    notes: list[str] = []
    consumed_conjuncts: list[exp.Expression] = []
    for conj, from_on in conjuncts:
        key = equi_key(conj, resolved) if len(inputs) == 2 else None
        if key is not None and (from_on or not left_join):
            equi.append(key)
            continue
        test = spatial_test(conj)
        if test is not None:
            owner = _coordinate_owner(test.point, resolved, inputs)
            if owner is not None:
                region = to_region(test.shape)
                if region is not None and pushable(owner, from_on):
                    regions[owner].append(region)
                    consumed_conjuncts.append(conj)
                    notes.append(f"{inputs[owner].alias}: {test.node.sql()} -> region {region}")
                    continue
                if test.shape.kind == "CIRCLE" and len(inputs) == 2 and join_pair is None and not left_join:
                    centre = _coordinate_owner(tuple(test.shape.args[:2]), resolved, inputs)
                    radius = const_value(test.shape.args[2])
                    if centre is not None and centre != owner and radius is not None:
                        if radius <= 0:
                            raise SqlError("type", "a join radius must be > 0", *position(test.node))
                        join_pair, join_radius = (owner, centre), radius
                        consumed_conjuncts.append(conj)
                        continue
        pushed = _to_predicate(conj, resolved, inputs)
        if pushed is not None and pushable(pushed[0], from_on):
            predicates[pushed[0]].append(pushed[1])
            consumed_conjuncts.append(conj)
            continue
        if left_join and from_on:
            return None  # an ON term we cannot push into the right: one DuckDB join
        residual.append(conj)
    key: EquiKey | None = None
    if len(inputs) == 2 and join_pair is None:
        if not equi:
            return None  # neither positional nor on equal columns: run it as a general join
        key = equi.pop(0)
        if equi and left_join:
            return None  # a second key of a LEFT JOIN is not a filter on the result
    for extra in equi:  # more keys (or keys next to a positional join): tests on the joined rows
        residual.append(_key_test(extra, resolved, inputs))

    consumed = {id(c) for conj in consumed_conjuncts for c in conj.find_all(exp.Column)}
    if key is not None:
        consumed |= {id(c) for c in key.node.find_all(exp.Column)}
    needed: list[list[str]] = [[] for _ in inputs]
    for k, (i, c) in resolved.columns.items():
        if k not in consumed and c not in needed[i]:
            needed[i].append(c)
    cats = []
    for i, inp in enumerate(inputs):
        cat = inp.catalog
        preds = predicates[i]
        if join_pair is None:
            values, preds = split_id_search(cat, preds)
            if values:
                cat = cat.id_search(values)
                notes.append(f"{inp.alias}: {', '.join(values)} through the index catalog -> id_search")
        for region in regions[i]:
            cat = cat.search(region)
        for pred in preds:
            cat = cat.where(str(pred))
        if join_pair is not None:
            cols = list(needed[i])
            for c in (INDEX_COLUMN, cat.ra_column, cat.dec_column):
                if c not in cols:
                    cols.append(c)
            cat = cat[cols]
        elif key is not None:
            own = key.left_column if i == 0 else key.right_column
            cat = cat[[*needed[i], *([own] if own not in needed[i] else [])]]
        cats.append(cat)

    colmap: dict[tuple[int, str], str] = {}
    if len(inputs) == 1:
        catalog = cats[0]
        for c in inputs[0].columns:
            colmap[(0, c)] = c
        return _finish(text, select, inputs, resolved, colmap, catalog, residual, notes, needed[0])
    if key is not None:
        aliases = (inputs[0].alias, inputs[1].alias)
        catalog, swapped, note = join_on_key(
            cats[0], cats[1], key, how=how, suffixes=(LEFT_SUFFIX, RIGHT_SUFFIX), aliases=aliases
        )
        left, right = (1, 0) if swapped else (0, 1)
        notes.append(note)
    else:
        a, b = join_pair
        rows = [rows_estimate(inputs[k].catalog) for k in (a, b)]
        left, right = (a, b) if rows[0] <= rows[1] else (b, a)
        catalog = cats[left].crossmatch(
            cats[right], radius_arcsec=join_radius * 3600.0, how="all",
            suffixes=(LEFT_SUFFIX, RIGHT_SUFFIX), ensure_margin=True,
        )  # fmt: skip
        notes.append(
            f'{inputs[a].alias} x {inputs[b].alias}: positional join within {join_radius * 3600:g}" -> '
            f"crossmatch (all pairs), partitioned like {inputs[left].alias!r}"
        )
    for c in inputs[left].columns:
        colmap[(left, c)] = c if c == INDEX_COLUMN else f"{c}_{LEFT_SUFFIX}"
    for c in inputs[right].columns:
        if c != INDEX_COLUMN:
            colmap[(right, c)] = f"{c}_{RIGHT_SUFFIX}"
    return _finish(text, select, inputs, resolved, colmap, catalog, residual, notes, needed[0])


def _key_test(key: EquiKey, resolved: Resolved, inputs: list[Input]) -> exp.Expression:
    """``key`` as an SQL test on the joined rows (its column references resolved)."""
    if isinstance(key.node, exp.EQ):
        return key.node
    sides = []
    for i, c in ((0, key.left_column), (1, key.right_column)):
        column = exp.Column(this=_q(c), table=_q(inputs[i].alias))
        resolved.columns[id(column)] = (i, c)
        sides.append(column)
    return exp.EQ(this=sides[0], expression=sides[1])


def _expand_stars(select: exp.Select, inputs: list[Input], using_right: set[str] = frozenset()) -> None:
    """Replace ``*`` and ``t.*`` by columns (a ``USING`` column once, as the left's)."""
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
                if i == 1 and c in using_right and isinstance(item, exp.Star):
                    continue
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
            _check_in_list(node, c[1])
            values = [literal(v, c[1].kind) for v in node.expressions]
            if values and all(v is not None for v in values):
                return c[0], IsIn(c[1], tuple(v.value for v in values))
    return None


def _check_in_list(node: exp.In, column: Column) -> None:
    """Refuse ``col IN (...)`` whose literals mix strings and numbers, or do not fit the column."""
    kinds = []
    for v in node.expressions:
        v = v.unnest() if isinstance(v, exp.Paren) else v
        if isinstance(v, exp.Literal) and v.is_string:
            kinds.append(("string", v))
        elif const_value(v) is not None:
            kinds.append(("number", v))
    found = {k for k, _ in kinds}
    if found == {"string", "number"}:
        odd = next(v for k, v in kinds if k != kinds[0][0])
        raise SqlError(
            "type",
            f"the IN list of {column.name!r} mixes numbers and strings ({odd.sql()} among "
            f"{kinds[0][1].sql()}, ...): write values of one type",
            *position(odd),
        )
    wrong = [v for k, v in kinds if k != column.kind]
    if wrong:
        raise SqlError(
            "type",
            f"column {column.name!r} holds {column.kind}s but its IN list has the {wrong[0].sql()} "
            f"{'string' if column.kind == 'number' else 'number'}",
            *position(wrong[0]),
        )


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
) -> CompiledQuery:
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
                        f"{n.sql()}: a join keeps only the {target[1]} of the table its result is partitioned by",
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
    pieces = tuple(
        (e.sql(dialect="duckdb"), *locate(text, e))
        for e in [*items, *_flatten_and(where), *group]
        if not any(isinstance(n, exp.AggFunc) for n in e.walk())
    )
    has_agg = any(isinstance(n, exp.AggFunc) for e in items + ([having] if having else []) for n in e.walk())
    has_agg |= any(isinstance(n, exp.AggFunc) for k, _, _ in order_keys for n in k.walk())
    base = projected.plan
    if has_agg or group:
        root = plan_aggregate(base, items, names, where, group, having, order_keys, distinct, limit, offset, pieces)
        mode = "two-level" if _is_two_level(root) else "aggregate"
    elif (
        where is None
        and not distinct
        and not order_keys
        and all(isinstance(e, exp.Column) for e in items)
        and len({e.name for e in items}) == len(items)
    ):
        cols = [e.name for e in items]
        mode, projected = "catalog", catalog[cols]
        root = projected.plan
        rename = tuple((c, n) for c, n in zip(cols, names, strict=True) if c != n)
        if rename:
            root = Rename(root, rename)
        if limit is not None or offset:
            root = Limit(root, limit, offset)
    else:
        mode = "rows"
        root = plan_rows(base, items, names, where, order_keys, distinct, limit, offset, pieces)
    return CompiledQuery(text, mode, root, projected, tuple(names), tuple(notes))


def _is_two_level(plan) -> bool:
    node = plan
    while node.children:
        if isinstance(node, SqlMerge):
            return True
        (node,) = node.children
    return False
