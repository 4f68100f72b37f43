"""Where a plan's rows come from: a stored catalog, or an in-memory partitioned table.

Both describe themselves from metadata only (name, schema, partitions, row count), so a
plan can be built, optimized and explained without touching row data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from proxcompute.ops.coords import validated_coordinates
from proxcompute.sky import INDEX_COLUMN, radec_to_healpix29
from proxcompute.storage import CatalogMeta, PartitionPixel, sort_by_index
from proxcompute.storage.layout import partition_starts
from proxcompute.storage.partitioning import DEFAULT_MAX_ROWS, histogram, plan_partitions

__all__ = ["MEMORY_HISTOGRAM_ORDER", "MemorySource", "Source", "StoredSource"]

MEMORY_HISTOGRAM_ORDER = 12
"""Deepest partition order of in-memory catalogs (order-12 pixels are ~0.86 arcmin across)."""


class Source(ABC):
    """Rows partitioned by HEALPix pixel, described by metadata.

    Subclasses set ``name``, ``ra_column``, ``dec_column``, ``schema``, ``pixels`` (storage
    order), ``total_rows`` (-1 when unknown), ``catalog_type`` and ``max_rows``.
    """

    name: str
    ra_column: str
    dec_column: str
    schema: pa.Schema
    pixels: tuple[PartitionPixel, ...]
    total_rows: int
    catalog_type: str = "object"
    max_rows: int | None = None
    margin_threshold_arcsec: float | None = None

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def is_margin(self) -> bool:
        return self.catalog_type == "margin"

    @abstractmethod
    def describe(self) -> str:
        """One line for ``explain()``: where the data lives."""


class StoredSource(Source):
    """A catalog on disk (HATS layout), from :func:`proxcompute.storage.read_catalog_meta`."""

    def __init__(self, meta: CatalogMeta) -> None:
        self.meta = meta
        self.name = meta.name
        self.ra_column = meta.ra_column
        self.dec_column = meta.dec_column
        self.schema = meta.schema
        self.pixels = meta.pixels
        self.total_rows = meta.total_rows
        self.catalog_type = meta.catalog_type
        mr = meta.properties.get("hats_max_rows")
        self.max_rows = int(mr) if mr and mr.isdigit() else None
        self.margin_threshold_arcsec = meta.margin_threshold_arcsec

    @property
    def root(self) -> Path:
        return self.meta.root

    def partition_path(self, pixel: PartitionPixel) -> Path:
        return self.meta.partition_path(pixel)

    def describe(self) -> str:
        return f"stored at {self.meta.root}"


class MemorySource(Source):
    """An Arrow table sorted by ``_healpix_29`` and cut into adaptive partitions.

    ``offsets[k]:offsets[k + 1]`` are the rows of ``pixels[k]``.
    """

    def __init__(
        self,
        table: pa.Table,
        pixels: tuple[PartitionPixel, ...],
        offsets: np.ndarray,
        *,
        name: str,
        ra_column: str,
        dec_column: str,
        max_rows: int | None,
    ) -> None:
        self.table = table
        self.pixels = tuple(pixels)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.name = name
        self.ra_column = ra_column
        self.dec_column = dec_column
        self.schema = table.schema
        self.total_rows = table.num_rows
        self.max_rows = max_rows
        self._position = {p: i for i, p in enumerate(self.pixels)}

    def partition_table(self, pixel: PartitionPixel) -> pa.Table:
        """The rows of one partition (a zero-copy slice)."""
        i = self._position[pixel]
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.table.slice(lo, hi - lo)

    def partition_rows(self, pixel: PartitionPixel) -> int:
        i = self._position[pixel]
        return int(self.offsets[i + 1] - self.offsets[i])

    def describe(self) -> str:
        return "in memory"

    def detached(self) -> MemorySource:
        """The same description without row data (to ship a plan to another process)."""
        empty = self.schema.empty_table()
        out = MemorySource(
            empty,
            self.pixels,
            np.zeros(len(self.pixels) + 1, dtype=np.int64),
            name=self.name,
            ra_column=self.ra_column,
            dec_column=self.dec_column,
            max_rows=self.max_rows,
        )
        out.total_rows = self.total_rows
        return out

    def with_partition(self, pixel: PartitionPixel, table: pa.Table) -> MemorySource:
        """A source holding only ``table`` as the rows of ``pixel``."""
        out = MemorySource(
            table,
            (pixel,),
            np.array([0, table.num_rows], dtype=np.int64),
            name=self.name,
            ra_column=self.ra_column,
            dec_column=self.dec_column,
            max_rows=self.max_rows,
        )
        out.total_rows = self.total_rows
        return out

    def compact_partition(self, pixel: PartitionPixel) -> pa.Table:
        """A copy of one partition's rows that pickles without the rest of the table."""
        table = self.partition_table(pixel)
        return table.take(np.arange(table.num_rows))

    @classmethod
    def from_pandas(
        cls,
        df: pd.DataFrame,
        *,
        name: str,
        ra_column: str = "ra",
        dec_column: str = "dec",
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> MemorySource:
        """Validate coordinates, add ``_healpix_29``, sort and partition adaptively."""
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        ra, dec = validated_coordinates(df, ra_column, dec_column)
        df = df.drop(columns=[INDEX_COLUMN], errors="ignore")
        if ra_column in df.columns and not np.array_equal(
            df[ra_column].to_numpy(dtype=np.float64, na_value=np.nan), ra
        ):
            df = df.assign(**{ra_column: ra})
        keep_index = df.index.names != [None]
        table = pa.Table.from_pandas(df, preserve_index=keep_index).replace_schema_metadata(None)
        index29 = radec_to_healpix29(ra, dec)
        table = sort_by_index(table.add_column(0, INDEX_COLUMN, pa.array(index29, type=pa.int64())))
        idx = table.column(INDEX_COLUMN).to_numpy()
        pix, counts = histogram(idx, MEMORY_HISTOGRAM_ORDER)
        pixels, _rows = plan_partitions(pix, counts, MEMORY_HISTOGRAM_ORDER, max_rows=max_rows)
        starts, _ends = partition_starts(pixels)
        offsets = np.append(np.searchsorted(idx, starts, side="left"), len(idx)) if pixels else np.zeros(1)
        return cls(
            table,
            tuple(pixels),
            offsets,
            name=name,
            ra_column=ra_column,
            dec_column=dec_column,
            max_rows=max_rows,
        )
