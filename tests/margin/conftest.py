"""Fixtures for the margin tests: a small multi-order catalog with rows placed on purpose at
partition edges and corners, at the poles and across RA = 0/360, written with the storage
API; its margins built once per radius; and the brute-force reference per radius."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from margin_reference import (
    BAND_ARCSEC,
    reference_distance,
    rows_at_poles_and_wrap,
    rows_near_boundaries,
    unit,
)

N_ROWS = 30_000
MAX_ROWS = 700
HIST_ORDER = 10
from margin_reference import RADII  # noqa: E402

"""10": the usual margin (ring mode everywhere). 1800": margin order 5, so the deep
partitions of the dense clusters are served in cone mode."""


@dataclass(frozen=True)
class SmallCatalog:
    root: Path
    df: pd.DataFrame  # every row, with its partition (order, pixel) and position in `pixels`
    pixels: list  # PartitionPixel, storage order


def _frame(ra: np.ndarray, dec: np.ndarray, id0: int) -> pd.DataFrame:
    n = ra.size
    rng = np.random.default_rng(id0)
    return pd.DataFrame(
        {
            "id": np.arange(id0, id0 + n, dtype=np.int64),
            "ra": ra,
            "dec": dec,
            "mag": rng.normal(20, 1, n),
            "color": rng.normal(0.8, 0.3, n).astype(np.float32),
            "flag": rng.integers(0, 4, n, dtype=np.int16),
        }
    )


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory) -> SmallCatalog:
    from proxcompute.sky.healpix import INDEX_COLUMN, radec_to_healpix29
    from proxcompute.storage import CatalogBuilder, write_partition_file
    from proxcompute.storage.partitioning import assign_partitions, histogram, plan_partitions
    from proxcompute.synthetic import generate_catalog

    base = generate_catalog(N_ROWS, seed=7)
    h = radec_to_healpix29(base.ra.to_numpy(), base.dec.to_numpy())
    pix, cnt = histogram(h, HIST_ORDER)
    parts, _ = plan_partitions(pix, cnt, HIST_ORDER, max_rows=MAX_ROWS)
    rng = np.random.default_rng(11)
    # deliberate rows: around the boundaries of a sample of partitions of every order
    chosen = []
    for order in sorted({p.order for p in parts}):
        at = [p for p in parts if p.order == order]
        chosen += [at[i] for i in rng.choice(len(at), size=min(len(at), 6), replace=False)]
    ra1, dec1 = rows_near_boundaries([(p.order, p.pixel) for p in chosen], list(RADII), rng)
    ra2, dec2 = rows_at_poles_and_wrap(list(RADII), rng)
    extra = _frame(np.concatenate([ra1, ra2]), np.concatenate([dec1, dec2]), 10_000_000)
    df = pd.concat([base, extra], ignore_index=True)
    h = radec_to_healpix29(df.ra.to_numpy(), df.dec.to_numpy())
    pos = assign_partitions(h, parts)
    keep = pos >= 0  # deliberate rows in empty sky (no partition) are dropped
    df = df[keep].copy()
    df.insert(0, INDEX_COLUMN, h[keep])
    df["_part"] = pos[keep]
    df = df.sort_values(INDEX_COLUMN, kind="stable").reset_index(drop=True)

    root = tmp_path_factory.mktemp("margin") / "small"
    builder = CatalogBuilder(root, name="small")
    cols = [c for c in df.columns if c != "_part"]
    table = pa.Table.from_pandas(df[cols], preserve_index=False)
    part = df["_part"].to_numpy()
    bounds = np.searchsorted(part, np.arange(len(parts) + 1))
    assert np.all(np.diff(part) >= 0)
    rows = {}
    for i, p in enumerate(parts):
        n = int(bounds[i + 1] - bounds[i])
        if n:
            write_partition_file(builder.staging, p, table.slice(int(bounds[i]), n), row_group_rows=150)
            rows[p] = n
    builder.finish(rows, table.schema, max_rows=MAX_ROWS)
    pixels = [p for p in parts if p in rows]
    df["_part"] = assign_partitions(df[INDEX_COLUMN].to_numpy(), pixels)
    return SmallCatalog(root=root, df=df, pixels=pixels)


@pytest.fixture(scope="session")
def dask_client():
    from distributed import Client

    for name in ("distributed", "distributed.worker", "distributed.scheduler"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # not the default client: it lives for the whole session, and tests after this directory
    # must see "no cluster" unless they start one (execute chooses in-process paths then)
    with Client(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0", set_as_default=False
    ) as client:
        yield client


@pytest.fixture(scope="session")
def built_margins(small_catalog, dask_client, tmp_path_factory) -> dict[float, tuple[Path, int]]:
    """``radius -> (margin_dir, rows written)``, built with :func:`build_margin_catalog`."""
    from proxcompute.ingest.margin import build_margin_catalog

    out = {}
    for r in RADII:
        d = tmp_path_factory.mktemp("margins") / f"small_{r:g}arcs"
        n = build_margin_catalog(
            small_catalog.root,
            d,
            margin_arcsec=r,
            name=f"small_{r:g}arcs",
            client=dask_client,
            show_progress=False,
        )
        out[r] = (d, n)
    return out


@dataclass(frozen=True)
class Reference:
    must: dict  # partition position -> set of ids that must be in its margin
    either: dict  # partition position -> set of ids within the band (may be in or out)


@pytest.fixture(scope="session")
def references(small_catalog) -> dict[float, Reference]:
    df = small_catalog.df
    xyz = unit(df.ra.to_numpy(), df.dec.to_numpy())
    ids = df["id"].to_numpy()
    part = df["_part"].to_numpy()
    out = {}
    for r in RADII:
        must, either = {}, {}
        for i, p in enumerate(small_catalog.pixels):
            other = np.flatnonzero(part != i)
            d = reference_distance(p.order, p.pixel, xyz[other], r)
            must[i] = set(ids[other[d <= r - BAND_ARCSEC]].tolist())
            either[i] = set(ids[other[np.abs(d - r) < BAND_ARCSEC]].tolist())
        out[r] = Reference(must, either)
    return out
