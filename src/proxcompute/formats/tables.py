"""The one home of table files: which format a file name means, reading a table file or an
uploaded byte string, writing a table to a file (atomically), and Arrow to astropy.

The CLI, pipelines, the TAP service (uploads), the client and ingest all use these, so that a
suffix means the same format everywhere (``x.csv.gz`` is CSV, ``x.fits.gz`` FITS).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from proxcompute.errors import InputError
from proxcompute.storage.atomic import atomic_write

__all__ = [
    "SUFFIX_FORMATS",
    "WRITABLE",
    "arrow_to_astropy",
    "format_of",
    "read_table",
    "read_table_bytes",
    "write_file",
]

SUFFIX_FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "tsv",
    ".fits": "fits",
    ".fit": "fits",
    ".fits.gz": "fits",
    ".fit.gz": "fits",
    ".vot": "votable",
    ".votable": "votable",
    ".xml": "votable",
}
"""File name endings (lower case) and the format each one means."""

WRITABLE = ("parquet", "csv", "tsv", "votable")
"""Formats :func:`write_file` writes (FITS is read only)."""


def format_of(path: str | os.PathLike) -> str | None:
    """The format a file name means (longest matching ending), or None.

    >>> format_of("targets.CSV.gz"), format_of("x.fits"), format_of("notes.txt")
    ('csv', 'fits', None)
    """
    name = os.path.basename(str(path)).lower()
    best: tuple[str, str] | None = None
    for ending, fmt in SUFFIX_FORMATS.items():
        if name.endswith(ending) and (best is None or len(ending) > len(best[0])):
            best = (ending, fmt)
    return best[1] if best else None


def _known(formats: tuple[str, ...] | None = None) -> str:
    return ", ".join(e for e, f in SUFFIX_FORMATS.items() if formats is None or f in formats)


def read_table(path: str | os.PathLike, *, what: str = "table file") -> Any:
    """A table file as a pandas DataFrame, its format from its name.

    Raises
    ------
    proxcompute.errors.InputError
        Unknown suffix, or a file that cannot be read (named, with the reader's reason).
    """
    import pandas as pd

    path = Path(path)
    fmt = format_of(path)
    if fmt is None:
        raise InputError(f"{what} {path}: unknown table format; expected one of {_known()}")
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        if fmt in ("csv", "tsv"):
            return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
        from astropy.table import Table

        return Table.read(path, format="fits" if fmt == "fits" else "votable").to_pandas()
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except Exception as exc:  # an unreadable user file: name it and say why
        raise InputError(f"cannot read {what} {path}: {type(exc).__name__}: {exc}") from None


def read_table_bytes(data: bytes, *, name: str = "table", meta: dict[str, dict[str, str]] | None = None) -> Any:
    """An uploaded table (Parquet, FITS, VOTable or CSV, told apart by content) as a DataFrame.

    ``meta``, if given, receives VOTable column metadata a DataFrame cannot hold
    (``{"datatype": "char"}`` for char columns); VOTable ``timestamp`` columns become datetimes.
    """
    import pandas as pd

    head = data[:512].lstrip()
    try:
        if head.startswith(b"PAR1") or data[-4:] == b"PAR1":
            return pd.read_parquet(io.BytesIO(data))
        if head.startswith(b"SIMPLE  ="):
            from astropy.table import Table

            return Table.read(io.BytesIO(data), format="fits").to_pandas()
        if head.startswith(b"<") or b"<VOTABLE" in head.upper():
            from astropy.io.votable import parse_single_table

            votable = parse_single_table(io.BytesIO(data))
            df = votable.to_table().to_pandas()
            for f in votable.fields:
                if f.datatype == "char" and f.name in df.columns and meta is not None:
                    meta.setdefault(f.name, {"datatype": "char"})
                if (f.xtype or "").lower() == "timestamp" and f.name in df.columns:
                    parsed = pd.to_datetime(df[f.name].astype("string").str.strip(), errors="coerce", utc=True)
                    if parsed.notna().sum() == df[f.name].notna().sum():
                        df[f.name] = parsed.dt.tz_localize(None)
            return df
        return pd.read_csv(io.BytesIO(data))
    except Exception as exc:  # any parse failure is the uploader's problem: name it
        raise InputError(f"{name}: cannot read the table ({type(exc).__name__}: {exc})") from None


def write_file(table: pa.Table | Any, path: str | os.PathLike, fmt: str | None = None, *, overflow: bool = False) -> int:
    """Write a table (Arrow or pandas) to ``path`` atomically; returns the number of rows.

    The format is ``fmt`` or the one ``path``'s name means (:data:`WRITABLE` only). A failed
    write leaves no file behind (and an existing file unchanged).
    """
    from proxcompute.formats._write import write_table

    path = Path(path)
    fmt = fmt or format_of(path)
    if fmt not in WRITABLE:
        raise InputError(f"cannot write {path.name!r}: the name must end in one of {_known(WRITABLE)}")
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as fh:
        return write_table(table, table.schema, fh, fmt, overflow=overflow)


def arrow_to_astropy(table: pa.Table, units: dict[str, str] | None = None) -> Any:
    """An Arrow table as an astropy Table; nulls become masked entries (never fill values).

    >>> t = arrow_to_astropy(pa.table({"id": [1, None], "name": ["a", None]}), units={"id": ""})
    >>> t["id"].mask.tolist(), t["name"].mask.tolist()
    ([False, True], [False, True])
    """
    import numpy as np
    from astropy.table import MaskedColumn, Table

    out = Table()
    for name, col in zip(table.column_names, table.columns, strict=True):
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        t = arr.type
        mask = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            values = np.array(arr.fill_null("").to_pylist(), dtype=str)
        elif pa.types.is_boolean(t):
            values = arr.fill_null(False).to_numpy(zero_copy_only=False)
        elif pa.types.is_integer(t):
            values = arr.fill_null(0).to_numpy(zero_copy_only=False)
        elif pa.types.is_fixed_size_list(t) and arr.null_count == 0:
            values = arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), t.list_size)
        else:
            values = arr.to_numpy(zero_copy_only=False)
        out[name] = MaskedColumn(values, mask=mask) if mask is not None else values
    for name, unit in (units or {}).items():
        if name in out.colnames and unit:
            out[name].unit = unit
    return out
