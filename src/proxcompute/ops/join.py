"""Equi-join of two Arrow tables on one column each (no Dask): the rows of one left partition
against the right rows that hold its keys.

Output rows are in left order; a left row with several matches gets them in right order.
Null keys never match (as in SQL). ``how="left"`` keeps unmatched left rows with nulls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from proxcompute.errors import PlanError
from proxcompute.sky import INDEX_COLUMN

__all__ = ["JOIN_HOW", "JoinArgs", "KeyMap", "exact_keys", "join_output_schema", "join_tables", "key_type"]

JOIN_HOW = ("inner", "left")


@dataclass(frozen=True)
class JoinArgs:
    """Everything a join needs besides its inputs."""

    left_on: str
    right_on: str
    how: str = "inner"
    left_suffix: str = "left"
    right_suffix: str = "right"

    def __post_init__(self) -> None:
        if self.how not in JOIN_HOW:
            raise PlanError(f"how must be one of {', '.join(map(repr, JOIN_HOW))}; got {self.how!r}")
        if self.left_suffix == self.right_suffix:
            raise PlanError(f"left and right suffixes must differ (both are {self.left_suffix!r})")

    def left_name(self, column: str) -> str:
        return column if column == INDEX_COLUMN else f"{column}_{self.left_suffix}"

    def right_name(self, column: str) -> str:
        return f"{column}_{self.right_suffix}"


def join_output_schema(left: pa.Schema, right: pa.Schema, args: JoinArgs) -> pa.Schema:
    """``_healpix_29`` (the left's), left columns suffixed, right columns suffixed."""
    fields = [pa.field(INDEX_COLUMN, pa.int64())]
    fields += [pa.field(args.left_name(f.name), f.type) for f in left if f.name != INDEX_COLUMN]
    fields += [pa.field(args.right_name(f.name), f.type) for f in right]
    return pa.schema(fields)


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def key_type(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The type two key columns compare in: ``a``, or float64 between integers and floats
    (as SQL compares them: ``id = 3.5`` never holds, ``id = 3.0`` does)."""
    if a != b and _numeric(a) and _numeric(b) and (pa.types.is_floating(a) or pa.types.is_floating(b)):
        return pa.float64()
    return a


def exact_keys(keys: pa.Array, type_: pa.DataType) -> pa.Array:
    """``keys`` as ``type_``, without the values that type cannot hold exactly (3.5 for an
    integer column: it equals none of its values)."""
    if keys.type == type_:
        return keys
    if pa.types.is_integer(type_) and pa.types.is_floating(keys.type):
        v = keys.to_numpy(zero_copy_only=False)
        info = np.iinfo(type_.to_pandas_dtype())
        ok = np.isfinite(v) & (np.floor(v) == v) & (v >= info.min) & (v <= info.max)
        return pa.array(v[ok]).cast(type_)
    return pc.cast(keys, type_)


def _keys(column: pa.ChunkedArray | pa.Array, type_: pa.DataType) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column if column.type == type_ else pc.cast(column, type_)


def join_tables(left: pa.Table, right: pa.Table | None, args: JoinArgs, schema: pa.Schema) -> pa.Table:
    """Join ``left`` with ``right`` on ``args.left_on == args.right_on``; columns follow ``schema``."""
    n_left = left.num_rows
    if right is None or right.num_rows == 0 or n_left == 0:
        left_idx = np.arange(n_left) if args.how == "left" else np.empty(0, np.int64)
        return _assemble(left, None, left_idx, np.full(len(left_idx), -1, np.int64), args, schema)
    common = key_type(left.schema.field(args.left_on).type, right.schema.field(args.right_on).type)
    lk = _keys(left.column(args.left_on), common)
    rk = _keys(right.column(args.right_on), common)
    # dictionary-encode both sides against the right's values: codes compare as integers
    r_valid = np.flatnonzero(rk.is_valid().to_numpy(zero_copy_only=False))
    r_codes = pc.index_in(rk, value_set=pc.unique(rk.drop_null())).to_numpy(zero_copy_only=False)
    l_codes = (
        pc.index_in(lk, value_set=pc.unique(rk.drop_null())).fill_null(-1).to_numpy(zero_copy_only=False)
    )
    r_codes = r_codes[r_valid].astype(np.int64)
    order = np.argsort(r_codes, kind="stable")
    sorted_codes = r_codes[order]
    lo = np.searchsorted(sorted_codes, l_codes, side="left")
    hi = np.searchsorted(sorted_codes, l_codes, side="right")
    counts = np.where(l_codes >= 0, hi - lo, 0)
    if args.how == "left":
        rows_per_left = np.maximum(counts, 1)
    else:
        rows_per_left = counts
    left_idx = np.repeat(np.arange(n_left), rows_per_left)
    starts = np.repeat(lo, rows_per_left)
    offsets = np.arange(len(left_idx)) - np.repeat(np.cumsum(rows_per_left) - rows_per_left, rows_per_left)
    matched = np.repeat(counts > 0, rows_per_left)
    right_idx = np.full(len(left_idx), -1, dtype=np.int64)
    right_idx[matched] = r_valid[order[(starts + offsets)[matched]]]
    return _assemble(left, right, left_idx, right_idx, args, schema)


def _assemble(left, right, left_idx, right_idx, args, schema) -> pa.Table:
    take_left = pa.array(left_idx, type=pa.int64())
    columns = [left.column(INDEX_COLUMN).take(take_left)]
    columns += [left.column(n).take(take_left) for n in left.column_names if n != INDEX_COLUMN]
    missing = right_idx < 0
    take = pa.array(np.where(missing, 0, right_idx), type=pa.int64(), mask=missing if missing.any() else None)
    n_left_columns = left.num_columns - 1
    for field in list(schema)[1 + n_left_columns :]:
        if right is None or right.num_rows == 0:
            columns.append(pa.nulls(len(left_idx), type=field.type))
        else:
            columns.append(right.column(field.name[: -(len(args.right_suffix) + 1)]).take(take))
    return pa.Table.from_arrays([c.cast(f.type) for c, f in zip(columns, schema, strict=True)], schema=schema)


class KeyMap:
    """An in-memory index: the right side's keys, sorted, with the ``_healpix_29`` of each row.

    Holds about 16 bytes per right row (8 for a numeric key, 8 for the cell; strings more),
    the bound of a join through a right side without an index catalog.
    """

    def __init__(self, keys: pa.Array, index29: np.ndarray) -> None:
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        valid = keys.is_valid().to_numpy(zero_copy_only=False)
        values = keys.filter(pa.array(valid)).to_numpy(zero_copy_only=False)
        cells = np.asarray(index29)[valid]
        order = np.argsort(values, kind="stable")
        self.type = keys.type
        self.keys = values[order]
        self.cells = cells[order]

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.cells.nbytes)

    def cells_for(self, wanted: pa.Array) -> np.ndarray:
        """Sorted unique ``_healpix_29`` cells of the rows whose key is in ``wanted``."""
        w = wanted.drop_null()
        if len(w) == 0 or len(self.keys) == 0:
            return np.empty(0, dtype=np.int64)
        common = key_type(self.type, w.type)
        keys = self.keys if common == self.type else self.keys.astype(np.float64)  # still sorted
        w = (pc.cast(w, common) if w.type != common else w).to_numpy(zero_copy_only=False)
        lo = np.searchsorted(keys, w, side="left")
        hi = np.searchsorted(keys, w, side="right")
        n = hi - lo
        if not n.any():
            return np.empty(0, dtype=np.int64)
        pos = np.repeat(lo, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
        return np.unique(self.cells[pos])
