"""Catalogs written by ``Catalog.to_catalog`` open in LSDB; catalogs written by LSDB open here."""

from __future__ import annotations

import numpy as np
import pytest
from interop_util import (
    FIXED_CONES,
    MAX_ROWS,
    PEER_WARNINGS,
    assert_same_cone,
    assert_same_rows,
    brute_force_cone,
    frame_ids,
    to_pandas,
)

pytestmark = [pytest.mark.interop, *PEER_WARNINGS]


def _lsdb_rows(path):
    import lsdb

    cat = lsdb.open_catalog(path)
    return cat, cat.compute(progress_bar=False)


def test_from_dataframe_to_catalog_opens_in_lsdb(interop_input, tmp_path):
    from hats.io.validation import is_valid_catalog
    from hats.pixel_math.spatial_index import compute_spatial_index

    from proxcompute.catalog import from_dataframe

    path = tmp_path / "from_df"
    written = from_dataframe(interop_input.df, name="from_df", max_rows=MAX_ROWS).to_catalog(path)
    assert len(written) == len(interop_input.df)
    assert is_valid_catalog(path, strict=True)

    lsdb_cat, got = _lsdb_rows(path)
    assert len({int(p.order) for p in lsdb_cat.get_healpix_pixels()}) >= 3
    frame = to_pandas(got)
    assert_same_rows(frame, interop_input.df, "LSDB on to_catalog", columns=("ra", "dec", "mag", "color"))
    np.testing.assert_array_equal(
        np.asarray(got.index.to_numpy(), dtype=np.int64),
        compute_spatial_index(frame["ra"].to_numpy(), frame["dec"].to_numpy()),
    )
    for label, ra, dec, r in FIXED_CONES[:3]:
        theirs = frame_ids(lsdb_cat.cone_search(ra, dec, r).compute(progress_bar=False))
        ours = frame_ids(written.cone_search(ra, dec, r).compute())
        assert_same_cone(ours, interop_input.df, ra, dec, r, f"proxcompute: {label}")
        np.testing.assert_array_equal(ours, theirs, err_msg=f"LSDB != proxcompute on to_catalog: {label}")


def test_derived_catalog_to_catalog_opens_in_lsdb(proxcompute_collection, interop_input, tmp_path):
    from proxcompute.catalog import open_catalog

    ra, dec, r = 45.2, 29.8, 5400.0
    path = tmp_path / "bright_cluster"
    derived = (
        open_catalog(proxcompute_collection)
        .cone_search(ra, dec, r)
        .where("mag < 20")[["id", "ra", "dec", "mag"]]
    )
    derived.to_catalog(path, name="bright_cluster")

    df = interop_input.df
    want = brute_force_cone(df[df["mag"] < 20], ra, dec, r)
    assert len(want) > 1000
    _, got = _lsdb_rows(path)
    frame = to_pandas(got)
    assert {"id", "ra", "dec", "mag"} <= set(frame.columns)
    assert_same_rows(frame, want, "LSDB on a derived to_catalog", columns=("ra", "dec", "mag"))


def test_lsdb_written_catalog_opens_here(interop_input, tmp_path):
    import lsdb

    from proxcompute.catalog import open_catalog

    path = tmp_path / "lsdb_written"
    lsdb.from_dataframe(
        interop_input.df, ra_column="ra", dec_column="dec", partition_rows=MAX_ROWS, margin_threshold=None
    ).write_catalog(path, catalog_name="lsdb_written", progress_bar=False)

    cat = open_catalog(path)
    assert cat.count() == len(interop_input.df)
    assert_same_rows(to_pandas(cat.compute()), interop_input.df, "proxcompute on LSDB output")
    for label, ra, dec, r in FIXED_CONES:
        ours = frame_ids(cat.cone_search(ra, dec, r).compute())
        assert_same_cone(ours, interop_input.df, ra, dec, r, f"proxcompute on LSDB output: {label}")
