"""A collection written by ``proxcompute.ingest`` is a valid HATS collection for hats and LSDB."""

from __future__ import annotations

import numpy as np
import pytest
from interop_util import (
    FIXED_CONES,
    MARGIN_ARCSEC,
    PEER_WARNINGS,
    assert_same_cone,
    assert_same_rows,
    disc_touches,
    frame_ids,
    partition_edge_cones,
    read_margin,
    to_pandas,
)

pytestmark = [pytest.mark.interop, *PEER_WARNINGS]


@pytest.fixture(scope="module")
def lsdb_cat(proxcompute_collection):
    import lsdb

    return lsdb.open_catalog(proxcompute_collection)


@pytest.fixture(scope="module")
def pc_cat(proxcompute_collection):
    from proxcompute.catalog import open_catalog

    return open_catalog(proxcompute_collection)


def test_hats_validates_the_collection(proxcompute_collection):
    from hats.io.validation import is_valid_catalog

    assert is_valid_catalog(proxcompute_collection, strict=True)


def test_several_orders(lsdb_cat):
    orders = {int(p.order) for p in lsdb_cat.get_healpix_pixels()}
    assert len(orders) >= 3, f"expected adaptive partitioning over several orders, got {orders}"


def test_lsdb_reads_exactly_the_input(lsdb_cat, interop_input):
    from hats.pixel_math.spatial_index import compute_spatial_index

    got = lsdb_cat.compute(progress_bar=False)
    frame = to_pandas(got)
    assert_same_rows(frame, interop_input.df, "LSDB on proxcompute ingest", columns=("ra", "dec", "mag"))
    # our _healpix_29 is hats' spatial index, bit for bit
    assert got.index.name == "_healpix_29"
    np.testing.assert_array_equal(
        np.asarray(got.index.to_numpy(), dtype=np.int64),
        compute_spatial_index(frame["ra"].to_numpy(), frame["dec"].to_numpy()),
    )


def test_every_row_is_in_its_partition(lsdb_cat):
    from hats.pixel_math.spatial_index import spatial_index_to_healpix

    for pix, part in zip(lsdb_cat.get_healpix_pixels(), lsdb_cat.to_delayed(), strict=True):
        idx = np.asarray(part.compute().index.to_numpy(), dtype=np.int64)
        assert np.all(np.diff(idx) >= 0), f"partition {pix} is not sorted by _healpix_29"
        assert np.all(spatial_index_to_healpix(idx, target_order=pix.order) == pix.pixel), pix


def test_lsdb_finds_the_margin(lsdb_cat, interop_input):
    margin = lsdb_cat.margin
    assert margin is not None, "LSDB did not find the margin through collection.properties"
    assert margin.hc_structure.catalog_info.margin_threshold == 10.0
    rows = to_pandas(margin.compute(progress_bar=False))
    assert len(rows) > 0
    by_id = interop_input.df.set_index("id")
    assert np.isin(rows["id"].to_numpy(), by_id.index.to_numpy()).all()
    np.testing.assert_array_equal(rows["ra"].to_numpy(), by_id.loc[rows["id"].to_numpy(), "ra"].to_numpy())


def test_lsdb_cone_search_equals_ours(lsdb_cat, pc_cat, interop_input):
    pixels = [(int(p.order), int(p.pixel)) for p in lsdb_cat.get_healpix_pixels()]
    df = interop_input.df
    for label, ra, dec, r in FIXED_CONES + partition_edge_cones(pixels):
        ours = frame_ids(pc_cat.cone_search(ra, dec, r).compute())
        theirs = frame_ids(lsdb_cat.cone_search(ra, dec, r).compute(progress_bar=False))
        assert_same_cone(ours, df, ra, dec, r, f"proxcompute: {label}")
        np.testing.assert_array_equal(ours, theirs, err_msg=f"LSDB != proxcompute: {label}")


def test_margin_is_exact_and_inside_hats_imports(proxcompute_collection, hats_import_collection):
    """Our margin holds exactly the rows within 10" of each partition: none inside it, none
    farther, none of the rows hats-import's wider (whole-pixel) margin has within 10" missing."""
    import healpy as hp

    ours = read_margin(proxcompute_collection / "pc_synth_10arcs")
    theirs = read_margin(hats_import_collection / "hi_synth_10arcs")
    assert sum(len(f) for f in ours.values()) > 50
    for (order, pixel), rows in ours.items():
        own = hp.ang2pix(1 << order, rows["ra"].to_numpy(), rows["dec"].to_numpy(), nest=True, lonlat=True)
        assert not np.any(own == pixel), f"margin of {order}/{pixel} holds rows of the partition itself"
        near = disc_touches(order, pixel, rows["ra"], rows["dec"], MARGIN_ARCSEC, sure=False)
        assert near.all(), f"margin of {order}/{pixel}: ids {rows['id'][~near].tolist()[:5]} are too far"
    common = set(ours) & set(theirs)
    assert len(common) >= len(ours) // 2, "the two tools should mostly agree on the partitions"
    for key in common:
        mine, peer = ours[key], theirs[key]
        within = disc_touches(*key, peer["ra"], peer["dec"], MARGIN_ARCSEC, sure=True)
        missing = peer["id"][within & ~peer["id"].isin(mine["id"])]
        assert missing.empty, f"margin of {key[0]}/{key[1]} misses ids {missing.tolist()[:5]}"
        assert mine["id"].isin(peer["id"]).all(), f"margin of {key} has rows hats-import's lacks"
