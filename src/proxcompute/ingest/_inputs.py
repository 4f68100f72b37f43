"""Ingest inputs: finding the files, telling their format, and reading them as Arrow batches.

Parquet is read directly (footers in the driver, row groups in the tasks). CSV, FITS and
VOTable are read once, by the scan stage, and converted to Arrow IPC files in the staging
directory, so that the split stage reads every format the same fast way.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from proxcompute.errors import ColumnNotFoundError, InputError
from proxcompute.formats import SUFFIX_FORMATS, format_of
from proxcompute.sky.healpix import INDEX_COLUMN

__all__ = [
    "INGEST_FORMATS",
    "RESERVED_COLUMNS",
    "InputFile",
    "check_coordinate_schema",
    "coordinate_arrays",
    "csv_column_names",
    "detect_format",
    "drop_reserved",
    "iter_astropy_batches",
    "iter_csv_batches",
    "open_parquet",
    "resolve_inputs",
    "widen_csv_type",
]

INGEST_FORMATS: tuple[str, ...] = ("parquet", "csv", "fits", "votable")
"""The table formats ingest reads; which file endings mean which format is ``formats.SUFFIX_FORMATS``."""

RESERVED_COLUMNS = frozenset({INDEX_COLUMN, "Norder", "Dir", "Npix"})
"""Input columns that are dropped: ``_healpix_29`` is recomputed, the others are HATS path keys."""

_PANDAS_INDEX = re.compile(r"^__index_level_\d+__$")

CSV_BLOCK_BYTES = 16 << 20
"""CSV block size: the unit of streaming, and of type inference for the first block."""


@dataclass(frozen=True)
class InputFile:
    """One input file and what identifies its content (for the resume manifest)."""

    path: str
    format: str
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "format": self.format, "size": self.size, "mtime_ns": self.mtime_ns}


def detect_format(path: str | os.PathLike) -> str | None:
    """The format of ``path`` from its name (``parquet``, ``csv``, ``fits``, ``votable``) or None."""
    fmt = format_of(path)
    return fmt if fmt in INGEST_FORMATS else None


def _supported() -> str:
    return ", ".join(sorted(e for e, f in SUFFIX_FORMATS.items() if f in INGEST_FORMATS))


def _is_excluded(path: Path, excluded: Sequence[Path]) -> bool:
    return any(path == e or e in path.parents for e in excluded)


def _walk_dir(root: Path, excluded: Sequence[Path]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not _is_excluded(here / d, excluded)
        )
        for name in sorted(filenames):
            if not name.startswith(".") and detect_format(name) is not None:
                found.append(here / name)
    return found


def _file_entry(path: Path) -> InputFile:
    fmt = detect_format(path)
    if fmt is None:
        raise InputError(f"input file {path} has an unknown format; supported endings: {_supported()}")
    try:
        st = path.stat()
    except OSError as exc:
        raise InputError(f"cannot read input file {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read input file {path}: permission denied")
    return InputFile(str(path), fmt, int(st.st_size), int(st.st_mtime_ns))


def resolve_inputs(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    exclude: Sequence[str | os.PathLike] = (),
) -> list[InputFile]:
    """Expand files, directories (recursively) and glob patterns into a list of input files.

    Directories contribute every file with a supported ending (hidden files and directories
    and anything under ``exclude`` are skipped). Files are listed once each, in the order
    given, directory and glob matches sorted by name.

    Raises
    ------
    InputError
        A path does not exist, a glob or a directory matches nothing, or a file has an
        unknown format; the message names the path.
    """
    if isinstance(inputs, (str, os.PathLike)):
        items = [inputs]
    else:
        items = list(inputs)
    if not items:
        raise InputError("no input files given")
    excluded = [Path(e).absolute() for e in exclude]
    paths: list[Path] = []
    for item in items:
        text = os.fspath(item)
        p = Path(text).expanduser()
        if p.exists():
            if p.is_dir():
                found = _walk_dir(p.absolute(), excluded)
                if not found:
                    raise InputError(
                        f"input directory {p} holds no files with a supported ending ({_supported()})"
                    )
                paths.extend(found)
            else:
                paths.append(p.absolute())
        elif glob.has_magic(text):
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
            found = []
            for m in matches:
                mp = Path(m).absolute()
                if _is_excluded(mp, excluded):
                    continue
                if mp.is_dir():
                    found.extend(_walk_dir(mp, excluded))
                elif detect_format(mp) is not None:
                    found.append(mp)
            if not found:
                raise InputError(
                    f"input pattern {text!r} matches no files with a supported ending ({_supported()})"
                )
            paths.extend(found)
        else:
            raise InputError(f"input path {text} does not exist")
    seen: set[Path] = set()
    files = []
    for p in paths:
        if p in seen:
            continue
        seen.add(p)
        files.append(_file_entry(p))
    return files


def drop_reserved(names: Sequence[str]) -> list[str]:
    """Input column names that are kept (reserved and pandas index columns dropped)."""
    return [n for n in names if n not in RESERVED_COLUMNS and not _PANDAS_INDEX.match(n)]


def check_coordinate_schema(schema: pa.Schema, columns: Sequence[str], path: str) -> None:
    """Raise if a coordinate column is missing or not numeric."""
    available = drop_reserved(schema.names)
    for col in columns:
        if col not in available:
            raise ColumnNotFoundError(col, available, what=f"input file {path}")
        t = schema.field(col).type
        if not (
            pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_null(t)
        ):
            raise InputError(
                f"coordinate column {col!r} in input file {path} has type {t}, not a number; "
                "coordinates must be numeric degrees"
            )


def open_parquet(path: str) -> pq.ParquetFile:
    """Open a Parquet file (reads the footer) or raise :class:`InputError` naming it."""
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read input file {path} as Parquet: {exc}") from None


def coordinate_arrays(table: pa.Table | pa.RecordBatch, ra: str, dec: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ra, dec)`` as float64 numpy arrays; nulls become NaN."""
    out = []
    for name in (ra, dec):
        col = table.column(name)
        if col.type != pa.float64():
            col = col.cast(pa.float64())
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        out.append(np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64))
    return out[0], out[1]


# -- CSV ---------------------------------------------------------------------------------

_CSV_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+)")


def iter_csv_batches(path: str, column_types: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
    """Stream a (possibly gzipped) CSV file as record batches of one fixed schema."""
    read_options = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False)
    convert_options = pacsv.ConvertOptions(column_types=column_types)
    stream = pa.input_stream(path, compression="detect")
    try:
        reader = pacsv.open_csv(stream, read_options=read_options, convert_options=convert_options)
        empty = True
        for batch in reader:
            empty = False
            yield batch
        if empty:  # a header only: still report the columns
            yield pa.RecordBatch.from_pylist([], schema=reader.schema)
    finally:
        stream.close()


def csv_column_names(path: str) -> list[str]:
    """Column names of a CSV file (its header)."""
    stream = pa.input_stream(path, compression="detect")
    try:
        reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=1 << 20, use_threads=False))
        return reader.schema.names
    finally:
        stream.close()


def widen_csv_type(
    exc: pa.ArrowInvalid, column_names: Callable[[], Sequence[str]], types: dict[str, pa.DataType]
) -> bool:
    """After a mid-file conversion error, widen the failing column; False when it cannot be.

    Type inference sees only the first block of a CSV file; a later value that does not fit
    (``1.5`` in a column inferred as int64, text in a numeric one) widens the column
    (integer -> float64 -> string) and the file is read again.
    """
    m = _CSV_CONVERSION.search(str(exc))
    if not m:
        return False
    i = int(m.group(1))
    names = column_names()
    if i >= len(names):
        return False
    name = names[i]
    current = types.get(name)
    target = m.group(2)
    if current is None:
        current = {"int64": pa.int64(), "double": pa.float64(), "bool": pa.bool_()}.get(target, pa.null())
    if pa.types.is_integer(current):
        types[name] = pa.float64()
    elif pa.types.is_string(current) or pa.types.is_large_string(current):
        return False
    else:
        types[name] = pa.string()
    return True


# -- FITS / VOTable via astropy ----------------------------------------------------------


def _astropy_column_to_arrow(col) -> pa.Array:
    mask = None
    if getattr(col, "mask", None) is not None and np.ma.is_masked(col):
        mask = np.ma.getmaskarray(col)
        data = np.ma.getdata(col)
    else:
        data = np.asarray(col)
    if data.dtype.kind == "S":
        data = np.char.decode(data, "utf-8", "replace")
    elif data.dtype.kind in "iufcb" and data.dtype.byteorder not in ("=", "|"):
        data = data.astype(data.dtype.newbyteorder("="))
    if data.dtype.kind == "O":
        return pa.array(list(data), mask=mask)
    if data.ndim > 1:
        width = int(np.prod(data.shape[1:]))
        flat = pa.array(np.ascontiguousarray(data).reshape(-1))
        arr = pa.FixedSizeListArray.from_arrays(flat, width)
        if mask is not None:
            row_mask = mask.reshape(len(data), -1).all(axis=1)
            arr = pa.FixedSizeListArray.from_arrays(flat, width, mask=pa.array(row_mask))
        return arr
    return pa.array(data, mask=mask)


def _read_astropy(path: str, fmt: str):
    import warnings

    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "fits":
            return Table.read(
                path, format="fits", memmap=not path.lower().endswith(".gz"), character_as_bytes=True
            )
        return Table.read(path, format="votable")


def iter_astropy_batches(path: str, fmt: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Stream a FITS binary table (memory-mapped) or a VOTable as record batches.

    A FITS table is memory-mapped and converted ``batch_rows`` rows at a time; a VOTable is
    parsed whole by astropy (it cannot stream), then converted in batches.
    """
    try:
        table = _read_astropy(path, fmt)
    except Exception as exc:  # astropy raises many types for a broken file
        raise InputError(f"cannot read input file {path} as {fmt.upper()}: {exc}") from None
    names = list(table.colnames)
    for start in range(0, max(len(table), 1), batch_rows):
        part = table[start : start + batch_rows]
        arrays = [_astropy_column_to_arrow(part[n]) for n in names]
        yield pa.RecordBatch.from_arrays(arrays, names=names)
