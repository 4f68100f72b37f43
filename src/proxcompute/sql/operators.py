"""What is left of a query after pushdown, as relational plan nodes over the input plan.

The compiler (:mod:`proxcompute.sql.compile`) has turned regions, simple predicates, the
projection and positional joins into the input catalog's plan. The rest becomes nodes of
:mod:`proxcompute.plan.relational`:

* select-list expressions and residual WHERE terms: a ``SqlMap`` (DuckDB per partition);
  renamed columns of a plain selection: a ``Rename``;
* ORDER BY: ``Sort`` (keys not in the select list are computed by the ``SqlMap`` as hidden
  columns and projected away above); TOP/LIMIT/OFFSET: ``Limit`` (``Sort`` + ``Limit``
  becomes ``TopN`` in the optimizer); DISTINCT: ``Distinct``;
* GROUP BY and aggregates: ``SqlAggregate`` (DuckDB partial aggregates per partition,
  AVG as SUM + COUNT, then a DuckDB final merge that also applies HAVING, ORDER BY and
  LIMIT on the groups); ``COUNT(*)`` alone: an ``SqlAggregate`` the executor answers by
  counting; forms that cannot be merged from partials (``COUNT(DISTINCT ...)``, nested
  aggregates, DISTINCT with GROUP BY): a ``SqlMap`` for the rows, then a ``SqlMerge``
  running the whole query over their union.

Each SQL text is bound on an empty input here, so type errors surface at compile time.
"""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from proxcompute.errors import ProxError, SqlError
from proxcompute.ops.sql_engine import SortKey, locate_error, run_sql
from proxcompute.plan import PlanNode, Project, output_schema
from proxcompute.plan.aggregate import Aggregate, AggSpec, HealpixKey
from proxcompute.plan.nodes import with_extra_columns
from proxcompute.plan.relational import Distinct, Limit, Rename, Sort, SqlAggregate, SqlMap, SqlMerge
from proxcompute.sky import INDEX_COLUMN
from proxcompute.sql.geometry import const_value
from proxcompute.sql.parse import position

__all__ = ["PART", "PARTIALS", "plan_aggregate", "plan_rows", "plan_two_level", "select_sql"]

PART = "__part"
PARTIALS = "__partials"
_DECOMPOSABLE = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max)

Pieces = tuple[tuple[str, int | None, int | None], ...]


def q(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def col(name: str) -> exp.Column:
    return exp.Column(this=q(name))


def select_sql(items, names, *, source, where=None, group=None, having=None, order=None, limit=None,
               offset=None, distinct=False) -> str:  # fmt: skip
    """``SELECT items AS names FROM source ...`` as DuckDB SQL."""
    sel = exp.Select(expressions=[exp.alias_(e, q(n)) for e, n in zip(items, names, strict=True)])
    sel = sel.from_(exp.Table(this=q(source)))
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


def _bind(sql: str, table_name: str, schema: pa.Schema, pieces: Pieces = ()) -> pa.Schema:
    """The schema ``sql`` gives over an empty ``schema`` table (type errors located in ``pieces``)."""
    tables = {table_name: schema.empty_table()}
    try:
        return run_sql(sql, tables).schema
    except SqlError as exc:
        raise locate_error(exc, list(pieces), tables) from None


def sql_map(child: PlanNode, sql: str, pieces: Pieces) -> SqlMap:
    """A ``SqlMap`` of ``sql`` over ``child``, with its bound schema."""
    return SqlMap(child, sql, _bind(sql, PART, output_schema(child), pieces), pieces)


def plan_rows(child, items, names, where, order_keys, distinct, limit, offset, pieces: Pieces) -> PlanNode:
    """Row-by-row queries: ``SqlMap`` [``Distinct``] [``Sort``] [``Limit``] [``Project``]."""
    hidden, hidden_names, keys = [], [], []
    for k, (key, desc, j) in enumerate(order_keys):
        if j is not None:
            keys.append(SortKey(names[j], desc[0], desc[1]))
        elif distinct:
            raise SqlError(
                "unsupported", "with SELECT DISTINCT, ORDER BY must use columns of the select list", *position(key)
            )
        else:
            hidden.append(key.copy())
            hidden_names.append(f"__o{k}")
            keys.append(SortKey(f"__o{k}", desc[0], desc[1]))
    plain = [e.name for e in items if isinstance(e, exp.Column)]
    if where is None and not hidden and len(plain) == len(items) == len(set(plain)):
        node: PlanNode = Project(child, tuple(plain))  # columns only: no SQL engine per partition
        renames = tuple((c, n) for c, n in zip(plain, names, strict=True) if c != n)
        if renames:
            node = Rename(node, renames)
    else:
        sql = select_sql(items + hidden, names + hidden_names, source=PART, where=where)
        node = sql_map(child, sql, pieces)
    if distinct:
        node = Distinct(node)
    if keys:
        node = Sort(node, tuple(keys))
    if limit is not None or offset:
        node = Limit(node, limit, offset)
    if hidden:
        node = Project(node, tuple(names))
    return node


def plan_aggregate(child, items, names, where, group, having, order_keys, distinct, limit, offset,
                   pieces: Pieces) -> PlanNode:  # fmt: skip
    """GROUP BY / aggregates: the generic ``Aggregate`` node when it can express the query, else
    partial + final DuckDB SQL (or two levels when the aggregates do not decompose)."""
    generic = generic_aggregate(child, items, names, where, group, having, order_keys, distinct, limit, offset)
    if generic is not None:
        return generic
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
        return plan_two_level(child, items, names, where, group, having, order_keys, distinct, limit, offset, pieces)
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
            finals_by_agg.append(exp.Coalesce(this=exp.Sum(this=col(f"__a{j}")), expressions=[exp.Literal.number(0)]))
        elif isinstance(a, exp.Avg):
            part_items += [exp.Sum(this=arg.copy()), exp.Count(this=arg.copy())]
            part_names += [f"__a{j}s", f"__a{j}c"]
            finals_by_agg.append(
                exp.Div(
                    this=exp.Cast(this=exp.Sum(this=col(f"__a{j}s")), to=exp.DataType.build("DOUBLE")),
                    expression=exp.Nullif(this=exp.Sum(this=col(f"__a{j}c")), expression=exp.Literal.number(0)),
                )
            )
        else:
            part_items.append(a.copy())
            part_names.append(f"__a{j}")
            finals_by_agg.append(type(a)(this=col(f"__a{j}")))
    finals = {id(n): finals_by_agg[next(j for j, a in enumerate(aggs) if a == n)] for n in occurrences}
    group_sql = {g.sql(dialect="duckdb"): f"__g{i}" for i, g in enumerate(group)}

    def to_final(e: exp.Expression) -> exp.Expression:
        def fix(n: exp.Expression) -> exp.Expression:
            if id(n) in finals:
                return finals[id(n)].copy()
            key = n.sql(dialect="duckdb") if isinstance(n, exp.Expression) else None
            if key in group_sql and not isinstance(n, exp.Identifier):
                return col(group_sql[key])
            return n

        return e.transform(fix, copy=False)

    partial_sql = select_sql(part_items, part_names, source=PART, where=where, group=group or None)
    final_items = [to_final(e) for e in items]
    final_having = to_final(having) if having is not None else None
    final_order = [(col(names[j]) if j is not None else to_final(k), d) for k, d, j in order_keys]
    lowered = {n.lower() for n in names}
    for e in final_items + ([final_having] if final_having is not None else []) + [k for k, _ in final_order]:
        for c in e.find_all(exp.Column):
            if c.meta.get("catalog_column") or (not c.name.startswith(("__g", "__a")) and c.name.lower() not in lowered):
                raise SqlError(
                    "type", f"column {c.name!r} must appear in GROUP BY or inside an aggregate function", *position(c)
                )
    final_sql = select_sql(
        final_items, names, source=PARTIALS, group=[col(f"__g{i}") for i in range(len(group))] or None,
        having=final_having, order=final_order or None, limit=limit, offset=offset,
    )  # fmt: skip
    partial_schema = _bind(partial_sql, PART, output_schema(child), pieces)
    schema = _bind(final_sql, PARTIALS, partial_schema)
    return SqlAggregate(child, partial_sql, final_sql, schema, partial_schema, pieces)


_GENERIC = {exp.Count: "count", exp.Sum: "sum", exp.Avg: "mean", exp.Min: "min", exp.Max: "max",
            exp.Stddev: "std", exp.StddevSamp: "std"}  # fmt: skip
"""SQL aggregates the generic ``Aggregate`` node computes (``std`` is the sample deviation)."""


def _healpix_order(e: exp.Expression, child: PlanNode) -> int | None:
    """The order of ``ivo_healpix_index(order, ra, dec)`` on the catalog's own coordinates, else None."""
    if not isinstance(e, exp.Anonymous) or str(e.name).lower() != "ivo_healpix_index" or len(e.expressions) != 3:
        return None
    order, ra, dec = e.expressions
    value = const_value(order)
    src = child.source
    if value is None or value != int(value) or not 0 <= value <= 29 or INDEX_COLUMN not in src.schema.names:
        return None
    own = [c.name if isinstance(c, exp.Column) and c.meta.get("catalog_column") else None for c in (ra, dec)]
    return int(value) if own == [src.ra_column, src.dec_column] else None


def _plain_column(e: exp.Expression, schema: pa.Schema, numeric: bool = False) -> str | None:
    if not isinstance(e, exp.Column) or not e.meta.get("catalog_column") or e.name not in schema.names:
        return None
    t = schema.field(e.name).type
    if numeric and not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        return None
    return e.name


def generic_aggregate(child, items, names, where, group, having, order_keys, distinct, limit, offset) -> PlanNode | None:
    """``GROUP BY`` plain columns with ``COUNT``/``SUM``/``AVG``/``MIN``/``MAX``/``STDDEV`` of
    plain numeric columns (and nothing else: no residual WHERE, HAVING or DISTINCT) as the
    :class:`~proxcompute.plan.aggregate.Aggregate` node sky maps use, with ``Sort``/``Limit``/
    ``Project``/``Rename`` above it; None when the query needs more."""
    if where is not None or having is not None or distinct:
        return None
    schema = output_schema(child)
    keys: list[str | HealpixKey] = []
    healpix_sql: dict[str, int] = {}  # SQL of an ivo_healpix_index key -> its position in keys
    for g in group:
        order = _healpix_order(g, child)
        if order is not None:
            healpix_sql[g.sql(dialect="duckdb")] = len(keys)
            keys.append(HealpixKey(order))
        else:
            keys.append(_plain_column(g, schema))
    if any(k is None for k in keys) or len(set(keys)) != len(keys):
        return None
    specs: list[AggSpec] = []
    out: list[str] = []  # output column of each select item, before renaming
    for item, name in zip(items, names, strict=True):
        func = _GENERIC.get(type(item))
        at = healpix_sql.get(item.sql(dialect="duckdb"))
        if at is not None:
            key = keys[at]
            if key.name == "pixel" and name not in out:  # the first time it is selected: its name
                keys[at] = key = HealpixKey(key.order, name)
            out.append(key.name)
            continue
        if func is None:
            key = _plain_column(item, schema)
            if key is None or key not in keys:
                return None
            out.append(key)
            continue
        arg = item.this
        if isinstance(arg, exp.Star) and func == "count":
            column = None
        else:
            column = _plain_column(arg, schema, numeric=True)  # count(string) fails in ops.aggregate
            if column is None:
                return None
        specs.append(AggSpec(name, func, column))
        out.append(name)
    if len(set(out)) != len(out):
        return None
    if healpix_sql:  # the pixel comes from the index column by a shift
        child = with_extra_columns(child, [INDEX_COLUMN])
    try:
        node: PlanNode = Aggregate(child, tuple(keys), tuple(specs))
    except ProxError:  # a name clash between keys and aggregates, a non-numeric column
        return None
    keys_sort = []
    for _, desc, j in order_keys:
        if j is None:
            return None
        keys_sort.append(SortKey(out[j], desc[0], desc[1]))
    if keys_sort:
        node = Sort(node, tuple(keys_sort))
    if limit is not None or offset:
        node = Limit(node, limit, offset)
    if out != node.output_columns():
        node = Project(node, tuple(out))
    renames = tuple((o, n) for o, n in zip(out, names, strict=True) if o != n)
    return Rename(node, renames) if renames else node


def plan_two_level(child, items, names, where, group, having, order_keys, distinct, limit, offset,
                   pieces: Pieces) -> PlanNode:  # fmt: skip
    """The rows the query uses (filtered per partition), then the whole query over their union."""
    used: list[str] = []
    available = child.output_columns()
    for e in items + group + ([having] if having is not None else []) + [k for k, _, _ in order_keys]:
        for c in e.find_all(exp.Column):
            if c.name not in used and c.name in available:
                used.append(c.name)
    if not used:
        used = [INDEX_COLUMN]
    rows: PlanNode = child
    if where is not None or used != available:
        rows = sql_map(child, select_sql([col(c) for c in used], used, source=PART, where=where), pieces)
    final_sql = select_sql(
        items, names, source=PARTIALS, group=group or None, having=having,
        order=[(k, d) for k, d, _ in order_keys] or None, limit=limit, offset=offset, distinct=distinct,
    )  # fmt: skip
    return SqlMerge(rows, final_sql, _bind(final_sql, PARTIALS, output_schema(rows)))
