"""The stored margin catalog equals the brute-force reference, partition by partition."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from margin_reference import RADII

from proxcompute.sky.healpix import INDEX_COLUMN
from proxcompute.storage import read_catalog_meta, read_partition
from proxcompute.storage.layout import PartitionPixel


def test_catalog_has_several_orders_and_tricky_rows(small_catalog):
    orders = {p.order for p in small_catalog.pixels}
    assert len(orders) >= 4, orders
    assert max(orders) >= 6  # deep enough for cone mode at 1800"
    df = small_catalog.df
    assert (df.dec == 90.0).any() and (df.dec == -90.0).any()
    assert ((df.ra > 359.9) & (df.ra < 360.0)).any() and (df.ra < 1e-6).any()


@pytest.mark.parametrize("radius", RADII)
def test_margin_equals_brute_force(small_catalog, built_margins, references, radius):
    margin_dir, n_written = built_margins[radius]
    ref = references[radius]
    meta = read_catalog_meta(margin_dir)
    assert meta.catalog_type == "margin"
    listed = set(meta.pixels)
    total = 0
    in_band = 0
    for i, p in enumerate(small_catalog.pixels):
        must, either = ref.must[i], ref.either[i]
        if p in listed:
            t = read_partition(meta.partition_path(p))
            ids = t.column("id").to_numpy()
            h = t.column(INDEX_COLUMN).to_numpy()
            assert np.all(np.diff(h) >= 0), f"{p}: not sorted by {INDEX_COLUMN}"
            assert len(set(ids.tolist())) == ids.size, f"{p}: duplicate rows"
            lo, hi = p.healpix29_range
            assert not np.any((h >= lo) & (h < hi)), f"{p}: rows of the partition itself in its margin"
            got = set(ids.tolist())
        else:
            got = set()
        missing = must - got
        extra = got - must - either
        assert not missing, (
            f"{p} r={radius}: {len(missing)} rows within r missing, e.g. {sorted(missing)[:5]}"
        )
        assert not extra, f"{p} r={radius}: {len(extra)} rows beyond r + band, e.g. {sorted(extra)[:5]}"
        assert bool(got) == (p in listed)
        total += len(got)
        in_band += len(either)
    assert total == n_written == meta.total_rows
    assert total > 100  # the test exercises real margins


@pytest.mark.parametrize("radius", RADII)
def test_margin_catalog_metadata(small_catalog, built_margins, radius):
    margin_dir, _ = built_margins[radius]
    meta = read_catalog_meta(margin_dir)
    primary = read_catalog_meta(small_catalog.root)
    assert meta.properties["dataproduct_type"] == "margin"
    assert float(meta.properties["hats_margin_threshold"]) == radius
    assert meta.properties["hats_primary_table_url"] == small_catalog.root.name
    assert meta.schema.equals(primary.schema)
    assert set(meta.pixels) <= set(primary.pixels)
    for p in meta.pixels:
        schema = pq.read_schema(meta.partition_path(p)).remove_metadata()
        assert schema.equals(primary.schema), p


def test_margin_of_single_partition_catalog_is_empty(tmp_path, dask_client):
    import pyarrow as pa

    from proxcompute.ingest.margin import build_margin_catalog
    from proxcompute.sky.healpix import radec_to_healpix29
    from proxcompute.storage import CatalogBuilder, write_partition_file

    ra = np.array([10.0, 20.0])
    dec = np.array([5.0, 6.0])
    t = pa.table({INDEX_COLUMN: radec_to_healpix29(ra, dec), "ra": ra, "dec": dec})
    b = CatalogBuilder(tmp_path / "one", name="one")
    p = PartitionPixel(0, int(t.column(INDEX_COLUMN).to_numpy()[0] >> 58))
    write_partition_file(b.staging, p, t)
    b.finish({p: 2}, t.schema)
    n = build_margin_catalog(
        tmp_path / "one",
        tmp_path / "one_10arcs",
        margin_arcsec=10.0,
        name="m",
        client=dask_client,
        show_progress=False,
    )
    assert n == 0
    meta = read_catalog_meta(tmp_path / "one_10arcs")
    assert meta.pixels == () and meta.total_rows == 0
