"""``point_map.fits`` and ``skymap.fits``: the row counts per HEALPix pixel that hats writes.

LSDB (through hats' ``read_hats``) builds a catalog's MOC from the non-zero pixels of
``point_map.fits``; without it a catalog has no MOC and searches prune by partition only.
hats-import writes both files with the same histogram at its mapping order and records
``hats_skymap_order``, ``moc_sky_fraction`` and ``hats_estsize`` in ``hats.properties``; so
do we. The format is cdshealpix's HEALPix skymap (a FITS BINTABLE, NESTED ordering):
``INDXSCHM=EXPLICIT`` (``PIXEL``, ``VALUE`` columns of the non-zero pixels) when more than
half the pixels are empty, else ``IMPLICIT`` (one ``VALUE`` per pixel), as hats chooses.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from proxcompute.errors import CorruptPartitionError
from proxcompute.sky.healpix import INDEX_COLUMN, INDEX_ORDER
from proxcompute.storage.layout import PartitionPixel, dataset_dir, partition_path

__all__ = [
    "POINT_MAP",
    "POINT_MAP_ORDER",
    "SKYMAP",
    "point_map_histogram",
    "point_map_properties",
    "read_point_map",
    "write_point_map",
]

POINT_MAP = "point_map.fits"
SKYMAP = "skymap.fits"
POINT_MAP_ORDER = 10
"""Order of the maps we write: hats-import's default mapping order (pixels of 3.4')."""


def _partition_counts(path: Path, order: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        idx = pq.read_table(path, columns=[INDEX_COLUMN]).column(INDEX_COLUMN).to_numpy()
    except (OSError, ValueError) as exc:
        raise CorruptPartitionError(str(path), str(exc)) from None
    pix, counts = np.unique(np.right_shift(idx, 2 * (INDEX_ORDER - order)), return_counts=True)
    return pix.astype(np.int64), counts.astype(np.int64)


def point_map_histogram(
    root: str | os.PathLike, pixels: Sequence[PartitionPixel], order: int = POINT_MAP_ORDER
) -> tuple[np.ndarray, np.ndarray]:
    """Sparse row counts ``(pixels, counts)`` at ``order`` of a catalog's partition files.

    A partition at ``order`` or deeper lies in one pixel; only coarser partitions are read
    (their ``_healpix_29`` column only, files in parallel threads).
    """
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    to_read = []
    for p in pixels:
        if p.order >= order:
            n = pq.read_metadata(partition_path(root, p.order, p.pixel)).num_rows
            parts.append((np.array([p.pixel >> (2 * (p.order - order))]), np.array([n])))
        else:
            to_read.append(partition_path(root, p.order, p.pixel))
    if to_read:
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
            parts.extend(pool.map(lambda f: _partition_counts(f, order), to_read))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pix = np.concatenate([a for a, _ in parts])
    cnt = np.concatenate([b for _, b in parts])
    uniq, inv = np.unique(pix, return_inverse=True)
    return uniq, np.bincount(inv, weights=cnt, minlength=uniq.size).astype(np.int64)


def _hdu(pix: np.ndarray, counts: np.ndarray, order: int):
    from astropy.io import fits

    npix = 12 * 4**order
    header = [("PIXTYPE", "HEALPIX"), ("ORDERING", "NESTED"), ("COORDSYS", "C"), ("NSIDE", 1 << order)]
    if pix.size * 2 < npix:  # mostly empty: list the non-zero pixels
        cols = [fits.Column("PIXEL", "K", array=pix), fits.Column("VALUE", "K", array=counts)]
        header += [("INDXSCHM", "EXPLICIT"), ("OBS_NPIX", int(pix.size))]
    else:
        full = np.zeros(npix, dtype=np.int64)
        full[pix] = counts
        cols = [fits.Column("VALUE", "K", array=full)]
        header += [("INDXSCHM", "IMPLICIT"), ("FIRSTPIX", 0), ("LASTPIX", npix - 1), ("OBJECT", "FULLSKY")]
    hdu = fits.BinTableHDU.from_columns(cols, name="xtension")
    for key, value in header:
        hdu.header[key] = value
    return fits.HDUList([fits.PrimaryHDU(), hdu])


def write_point_map(root: str | os.PathLike, pix: np.ndarray, counts: np.ndarray, order: int) -> None:
    """Write ``point_map.fits`` and ``skymap.fits`` (the same map) under catalog ``root``."""
    keep = counts > 0
    hdus = _hdu(np.asarray(pix, np.int64)[keep], np.asarray(counts, np.int64)[keep], order)
    for name in (POINT_MAP, SKYMAP):
        hdus.writeto(Path(root) / name, overwrite=True)


def read_point_map(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, int]:
    """Sparse ``(pixels, counts, order)`` of a point map written by us or by hats."""
    from astropy.io import fits

    with fits.open(path) as hdus:
        hdu = hdus[1]
        order = int(hdu.header["NSIDE"]).bit_length() - 1
        if hdu.header.get("INDXSCHM", "IMPLICIT").strip() == "EXPLICIT":
            return np.asarray(hdu.data["PIXEL"], np.int64), np.asarray(hdu.data["VALUE"], np.int64), order
        values = np.asarray(hdu.data["VALUE"], np.int64).ravel()
        nz = np.flatnonzero(values)
        return nz.astype(np.int64), values[nz], order


def point_map_properties(root: str | os.PathLike, pix: np.ndarray, order: int) -> dict[str, object]:
    """The ``hats.properties`` keys hats-import writes with its maps (``pix``: the non-zero
    pixels at ``order``; the estimated size is of the dataset files, in KiB)."""
    size = sum(f.stat().st_size for f in dataset_dir(root).rglob("*") if f.is_file())
    return {
        "hats_skymap_order": order,
        "moc_sky_fraction": f"{np.asarray(pix).size / (12 * 4**order):0.5f}",
        "hats_estsize": int(np.ceil(size / 1024)),
    }
