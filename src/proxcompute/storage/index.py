"""HATS index catalogs: the on-disk layout, and looking ids up in one. No dask.

An index catalog maps the values of one column of a primary catalog to the partitions that
hold them, in the layout hats-import's index pipeline writes and LSDB's ``id_search`` reads::

    <index>/hats.properties        dataproduct_type=index, hats_index_column=<column>,
                                   hats_primary_table_url=<primary catalog>, hats_nrows
    <index>/dataset/index/part.<k>.parquet
                                   <column>, _healpix_29, Norder (uint8), Npix (uint64);
                                   globally sorted by <column>, files in value order
    <index>/dataset/_metadata, _common_metadata

A collection lists its indexes in ``collection.properties``::

    all_indexes=id NAME_id_index          (pairs of column and directory)
    default_index=id

Lookups use the row-group statistics of the (sorted) column, so finding 1,000 ids reads only
the row groups whose value range holds one of them, and only the value and ``_healpix_29``
columns of those.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from proxcompute.errors import StorageError
from proxcompute.sky.healpix import INDEX_COLUMN
from proxcompute.storage.collection import read_collection
from proxcompute.storage.layout import COLLECTION_PROPERTIES, PROPERTIES
from proxcompute.storage.location import is_remote, is_url
from proxcompute.storage.properties import read_properties

__all__ = [
    "INDEX_FILES_DIR",
    "INDEX_ROW_GROUP_ROWS",
    "IndexMeta",
    "collection_indexes",
    "find_index",
    "index_catalog_name",
    "index_file_name",
    "lookup",
    "read_index_meta",
    "register_indexes",
]

INDEX_FILES_DIR = Path("dataset") / "index"
"""Where the index files live inside an index catalog (as hats-import writes them)."""

INDEX_ROW_GROUP_ROWS = 4_096
"""Rows per row group of an index file: small, so a lookup reads little around each id."""


def index_catalog_name(catalog_name: str, column: str) -> str:
    """Directory name of the index of ``column``: ``NAME_COLUMN_index`` (next to the catalog)."""
    return f"{catalog_name}_{column}_index"


def index_file_name(k: int) -> str:
    """Name of the ``k``-th index file (dask's ``to_parquet`` naming, as hats-import uses)."""
    return f"part.{k}.parquet"


@dataclass(frozen=True)
class IndexMeta:
    """An index catalog, from its properties and its row-group statistics.

    ``fences`` has one row per row group, in value order: its file, its number in that file,
    and the smallest and largest value it holds.
    """

    root: Path
    column: str
    primary: str
    total_rows: int
    files: tuple[Path, ...]
    rg_file: np.ndarray
    rg_number: np.ndarray
    rg_min: np.ndarray
    rg_max: np.ndarray
    schema: pa.Schema

    def __repr__(self) -> str:
        return (
            f"IndexMeta(column={self.column!r}, rows={self.total_rows:,}, files={len(self.files)}, "
            f"row_groups={len(self.rg_min)}, root={str(self.root)!r})"
        )


_cache: dict[tuple[str, int], IndexMeta] = {}
_footers: dict[tuple[str, int, int], pq.FileMetaData] = {}
_lock = threading.Lock()


def _footer(path: Path) -> pq.FileMetaData:
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _lock:
        md = _footers.get(key)
    if md is None:
        md = pq.read_metadata(path)
        with _lock:
            _footers[key] = md
    return md


def read_index_meta(root: str | os.PathLike) -> IndexMeta:
    """Read an index catalog's properties and file footers (cached while unchanged).

    Raises
    ------
    StorageError
        ``root`` is not an index catalog, or its files are unreadable.
    """
    if is_remote(root) or is_url(root):
        raise StorageError(f"index catalogs are read from local disk only, not from {root}")
    root = Path(root)
    prop_file = root / PROPERTIES if (root / PROPERTIES).exists() else root / "properties"
    props = read_properties(prop_file)
    if props.get("dataproduct_type") != "index":
        raise StorageError(
            f"{root} is not an index catalog (dataproduct_type={props.get('dataproduct_type')})"
        )
    column = props.get("hats_index_column")
    if not column:
        raise StorageError(f"index catalog {root} names no hats_index_column")
    files_dir = root / INDEX_FILES_DIR
    files = sorted(files_dir.glob("*.parquet"), key=_file_order) if files_dir.is_dir() else []
    if not files:
        raise StorageError(f"index catalog {root} has no files under {INDEX_FILES_DIR}")
    stamp = hash(tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    with _lock:
        hit = _cache.get((str(root), stamp))
    if hit is not None:
        return hit
    rg_file, rg_number, lows, highs = [], [], [], []
    schema = None
    try:
        for k, f in enumerate(files):
            md = _footer(f)
            if schema is None:
                schema = md.schema.to_arrow_schema().remove_metadata()
            col = md.schema.to_arrow_schema().get_field_index(column)
            if col < 0:
                raise StorageError(f"index file {f} has no column {column!r}")
            for rg in range(md.num_row_groups):
                group = md.row_group(rg)
                if group.num_rows == 0:
                    continue
                s = group.column(col).statistics
                if s is None or not s.has_min_max:
                    raise StorageError(f"index file {f} has no statistics for {column!r}: rebuild the index")
                rg_file.append(k)
                rg_number.append(rg)
                lows.append(s.min)
                highs.append(s.max)
    except (OSError, pa.ArrowException) as exc:
        raise StorageError(f"cannot read index catalog {root}: {exc}") from None
    meta = IndexMeta(
        root=root,
        column=column,
        primary=props.get("hats_primary_table_url", ""),
        total_rows=int(props.get("hats_nrows", -1) or -1),
        files=tuple(files),
        rg_file=np.asarray(rg_file, dtype=np.int64),
        rg_number=np.asarray(rg_number, dtype=np.int64),
        rg_min=np.asarray(lows),
        rg_max=np.asarray(highs),
        schema=schema,
    )
    if len(meta.rg_max) > 1 and not bool(np.all(meta.rg_min[1:] >= meta.rg_max[:-1])):
        raise StorageError(f"index catalog {root} is not sorted by {column!r}: rebuild the index")
    with _lock:
        _cache[(str(root), stamp)] = meta
    return meta


def _file_order(path: Path) -> tuple[int, str]:
    stem = path.name.split(".")
    digits = [s for s in stem if s.isdigit()]
    return (int(digits[0]) if digits else -1, path.name)


def collection_indexes(collection: str | os.PathLike) -> dict[str, str]:
    """``{column: index directory}`` from a collection's ``all_indexes`` (empty if none)."""
    if not (Path(collection) / COLLECTION_PROPERTIES).exists():
        return {}
    return {c: str(p) for c, p in read_collection(collection).indexes.items()}


def find_index(catalog_root: str | os.PathLike, column: str) -> Path | None:
    """The index catalog of ``column`` for the catalog at ``catalog_root``, or None.

    Looks in the enclosing collection's ``all_indexes``, then for the conventional sibling
    directory ``<catalog>_<column>_index`` whose properties name this catalog as primary.
    """
    if is_remote(catalog_root):  # index catalogs are read from local disk only
        return None
    root = Path(catalog_root)
    parent = root.parent
    listed = collection_indexes(parent)
    if column in listed:
        d = Path(listed[column])
        return d if d.is_dir() else None
    sibling = parent / index_catalog_name(root.name, column)
    if (sibling / PROPERTIES).exists():
        props = read_properties(sibling / PROPERTIES)
        if props.get("dataproduct_type") == "index" and props.get("hats_index_column") == column:
            return sibling
    return None


def register_indexes(collection: str | os.PathLike, indexes: dict[str, str]) -> None:
    """Add ``{column: index directory}`` to a collection's ``all_indexes`` (atomically).

    The first index becomes ``default_index`` when the collection has none.
    """
    if not indexes:
        return
    path = Path(collection) / COLLECTION_PROPERTIES
    if not path.exists():
        raise StorageError(f"{collection} is not a collection: {COLLECTION_PROPERTIES} is missing")
    lines = path.read_text().splitlines()
    root = Path(collection)
    current = {
        c: (os.path.relpath(p, root) if Path(p).is_relative_to(root) else p)
        for c, p in collection_indexes(root).items()
    }
    current.update(indexes)
    props = read_properties(path)
    default = props.get("default_index") or next(iter(indexes))
    kept = [line for line in lines if line.split("=", 1)[0].strip() not in ("all_indexes", "default_index")]
    kept.append("all_indexes=" + " ".join(f"{c} {d}" for c, d in current.items()))
    kept.append(f"default_index={default}")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text("\n".join(kept) + "\n")
    os.replace(tmp, path)


def _value_array(values: Sequence[object], type_: pa.DataType) -> pa.Array:
    try:
        arr = pa.array(list(values))
        if arr.type != type_:
            arr = arr.cast(type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise StorageError(
            f"cannot compare the values with the index column of type {type_}: {exc}"
        ) from None
    return pc.unique(arr.drop_null())


def _matching_rows(table: pa.Table, column: str, sorted_vals: np.ndarray, vals: pa.Array) -> pa.Table:
    """Rows of ``table`` (sorted by ``column``) whose value is one of ``sorted_vals``."""
    col = table.column(column).to_numpy(zero_copy_only=False)
    try:
        lo = np.searchsorted(col, sorted_vals, side="left")
        hi = np.searchsorted(col, sorted_vals, side="right")
    except TypeError:  # values numpy cannot order: test each row
        return table.filter(pc.is_in(table.column(column), value_set=vals))
    n = hi - lo
    if not n.any():
        return table.slice(0, 0)
    take = np.repeat(lo, n) + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
    return table.take(pa.array(take, type=pa.int64()))


def lookup(meta: IndexMeta, values: Sequence[object]) -> pa.Table:
    """Index rows whose value is in ``values``: the value column and ``_healpix_29``
    (or ``Norder``/``Npix`` when the index has no ``_healpix_29``).

    Reads only the row groups whose [min, max] holds one of the values, and only those
    columns of them.
    """
    want = [meta.column]
    if INDEX_COLUMN in meta.schema.names:
        want.append(INDEX_COLUMN)
    else:
        want += ["Norder", "Npix"]
    type_ = meta.schema.field(meta.column).type
    vals = _value_array(values, type_)
    if len(vals) == 0 or len(meta.rg_min) == 0:
        return pa.schema([meta.schema.field(c) for c in want]).empty_table()
    sorted_vals = np.sort(np.asarray(vals.to_pylist(), dtype=meta.rg_max.dtype))
    # the first row group whose max >= v, if its min <= v, may hold v
    first = np.searchsorted(meta.rg_max, sorted_vals, side="left")
    ok = first < len(meta.rg_max)
    first, vv = first[ok], sorted_vals[ok]
    hit = np.unique(first[meta.rg_min[first] <= vv])
    # equal values may straddle row groups: also take following groups starting at the value
    extra = []
    for g in hit:
        h = g + 1
        while h < len(meta.rg_min) and meta.rg_min[h] == meta.rg_max[g]:
            extra.append(h)
            h += 1
    if extra:
        hit = np.unique(np.concatenate([hit, np.asarray(extra, dtype=np.int64)]))
    pieces = []
    for k in np.unique(meta.rg_file[hit]):
        groups = meta.rg_number[hit[meta.rg_file[hit] == k]].tolist()
        path = meta.files[int(k)]
        try:
            table = pq.ParquetFile(path, metadata=_footer(path)).read_row_groups(
                groups, columns=want, use_threads=False
            )
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(f"cannot read index file {path}: {exc}") from None
        pieces.append(_matching_rows(table, meta.column, sorted_vals, vals))
    if not pieces:
        return pa.schema([meta.schema.field(c) for c in want]).empty_table()
    out = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
    return out.replace_schema_metadata(None)
