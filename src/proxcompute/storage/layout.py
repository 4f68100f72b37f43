"""Paths and the partition list of the HATS layout.

::

    <catalog>/hats.properties            (and a copy named ``properties``)
    <catalog>/partition_info.csv         "Norder,Npix", the authoritative partition list
    <catalog>/dataset/Norder=k/Dir=d/Npix=n.parquet   d = (n // 10000) * 10000
    <catalog>/dataset/_metadata, _common_metadata
    <collection>/collection.properties   names the catalog and its default margin
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from proxcompute.errors import StorageError
from proxcompute.sky.healpix import PartitionPixel

__all__ = [
    "COLLECTION_PROPERTIES",
    "DATASET_DIR",
    "PARTITION_INFO",
    "PROPERTIES",
    "PartitionPixel",
    "dataset_dir",
    "partition_path",
    "read_partition_info",
    "write_partition_info",
]

PROPERTIES = "hats.properties"
COLLECTION_PROPERTIES = "collection.properties"
PARTITION_INFO = "partition_info.csv"
DATASET_DIR = "dataset"


def dataset_dir(root: str | os.PathLike) -> Path:
    return Path(root) / DATASET_DIR


def partition_path(root: str | os.PathLike, order: int, pixel: int) -> Path:
    """Path of the Parquet file of partition ``(order, pixel)`` under catalog ``root``."""
    d = (int(pixel) // 10000) * 10000
    return dataset_dir(root) / f"Norder={int(order)}" / f"Dir={d}" / f"Npix={int(pixel)}.parquet"


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
    """Read ``partition_info.csv``; partitions sorted along the order-29 curve."""
    path = Path(root) / PARTITION_INFO
    if not path.exists():
        raise StorageError(f"{root} is not a catalog: {PARTITION_INFO} is missing")
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            pixels = [PartitionPixel(int(r["Norder"]), int(r["Npix"])) for r in reader]
    except (KeyError, ValueError, TypeError) as exc:
        raise StorageError(f"{path} is malformed: {exc}") from None
    return sort_pixels(pixels)


def partition_starts(pixels: list[PartitionPixel]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(starts, ends)`` order-29 ranges of pixels already in storage order."""
    rng = np.array([p.healpix29_range for p in pixels], dtype=np.int64).reshape(-1, 2)
    return rng[:, 0].copy(), rng[:, 1].copy()
