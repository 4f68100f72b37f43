"""Streaming writers of query results: VOTable 1.4 (BINARY2, BINARY, TABLEDATA), CSV, TSV, Parquet.

A pure layer over pyarrow and numpy: results arrive as Arrow record batches and are written
to a binary file-like object one batch at a time.

>>> import io, pyarrow as pa
>>> t = pa.table({"id": [1, 2], "mag": [20.5, None]})
>>> write_table(t, t.schema, io.BytesIO(), "votable")
2
"""

from ._columns import check_flat
from ._write import FORMATS, MEDIA_TYPES, normalize_format, write_table
from .tables import (
    SUFFIX_FORMATS,
    WRITABLE,
    arrow_to_astropy,
    format_of,
    read_table,
    read_table_bytes,
    write_file,
)
from .votable import write_votable_error

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "SUFFIX_FORMATS",
    "WRITABLE",
    "arrow_to_astropy",
    "check_flat",
    "format_of",
    "normalize_format",
    "read_table",
    "read_table_bytes",
    "write_file",
    "write_table",
    "write_votable_error",
]
