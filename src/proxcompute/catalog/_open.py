"""Making catalogs: open one on disk, or partition a DataFrame in memory."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxcompute.catalog._catalog import Catalog
from proxcompute.catalog._tables import memory_source
from proxcompute.plan import Scan, Source, StoredSource
from proxcompute.storage import read_catalog_meta, read_collection, resolve_catalog_paths
from proxcompute.storage.location import as_location
from proxcompute.storage.partitioning import DEFAULT_MAX_ROWS

if TYPE_CHECKING:
    from upath import UPath

__all__ = ["from_dataframe", "open_catalog"]


def _margin_loader(margin_dir: Path | UPath | None):
    if margin_dir is None:
        return None

    @functools.cache
    def load() -> Source | None:
        return StoredSource(read_catalog_meta(margin_dir))

    return load


def open_catalog(path: str | os.PathLike, *, storage_options: dict[str, Any] | None = None) -> Catalog:
    """Open a catalog directory or a HATS collection, reading metadata only.

    Reads ``hats.properties``, ``partition_info.csv`` and ``_common_metadata``; no row data
    and no partition footers. For a collection, the catalog's default margin is available
    as ``.margin`` (its metadata is read on first access); the collection's other margins and
    its index catalogs are listed in the repr and in ``proxcompute info``.

    Parameters
    ----------
    path
        A directory, or a URL: ``https://host/path/survey``, ``s3://bucket/survey`` (needs
        the ``[remote]`` extra). Remote catalogs are read with ranged requests: the footers
        and row groups a plan needs, nothing else; their metadata and footers are cached
        per process while their properties files are unchanged.
    storage_options
        fsspec options for a URL: ``{"anon": True}``, ``{"key": ..., "secret": ...,
        "client_kwargs": {"endpoint_url": ...}}`` for S3 (default: the usual AWS
        environment variables and files), ``{"headers": {...}}`` for HTTP.

    Raises
    ------
    StorageError
        The path does not exist or is not a catalog.
    RemoteAccessError
        A URL cannot be reached or read (refused, HTTP 403, bad credentials); the message
        names the URL.

    Examples
    --------
    >>> import tempfile, os
    >>> from proxcompute.synthetic import generate_catalog
    >>> path = os.path.join(tempfile.mkdtemp(), "demo")
    >>> _ = from_dataframe(generate_catalog(5_000, seed=3), name="demo").to_catalog(path)
    >>> cat = open_catalog(path)
    >>> cat.name, len(cat), cat.margin is None
    ('demo', 5000, True)
    """
    location = as_location(path, storage_options)
    cat_dir, margin_dir = resolve_catalog_paths(location)
    collection = read_collection(location) if cat_dir != location else None
    source = StoredSource(read_catalog_meta(cat_dir, collection=collection))
    return Catalog(Scan(source), margin=_margin_loader(margin_dir))


def from_dataframe(
    df: Any,
    *,
    name: str = "dataframe",
    ra_column: str = "ra",
    dec_column: str = "dec",
    max_rows: int = DEFAULT_MAX_ROWS,
) -> Catalog:
    """An in-memory catalog from a pandas DataFrame or an astropy Table.

    Adds ``_healpix_29``, sorts rows along it and cuts them into adaptive partitions of at
    most ``max_rows`` rows, so the result behaves exactly like a stored catalog (and
    :meth:`Catalog.to_catalog` stores it). RA is wrapped into ``[0, 360)``.

    Raises
    ------
    ColumnNotFoundError
        A coordinate column is missing (the message lists the available ones).
    InvalidCoordinatesError
        Coordinates are not numeric, NaN, infinite, or have ``|dec| > 90``.

    Examples
    --------
    >>> from proxcompute.synthetic import generate_catalog
    >>> cat = from_dataframe(generate_catalog(10_000, seed=1), name="demo", max_rows=1_000)
    >>> len(cat), cat.columns[:3], len(cat.partitions) >= 10
    (10000, ['_healpix_29', 'id', 'ra'], True)
    """
    return Catalog(Scan(memory_source(df, name=name, ra_column=ra_column, dec_column=dec_column, max_rows=max_rows)))
