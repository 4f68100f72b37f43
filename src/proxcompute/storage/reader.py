"""Opening catalogs from metadata only, and reading partitions with pruning.

Opening reads ``hats.properties``, ``partition_info.csv`` and ``_common_metadata``: no row
data, no per-file footers. Reading a partition opens its footer, keeps only the row groups
whose ``_healpix_29`` statistics intersect the requested ranges, and projects columns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from proxcompute.errors import CorruptPartitionError, StorageError
from proxcompute.sky.healpix import INDEX_COLUMN, healpix29_spans
from proxcompute.storage.layout import (
    COLLECTION_PROPERTIES,
    PROPERTIES,
    PartitionPixel,
    dataset_dir,
    partition_path,
    read_partition_info,
)
from proxcompute.storage.properties import read_properties

__all__ = [
    "CatalogMeta",
    "read_catalog_meta",
    "read_partition",
    "resolve_catalog_paths",
    "select_row_groups",
]


@dataclass(frozen=True)
class CatalogMeta:
    """Everything known about a stored catalog without reading row data."""

    root: Path
    name: str
    catalog_type: str
    ra_column: str
    dec_column: str
    total_rows: int
    pixels: tuple[PartitionPixel, ...]
    schema: pa.Schema
    properties: dict[str, str] = field(repr=False)

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def margin_threshold_arcsec(self) -> float | None:
        v = self.properties.get("hats_margin_threshold")
        return float(v) if v is not None else None

    def partition_path(self, pixel: PartitionPixel) -> Path:
        return partition_path(self.root, pixel.order, pixel.pixel)


def resolve_catalog_paths(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """Return ``(catalog_dir, margin_dir or None)`` for a catalog or a HATS collection."""
    p = Path(path)
    if not p.exists():
        raise StorageError(f"catalog path {p} does not exist")
    if (p / COLLECTION_PROPERTIES).exists():
        props = read_properties(p / COLLECTION_PROPERTIES)
        primary = props.get("hats_primary_table_url")
        if not primary:
            raise StorageError(f"{p / COLLECTION_PROPERTIES} names no primary catalog")
        margin = props.get("default_margin") or (props.get("all_margins") or "").split(" ")[0] or None
        cat_dir = (p / primary) if not os.path.isabs(primary) else Path(primary)
        margin_dir = None
        if margin:
            margin_dir = (p / margin) if not os.path.isabs(margin) else Path(margin)
        return cat_dir, margin_dir
    if (p / PROPERTIES).exists() or (p / "properties").exists():
        return p, None
    raise StorageError(f"{p} is not a catalog: neither {PROPERTIES} nor {COLLECTION_PROPERTIES} found")


def read_catalog_meta(root: str | os.PathLike) -> CatalogMeta:
    """Read a single catalog's metadata (not a collection: see :func:`resolve_catalog_paths`)."""
    root = Path(root)
    prop_file = root / PROPERTIES if (root / PROPERTIES).exists() else root / "properties"
    props = read_properties(prop_file)
    pixels = tuple(read_partition_info(root))
    schema = _read_schema(root, pixels)
    ra = props.get("hats_col_ra", "ra")
    dec = props.get("hats_col_dec", "dec")
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
    )


def _read_schema(root: Path, pixels: tuple[PartitionPixel, ...]) -> pa.Schema:
    common = dataset_dir(root) / "_common_metadata"
    try:
        if common.exists():
            return pq.read_schema(common).remove_metadata()
        if pixels:
            first = partition_path(root, pixels[0].order, pixels[0].pixel)
            return pq.read_schema(first).remove_metadata()
    except (OSError, pa.ArrowException) as exc:
        raise StorageError(f"cannot read the schema of catalog {root}: {exc}") from None
    raise StorageError(f"catalog {root} has no partitions and no _common_metadata")


def _index_stats(md: pq.FileMetaData, rg: int, col: int) -> tuple[int, int] | None:
    stats = md.row_group(rg).column(col).statistics
    if stats is None or not stats.has_min_max:
        return None
    return int(stats.min), int(stats.max)


def select_row_groups(md: pq.FileMetaData, ranges: np.ndarray | None) -> list[int]:
    """Row groups whose ``_healpix_29`` [min, max] intersects any half-open range."""
    n = md.num_row_groups
    if ranges is None:
        return list(range(n))
    names = md.schema.to_arrow_schema().names
    if INDEX_COLUMN not in names:
        return list(range(n))
    col = names.index(INDEX_COLUMN)
    starts = ranges[:, 0]
    ends = ranges[:, 1]
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


def open_partition_file(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise CorruptPartitionError(str(path), "file is missing") from None
    except (OSError, pa.ArrowException) as exc:
        raise CorruptPartitionError(str(path), str(exc)) from None


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
    path = Path(path)
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
    except CorruptPartitionError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise CorruptPartitionError(str(path), str(exc)) from None
    table = table.replace_schema_metadata(None)
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
