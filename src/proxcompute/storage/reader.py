"""Opening catalogs from metadata only, and reading partitions with pruning.

Opening reads ``hats.properties``, ``partition_info.csv`` and ``_common_metadata``: no row
data, no per-file footers. Reading a partition opens its footer, keeps only the row groups
whose ``_healpix_29`` statistics intersect the requested ranges, and projects columns.

Every layout HATS allows is read: the spatial index ``hats_col_healpix`` at any order
``hats_col_healpix_order`` (when it is not ``_healpix_29``, ``_healpix_29`` is computed from
ra/dec on read and the stored index prunes row groups at its own order), any
``hats_npix_suffix`` including ``/`` (each ``Npix=n`` a directory of files), catalogs
without ``_metadata`` or ``_common_metadata``, and ``_healpix_29`` at any position (or
stored as the pandas index).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from proxcompute.errors import CorruptPartitionError, StorageError
from proxcompute.sky.healpix import INDEX_COLUMN, INDEX_ORDER, healpix29_spans, radec_to_healpix29
from proxcompute.storage.collection import CollectionInfo, read_collection
from proxcompute.storage.layout import (
    COLLECTION_PROPERTIES,
    PROPERTIES,
    PartitionPixel,
    dataset_dir,
    npix_files,
    npix_path,
    read_partition_info,
)
from proxcompute.storage.location import (
    as_location,
    is_remote,
    open_input,
    read_text,
    remote_cached,
    remote_error,
    revalidate,
)
from proxcompute.storage.nested import check_nested_lengths
from proxcompute.storage.properties import read_properties

if TYPE_CHECKING:
    from upath import UPath

__all__ = [
    "CatalogMeta",
    "CollectionInfo",
    "leaf_columns",
    "read_catalog_meta",
    "read_collection",
    "read_partition",
    "remote_footer",
    "resolve_catalog_paths",
    "select_row_groups",
]


@dataclass(frozen=True)
class CatalogMeta:
    """Everything known about a stored catalog without reading row data.

    ``root`` is a :class:`~pathlib.Path`, or a :class:`upath.UPath` for a remote catalog."""

    root: Path | UPath
    name: str
    catalog_type: str
    ra_column: str
    dec_column: str
    total_rows: int
    pixels: tuple[PartitionPixel, ...]
    schema: pa.Schema
    properties: dict[str, str] = field(repr=False)
    index_column: str | None = INDEX_COLUMN
    """The stored spatial index column (``hats_col_healpix``); None when there is none."""
    index_order: int = INDEX_ORDER
    """Its HEALPix order (``hats_col_healpix_order``)."""
    npix_suffix: str = ".parquet"
    """``hats_npix_suffix``: ``.parquet``, another suffix, or ``/`` for directories."""
    collection: CollectionInfo | None = field(default=None, repr=False)
    """The collection this catalog was opened through (its margins and indexes), if any."""

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def margin_threshold_arcsec(self) -> float | None:
        v = self.properties.get("hats_margin_threshold")
        return float(v) if v is not None else None

    @property
    def stores_index29(self) -> bool:
        """Whether the files hold ``_healpix_29`` (else it is computed from ra/dec on read)."""
        return self.index_column == INDEX_COLUMN

    @property
    def is_standard_layout(self) -> bool:
        """One ``Npix=n.parquet`` file per partition holding ``_healpix_29``: the layout
        other engines (DuckDB in :mod:`proxcompute.sql`) may read file by file."""
        return self.stores_index29 and self.npix_suffix == ".parquet"

    @property
    def is_remote(self) -> bool:
        """Whether the catalog is read over the network (``https://``, ``s3://``)."""
        return is_remote(self.root)

    def partition_path(self, pixel: PartitionPixel) -> Path | UPath:
        """``Npix=n<suffix>`` of ``pixel`` (a directory when ``hats_npix_suffix`` is ``/``)."""
        return npix_path(self.root, pixel.order, pixel.pixel, self.npix_suffix)

    def partition_files(self, pixel: PartitionPixel) -> list[Path] | list[UPath]:
        """The Parquet files holding ``pixel`` (several for the directory layout)."""
        return npix_files(self.root, pixel.order, pixel.pixel, self.npix_suffix)

    def file_columns(self, columns: list[str]) -> list[str]:
        """The stored columns to read to produce ``columns`` (see :meth:`finish_table`)."""
        if self.stores_index29 or INDEX_COLUMN not in columns:
            return list(columns)
        out = [c for c in columns if c != INDEX_COLUMN]
        return out + [c for c in (self.ra_column, self.dec_column) if c not in out]

    def finish_table(self, table: pa.Table, columns: list[str], path: str | os.PathLike) -> pa.Table:
        """``columns`` of rows read from the files of one partition, sorted by ``_healpix_29``.

        Computes ``_healpix_29`` from ra/dec when the files do not store it, sorts (files of a
        directory partition, or rows ordered by a coarser index, are not sorted along it) and
        checks nested columns.

        Raises
        ------
        CorruptPartitionError
            A nested column's lists disagree in length (the message names ``path``).
        """
        table = without_metadata(table)
        check_nested_lengths(table, path)
        if INDEX_COLUMN in columns and INDEX_COLUMN not in table.column_names:
            ra = table.column(self.ra_column).to_numpy()
            dec = table.column(self.dec_column).to_numpy()
            table = table.add_column(0, INDEX_COLUMN, pa.array(radec_to_healpix29(ra, dec), type=pa.int64()))
        if INDEX_COLUMN in table.column_names and table.num_rows > 1:
            idx = table.column(INDEX_COLUMN).to_numpy()
            if not np.all(idx[1:] >= idx[:-1]):
                table = table.take(pa.array(np.argsort(idx, kind="stable")))
        if table.column_names != list(columns):
            missing = [c for c in columns if c not in table.column_names]
            if missing:  # pyarrow silently skips columns a file lacks
                raise CorruptPartitionError(
                    str(path),
                    f"the file has no column {', '.join(map(repr, missing))} of the catalog's schema",
                )
            table = table.select(list(columns))
        return table


def resolve_catalog_paths(
    path: str | os.PathLike, storage_options: dict[str, Any] | None = None
) -> tuple[Path | UPath, Path | UPath | None]:
    """Return ``(catalog_dir, margin_dir or None)`` for a catalog or a HATS collection.

    For a collection the margin is its default (see :func:`read_collection`). ``path`` may
    be a URL (``https://``, ``s3://``; ``storage_options`` are fsspec's): its properties
    files are read again (the rest of its metadata stays cached while they are unchanged).

    Raises
    ------
    StorageError
        The path does not exist or is not a catalog.
    RemoteAccessError
        A remote catalog cannot be reached or read (the message names the URL).
    """
    p = as_location(path, storage_options)
    if is_remote(p):
        return _resolve_remote(p)
    if not p.exists():
        raise StorageError(f"catalog path {p} does not exist")
    if (p / COLLECTION_PROPERTIES).exists():
        info = read_collection(p)
        return info.primary, info.margin_dir
    if (p / PROPERTIES).exists() or (p / "properties").exists():
        return p, None
    raise StorageError(f"{p} is not a catalog: neither {PROPERTIES} nor {COLLECTION_PROPERTIES} found")


def _resolve_remote(p: UPath) -> tuple[UPath, UPath | None]:
    revalidate(p / COLLECTION_PROPERTIES)
    try:
        read_text(p / COLLECTION_PROPERTIES)
    except FileNotFoundError:
        pass
    else:
        info = read_collection(p)
        for d in (info.primary, info.margin_dir):
            if d is not None:
                revalidate(d / PROPERTIES)
        return info.primary, info.margin_dir
    revalidate(p / PROPERTIES)
    for name in (PROPERTIES, "properties"):
        try:
            read_text(p / name)
            return p, None
        except FileNotFoundError:
            continue
    raise StorageError(
        f"{p} is not a catalog: neither {PROPERTIES} nor {COLLECTION_PROPERTIES} found there "
        "(or the URL does not exist)"
    )


def _properties_file(root: Path | UPath) -> Path | UPath:
    """``hats.properties``, or the older name ``properties`` when only that one exists."""
    if not is_remote(root):
        return root / PROPERTIES if (root / PROPERTIES).exists() else root / "properties"
    try:
        read_text(root / PROPERTIES)
        return root / PROPERTIES
    except FileNotFoundError:
        return root / "properties"


def read_catalog_meta(root: str | os.PathLike, collection: CollectionInfo | None = None) -> CatalogMeta:
    """Read a single catalog's metadata (not a collection: see :func:`resolve_catalog_paths`).

    Raises
    ------
    StorageError
        The catalog is incomplete, or its properties disagree with its files (an index
        column, ra or dec that the files lack): the message names the file and the property.
    """
    root = as_location(root)
    prop_file = _properties_file(root)
    props = read_properties(prop_file)
    suffix = props.get("hats_npix_suffix") or ".parquet"
    pixels = tuple(read_partition_info(root))
    file_schema, schema_file = _read_schema(root, pixels, suffix)
    ra = props.get("hats_col_ra", "ra")
    dec = props.get("hats_col_dec", "dec")
    index_column, index_order = _index_column(props, prop_file, file_schema, schema_file)
    schema = file_schema
    if index_column != INDEX_COLUMN:
        for key, col in (("hats_col_ra", ra), ("hats_col_dec", dec)):
            if col not in file_schema.names:
                raise StorageError(
                    f"catalog {root}: {prop_file.name} sets {key}={col}, but {schema_file} has no column {col!r}"
                )
        schema = pa.schema([pa.field(INDEX_COLUMN, pa.int64(), nullable=False), *file_schema])
    try:
        total = int(props["hats_nrows"])
    except (KeyError, ValueError):
        total = -1
    return CatalogMeta(
        root=root,
        name=props.get("obs_collection", root.name),
        catalog_type=props.get("dataproduct_type", "object"),
        ra_column=ra,
        dec_column=dec,
        total_rows=total,
        pixels=pixels,
        schema=schema,
        properties=props,
        index_column=index_column,
        index_order=index_order,
        npix_suffix=suffix,
        collection=collection,
    )


def _index_column(
    props: dict[str, str], prop_file: Path, schema: pa.Schema, schema_file: Path
) -> tuple[str | None, int]:
    """The stored spatial index column and its order, checked against the files' schema."""
    name = props.get("hats_col_healpix")
    raw_order = props.get("hats_col_healpix_order")
    if name is None:  # older catalogs: _healpix_29 if present, else computed from ra/dec
        return (INDEX_COLUMN, INDEX_ORDER) if INDEX_COLUMN in schema.names else (None, INDEX_ORDER)
    if name not in schema.names:
        raise StorageError(
            f"{prop_file} sets hats_col_healpix={name}, but the catalog's files have no column {name!r} "
            f"(schema read from {schema_file}; columns: {', '.join(schema.names[:20])})"
        )
    if not pa.types.is_integer(schema.field(name).type):
        raise StorageError(
            f"{prop_file} sets hats_col_healpix={name}, but in {schema_file} it is "
            f"{schema.field(name).type}, not an integer HEALPix index"
        )
    try:
        order = int(raw_order) if raw_order is not None else (INDEX_ORDER if name == INDEX_COLUMN else -1)
    except ValueError:
        order = -1
    if not 0 <= order <= INDEX_ORDER or (name == INDEX_COLUMN and order != INDEX_ORDER):
        raise StorageError(
            f"{prop_file} sets hats_col_healpix={name} with hats_col_healpix_order={raw_order}: "
            f"expected a HEALPix order 0..{INDEX_ORDER}"
            + (" (29 for _healpix_29)" if name == INDEX_COLUMN else "")
        )
    if order == INDEX_ORDER and name != INDEX_COLUMN and INDEX_COLUMN not in schema.names:
        return name, order  # an order-29 index under another name: computed _healpix_29 is the same
    if INDEX_COLUMN in schema.names and pa.types.is_int64(schema.field(INDEX_COLUMN).type):
        return INDEX_COLUMN, INDEX_ORDER  # files hold _healpix_29 too (beside a coarser index)
    return name, order


def _read_schema(
    root: Path | UPath, pixels: tuple[PartitionPixel, ...], suffix: str
) -> tuple[pa.Schema, Path | UPath]:
    """The files' schema and where it was read: ``_common_metadata``, ``_metadata``, else the
    first partition's first file (catalogs may have neither summary file)."""
    if is_remote(root):
        return _read_remote_schema(root, pixels, suffix)
    ddir = dataset_dir(root)
    path = ddir / "_common_metadata"
    try:
        for path in (ddir / "_common_metadata", ddir / "_metadata"):
            if path.exists():
                return pq.read_schema(path).remove_metadata(), path
        if pixels:
            path = npix_files(root, pixels[0].order, pixels[0].pixel, suffix)[0]
            return pq.read_schema(path).remove_metadata(), path
    except (OSError, pa.ArrowException) as exc:
        raise StorageError(f"cannot read the schema of catalog {root} from {path}: {exc}") from None
    raise StorageError(f"catalog {root} has no partitions and no _common_metadata")


def _read_remote_schema(
    root: UPath, pixels: tuple[PartitionPixel, ...], suffix: str
) -> tuple[pa.Schema, UPath]:
    """:func:`_read_schema` of a remote catalog: the footer of the first file found (ranged
    reads, cached; a missing summary file costs one request, remembered)."""
    ddir = dataset_dir(root)
    candidates = [ddir / "_common_metadata", ddir / "_metadata"]
    if pixels:
        candidates += npix_files(root, pixels[0].order, pixels[0].pixel, suffix)[:1]
    for path in candidates:
        try:
            schema = remote_cached("schema", path, lambda p=path: pq.read_schema(open_input(p)))
        except FileNotFoundError:
            continue
        except pa.ArrowException as exc:
            raise StorageError(f"cannot read the schema of catalog {root} from {path}: {exc}") from None
        return schema.remove_metadata(), path
    raise StorageError(f"catalog {root} has no partitions and no _common_metadata")


def without_metadata(table: pa.Table) -> pa.Table:
    """``table`` without schema metadata (pandas'), keeping the row count of a table with
    no columns (``replace_schema_metadata`` would make it 0 rows: a count read no column)."""
    if not table.schema.metadata or table.num_columns == 0:
        return table
    return table.replace_schema_metadata(None)


def leaf_columns(md: pq.FileMetaData) -> dict[str, int]:
    """``{path: leaf index}`` of a Parquet footer's leaf (primitive) columns.

    Row-group statistics are indexed by *leaf*: a struct, list or map column has one leaf per
    primitive inside it (``lc.mjd``, ``sources.list.element.mag``), so a top-level column's
    position among the schema's fields is not its statistics index. A flat top-level column's
    path is its name; nested leaves have dotted paths.
    """
    schema = md.schema
    return {schema.column(i).path: i for i in range(md.num_columns)}


def leaf_index(md: pq.FileMetaData, path: str) -> int | None:
    """Leaf index of column ``path`` (a flat column's name, or a dotted leaf path), or None."""
    return leaf_columns(md).get(path)


def _index_stats(md: pq.FileMetaData, rg: int, col: int) -> tuple[int, int] | None:
    stats = md.row_group(rg).column(col).statistics
    if stats is None or not stats.has_min_max:
        return None
    return int(stats.min), int(stats.max)


def select_row_groups(
    md: pq.FileMetaData,
    ranges: np.ndarray | None,
    index_column: str | None = INDEX_COLUMN,
    index_order: int = INDEX_ORDER,
) -> list[int]:
    """Row groups whose index [min, max] intersects any half-open ``_healpix_29`` range.

    ``index_column`` at ``index_order`` is the stored spatial index (``hats_col_healpix``):
    at a coarser order the ranges are widened to that order, so it prunes less, never wrongly.
    """
    n = md.num_row_groups
    if ranges is None or index_column is None:
        return list(range(n))
    col = leaf_index(md, index_column)
    if col is None:
        return list(range(n))
    starts = ranges[:, 0]
    ends = ranges[:, 1]
    if index_order < INDEX_ORDER:
        shift = 2 * (INDEX_ORDER - index_order)
        starts = np.right_shift(starts, shift)
        ends = np.right_shift(ends - 1, shift) + 1
    keep = []
    for rg in range(n):
        mm = _index_stats(md, rg, col)
        if mm is None:
            keep.append(rg)
            continue
        lo, hi = mm
        # first range whose end > lo; does it start <= hi?
        i = int(np.searchsorted(ends, lo, side="right"))
        if i < len(starts) and starts[i] <= hi:
            keep.append(rg)
    return keep


def open_partition_file(path: Path | UPath) -> pq.ParquetFile:
    """Open a partition file (its footer is read); remote files with ranged reads.

    Raises
    ------
    CorruptPartitionError
        The file is missing or not Parquet (the message names it).
    RemoteAccessError
        A remote file cannot be fetched (access denied, connection refused).
    """
    try:
        return pq.ParquetFile(open_input(path), pre_buffer=is_remote(path))
    except FileNotFoundError:
        raise CorruptPartitionError(str(path), "file is missing") from None
    except (OSError, pa.ArrowException) as exc:
        raise read_error(path, exc) from None


def read_error(path: Any, exc: BaseException) -> StorageError:
    """The error for a failed read of a partition file: a transport failure of a remote file
    is a :class:`RemoteAccessError`, anything else a :class:`CorruptPartitionError`."""
    err = remote_error(path, exc) if is_remote(path) and not isinstance(exc, pa.ArrowException) else None
    return err if err is not None else CorruptPartitionError(str(path), str(exc))


def remote_footer(path: UPath) -> pq.FileMetaData:
    """The Parquet footer of a remote file, cached per process (see
    :func:`proxcompute.storage.location.revalidate`)."""
    try:
        return remote_cached("footer", path, lambda: open_partition_file(path).metadata)
    except FileNotFoundError:  # pragma: no cover - open_partition_file words it
        raise CorruptPartitionError(str(path), "file is missing") from None


def read_partition(
    path: str | os.PathLike,
    columns: list[str] | None = None,
    ranges: np.ndarray | None = None,
) -> pa.Table:
    """Read one partition file.

    Parameters
    ----------
    path
        The partition's Parquet file.
    columns
        Columns to read (all when None).
    ranges
        Optional ``(n, 2)`` merged half-open ``_healpix_29`` ranges: only row groups that
        intersect them are read, and rows outside them are sliced away (files are sorted).

    Raises
    ------
    CorruptPartitionError
        The file is missing or unreadable; the message names it.
    """
    path = as_location(path)
    if not is_remote(path) and path.is_dir():
        raise CorruptPartitionError(str(path), "is a directory: read it with CatalogMeta.partition_files")
    pf = open_partition_file(path)
    try:
        md = pf.metadata
        rgs = select_row_groups(md, ranges)
        read_cols = columns
        if ranges is not None and columns is not None and INDEX_COLUMN not in columns:
            read_cols = [*columns, INDEX_COLUMN]
        if not rgs:
            schema = pf.schema_arrow.remove_metadata()
            names = columns if columns is not None else schema.names
            return pa.Table.from_batches([], schema=pa.schema([schema.field(n) for n in names]))
        table = pf.read_row_groups(rgs, columns=read_cols)
    except StorageError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise read_error(path, exc) from None
    table = without_metadata(table)
    if ranges is not None and table.num_rows:
        table = slice_ranges(table, ranges)
    if read_cols is not columns:
        table = table.select(columns)
    return table


def slice_ranges(table: pa.Table, ranges: np.ndarray) -> pa.Table:
    """Keep rows whose (sorted) ``_healpix_29`` lies in any half-open range."""
    idx = table.column(INDEX_COLUMN).to_numpy()
    lo, hi = healpix29_spans(idx, ranges)
    if lo.size == 1 and lo[0] == 0 and hi[0] == len(idx):
        return table
    if lo.size == 0:
        return table.slice(0, 0)
    pieces = [table.slice(int(a), int(b - a)) for a, b in zip(lo, hi, strict=True)]
    return pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
