"""Writing catalogs: sorted partition files, metadata, properties, atomic publish.

A catalog is always built in a staging directory ``<dest>.tmp-<tag>`` next to its
destination and renamed into place only when complete, so a crash never leaves a
half-written catalog that opens.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from proxcompute.errors import CatalogExistsError, StorageError
from proxcompute.sky.healpix import INDEX_COLUMN, INDEX_ORDER
from proxcompute.storage.atomic import atomic_path
from proxcompute.storage.layout import (
    PartitionPixel,
    dataset_dir,
    partition_path,
    relative_partition_path,
    write_partition_info,
)
from proxcompute.storage.properties import write_properties
from proxcompute.storage.skymap import (
    POINT_MAP_ORDER,
    point_map_histogram,
    point_map_properties,
    write_point_map,
)

__all__ = [
    "DEFAULT_ROW_GROUP_ROWS",
    "CatalogBuilder",
    "check_destination",
    "publish",
    "sort_by_index",
    "write_partition_file",
]

DEFAULT_ROW_GROUP_ROWS = 16_384
"""Rows per Parquet row group: small enough that a cone reads only the groups it touches
(measured: a 1' cone on a 10M-row catalog reads 4.8 ms with 65,536-row groups, 1.8 ms with
16,384, with full scans unchanged when dictionary encoding is limited as below)."""

COMPRESSION = "snappy"
"""Codec of partition files. zstd (level 1) made files ~4% smaller than snappy with these
encodings but column reads 20-70% slower (measured on a 10M-row catalog's largest file)."""


def sort_by_index(table: pa.Table) -> pa.Table:
    """Return ``table`` with ``_healpix_29`` first and rows sorted by it (stable)."""
    idx = table.column(INDEX_COLUMN).to_numpy()
    if idx.size > 1 and not np.all(idx[1:] >= idx[:-1]):
        table = table.take(pa.array(np.argsort(idx, kind="stable")))
    names = table.column_names
    if names[0] != INDEX_COLUMN:
        order = [INDEX_COLUMN] + [n for n in names if n != INDEX_COLUMN]
        table = table.select(order)
    return table


def write_partition_file(
    root: str | os.PathLike,
    pixel: PartitionPixel,
    table: pa.Table,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    *,
    create_root: bool = True,
) -> int:
    """Write one partition file (sorted by ``_healpix_29``) under catalog ``root``.

    Returns the number of rows written. Schema metadata (pandas) is dropped so that files
    written by different workers share one schema. With ``create_root=False``, ``root``
    must exist (a :class:`~proxcompute.errors.StorageError` if not): a task still running
    after its write was aborted (a cancelled Dask task runs to its end on its worker) then
    fails instead of recreating the removed staging directory.
    """
    path = partition_path(root, pixel.order, pixel.pixel)
    if create_root:
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        _make_dirs_below(Path(root), path.parent)
    table = sort_by_index(table).replace_schema_metadata(None)
    with atomic_path(path, suffix=".part") as tmp:  # unique: a cancelled task cannot collide
        pq.write_table(
            table,
            tmp,
            row_group_size=max(1, int(row_group_rows)),
            compression=COMPRESSION,
            write_statistics=True,
            use_dictionary=dictionary_columns(table.schema),
            column_encoding=column_encodings(table.schema) or None,
        )
    return table.num_rows


def _make_dirs_below(root: Path, directory: Path) -> None:
    """Create ``directory`` and its parents up to, not including, ``root`` (which must exist)."""
    if directory.is_dir():
        return
    if not root.is_dir():
        raise StorageError(f"cannot write into {root}: the directory is gone (the write was aborted)")
    current = root
    for part in directory.relative_to(root).parts:
        current = current / part
        try:
            current.mkdir()  # no parents=True: never recreates a removed root
        except FileExistsError:
            pass
        except FileNotFoundError:
            raise StorageError(f"cannot write into {root}: the directory is gone (the write was aborted)") from None


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary encoding: strings, booleans and small integers.

    High-cardinality floats and 64-bit integers (coordinates, ids, ``_healpix_29``) only get
    bigger and slower to decode with a dictionary.
    """
    out = []
    for field in schema:
        t = field.type
        if (
            pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_boolean(t)
            or pa.types.is_dictionary(t)
            or (pa.types.is_integer(t) and t.bit_width <= 16)
        ):
            out.append(field.name)
    return out


def column_encodings(schema: pa.Schema) -> dict[str, str]:
    """Parquet encodings of the columns that are not dictionary encoded.

    Floats get ``BYTE_STREAM_SPLIT`` (their bytes regrouped by significance, which the codec
    compresses: neighbouring coordinates share sign, exponent and leading mantissa bytes) and
    integers ``DELTA_BINARY_PACKED`` (``_healpix_29`` is sorted, so its deltas are small).
    Measured on a 10M-row catalog's largest partition (433k rows): 41.5 bytes/row with plain
    encoding, 32.2 with these, column reads as fast or faster. Pyarrow, DuckDB and hats read both.
    """
    skip = set(dictionary_columns(schema))
    out = {}
    for field in schema:
        t = field.type
        if field.name in skip:
            continue
        if pa.types.is_floating(t) and t.bit_width >= 32:
            out[field.name] = "BYTE_STREAM_SPLIT"
        elif pa.types.is_integer(t) and t.bit_width >= 32:
            out[field.name] = "DELTA_BINARY_PACKED"
    return out


def check_destination(dest: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing destination unless ``overwrite``; return it as a Path."""
    d = Path(dest)
    if d.exists() and not overwrite:
        raise CatalogExistsError(f"output directory {d} already exists; pass --overwrite (overwrite=True) to replace it")
    if d.exists() and not d.is_dir():
        raise CatalogExistsError(f"output path {d} exists and is not a directory")
    return d


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def publish(staging: str | os.PathLike, dest: str | os.PathLike, overwrite: bool) -> Path:
    """Atomically move a finished ``staging`` directory to ``dest``.

    With ``overwrite`` an existing ``dest`` is first renamed aside and deleted only after
    the new one is in place.
    """
    staging, dest = Path(staging), Path(dest)
    _fsync_tree(staging)
    old = None
    if dest.exists():
        if not overwrite:
            raise CatalogExistsError(f"output directory {dest} already exists; pass --overwrite to replace it")
        old = dest.with_name(f"{dest.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(dest, old)
    os.rename(staging, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def write_dataset_metadata(root: str | os.PathLike, pixels: Iterable[PartitionPixel], schema: pa.Schema) -> None:
    """Write ``dataset/_common_metadata`` and ``dataset/_metadata`` from the partition footers."""
    ddir = dataset_dir(root)
    ddir.mkdir(parents=True, exist_ok=True)
    schema = schema.remove_metadata()
    pq.write_metadata(schema, ddir / "_common_metadata")
    collected = []
    for p in sorted(pixels):
        md = pq.read_metadata(partition_path(root, p.order, p.pixel))
        md.set_file_path(relative_partition_path(p.order, p.pixel))
        collected.append(md)
    if collected:
        pq.write_metadata(schema, ddir / "_metadata", metadata_collector=collected)
    else:
        pq.write_metadata(schema, ddir / "_metadata")


class CatalogBuilder:
    """Builds one catalog in a staging directory, then publishes it atomically.

    1. ``builder = CatalogBuilder(dest, name=..., ...)`` checks the destination;
    2. ``write_partition_file(builder.staging, pixel, table)`` writes partitions (from any
       process: it is a plain function of the staging path);
    3. ``builder.finish(pixel_rows, schema)`` writes metadata and properties and renames.

    Parameters
    ----------
    dest
        Final catalog directory.
    name
        Catalog name (``obs_collection``).
    ra_column, dec_column
        Coordinate columns.
    overwrite
        Replace an existing ``dest``.
    catalog_type
        ``"object"`` or ``"margin"``.
    staging
        Use this staging directory instead of a fresh ``<dest>.tmp-<random>``.
    extra_properties
        More ``hats.properties`` keys (e.g. ``hats_margin_threshold``).
    """

    def __init__(
        self,
        dest: str | os.PathLike,
        *,
        name: str,
        ra_column: str = "ra",
        dec_column: str = "dec",
        overwrite: bool = False,
        catalog_type: str = "object",
        staging: str | os.PathLike | None = None,
        extra_properties: dict[str, object] | None = None,
    ) -> None:
        self.dest = check_destination(dest, overwrite)
        self.overwrite = overwrite
        self.name = name
        self.ra_column = ra_column
        self.dec_column = dec_column
        self.catalog_type = catalog_type
        self.extra_properties = dict(extra_properties or {})
        if staging is None:
            staging = self.dest.with_name(f"{self.dest.name}.tmp-{uuid.uuid4().hex[:8]}")
        self.staging = Path(staging)
        self.staging.mkdir(parents=True, exist_ok=True)

    def properties(self, total_rows: int, max_order: int, max_rows: int | None) -> dict[str, object]:
        props: dict[str, object] = {
            "obs_collection": self.name,
            "dataproduct_type": self.catalog_type,
            "hats_nrows": int(total_rows),
            "hats_col_ra": self.ra_column,
            "hats_col_dec": self.dec_column,
            "hats_col_healpix": INDEX_COLUMN,
            "hats_col_healpix_order": INDEX_ORDER,
            "hats_npix_suffix": ".parquet",
            "hats_max_rows": max_rows,
            "hats_order": int(max_order),
        }
        props.update(self.extra_properties)
        return props

    def finish(
        self,
        pixel_rows: dict[PartitionPixel, int],
        schema: pa.Schema,
        *,
        max_rows: int | None = None,
        publish_now: bool = True,
        point_map: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Path:
        """Write partition list, metadata and properties; publish unless ``publish_now=False``.

        ``point_map`` is the catalog's sparse row counts ``(pixels, counts)`` at
        ``POINT_MAP_ORDER`` when the caller knows them (ingest has them from its scan); without
        it they are counted from the partition files' ``_healpix_29`` columns.
        """
        pixels = [p for p, n in pixel_rows.items() if n > 0]
        for p in pixels:
            if not partition_path(self.staging, p.order, p.pixel).exists():
                raise StorageError(f"partition file for {p} is missing in {self.staging}")
        write_partition_info(self.staging, pixels)
        write_dataset_metadata(self.staging, pixels, schema)
        max_order = max((p.order for p in pixels), default=0)
        props = self.properties(sum(pixel_rows.values()), max_order, max_rows)
        if self.catalog_type != "margin" and pixels:  # LSDB builds its MOC from point_map.fits
            map_order = POINT_MAP_ORDER
            pix, counts = point_map if point_map is not None else point_map_histogram(self.staging, pixels, map_order)
            write_point_map(self.staging, pix, counts, map_order)
            props.update(point_map_properties(self.staging, pix, map_order))
        write_properties(self.staging, props)
        if publish_now:
            return publish(self.staging, self.dest, self.overwrite)
        return self.staging

    def abort(self) -> None:
        """Remove the staging directory.

        A task still writing into it (cancelled tasks run to their end on their workers) can
        create a file between the listing and the removal of a directory; the removal is
        repeated until the directory is gone.
        """
        for _ in range(10):
            shutil.rmtree(self.staging, ignore_errors=True)
            if not self.staging.exists():
                return
