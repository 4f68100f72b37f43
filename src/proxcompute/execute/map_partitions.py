"""Run a :class:`~proxcompute.plan.map_partitions.MapPartitions` node on one partition.

The partition's rows (plus, with a margin, its margin rows marked by ``_margin``) become a
pandas DataFrame, the user's function runs on it, and what it returns is checked before it
becomes part of a catalog:

* an exception in the function becomes a :class:`~proxcompute.errors.UserFunctionError`
  naming the partition, with the user's traceback;
* a return value that is not a DataFrame, columns that differ from the declared schema
  (``meta``), or values that do not convert to it: a ``UserFunctionError`` too;
* ``_healpix_29`` must survive: dropped, or changed to a value outside the partition, is an
  error; rows returned out of ``_healpix_29`` order are re-sorted (stably), so the result is
  always a valid catalog;
* with a margin, the function must keep ``_margin``; only rows with ``_margin == False``
  are kept, and the column is dropped.

Empty partitions are skipped: the function is not called on zero rows.
"""

from __future__ import annotations

import traceback
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from proxcompute.errors import PlanError, UserFunctionError
from proxcompute.execute.crossmatch import neighbourhood_rows
from proxcompute.execute.partition import NODE_RUNNERS, run_partition
from proxcompute.plan.map_partitions import MARGIN_COLUMN, MapPartitions, function_name
from proxcompute.plan.nodes import PlanNode, find_scan
from proxcompute.plan.optimizer import optimize
from proxcompute.sky import INDEX_COLUMN
from proxcompute.storage import PartitionPixel

__all__ = ["call_user_function", "input_frame", "learn_schema", "run_map_partitions"]


def _margin_rows(node: MapPartitions, pixel: PartitionPixel) -> pa.Table | None:
    plan = node.margin_plan
    assert plan is not None
    if node.margin_arcsec is None:  # a margin catalog: its partition of the same pixel
        if pixel not in set(find_scan(plan).partitions):
            return None
        return run_partition(plan, pixel)
    rows = neighbourhood_rows(plan, pixel, node.margin_arcsec / 3600.0)
    if rows is None or rows.num_rows == 0:
        return None
    idx = rows.column(INDEX_COLUMN).to_numpy()
    lo, hi = pixel.healpix29_range
    outside = (idx < lo) | (idx >= hi)
    # a superset of the margin (the pixel's circumscribed cone widened by the radius): enough
    # for neighbour counts, and every row within margin_arcsec of the partition is there
    return rows.filter(pa.array(outside))


def input_frame(node: MapPartitions, pixel: PartitionPixel) -> pd.DataFrame:
    """The DataFrame the user's function receives for ``pixel``."""
    table = run_partition(node.child, pixel)
    if node.margin_plan is None:
        return table.to_pandas()
    main = table.append_column(MARGIN_COLUMN, pa.array(np.zeros(table.num_rows, dtype=bool)))
    margin = _margin_rows(node, pixel)
    if margin is not None and margin.num_rows:
        margin = margin.select(table.column_names)
        margin = margin.append_column(MARGIN_COLUMN, pa.array(np.ones(margin.num_rows, dtype=bool)))
        main = pa.concat_tables([main, margin.cast(main.schema)])
    return main.to_pandas()


def call_user_function(node: MapPartitions, df: pd.DataFrame, pixel: PartitionPixel) -> Any:
    """``fn(df)`` or ``fn(df, pixel)``; an exception becomes a :class:`UserFunctionError`."""
    try:
        return node.fn(df, pixel) if node.include_pixel else node.fn(df)
    except Exception as exc:
        tb = traceback.format_exc()
        raise UserFunctionError(
            f"{function_name(node.fn)} raised {type(exc).__name__}: {exc}", str(pixel), tb
        ) from None


def _fail(node: MapPartitions, pixel: PartitionPixel, message: str) -> UserFunctionError:
    return UserFunctionError(f"{function_name(node.fn)} {message}", str(pixel))


def _drop_margin(node: MapPartitions, pixel: PartitionPixel, out: pd.DataFrame) -> pd.DataFrame:
    if MARGIN_COLUMN not in out.columns:
        raise _fail(
            node,
            pixel,
            f"dropped the {MARGIN_COLUMN!r} column; with include_margin the function must keep it",
        )
    keep = ~out[MARGIN_COLUMN].astype(bool).to_numpy()
    return out.loc[keep].drop(columns=[MARGIN_COLUMN])


def _checked(node: MapPartitions, pixel: PartitionPixel, out: Any, schema: pa.Schema | None) -> pa.Table:
    if not isinstance(out, pd.DataFrame):
        raise _fail(node, pixel, f"returned {type(out).__name__}, not a pandas DataFrame")
    if node.margin_plan is not None:
        out = _drop_margin(node, pixel, out)
    if INDEX_COLUMN not in out.columns:
        raise _fail(
            node, pixel, f"dropped {INDEX_COLUMN}; the result of map_partitions is a catalog and must keep it"
        )
    if schema is not None:
        names = [str(c) for c in out.columns]
        missing = [c for c in schema.names if c not in names]
        extra = [c for c in names if c not in schema.names]
        if missing or extra:
            detail = "; ".join(
                s
                for s in (f"missing {missing}" if missing else "", f"not declared {extra}" if extra else "")
                if s
            )
            raise _fail(
                node, pixel, f"returned columns that contradict meta ({detail}); meta: {schema.names}"
            )
        try:
            table = pa.Table.from_pandas(out[schema.names], schema=schema, preserve_index=False, safe=True)
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            pa.ArrowNotImplementedError,
            ValueError,
            TypeError,
        ) as exc:
            raise _fail(node, pixel, f"returned values that do not fit meta's types: {exc}") from None
    else:
        try:
            table = pa.Table.from_pandas(out, preserve_index=False)
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            pa.ArrowNotImplementedError,
            ValueError,
            TypeError,
        ) as exc:
            raise _fail(node, pixel, f"returned a DataFrame Arrow cannot store: {exc}") from None
        table = table.replace_schema_metadata(None)
    return _ordered(node, pixel, table)


def _ordered(node: MapPartitions, pixel: PartitionPixel, table: pa.Table) -> pa.Table:
    if table.num_rows == 0:
        return table
    col = table.column(INDEX_COLUMN)
    if col.null_count:
        raise _fail(node, pixel, f"returned null {INDEX_COLUMN} values")
    idx = col.to_numpy()
    if not node.source.is_margin:
        lo, hi = pixel.healpix29_range
        if idx.min() < lo or idx.max() >= hi:
            raise _fail(
                node,
                pixel,
                f"changed {INDEX_COLUMN}: values outside partition {pixel}; it must keep each row's index",
            )
    if np.all(idx[1:] >= idx[:-1]):
        return table
    return table.take(pc.sort_indices(table, sort_keys=[(INDEX_COLUMN, "ascending")]))  # stable


def run_map_partitions(node: MapPartitions, pixel: PartitionPixel) -> pa.Table:
    """The checked result of the user's function on one partition (empty: not called)."""
    df = input_frame(node, pixel)
    rows = int((~df[MARGIN_COLUMN]).sum()) if node.margin_plan is not None else len(df)
    if rows == 0:
        return node.schema.empty_table()
    return _checked(node, pixel, call_user_function(node, df, pixel), node.schema)


def learn_schema(node: MapPartitions) -> pa.Schema:
    """The output schema, from the first non-empty partition (computed once, in this process)."""
    plan: PlanNode = optimize(node)
    assert isinstance(plan, MapPartitions)
    for pixel in find_scan(plan).partitions:
        df = input_frame(plan, pixel)
        rows = int((~df[MARGIN_COLUMN]).sum()) if plan.margin_plan is not None else len(df)
        if rows == 0:
            continue
        table = _checked(plan, pixel, call_user_function(plan, df, pixel), None)
        return table.schema
    raise PlanError("map_partitions cannot learn its output schema: every partition is empty; pass meta=")


NODE_RUNNERS[MapPartitions] = run_map_partitions
