"""Arrow column preparation shared by the writers: one plan per column, vectorized conversions.

Every conversion here works on whole Arrow arrays (Arrow compute kernels or numpy), never per
row in Python, so the writers stay fast on millions of rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from proxcompute.arrow_types import is_nested_type
from proxcompute.errors import InputError

# kind -> how the values are carried: "int", "float", "bool", "str" (timestamps, dates, ... are
# converted to strings before anything else sees them).
_INT_TYPES = {
    # arrow type id -> (VOTable datatype, numpy big-endian dtype, arrow type to cast to, null sentinel)
    pa.int8(): ("short", ">i2", pa.int16(), -32768),
    pa.uint8(): ("unsignedByte", ">u1", pa.uint8(), 255),
    pa.int16(): ("short", ">i2", pa.int16(), -32768),
    pa.uint16(): ("int", ">i4", pa.int32(), -(2**31)),
    pa.int32(): ("int", ">i4", pa.int32(), -(2**31)),
    pa.uint32(): ("long", ">i8", pa.int64(), -(2**63)),
    pa.int64(): ("long", ">i8", pa.int64(), -(2**63)),
    pa.uint64(): ("long", ">i8", pa.int64(), -(2**63)),
}


@dataclass(frozen=True)
class ColumnPlan:
    """How one output column is written.

    Attributes
    ----------
    name : str
        The column name.
    kind : str
        ``"int"``, ``"float"``, ``"bool"`` or ``"str"``.
    datatype : str
        The VOTable datatype.
    np_dtype : str or None
        The big-endian numpy dtype of a fixed-size binary value (None for strings).
    arrow_type : pyarrow.DataType
        The Arrow type the values are cast to before writing.
    sentinel : int or None
        The null sentinel of integer columns (BINARY and TABLEDATA ``VALUES null``).
    xtype : str or None
        The VOTable xtype implied by the Arrow type (``timestamp`` for dates and times).
    """

    name: str
    kind: str
    datatype: str
    np_dtype: str | None
    arrow_type: pa.DataType
    sentinel: int | None = None
    xtype: str | None = None


def plan_column(field: pa.Field) -> ColumnPlan:
    """Choose how a column of an Arrow type is written.

    Parameters
    ----------
    field : pyarrow.Field
        The column; dictionary-encoded columns are planned as their value type.

    Returns
    -------
    ColumnPlan

    Raises
    ------
    proxcompute.errors.InputError
        For types with no output representation (lists, structs, binary, ...).
    """
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    name = field.name
    if t in _INT_TYPES:
        datatype, np_dtype, cast_to, sentinel = _INT_TYPES[t]
        return ColumnPlan(name, "int", datatype, np_dtype, cast_to, sentinel)
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return ColumnPlan(name, "float", "float", ">f4", pa.float32())
    if pa.types.is_float64(t) or pa.types.is_decimal(t):
        return ColumnPlan(name, "float", "double", ">f8", pa.float64())
    if pa.types.is_boolean(t):
        return ColumnPlan(name, "bool", "boolean", ">u1", pa.bool_())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return ColumnPlan(name, "str", "unicodeChar", None, t)
    # ASCII by construction: 1-byte char (DALI also requires char for xtype="timestamp")
    if pa.types.is_null(t):
        return ColumnPlan(name, "str", "char", None, pa.string())
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return ColumnPlan(name, "str", "char", None, t, xtype="timestamp")
    if pa.types.is_time(t):
        return ColumnPlan(name, "str", "char", None, t)
    if is_nested_type(t):
        raise InputError(nested_refusal(name, t))
    raise InputError(f"cannot write column {name!r} of type {t}: no output representation for it")


def nested_refusal(name: str, t: pa.DataType, fmt: str = "VOTable, CSV and TSV") -> str:
    """The message refusing to write nested column ``name`` in a one-value-per-cell format."""
    return (
        f"cannot write column {name!r}: it is nested ({t}), and {fmt} hold one value per cell. "
        "Select the flat columns (cat[[...]] or SELECT), or write Parquet, which keeps nested columns"
    )


def check_flat(schema: pa.Schema, fmt: str) -> None:
    """Refuse a schema with a nested column for a one-value-per-cell format ``fmt``.

    Raises
    ------
    proxcompute.errors.InputError
        Naming the first nested column.
    """
    for f in schema:
        if is_nested_type(f.type):
            raise InputError(nested_refusal(f.name, f.type, fmt))


def decode(arr: pa.Array) -> pa.Array:
    """Return ``arr`` with a dictionary encoding removed (other arrays unchanged)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = pa.concat_arrays([decode(c) for c in arr.chunks]) if arr.num_chunks else pa.array([], arr.type)
    if pa.types.is_dictionary(arr.type):
        return arr.dictionary_decode()
    return arr


def as_strings(arr: pa.Array, plan: ColumnPlan) -> pa.Array:
    """Convert a ``str``-kind column (strings, timestamps, dates, times, nulls) to a string array.

    Timestamps become ISO-8601 ``YYYY-MM-DDThh:mm:ss[.fff]`` in UTC (time-zone aware values are
    converted to UTC, no suffix); dates ``YYYY-MM-DD``.
    """
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return arr
    if pa.types.is_string_view(t):
        return pc.cast(arr, pa.large_string())
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            arr = arr.cast(pa.timestamp(t.unit))
        return pc.replace_substring(pc.cast(arr, pa.string()), " ", "T", max_replacements=1)
    return pc.cast(arr, pa.string())


def is_null_mask(arr: pa.Array) -> np.ndarray:
    """Boolean numpy mask of the null values of ``arr`` (NaN is not null)."""
    if arr.null_count == 0:
        return np.zeros(len(arr), dtype=bool)
    return arr.is_null().to_numpy(zero_copy_only=False)


def format_floats(arr: pa.Array, nan: str, posinf: str, neginf: str) -> pa.Array:
    """Shortest round-trip decimal strings of a float array, with the given non-finite spellings."""
    s = pc.cast(arr, pa.string())
    if pc.all(pc.is_finite(arr)).as_py() is not False:  # all finite (or all null)
        return s
    s = pc.if_else(pc.is_nan(arr), nan, s)
    s = pc.if_else(pc.equal(arr, float("inf")), posinf, s)
    return pc.if_else(pc.equal(arr, float("-inf")), neginf, s)


def iter_batches(
    batches: Iterable[pa.RecordBatch] | pa.Table, schema: pa.Schema, max_rows: int
) -> Iterator[tuple[list[pa.Array], int]]:
    """Yield the columns of ``batches`` in slices of at most ``max_rows`` rows, decoded.

    Parameters
    ----------
    batches : iterable of pyarrow.RecordBatch, or pyarrow.Table
        The rows, in the column order of ``schema``.
    schema : pyarrow.Schema
        The expected schema; columns are taken by position.
    max_rows : int
        The largest slice to yield (bounds the memory of one encoding step).

    Yields
    ------
    columns : list of pyarrow.Array
        One array per schema column.
    n : int
        Their common length (never zero).
    """
    if isinstance(batches, pa.Table):
        batches = batches.to_batches()
    ncols = len(schema)
    for batch in batches:
        if batch.num_columns != ncols:
            raise InputError(f"a batch has {batch.num_columns} columns, the schema {ncols}")
        n = batch.num_rows
        for start in range(0, n, max_rows):
            part = batch.slice(start, max_rows) if (start or n > max_rows) else batch
            yield [decode(c) for c in part.columns], part.num_rows
