"""Paths and the partition list of the HATS layout.

::

    <catalog>/hats.properties            (and a copy named ``properties``)
    <catalog>/partition_info.csv         "Norder,Npix", the authoritative partition list
    <catalog>/dataset/Norder=k/Dir=d/Npix=n.parquet   d = (n // 10000) * 10000
        (``hats_npix_suffix``: another suffix, e.g. ``.parq``, or ``/``: ``Npix=n/`` is a
        directory of Parquet files)
    <catalog>/dataset/_metadata, _common_metadata
    <collection>/collection.properties   names the catalog and its default margin
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from proxcompute.errors import CorruptPartitionError, StorageError
from proxcompute.sky.healpix import PartitionPixel
from proxcompute.storage.location import as_location, is_remote, read_text, remote_cached

if TYPE_CHECKING:
    from upath import UPath

__all__ = [
    "COLLECTION_PROPERTIES",
    "DATASET_DIR",
    "PARTITION_INFO",
    "PROPERTIES",
    "PartitionPixel",
    "dataset_dir",
    "npix_files",
    "partition_path",
    "read_partition_info",
    "write_partition_info",
]

PROPERTIES = "hats.properties"
COLLECTION_PROPERTIES = "collection.properties"
PARTITION_INFO = "partition_info.csv"
DATASET_DIR = "dataset"


def dataset_dir(root: str | os.PathLike) -> Path | UPath:
    return as_location(root) / DATASET_DIR


def partition_path(root: str | os.PathLike, order: int, pixel: int) -> Path | UPath:
    """Path of the Parquet file of partition ``(order, pixel)`` under catalog ``root``."""
    d = (int(pixel) // 10000) * 10000
    return dataset_dir(root) / f"Norder={int(order)}" / f"Dir={d}" / f"Npix={int(pixel)}.parquet"


DIRECTORY_SUFFIX = "/"
"""``hats_npix_suffix`` of catalogs whose ``Npix=n`` are directories of Parquet files."""


def npix_path(root: str | os.PathLike, order: int, pixel: int, suffix: str = ".parquet") -> Path | UPath:
    """``Npix=n<suffix>`` of partition ``(order, pixel)``; for ``suffix="/"`` the directory."""
    d = (int(pixel) // 10000) * 10000
    name = f"Npix={int(pixel)}" + ("" if suffix in ("/", "\\") else suffix)
    return dataset_dir(root) / f"Norder={int(order)}" / f"Dir={d}" / name


def npix_files(
    root: str | os.PathLike, order: int, pixel: int, suffix: str = ".parquet"
) -> list[Path] | list[UPath]:
    """The Parquet files holding partition ``(order, pixel)``, per ``hats_npix_suffix``.

    With ``suffix="/"`` every non-hidden file in ``Npix=n/`` (sorted by name); otherwise the
    single file ``Npix=n<suffix>``.

    Raises
    ------
    CorruptPartitionError
        The pixel is stored both as a file and as a directory (which one is the data is
        ambiguous), or its directory holds no Parquet file. The message names the path and
        ``hats_npix_suffix``.
    """
    path = npix_path(root, order, pixel, suffix)
    is_dir_layout = suffix in ("/", "\\")
    if is_remote(path):  # no probing for twins: each probe would be a request
        return _remote_npix_files(path) if is_dir_layout else [path]
    if is_dir_layout:
        twins = [p for p in path.parent.glob(f"Npix={int(pixel)}.*") if p.is_file()] if path.is_dir() else []
    else:
        twin = npix_path(root, order, pixel, "/")
        twins = [twin] if twin.is_dir() else []
    if twins:
        raise CorruptPartitionError(
            str(path),
            f"pixel Norder={order}/Npix={pixel} is stored both as a file and as a directory "
            f"({twins[0].name}); hats_npix_suffix={suffix!r} says which one is the data, so the "
            "other one must be removed",
        )
    if not is_dir_layout:
        return [path]
    if not path.is_dir():
        files = (
            sorted(p.name for p in path.parent.glob(f"Npix={int(pixel)}.*")) if path.parent.exists() else []
        )
        found = f", but {files[0]} is there" if files else ""
        raise CorruptPartitionError(str(path), f"directory is missing (hats_npix_suffix='/'){found}")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    if not files:
        raise CorruptPartitionError(str(path), "directory holds no Parquet file (hats_npix_suffix='/')")
    return files


def _remote_npix_files(path: UPath) -> list[UPath]:
    """The data files of a remote ``Npix=n/`` directory (one listing, cached)."""

    def listing() -> list[str]:
        entries = path.fs.ls(path.path, detail=True)
        return sorted(e["name"] for e in entries if e.get("type") != "directory")

    try:
        names = remote_cached("ls", path, listing)
    except FileNotFoundError:
        raise CorruptPartitionError(str(path), "directory is missing (hats_npix_suffix='/')") from None
    files = [path / n.rstrip("/").rsplit("/", 1)[-1] for n in names]
    files = [f for f in files if not f.name.startswith((".", "_"))]
    if not files:
        raise CorruptPartitionError(str(path), "directory holds no Parquet file (hats_npix_suffix='/')")
    return files


def relative_partition_path(order: int, pixel: int) -> str:
    d = (int(pixel) // 10000) * 10000
    return f"Norder={int(order)}/Dir={d}/Npix={int(pixel)}.parquet"


def sort_pixels(pixels: list[PartitionPixel]) -> list[PartitionPixel]:
    """Pixels sorted by their position on the order-29 curve (the storage order)."""
    return sorted(pixels, key=lambda p: p.healpix29_range[0])


def write_partition_info(root: str | os.PathLike, pixels: list[PartitionPixel]) -> None:
    """Write ``partition_info.csv`` (sorted by order, then pixel, as hats does)."""
    path = Path(root) / PARTITION_INFO
    with open(path, "w", newline="") as fh:
        fh.write("Norder,Npix\n")
        for p in sorted(pixels):
            fh.write(f"{p.order},{p.pixel}\n")


def read_partition_info(root: str | os.PathLike) -> list[PartitionPixel]:
    """Read ``partition_info.csv``; partitions sorted along the order-29 curve.

    ``root`` may be remote (a :class:`upath.UPath`); the file is then cached per process."""
    path = as_location(root) / PARTITION_INFO
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise StorageError(f"{root} is not a catalog: {PARTITION_INFO} is missing") from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        pixels = [PartitionPixel(int(r["Norder"]), int(r["Npix"])) for r in reader]
    except (KeyError, ValueError, TypeError) as exc:
        raise StorageError(f"{path} is malformed: {exc}") from None
    return sort_pixels(pixels)


def partition_starts(pixels: list[PartitionPixel]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(starts, ends)`` order-29 ranges of pixels already in storage order."""
    rng = np.array([p.healpix29_range for p in pixels], dtype=np.int64).reshape(-1, 2)
    return rng[:, 0].copy(), rng[:, 1].copy()
