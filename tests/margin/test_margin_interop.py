"""Our margin catalogs open in LSDB/hats as the margin of their catalog, and select a subset of
what hats-import's whole-pixel margin would copy."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from proxcompute.storage import read_catalog_meta, read_partition, write_collection_properties

pytestmark = [
    pytest.mark.interop,
    pytest.mark.filterwarnings("ignore:The inplace keyword"),
    pytest.mark.filterwarnings("ignore:The 'mode.chained_assignment' option"),
]

RADIUS = 10.0


@pytest.fixture(scope="module")
def collection(small_catalog, built_margins, tmp_path_factory):
    """The small catalog and its 10" margin as a HATS collection (default margin set)."""
    root = tmp_path_factory.mktemp("collection") / "small_collection"
    root.mkdir()
    margin_dir = built_margins[RADIUS][0]
    shutil.copytree(small_catalog.root, root / small_catalog.root.name)
    shutil.copytree(margin_dir, root / margin_dir.name)
    write_collection_properties(
        root, "small_collection", small_catalog.root.name, [margin_dir.name], margin_dir.name
    )
    return root, margin_dir.name


def test_hats_reads_it_as_a_margin_catalog(built_margins):
    import hats
    from hats.catalog import CatalogType

    margin = hats.read_hats(built_margins[RADIUS][0])
    assert margin.catalog_info.catalog_type == CatalogType.MARGIN
    assert margin.catalog_info.margin_threshold == RADIUS
    assert len(margin.get_healpix_pixels()) == len(read_catalog_meta(built_margins[RADIUS][0]).pixels)


def test_lsdb_opens_it_as_the_catalogs_margin(small_catalog, built_margins, collection):
    import lsdb

    logging.getLogger("lsdb").setLevel(logging.ERROR)
    margin_dir, n = built_margins[RADIUS]
    direct = lsdb.open_catalog(small_catalog.root, margin_cache=margin_dir)
    assert direct.margin is not None
    assert direct.margin.hc_structure.catalog_info.margin_threshold == RADIUS
    cat = lsdb.open_catalog(collection[0])  # found through collection.properties
    assert cat.margin is not None
    assert cat.margin.hc_structure.catalog_info.margin_threshold == RADIUS
    df = cat.margin.compute()
    # a row near a corner is in the margin of several partitions: compare multisets
    ours = sorted(
        int(i)
        for p in read_catalog_meta(margin_dir).pixels
        for i in read_partition(margin_dir / "dataset" / _rel(p), columns=["id"]).column("id").to_numpy()
    )
    assert len(df) == n == len(ours)
    assert sorted(df["id"].tolist()) == ours


def test_subset_of_hats_import_whole_pixel_margin(small_catalog, built_margins):
    """hats-import copies every row of the order-13 pixels bordering a partition (for 10");
    our exact selection must be a subset of that, partition by partition."""
    from hats.pixel_math import get_margin
    from hats.pixel_math.healpix_shim import margin2order

    hats_order = int(margin2order(RADIUS / 60.0))
    meta = read_catalog_meta(built_margins[RADIUS][0])
    df = small_catalog.df
    h = df["_healpix_29"].to_numpy()
    ids = df["id"].to_numpy()
    theirs_total = 0
    ours_total = 0
    for i, p in enumerate(small_catalog.pixels):
        mpix = np.asarray(get_margin(p.order, p.pixel, hats_order - p.order), dtype=np.int64)
        inside = np.isin(h >> (2 * (29 - hats_order)), mpix) & (df["_part"].to_numpy() != i)
        theirs = set(ids[inside].tolist())
        ours = set()
        if p in set(meta.pixels):
            ours = set(read_partition(meta.partition_path(p), columns=["id"]).column("id").to_pylist())
        assert ours <= theirs, p
        theirs_total += len(theirs)
        ours_total += len(ours)
    assert ours_total < theirs_total


def _rel(p):
    return f"Norder={p.order}/Dir={(p.pixel // 10000) * 10000}/Npix={p.pixel}.parquet"
