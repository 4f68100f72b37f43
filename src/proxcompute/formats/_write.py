"""Output format names (with the TAP ``RESPONSEFORMAT`` aliases) and the one writer entry point."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from proxcompute.errors import InputError

from ._columns import decode
from .text import write_csv, write_tsv
from .votable import write_votable

__all__ = ["FORMATS", "MEDIA_TYPES", "normalize_format", "write_table"]

FORMATS = ("votable", "votable/b2", "votable/b", "votable/td", "csv", "tsv", "parquet")

_VOTABLE_TYPE = "application/x-votable+xml"
MEDIA_TYPES: dict[str, str] = {
    "votable": _VOTABLE_TYPE,
    "votable/b2": _VOTABLE_TYPE,
    "votable/b": _VOTABLE_TYPE,
    "votable/td": _VOTABLE_TYPE,
    # TAP 1.1 §2.7.1 lists "text/csv;header=present" for CSV with a header line.
    "csv": "text/csv;header=present",
    "tsv": "text/tab-separated-values",
    "parquet": "application/vnd.apache.parquet",
}

_SERIALIZATION = {
    "votable": "BINARY2",
    "votable/b2": "BINARY2",
    "votable/b": "BINARY",
    "votable/td": "TABLEDATA",
}

_ALIASES = {
    "votable": "votable",
    "application/x-votable+xml": "votable",
    "application/x-votable": "votable",
    "text/xml": "votable",
    "votable/b2": "votable/b2",
    "votable/binary2": "votable/b2",
    "votable/b": "votable/b",
    "votable/binary": "votable/b",
    "votable/td": "votable/td",
    "votable/tabledata": "votable/td",
    "csv": "csv",
    "text/csv": "csv",
    "tsv": "tsv",
    "text/tab-separated-values": "tsv",
    "parquet": "parquet",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}
_VOTABLE_SERIALIZATION_PARAM = {"binary2": "votable/b2", "binary": "votable/b", "tabledata": "votable/td"}


def normalize_format(name: str) -> str:
    """Map an output format name or TAP ``RESPONSEFORMAT`` value to one of :data:`FORMATS`.

    Parameters
    ----------
    name : str
        A short name (``votable``, ``votable/td``, ``csv``, ...) or a media type, possibly with
        parameters (``application/x-votable+xml;serialization=TABLEDATA``,
        ``text/csv;header=present``); case-insensitive. Parameters other than
        ``serialization`` are ignored.

    Returns
    -------
    str
        The canonical format name.

    Raises
    ------
    proxcompute.errors.InputError
        If the name is not a known format.
    """
    base, *params = (part.strip() for part in str(name).strip().lower().split(";"))
    fmt = _ALIASES.get(base)
    if fmt is not None:
        for param in params:
            key, _, value = (x.strip().strip('"') for x in param.partition("="))
            if key != "serialization":
                continue  # header=present, charset=..., ...: nothing to choose
            if fmt != "votable" or value not in _VOTABLE_SERIALIZATION_PARAM:
                fmt = None
                break
            fmt = _VOTABLE_SERIALIZATION_PARAM[value]
    if fmt is None:
        raise InputError(f"unknown output format {name!r}; known: {', '.join(FORMATS)}")
    return fmt


def _write_parquet(batches: Iterable[pa.RecordBatch] | pa.Table, schema: pa.Schema, out: BinaryIO) -> int:
    if isinstance(batches, pa.Table):
        batches = batches.to_batches()
    plain = pa.schema(
        [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema]
    )
    rows = 0
    with pq.ParquetWriter(out, plain) as writer:
        for batch in batches:
            if batch.num_rows:
                cols = [decode(c) for c in batch.columns]
                writer.write_batch(pa.RecordBatch.from_arrays(cols, schema=plain))
                rows += batch.num_rows
    return rows


def write_table(
    batches: Iterable[pa.RecordBatch] | pa.Table,
    schema: pa.Schema,
    out: BinaryIO,
    fmt: str = "votable",
    *,
    infos: Sequence[tuple[str, str]] = (),
    overflow: bool = False,
    table_name: str = "result",
    column_meta: Mapping[str, Mapping[str, str]] | None = None,
) -> int:
    """Stream a query result to ``out`` in an output format.

    Parameters
    ----------
    batches : iterable of pyarrow.RecordBatch, or pyarrow.Table
        The rows, with the columns of ``schema`` in order; consumed once, one batch at a
        time (the whole result is never held).
    schema : pyarrow.Schema
        The columns; dictionary-encoded columns are written as their value type.
    out : binary file-like
        Where the output is written (only ``write`` is called, except for Parquet, which
        also needs ``tell``/``flush`` as any ``pyarrow.parquet.ParquetWriter`` sink).
    fmt : str
        One of :data:`FORMATS` or an alias accepted by :func:`normalize_format`;
        ``votable`` is VOTable 1.4 in BINARY2.
    infos : sequence of (name, value)
        VOTable only: extra ``INFO`` elements in the RESOURCE, before the TABLE.
    overflow : bool
        VOTable only: add ``INFO name="QUERY_STATUS" value="OVERFLOW"`` after the TABLE
        (the result was truncated, e.g. by MAXREC).
    table_name : str
        VOTable only: the ``name`` of the TABLE.
    column_meta : mapping of column name to mapping, optional
        VOTable only: per column ``unit``, ``ucd``, ``utype``, ``xtype``, ``description`` and,
        for string columns, ``datatype`` (``char`` or the default ``unicodeChar``).

    Returns
    -------
    int
        The number of rows written.

    Raises
    ------
    proxcompute.errors.InputError
        For an unknown format, or a column that cannot be written in it.
    """
    fmt = normalize_format(fmt)
    if fmt in _SERIALIZATION:
        return write_votable(
            batches,
            schema,
            out,
            _SERIALIZATION[fmt],
            infos=infos,
            overflow=overflow,
            table_name=table_name,
            column_meta=column_meta,
        )
    if fmt == "csv":
        return write_csv(batches, schema, out)
    if fmt == "tsv":
        return write_tsv(batches, schema, out)
    return _write_parquet(batches, schema, out)
