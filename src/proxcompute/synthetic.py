"""Seeded synthetic sky catalogs for the demo, tests and benchmarks.

The sky is non-uniform on purpose: a uniform background, a dense band (a "galactic
plane") and a few compact clusters, so that adaptive partitioning yields several orders.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_CLUSTERS", "generate_catalog", "write_synthetic"]

DEFAULT_CLUSTERS: tuple[tuple[float, float, float, float], ...] = (
    # ra, dec, sigma_deg, fraction of rows
    (45.0, 30.0, 0.5, 0.06),
    (210.0, -40.0, 0.3, 0.04),
    (300.0, 60.0, 1.0, 0.05),
    (120.0, -5.0, 0.2, 0.03),
)


def _uniform_sphere(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return ra, dec


def generate_catalog(
    n_rows: int,
    seed: int = 42,
    *,
    band_fraction: float = 0.3,
    band_width_deg: float = 5.0,
    clusters: tuple[tuple[float, float, float, float], ...] = DEFAULT_CLUSTERS,
    id_offset: int = 0,
) -> pd.DataFrame:
    """A seeded synthetic catalog with columns ``id, ra, dec, mag, color, flag``.

    Parameters
    ----------
    n_rows
        Number of rows.
    seed
        Random seed: the same seed gives the same rows.
    band_fraction
        Fraction of rows in a band around the equator tilted like the Galactic plane.
    band_width_deg
        Gaussian width of the band.
    clusters
        ``(ra, dec, sigma_deg, fraction)`` of compact clusters.
    id_offset
        Added to the ``id`` column (to generate a big catalog in chunks).

    Examples
    --------
    >>> df = generate_catalog(1000, seed=1)
    >>> len(df), list(df.columns)
    (1000, ['id', 'ra', 'dec', 'mag', 'color', 'flag'])
    """
    rng = np.random.default_rng(seed)
    n_clusters = [int(n_rows * f) for *_, f in clusters]
    n_band = int(n_rows * band_fraction)
    n_uniform = n_rows - n_band - sum(n_clusters)
    if n_uniform < 0:
        raise ValueError("band_fraction plus cluster fractions exceed 1")
    ras, decs = [], []
    ra, dec = _uniform_sphere(rng, n_uniform)
    ras.append(ra)
    decs.append(dec)
    # band: latitude ~ N(0, width) in a frame tilted by 60 deg about the x axis
    lon = rng.uniform(0.0, 2 * np.pi, n_band)
    lat = np.radians(np.clip(rng.normal(0.0, band_width_deg, n_band), -89.9, 89.9))
    x, y, z = np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)
    tilt = np.radians(60.0)
    y, z = y * np.cos(tilt) - z * np.sin(tilt), y * np.sin(tilt) + z * np.cos(tilt)
    ras.append(np.degrees(np.arctan2(y, x)) % 360.0)
    decs.append(np.degrees(np.arcsin(np.clip(z, -1, 1))))
    for (cra, cdec, sigma, _), n in zip(clusters, n_clusters, strict=True):
        d = np.clip(cdec + rng.normal(0.0, sigma, n), -90.0, 90.0)
        r = (cra + rng.normal(0.0, sigma, n) / max(np.cos(np.radians(cdec)), 1e-3)) % 360.0
        ras.append(r)
        decs.append(d)
    ra = np.concatenate(ras)
    dec = np.concatenate(decs)
    perm = rng.permutation(n_rows)
    ra, dec = ra[perm], dec[perm]
    mag = rng.normal(20.0, 1.5, n_rows).astype(np.float64)
    return pd.DataFrame(
        {
            "id": np.arange(id_offset, id_offset + n_rows, dtype=np.int64),
            "ra": ra,
            "dec": dec,
            "mag": mag,
            "color": rng.normal(0.8, 0.3, n_rows).astype(np.float32),
            "flag": rng.integers(0, 4, n_rows, dtype=np.int16),
        }
    )


def write_synthetic(rows: int, files: int, out, seed: int = 2026) -> list:
    """Write ``rows`` seeded rows split over ``files`` Parquet files in directory ``out``.

    Returns the file paths. Existing ``part-*.parquet`` files in ``out`` are replaced.
    """
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part-*.parquet"):
        old.unlink()
    per_file = -(-rows // files)
    paths = []
    for i in range(files):
        n = min(per_file, rows - i * per_file)
        if n <= 0:
            break
        df = generate_catalog(n, seed=seed + i, id_offset=i * per_file)
        path = out / f"part-{i:04d}.parquet"
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
        paths.append(path)
    return paths
