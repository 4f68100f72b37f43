"""``Catalog.id_search``: rows by column values, through HATS index catalogs.

The index says which ``_healpix_29`` cells hold each value (:func:`proxcompute.storage.index.lookup`),
so the plan's Scan is restricted to the partitions holding them and to those cells (row
groups are pruned by their ``_healpix_29`` statistics, rows sliced), and a ``Filter`` keeps
exactly the rows whose values match. Without an index, ``scan=True`` gives the same
``Filter`` over every partition (still pruning row groups by the column's statistics).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from proxcompute.errors import ColumnNotFoundError, PlanError
from proxcompute.ops.expr import And, Column, Expr, IsIn
from proxcompute.ops.expr._base import kind_of, wrap
from proxcompute.ops.ranges import intersect_ranges, overlaps
from proxcompute.plan.nodes import Filter, PlanNode, Scan, find_scan, output_schema, transform_up
from proxcompute.plan.source import StoredSource
from proxcompute.sky import INDEX_COLUMN
from proxcompute.sky.healpix import order_to_healpix29_range
from proxcompute.storage.index import find_index, lookup, read_index_meta
from proxcompute.storage.location import is_remote

__all__ = [
    "IdIn",
    "cells_to_ranges",
    "id_search_plan",
    "index_path",
    "located_ranges",
    "normalise_values",
    "restrict_to_ranges",
]

_SHOWN = 5


class IdIn(IsIn):
    """``column in [...]`` for an id search: prints a few of many values."""

    def __str__(self) -> str:
        vals = list(self.values)
        shown = ", ".join(repr(v) for v in vals[:_SHOWN])
        more = f", ... ({len(vals):,} values)" if len(vals) > _SHOWN else ""
        return f"{wrap(self.operand)} in [{shown}{more}]"


def normalise_values(column: str, value: Any, dtype: pa.DataType) -> tuple[Any, ...]:
    """A value or a list of values as Python values of the column's type (duplicates and nulls dropped)."""
    if isinstance(value, (str, bytes)) or np.ndim(value) == 0:
        items = [value]
    else:
        items = list(value.tolist() if hasattr(value, "tolist") else value)
    try:
        arr = pa.array(items, from_pandas=True)
        if arr.type != dtype and len(arr):
            arr = arr.cast(dtype)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise PlanError(f"values for {column!r} do not fit its type {dtype}: {exc}") from None
    out = []
    seen = set()
    for v in arr.to_pylist():
        if v is not None and v not in seen:
            seen.add(v)
            out.append(v)
    return tuple(out)


def _predicate(values: Mapping[str, tuple[Any, ...]], schema: pa.Schema) -> Expr:
    parts: list[Expr] = [IdIn(Column(c, kind_of(schema.field(c).type)), v) for c, v in values.items()]
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def cells_to_ranges(cells: np.ndarray) -> np.ndarray:
    cells = np.unique(cells.astype(np.int64))
    if cells.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    breaks = np.flatnonzero(np.diff(cells) != 1) + 1
    starts = cells[np.r_[0, breaks]]
    ends = cells[np.r_[breaks - 1, cells.size - 1]] + 1
    return np.stack([starts, ends], axis=1)


def located_ranges(found: pa.Table) -> np.ndarray:
    """Merged ``_healpix_29`` ranges that hold the index rows ``found``."""
    if INDEX_COLUMN in found.column_names:
        return cells_to_ranges(found.column(INDEX_COLUMN).to_numpy())
    orders = found.column("Norder").to_numpy().astype(np.int64)
    pixels = found.column("Npix").to_numpy().astype(np.int64)
    pairs = sorted(set(zip(orders.tolist(), pixels.tolist(), strict=True)))
    rng = np.array([order_to_healpix29_range(o, p) for o, p in pairs], dtype=np.int64).reshape(-1, 2)
    return rng[np.argsort(rng[:, 0])] if len(rng) else rng


def id_search_plan(
    plan: PlanNode,
    values: Mapping[str, Any],
    *,
    scan: bool = False,
    index_catalogs: Mapping[str, str | os.PathLike] | None = None,
) -> PlanNode:
    """``plan`` restricted to rows whose columns hold ``values`` (every column must match).

    Raises
    ------
    ColumnNotFoundError
        A column of ``values`` is not in the catalog.
    PlanError
        No values, values that do not fit the column's type, or no index for a column (the
        message says how to build one) and ``scan`` is False.
    """
    if not isinstance(values, Mapping) or not values:
        raise PlanError('id_search takes values={"column": value or [values, ...]}')
    schema = output_schema(plan)
    normalised: dict[str, tuple[Any, ...]] = {}
    for column, value in values.items():
        if column not in schema.names:
            raise ColumnNotFoundError(column, schema.names, what=f"catalog {plan.source.name!r}")
        normalised[column] = normalise_values(column, value, schema.field(column).type)
    predicate = _predicate(normalised, schema)
    if scan:
        return Filter(plan, predicate)
    source = find_scan(plan).source
    ranges = None
    for column, vals in normalised.items():
        meta = read_index_meta(_index_path(source, column, index_catalogs))
        if meta.column != column:
            raise PlanError(f"index catalog {meta.root} indexes {meta.column!r}, not {column!r}")
        here = located_ranges(lookup(meta, vals)) if vals else np.empty((0, 2), dtype=np.int64)
        ranges = here if ranges is None else intersect_ranges(ranges, here)
    assert ranges is not None
    ranges = coarsen_ranges(ranges)

    return Filter(restrict_to_ranges(plan, ranges), predicate)


MAX_RANGES = 256
"""At most this many ``_healpix_29`` ranges restrict a Scan: thousands of one-cell ranges would
cut each row group into thousands of slices, while the id predicate is exact anyway."""


def coarsen_ranges(ranges: np.ndarray, max_ranges: int = MAX_RANGES) -> np.ndarray:
    """At most ``max_ranges`` ranges covering ``ranges``, bridging the smallest gaps first."""
    if len(ranges) <= max_ranges:
        return ranges
    gaps = ranges[1:, 0] - ranges[:-1, 1]
    keep = np.sort(np.argsort(gaps, kind="stable")[len(gaps) - (max_ranges - 1) :])  # the widest gaps stay
    starts = np.r_[ranges[0, 0], ranges[keep + 1, 0]]
    ends = np.r_[ranges[keep, 1], ranges[-1, 1]]
    return np.stack([starts, ends], axis=1)


def restrict_to_ranges(plan: PlanNode, ranges: np.ndarray) -> PlanNode:
    """``plan`` with its Scan reading only the partitions and rows within ``_healpix_29`` ranges."""

    def restrict(node: PlanNode) -> PlanNode:
        if not isinstance(node, Scan):
            return node
        candidates = node.partitions
        bounds = np.array([p.healpix29_range for p in candidates], dtype=np.int64).reshape(-1, 2)
        keep = (
            overlaps(bounds[:, 0], bounds[:, 1], ranges) if len(ranges) else np.zeros(len(candidates), bool)
        )
        pixels = tuple(p for p, k in zip(candidates, keep, strict=True) if k)
        merged = ranges if node.ranges is None else intersect_ranges(node.ranges, ranges)
        return replace(node, pixels=pixels, ranges=merged)

    return transform_up(plan, restrict)


def index_path(
    source: Any, column: str, index_catalogs: Mapping[str, str | os.PathLike] | None
) -> Path | None:
    """The index catalog of ``column`` for a plan's source: given, listed or conventional; or None."""
    if index_catalogs and column in index_catalogs:
        return Path(index_catalogs[column])
    root = source.root if isinstance(source, StoredSource) else None
    return find_index(root, column) if root is not None else None


def _index_path(source: Any, column: str, index_catalogs: Mapping[str, str | os.PathLike] | None) -> Path:
    found = index_path(source, column, index_catalogs)
    if found is not None:
        return found
    root = source.root if isinstance(source, StoredSource) else None
    if root is None:
        raise PlanError(
            f"catalog {source.name!r} is not stored, so it has no index of {column!r}: "
            "pass scan=True to search every partition"
        )
    if is_remote(root):
        raise PlanError(
            f"catalog {source.name!r} at {root} is remote, and index catalogs are read from local disk "
            f"only: pass scan=True to read every partition (row groups skipped by {column!r}'s statistics)"
        )
    raise PlanError(
        f"catalog {source.name!r} has no index of column {column!r}. Build one with "
        f"`proxcompute index {root.parent if (root.parent / 'collection.properties').exists() else root} "
        f"--column {column}` (or ingest(..., index_columns=[{column!r}])), pass "
        "index_catalogs={...} to name one, or pass scan=True to read every partition."
    )
