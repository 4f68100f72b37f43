"""Build a HATS index catalog of one column: ``proxcompute index`` and ``ingest(index_columns=)``.

An out-of-core sort by value in three steps, each one task per partition or per bucket:

1. **sample**: read the column of each partition, keep up to 2,000 values of it, and pick
   bucket boundaries at quantiles of the pooled samples (one bucket per ~4 million rows);
2. **split**: read ``column`` and ``_healpix_29`` of each partition and write each bucket's
   share to a staging file (with the partition's ``Norder``/``Npix``);
3. **sort**: read one bucket's files, sort by value (then ``_healpix_29``) and write one
   index file in small row groups.

Memory is bounded by the largest of one partition's two columns and one bucket (about
4 million rows of value, ``_healpix_29``, ``Norder``, ``Npix``: ~100 MB), whatever the size of the
catalog. The layout is described in :mod:`proxcompute.storage.index`. Rows whose value is
null are not indexed (an id search never matches null).
"""

from __future__ import annotations

import math
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.parquet as pq

from proxcompute.errors import ColumnNotFoundError, IngestError
from proxcompute.sky import INDEX_COLUMN
from proxcompute.storage import (
    CatalogMeta,
    PartitionPixel,
    check_destination,
    publish,
    read_catalog_meta,
    resolve_catalog_paths,
    write_properties,
)
from proxcompute.storage.index import (
    INDEX_FILES_DIR,
    INDEX_ROW_GROUP_ROWS,
    index_catalog_name,
    index_file_name,
    register_indexes,
)
from proxcompute.storage.layout import COLLECTION_PROPERTIES

__all__ = ["BUCKET_ROWS", "IndexResult", "build_index", "build_ingest_indexes", "check_index_columns"]

BUCKET_ROWS = 4_000_000
"""Rows per sort bucket, hence per index file (the memory bound of the sort step)."""
SAMPLE_PER_PARTITION = 2_000


@dataclass(frozen=True)
class IndexResult:
    """What :func:`build_index` wrote."""

    path: Path
    column: str
    rows: int
    files: int
    seconds: float

    def __str__(self) -> str:
        return f"index of {self.column!r}: {self.rows:,} rows in {self.files} files at {self.path} ({self.seconds:.1f} s)"


def check_index_columns(columns: Sequence[str], schema: pa.Schema, catalog: str = "catalog") -> list[str]:
    """The index columns, checked: each exists and holds plain values (not lists or structs)."""
    if isinstance(columns, str):
        columns = [columns]
    out = []
    for c in columns:
        if c not in schema.names:
            raise ColumnNotFoundError(c, schema.names, what=catalog)
        t = schema.field(c).type
        if pa.types.is_nested(t) or pa.types.is_dictionary(t):
            raise IngestError(f"cannot index column {c!r} of type {t}: index plain values (ids, names)")
        if c == INDEX_COLUMN:
            raise IngestError(f"{INDEX_COLUMN} is the spatial index already; index another column")
        if c not in out:
            out.append(c)
    return out


# -- tasks (run on the workers) ---------------------------------------------------------


def _sample_task(item: tuple[str, PartitionPixel], column: str) -> dict[str, Any]:
    path, pixel = item
    values = pq.read_table(path, columns=[column]).column(column).drop_null()
    n = len(values)
    if n > SAMPLE_PER_PARTITION:
        rng = np.random.default_rng(pixel.order * 10**12 + pixel.pixel)
        values = values.take(pa.array(np.sort(rng.choice(n, SAMPLE_PER_PARTITION, replace=False))))
    return {"rows": n, "sample": values.to_pylist()}


def _split_task(item: tuple[str, PartitionPixel], column: str, splits: list, work: str) -> list[int]:
    path, pixel = item
    table = pq.read_table(path, columns=[column, INDEX_COLUMN]).replace_schema_metadata(None)
    table = table.filter(pc.is_valid(table.column(column)))
    n = table.num_rows
    table = table.append_column("Norder", pa.array(np.full(n, pixel.order, dtype=np.uint8)))
    table = table.append_column("Npix", pa.array(np.full(n, pixel.pixel, dtype=np.uint64)))
    values = table.column(column).to_numpy(zero_copy_only=False)
    bucket = (
        np.searchsorted(np.asarray(splits, dtype=values.dtype), values, side="right")
        if splits
        else np.zeros(n, np.int64)
    )
    counts = np.bincount(bucket, minlength=len(splits) + 1)
    order = np.argsort(bucket, kind="stable")
    table = table.take(pa.array(order))
    start = 0
    for b, c in enumerate(counts.tolist()):
        if c:
            d = os.path.join(work, f"b={b}")
            os.makedirs(d, exist_ok=True)
            tmp = os.path.join(d, f".{pixel.order}_{pixel.pixel}.tmp")
            feather.write_feather(table.slice(start, c), tmp, compression="uncompressed")
            os.replace(tmp, os.path.join(d, f"{pixel.order}_{pixel.pixel}.arrow"))
        start += c
    return counts.tolist()


def _sort_task(item: tuple[int, int], column: str, work: str, out_dir: str) -> int:
    bucket, k = item
    d = os.path.join(work, f"b={bucket}")
    tables = [feather.read_table(os.path.join(d, f)) for f in sorted(os.listdir(d)) if f.endswith(".arrow")]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    table = table.sort_by([(column, "ascending"), (INDEX_COLUMN, "ascending")])
    sorting = pq.SortingColumn.from_ordering(table.schema, [(column, "ascending")])
    tmp = os.path.join(out_dir, f".{index_file_name(k)}.tmp")
    pq.write_table(table, tmp, row_group_size=INDEX_ROW_GROUP_ROWS, data_page_size=16 * 1024,
                   sorting_columns=sorting, write_statistics=True)  # fmt: skip
    os.replace(tmp, os.path.join(out_dir, index_file_name(k)))
    shutil.rmtree(d, ignore_errors=True)
    return table.num_rows


# -- driver -----------------------------------------------------------------------------


def _quantile_splits(samples: list, rows: int) -> list:
    n_buckets = max(1, math.ceil(rows / BUCKET_ROWS))
    if n_buckets == 1 or not samples:
        return []
    ordered = sorted(samples)
    picks = [ordered[min(len(ordered) - 1, (len(ordered) * i) // n_buckets)] for i in range(1, n_buckets)]
    out = []
    for v in picks:  # strictly increasing boundaries
        if not out or v > out[-1]:
            out.append(v)
    return out


def _write_index(
    meta: CatalogMeta, column: str, dest: Path, client: Any, show_progress: bool
) -> tuple[int, int]:
    """Write a complete index catalog of ``column`` into ``dest`` (which must not exist)."""
    from proxcompute.execute import map_tasks

    items = [(str(meta.partition_path(p)), p) for p in meta.pixels]
    label = f"index {column}"
    work = dest / "_work"
    out_dir = dest / INDEX_FILES_DIR
    work.mkdir(parents=True)
    out_dir.mkdir(parents=True)
    sampled = map_tasks(_sample_task, items, client=client, description=f"{label}: sample",
                        show_progress=show_progress, column=column)  # fmt: skip
    rows = sum(s["rows"] for s in sampled)
    splits = _quantile_splits([v for s in sampled for v in s["sample"]], rows)
    counts = map_tasks(_split_task, items, client=client, description=f"{label}: split", show_progress=show_progress,
                       column=column, splits=splits, work=str(work))  # fmt: skip
    per_bucket = (
        np.sum(np.asarray(counts, dtype=np.int64).reshape(len(items), -1), axis=0) if counts else np.zeros(1)
    )
    buckets = [int(b) for b in np.flatnonzero(per_bucket)]
    written = map_tasks(_sort_task, [(b, k) for k, b in enumerate(buckets)], client=client,
                        description=f"{label}: sort", show_progress=show_progress, column=column,
                        work=str(work), out_dir=str(out_dir))  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    _write_metadata(dest, column, len(buckets), meta)
    write_properties(
        dest,
        {
            "obs_collection": dest.name,
            "dataproduct_type": "index",
            "hats_nrows": int(sum(written)),
            "hats_primary_table_url": meta.root.name,
            "hats_index_column": column,
        },
    )
    return int(sum(written)), len(buckets)


def _write_metadata(dest: Path, column: str, n_files: int, meta: CatalogMeta) -> None:
    ddir = dest / "dataset"
    schema = pa.schema(
        [meta.schema.field(column).remove_metadata(), pa.field(INDEX_COLUMN, pa.int64()),
         pa.field("Norder", pa.uint8()), pa.field("Npix", pa.uint64())]
    )  # fmt: skip
    pq.write_metadata(schema, ddir / "_common_metadata")
    collected = None
    for k in range(n_files):
        md = pq.read_metadata(dest / INDEX_FILES_DIR / index_file_name(k))
        md.set_file_path(f"index/{index_file_name(k)}")
        if collected is None:
            collected = md
        else:
            collected.append_row_groups(md)
    if collected is None:
        pq.write_metadata(schema, ddir / "_metadata")
    else:
        collected.write_metadata_file(ddir / "_metadata")


def build_index(
    catalog: str | os.PathLike,
    column: str,
    *,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    client: Any = None,
    show_progress: bool = True,
) -> IndexResult:
    """Build the index catalog of ``column`` for a catalog or collection (``proxcompute index``).

    Parameters
    ----------
    catalog
        A catalog directory or a HATS collection.
    column
        The column to index (ids, names: plain values).
    out
        The index catalog directory; default ``<catalog>_<column>_index`` next to the catalog
        (inside the collection, where it is also listed in ``collection.properties``).
    overwrite
        Replace an existing index at ``out``.
    workers, client
        Local threads of a temporary cluster, or a ``distributed.Client`` to run on.
    show_progress
        Draw progress bars on stderr.

    Returns
    -------
    IndexResult
        Where the index is, its rows and files, and how long it took.

    Raises
    ------
    ColumnNotFoundError
        ``column`` is not a column of the catalog.
    CatalogExistsError
        ``out`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import os, tempfile
    >>> from proxcompute import from_dataframe, open_catalog
    >>> from proxcompute.synthetic import generate_catalog
    >>> path = os.path.join(tempfile.mkdtemp(), "sky")
    >>> _ = from_dataframe(generate_catalog(5_000, seed=1), name="sky").to_catalog(path)
    >>> build_index(path, "id", workers=1, show_progress=False).rows  # doctest: +SKIP
    5000
    """
    start = time.perf_counter()
    cat_dir, _margin = resolve_catalog_paths(catalog)
    meta = read_catalog_meta(cat_dir)
    (column,) = check_index_columns([column], meta.schema, f"catalog {meta.name!r}")
    dest = Path(out) if out is not None else cat_dir.parent / index_catalog_name(cat_dir.name, column)
    dest = dest.expanduser().absolute()
    check_destination(dest, overwrite)
    staging = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
    from proxcompute.execute import local_client

    try:
        with local_client(workers, client, processes=False) as c:
            rows, files = _write_index(meta, column, staging, c, show_progress)
        publish(staging, dest, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    collection = Path(catalog).expanduser().absolute()
    if (collection / COLLECTION_PROPERTIES).exists() and dest.parent == collection:
        register_indexes(collection, {column: dest.name})
    return IndexResult(dest, column, rows, files, time.perf_counter() - start)


def build_ingest_indexes(
    catalog_dir: Path, columns: Sequence[str], client: Any, show_progress: bool
) -> dict[str, str]:
    """Ingest's hook: build each index next to ``catalog_dir`` in the staging collection.

    Returns ``{column: index directory name}`` for ``collection.properties``.
    """
    if not columns:
        return {}
    meta = read_catalog_meta(catalog_dir)
    out = {}
    for column in check_index_columns(columns, meta.schema, f"catalog {meta.name!r}"):
        dest = catalog_dir.parent / index_catalog_name(catalog_dir.name, column)
        if dest.exists():  # an interrupted attempt
            shutil.rmtree(dest)
        _write_index(meta, column, dest, client, show_progress)
        out[column] = dest.name
    return out
