"""A collection written by hats-import reads in proxcompute exactly as in LSDB and as brute force."""

from __future__ import annotations

import numpy as np
import pytest
from interop_util import (
    FIXED_CONES,
    PEER_WARNINGS,
    assert_same_cone,
    assert_same_rows,
    frame_ids,
    partition_edge_cones,
    to_pandas,
)

pytestmark = [pytest.mark.interop, *PEER_WARNINGS]


@pytest.fixture(scope="module")
def lsdb_cat(hats_import_collection):
    import lsdb

    return lsdb.open_catalog(hats_import_collection)


@pytest.fixture(scope="module")
def pc_cat(hats_import_collection):
    from proxcompute.catalog import open_catalog

    return open_catalog(hats_import_collection)


@pytest.fixture(scope="module")
def cones(lsdb_cat):
    pixels = [(int(p.order), int(p.pixel)) for p in lsdb_cat.get_healpix_pixels()]
    assert len({o for o, _ in pixels}) >= 3, "the test input should span several orders"
    return FIXED_CONES + partition_edge_cones(pixels)


def test_lsdb_sees_the_hats_import_margin(lsdb_cat):
    # guards the fixture: hats-import wrote a collection whose default margin LSDB follows
    assert lsdb_cat.margin is not None
    assert lsdb_cat.margin.hc_structure.catalog_info.margin_threshold == 10.0


def test_proxcompute_sees_the_hats_import_margin(pc_cat, lsdb_cat):
    margin = pc_cat.margin
    assert margin is not None, "open_catalog did not follow default_margin in collection.properties"
    want = lsdb_cat.margin.hc_structure.catalog_info.total_rows
    assert want > 0
    assert margin.count() == want


def test_lsdb_cone_search_matches_brute_force(lsdb_cat, cones, interop_input):
    # guards the references the proxcompute comparisons below rely on
    nonempty = 0
    for label, ra, dec, r in cones:
        theirs = frame_ids(lsdb_cat.cone_search(ra, dec, r).compute(progress_bar=False))
        assert_same_cone(theirs, interop_input.df, ra, dec, r, f"LSDB: {label}")
        nonempty += theirs.size > 0
    assert nonempty >= len(cones) - 2, "most test cones should return rows"


def test_open_and_count(pc_cat, interop_input):
    n = len(interop_input.df)
    assert pc_cat.count() == n
    assert len(pc_cat) == n


def test_all_rows_identical(pc_cat, interop_input):
    got = to_pandas(pc_cat.compute())
    assert_same_rows(got, interop_input.df, "proxcompute on hats-import", columns=("ra", "dec", "mag"))


def test_where_count(pc_cat, interop_input):
    want = int((interop_input.df["mag"] < 20).sum())
    assert pc_cat.where("mag < 20").count() == want


def test_cone_search_matches_lsdb_and_brute_force(pc_cat, lsdb_cat, cones, interop_input):
    df = interop_input.df
    for label, ra, dec, r in cones:
        ours = frame_ids(pc_cat.cone_search(ra, dec, r).compute())
        theirs = frame_ids(lsdb_cat.cone_search(ra, dec, r).compute(progress_bar=False))
        assert_same_cone(ours, df, ra, dec, r, f"proxcompute: {label}")
        np.testing.assert_array_equal(ours, theirs, err_msg=f"proxcompute != LSDB: {label}")
