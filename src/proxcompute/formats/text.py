"""Streaming CSV and TSV writers for Arrow record batches.

Both write a header row of column names and one line per row; a null is an empty field.
Rows are assembled with Arrow string kernels, one slice of rows at a time.

CSV follows RFC 4180: CRLF line ends; a field holding ``"``, ``,``, CR or LF, or an empty
string (to tell it from a null), is enclosed in double quotes with inner quotes doubled.

TSV follows ``text/tab-separated-values`` (which has no quoting), with LF line ends; tabs,
newlines, carriage returns and backslashes inside values are written as ``\\t``, ``\\n``,
``\\r`` and ``\\\\`` so a value can never split a field or a line.

Numbers are written as the shortest decimal that reads back to the same value; non-finite
floats as ``NaN``, ``Infinity`` and ``-Infinity`` (read by Python, pandas and Java); booleans as
``true``/``false``; timestamps as ISO-8601 ``YYYY-MM-DDThh:mm:ss[.fff]`` (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from proxcompute.errors import InputError

from ._columns import ColumnPlan, as_strings, format_floats, iter_batches, plan_column

__all__ = ["write_csv", "write_tsv"]

_ROWS_PER_SLICE = 65536
_CSV_SPECIAL = '[",\r\n]'


def _lit(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _text(arr: pa.Array, plan: ColumnPlan) -> pa.Array:
    """The unescaped text of every value (null stays null), as large_string."""
    if plan.kind == "str":
        s = as_strings(arr, plan)
    elif plan.kind == "bool":
        s = pc.if_else(arr, "true", "false")
    elif plan.kind == "float":
        s = format_floats(arr.cast(plan.arrow_type), "NaN", "Infinity", "-Infinity")
    else:
        s = pc.cast(arr, pa.string())  # integers keep their full range in text
    return s.cast(pa.large_string())


def _csv_quote(s: pa.Array) -> pa.Array:
    need = pc.or_(pc.match_substring_regex(s, _CSV_SPECIAL), pc.equal(pc.binary_length(s), 0))
    if not pc.any(need).as_py():
        return s
    quoted = pc.binary_join_element_wise(_lit('"'), pc.replace_substring(s, '"', '""'), _lit('"'), _lit(""))
    return pc.if_else(need, quoted, s)


def _tsv_escape(s: pa.Array) -> pa.Array:
    if not pc.any(pc.match_substring_regex(s, "[\t\n\r\\\\]")).as_py():
        return s
    for raw, esc in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        s = pc.replace_substring(s, raw, esc)
    return s


def _join_rows(cells: list[pa.Array], sep: str, eol: str) -> bytes:
    filled = [c.fill_null(_lit("")) if c.null_count else c for c in cells]
    rows = pc.binary_join_element_wise(*filled, _lit(sep))
    rows = pc.binary_join_element_wise(rows, _lit(eol), _lit(""))
    n = len(rows)
    if n == 0:
        return b""
    bufs = rows.buffers()
    off = np.frombuffer(bufs[1], dtype=np.int64)[rows.offset : rows.offset + n + 1]
    return memoryview(bufs[2])[int(off[0]) : int(off[-1])].tobytes()


def _write_delimited(
    batches: Iterable[pa.RecordBatch] | pa.Table, schema: pa.Schema, out: BinaryIO, csv: bool
) -> int:
    if len(schema) == 0:
        raise InputError("cannot write a result with no columns")
    plans = [plan_column(f) for f in schema]
    sep, eol = (",", "\r\n") if csv else ("\t", "\n")
    escape = _csv_quote if csv else _tsv_escape
    header = [escape(pa.array([p.name], pa.large_string())) for p in plans]
    out.write(_join_rows(header, sep, eol))
    rows = 0
    for cols, n in iter_batches(batches, schema, _ROWS_PER_SLICE):
        cells = []
        for arr, plan in zip(cols, plans, strict=True):
            s = _text(arr, plan)
            cells.append(escape(s) if plan.kind == "str" else s)
        out.write(_join_rows(cells, sep, eol))
        rows += n
    return rows


def write_csv(batches: Iterable[pa.RecordBatch] | pa.Table, schema: pa.Schema, out: BinaryIO) -> int:
    """Stream rows as RFC 4180 CSV with a header row.

    Parameters
    ----------
    batches : iterable of pyarrow.RecordBatch, or pyarrow.Table
        The rows; consumed once, one batch at a time.
    schema : pyarrow.Schema
        The columns.
    out : binary file-like
        Where the UTF-8 text is written.

    Returns
    -------
    int
        The number of rows written.
    """
    return _write_delimited(batches, schema, out, csv=True)


def write_tsv(batches: Iterable[pa.RecordBatch] | pa.Table, schema: pa.Schema, out: BinaryIO) -> int:
    """Stream rows as tab-separated values with a header row.

    Parameters
    ----------
    batches : iterable of pyarrow.RecordBatch, or pyarrow.Table
        The rows; consumed once, one batch at a time.
    schema : pyarrow.Schema
        The columns.
    out : binary file-like
        Where the UTF-8 text is written.

    Returns
    -------
    int
        The number of rows written.
    """
    return _write_delimited(batches, schema, out, csv=False)
