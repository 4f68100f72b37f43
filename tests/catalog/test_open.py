"""open_catalog: metadata only, HATS collections and their margins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from proxcompute.catalog import from_dataframe, open_catalog
from proxcompute.kernels import cone_mask
from proxcompute.sky import INDEX_COLUMN
from proxcompute.sky.healpix import cone_cover, radec_to_pixel
from proxcompute.storage import CatalogBuilder, write_collection_properties, write_partition_file

MARGIN_ARCSEC = 1800.0


def test_open_reads_metadata_only(stored_path, monkeypatch):
    import pyarrow.parquet as pq

    real = pq.ParquetFile.__init__

    def spy(self, source, *args, **kwargs):
        assert "Npix=" not in str(source), f"opened partition {source}"
        real(self, source, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "__init__", spy)
    cat = open_catalog(stored_path)
    assert len(cat) == 6905
    assert cat.margin is None


def _margin_rows(df: pd.DataFrame, pixels) -> dict:
    """Exact margin: rows outside each partition within MARGIN_ARCSEC of it (brute force)."""
    ra, dec = df["ra"].to_numpy(), df["dec"].to_numpy()
    covers = {
        o: [set(cone_cover(o, r, d, MARGIN_ARCSEC / 3600.0).tolist()) for r, d in zip(ra, dec, strict=True)]
        for o in {p.order for p in pixels}
    }
    out = {}
    for p in pixels:
        own = radec_to_pixel(p.order, ra, dec) == p.pixel
        near = np.array([p.pixel in c for c in covers[p.order]])
        out[p] = df[near & ~own]
    return out


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    from proxcompute.synthetic import generate_catalog

    root = tmp_path_factory.mktemp("coll") / "coll"
    root.mkdir()
    df = generate_catalog(1_500, seed=11)
    cat = from_dataframe(df, name="main", max_rows=150)
    cat.to_catalog(root / "main")
    full = cat.compute()
    builder = CatalogBuilder(
        root / "main_margin",
        name="main_margin",
        catalog_type="margin",
        extra_properties={"hats_margin_threshold": MARGIN_ARCSEC},
    )
    rows = {}
    for p, part in _margin_rows(full, cat.partitions).items():
        if len(part):
            import pyarrow as pa

            rows[p] = write_partition_file(
                builder.staging, p, pa.Table.from_pandas(part, preserve_index=False)
            )
    builder.finish(rows, cat.schema)
    write_collection_properties(root, "coll", "main", ["main_margin"], "main_margin")
    return root, full


def test_collection_and_margin(collection):
    root, _ = collection
    cat = open_catalog(root)
    assert cat.name == "main"
    margin = cat.margin
    assert margin is not None and margin.plan.source.is_margin
    assert margin.count() > 0
    assert margin.margin_threshold_arcsec == MARGIN_ARCSEC
    assert cat.margin_threshold_arcsec is None
    assert cat.path == root / "main" and margin.path == root / "main_margin"


def test_margin_follows_the_operations(collection):
    root, _ = collection
    cat = open_catalog(root)
    for ra, dec, r in [(45.0, 30.0, 3600.0), (0.0, 90.0, 7200.0), (300.0, 60.0, 1800.0)]:
        q = cat.cone_search(ra, dec, r).where("mag < 21")[["id", "ra", "dec"]]
        got = q.margin.compute()
        every = cat.margin.compute()
        mask = cone_mask(every["ra"].to_numpy(), every["dec"].to_numpy(), ra, dec, r / 3600.0)
        mask &= (every["mag"] < 21).to_numpy()
        assert sorted(got["id"]) == sorted(every[mask]["id"])
        assert list(got.columns) == ["id", "ra", "dec"]
        assert len(q.margin.partitions) <= len(cat.margin.partitions)
    assert INDEX_COLUMN in cat.margin.columns
