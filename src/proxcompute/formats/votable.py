"""A streaming VOTable 1.4 writer (BINARY2, BINARY, TABLEDATA) for Arrow record batches.

The document follows DALI / TAP 1.1: one ``RESOURCE type="results"`` holding
``INFO name="QUERY_STATUS" value="OK"`` before the ``TABLE`` and, when the result was truncated,
``INFO name="QUERY_STATUS" value="OVERFLOW"`` after it.

Binary serializations build the big-endian row stream of each slice of rows with numpy
(structured arrays for fixed-size values, a vectorized scatter for variable-length strings)
and base64-encode it in 57-byte multiples, carrying the remainder to the next slice, so the
whole result is one base64 stream in 76-character lines. TABLEDATA rows are assembled with
Arrow string kernels. Neither holds more than one slice of rows.

Strings are written as ``unicodeChar`` (UTF-16 big-endian in the binary serializations): VOTable
1.4 ``char`` is 7-bit ASCII, astropy refuses other bytes in it, and a streamed result cannot know
in advance that a column is ASCII. ``column_meta[name]["datatype"] = "char"`` opts a string column
into 1-byte characters (then a non-ASCII value in a binary serialization is an error).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from proxcompute.errors import InputError

from ._columns import ColumnPlan, as_strings, format_floats, is_null_mask, iter_batches, plan_column
from .xml import xml_attr, xml_text

__all__ = ["SERIALIZATIONS", "write_votable", "write_votable_error"]

SERIALIZATIONS = ("BINARY2", "BINARY", "TABLEDATA")

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"'
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    ' xsi:schemaLocation="http://www.ivoa.net/xml/VOTable/v1.3'
    ' http://www.ivoa.net/xml/VOTable/VOTable-1.4.xsd">\n'
    '<RESOURCE type="results">\n'
)
_TAIL = "</RESOURCE>\n</VOTABLE>\n"

_ROWS_PER_SLICE = 65536
_B64_LINE_BYTES = 57  # 57 raw bytes -> one 76-character base64 line
_META_ATTRS = ("unit", "ucd", "utype", "xtype")

# Characters XML 1.0 forbids even as character references; replaced by U+FFFD.
_ILLEGAL_XML_RE2 = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{FFFE}\x{FFFF}]"
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


# --------------------------------------------------------------------------- XML text helpers
# (xml_text and xml_attr live in formats.xml; this is their vectorized Arrow form)


def _xml_text_arrow(s: pa.Array) -> pa.Array:
    """Vectorized :func:`xml_text` of an Arrow string array."""
    if not pc.any(pc.match_substring_regex(s, r"[&<>\r]|" + _ILLEGAL_XML_RE2)).as_py():
        return s
    s = pc.replace_substring_regex(s, _ILLEGAL_XML_RE2, "\ufffd")
    s = pc.replace_substring(s, "&", "&amp;")
    s = pc.replace_substring(s, "<", "&lt;")
    s = pc.replace_substring(s, ">", "&gt;")
    return pc.replace_substring(s, "\r", "&#13;")


def _string_bytes(s: pa.Array) -> bytes:
    """The concatenated bytes of a string or binary array with no nulls."""
    n = len(s)
    if n == 0:
        return b""
    large = pa.types.is_large_string(s.type) or pa.types.is_large_binary(s.type)
    off_dtype = np.int64 if large else np.int32
    bufs = s.buffers()
    off = np.frombuffer(bufs[1], dtype=off_dtype)[s.offset : s.offset + n + 1]
    if bufs[2] is None:
        return b""
    return memoryview(bufs[2])[int(off[0]) : int(off[-1])].tobytes()


# --------------------------------------------------------------------------- FIELD declarations


def _string_datatype(plan: ColumnPlan, meta: Mapping[str, str]) -> str:
    dt = meta.get("datatype")
    if plan.kind == "str" and dt in ("char", "unicodeChar"):
        return dt
    return plan.datatype


def _field_xml(
    plan: ColumnPlan, datatype: str, meta: Mapping[str, str], with_null: bool, used_ids: set[str]
) -> str:
    attrs = [f'name="{xml_attr(plan.name)}"']
    if _NCNAME.match(plan.name) and plan.name not in used_ids:
        used_ids.add(plan.name)
        attrs.append(f'ID="{plan.name}"')
    attrs.append(f'datatype="{datatype}"')
    if plan.kind == "str":
        attrs.append('arraysize="*"')
    xtype = meta.get("xtype") or plan.xtype
    for key in _META_ATTRS:
        value = xtype if key == "xtype" else meta.get(key)
        if value:
            attrs.append(f'{key}="{xml_attr(value)}"')
    children = []
    if meta.get("description"):
        children.append(f"<DESCRIPTION>{xml_text(meta['description'])}</DESCRIPTION>")
    if with_null and plan.kind == "int":
        children.append(f'<VALUES null="{plan.sentinel}"/>')
    if not children:
        return f"<FIELD {' '.join(attrs)}/>\n"
    return f"<FIELD {' '.join(attrs)}>{''.join(children)}</FIELD>\n"


# --------------------------------------------------------------------------- binary row streams


class _Base64Lines:
    """Base64-encode a byte stream written in pieces, as one stream of 76-character lines."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.carry = b""

    def write(self, data: bytes) -> None:
        buf = self.carry + data if self.carry else data
        cut = len(buf) - len(buf) % _B64_LINE_BYTES
        self.carry = buf[cut:]
        if not cut:
            return
        enc = np.frombuffer(binascii.b2a_base64(memoryview(buf)[:cut], newline=False), dtype=np.uint8)
        lines = np.empty((cut // _B64_LINE_BYTES, 77), dtype=np.uint8)
        lines[:, :76] = enc.reshape(-1, 76)
        lines[:, 76] = 10
        self.out.write(lines.tobytes())

    def close(self) -> None:
        if self.carry:
            self.out.write(binascii.b2a_base64(self.carry, newline=True))
        self.carry = b""


def _utf16_units(s: pa.Array, one_byte: bool, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode a string array with no nulls for a binary stream.

    Returns
    -------
    data : numpy.ndarray of uint8
        The concatenated encoded values (UTF-16BE, or ASCII if ``one_byte``).
    offsets : numpy.ndarray of int64
        ``n + 1`` byte offsets of the values in ``data`` (starting at 0).
    counts : numpy.ndarray of int64
        The character count (the arraysize prefix) of every value.
    """
    n = len(s)
    off_dtype = np.int64 if pa.types.is_large_string(s.type) else np.int32
    bufs = s.buffers()
    off = np.frombuffer(bufs[1], dtype=off_dtype)[s.offset : s.offset + n + 1].astype(np.int64)
    if bufs[2] is None or off[-1] == off[0]:
        zeros = np.zeros(n + 1, dtype=np.int64)
        return np.empty(0, dtype=np.uint8), zeros, zeros[:-1]
    data = np.frombuffer(bufs[2], dtype=np.uint8)[off[0] : off[-1]]
    off = off - off[0]
    ascii_only = int(data.max()) < 0x80
    if one_byte:
        if not ascii_only:
            raise InputError(f"column {name!r} is declared datatype='char' but holds non-ASCII text")
        return data, off, np.diff(off)
    if ascii_only:
        units = np.zeros(2 * data.size, dtype=np.uint8)
        units[1::2] = data
        return units, 2 * off, np.diff(off)
    encoded = data.tobytes().decode("utf-8").encode("utf-16-be")
    # UTF-16 code units per UTF-8 byte: 0 for continuation bytes, 2 for 4-byte leads, else 1.
    per_byte = np.where((data & 0xC0) == 0x80, 0, np.where(data >= 0xF0, 2, 1))
    units_before = np.concatenate(([0], np.cumsum(per_byte)))[off]
    return np.frombuffer(encoded, dtype=np.uint8), 2 * units_before, np.diff(units_before)


def _fixed_values(arr: pa.Array, plan: ColumnPlan, mask: np.ndarray) -> np.ndarray:
    """The numpy values of a fixed-size column, nulls replaced by the BINARY null value."""
    if plan.kind == "bool":
        values = (
            arr.fill_null(False).to_numpy(zero_copy_only=False)
            if arr.null_count
            else arr.to_numpy(zero_copy_only=False)
        )
        codes = np.where(values, np.uint8(ord("T")), np.uint8(ord("F")))
        codes[mask] = ord("?")
        return codes
    try:
        arr = arr.cast(plan.arrow_type)
    except pa.ArrowInvalid as exc:
        raise InputError(f"column {plan.name!r} cannot be written as {plan.datatype}: {exc}") from None
    if arr.null_count:
        arr = arr.fill_null(plan.sentinel if plan.kind == "int" else float("nan"))
    return arr.to_numpy(zero_copy_only=False)


def _binary_rows(cols: list[pa.Array], plans: list[ColumnPlan], one_byte: list[bool], binary2: bool) -> bytes:
    """The BINARY/BINARY2 row stream of one slice of rows."""
    n = len(cols[0])
    runs: list[list[tuple[str, object, np.ndarray]]] = [[]]  # fixed-size fields between strings
    strings: list[tuple[np.ndarray, np.ndarray]] = []  # (data, offsets) after each run but the last
    masks = []
    for i, (arr, plan) in enumerate(zip(cols, plans, strict=True)):
        mask = is_null_mask(arr)
        masks.append(mask)
        if plan.kind == "str":
            s = as_strings(arr, plan)
            if s.null_count:
                s = s.fill_null("")
            data, offsets, counts = _utf16_units(s, one_byte[i], plan.name)
            runs[-1].append((f"n{i}", ">i4", counts))
            strings.append((data, offsets))
            runs.append([])
        else:
            runs[-1].append((f"v{i}", plan.np_dtype, _fixed_values(arr, plan, mask)))
    if binary2:
        flags = np.packbits(np.stack(masks, axis=1), axis=1, bitorder="big")
        runs[0].insert(0, ("nulls", ("u1", (flags.shape[1],)), flags))

    blocks = []
    for run in runs:
        rec = np.empty(n, dtype=np.dtype([(name, dt) for name, dt, _ in run]))
        for name, _, values in run:
            rec[name] = values
        blocks.append(rec)
    if not strings:
        return blocks[0].tobytes()

    # Variable-length rows: concatenate the pieces of every row with an Arrow kernel.
    parts = []
    for k, block in enumerate(blocks):
        w = block.dtype.itemsize
        if w:
            fixed = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(w), n, [None, pa.py_buffer(block.view(np.uint8))]
            )
            parts.append(fixed.cast(pa.large_binary()))
        if k < len(strings):
            data, offsets = strings[k]
            buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
            parts.append(pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, buffers))
    return _string_bytes(pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.large_binary())))


# --------------------------------------------------------------------------- TABLEDATA rows


def _td_text(arr: pa.Array, plan: ColumnPlan) -> pa.Array:
    """The TD content of a column as a large_string array (null where the cell is null)."""
    if plan.kind == "str":
        s = _xml_text_arrow(as_strings(arr, plan))
    elif plan.kind == "bool":
        s = pc.if_else(arr, "T", "F")
    elif plan.kind == "float":
        s = format_floats(arr.cast(plan.arrow_type), "NaN", "+Inf", "-Inf")
    else:
        try:
            s = pc.cast(arr.cast(plan.arrow_type), pa.string())
        except pa.ArrowInvalid as exc:
            raise InputError(f"column {plan.name!r} cannot be written as {plan.datatype}: {exc}") from None
    return s.cast(pa.large_string())


def _tabledata_rows(cols: list[pa.Array], plans: list[ColumnPlan]) -> bytes:
    def lit(text: str) -> pa.Scalar:
        return pa.scalar(text, pa.large_string())

    cells = []
    for arr, plan in zip(cols, plans, strict=True):
        td = pc.binary_join_element_wise(lit("<TD>"), _td_text(arr, plan), lit("</TD>"), lit(""))
        cells.append(td.fill_null(lit("<TD/>")) if td.null_count else td)
    rows = pc.binary_join_element_wise(lit("<TR>"), *cells, lit("</TR>\n"), lit(""))
    return _string_bytes(rows)


# --------------------------------------------------------------------------- documents


def write_votable(
    batches: Iterable[pa.RecordBatch] | pa.Table,
    schema: pa.Schema,
    out: BinaryIO,
    serialization: str = "BINARY2",
    *,
    infos: Sequence[tuple[str, str]] = (),
    overflow: bool = False,
    table_name: str = "result",
    column_meta: Mapping[str, Mapping[str, str]] | None = None,
) -> int:
    """Stream a query result as a VOTable 1.4 document.

    Parameters
    ----------
    batches : iterable of pyarrow.RecordBatch, or pyarrow.Table
        The rows; consumed once, one batch at a time.
    schema : pyarrow.Schema
        The columns (dictionary-encoded ones are written as their value type).
    out : binary file-like
        Where the document is written.
    serialization : {"BINARY2", "BINARY", "TABLEDATA"}
        The DATA serialization.
    infos : sequence of (name, value)
        Extra ``INFO`` elements placed in the RESOURCE before the TABLE.
    overflow : bool
        Add ``INFO name="QUERY_STATUS" value="OVERFLOW"`` after the TABLE.
    table_name : str
        The ``name`` of the TABLE.
    column_meta : mapping of column name to mapping, optional
        Per column ``unit``, ``ucd``, ``utype``, ``xtype``, ``description`` and, for string
        columns, ``datatype`` (``char`` or ``unicodeChar``); other keys are ignored.

    Returns
    -------
    int
        The number of rows written.
    """
    serialization = serialization.upper()
    if serialization not in SERIALIZATIONS:
        raise InputError(
            f"unknown VOTable serialization {serialization!r}; known: {', '.join(SERIALIZATIONS)}"
        )
    if len(schema) == 0:
        raise InputError("cannot write a result with no columns")
    column_meta = column_meta or {}
    plans = [plan_column(f) for f in schema]
    metas = [column_meta.get(p.name, {}) for p in plans]
    datatypes = [_string_datatype(p, m) for p, m in zip(plans, metas, strict=True)]
    one_byte = [dt == "char" for dt in datatypes]

    head = [_HEAD, '<INFO name="QUERY_STATUS" value="OK"/>\n']
    head += [f'<INFO name="{xml_attr(k)}" value="{xml_attr(v)}"/>\n' for k, v in infos]
    head.append(f'<TABLE name="{xml_attr(table_name)}">\n')
    used_ids: set[str] = set()
    with_null = serialization != "BINARY2"
    for plan, dt, meta in zip(plans, datatypes, metas, strict=True):
        head.append(_field_xml(plan, dt, meta, with_null, used_ids))
    if serialization == "TABLEDATA":
        head.append("<DATA><TABLEDATA>\n")
    else:
        head.append(f'<DATA><{serialization}><STREAM encoding="base64">\n')
    out.write("".join(head).encode("utf-8"))

    rows = 0
    if serialization == "TABLEDATA":
        for cols, n in iter_batches(batches, schema, _ROWS_PER_SLICE):
            out.write(_tabledata_rows(cols, plans))
            rows += n
        tail = "</TABLEDATA></DATA>\n"
    else:
        stream = _Base64Lines(out)
        for cols, n in iter_batches(batches, schema, _ROWS_PER_SLICE):
            stream.write(_binary_rows(cols, plans, one_byte, serialization == "BINARY2"))
            rows += n
        stream.close()
        tail = f"</STREAM></{serialization}></DATA>\n"
    tail += "</TABLE>\n"
    if overflow:
        tail += '<INFO name="QUERY_STATUS" value="OVERFLOW"/>\n'
    out.write((tail + _TAIL).encode("utf-8"))
    return rows


def write_votable_error(out: BinaryIO, message: str) -> None:
    """Write a DALI error document: ``INFO name="QUERY_STATUS" value="ERROR"`` holding ``message``.

    Parameters
    ----------
    out : binary file-like
        Where the document is written.
    message : str
        The error text (XML-escaped here).
    """
    doc = _HEAD + f'<INFO name="QUERY_STATUS" value="ERROR">{xml_text(message)}</INFO>\n' + _TAIL
    out.write(doc.encode("utf-8"))
