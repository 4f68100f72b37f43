"""LSDB's id_search reads an index catalog proxcompute built; both equal pandas ``isin``.

(The other direction, an index written by hats-import 0.11.1, cannot run here: its index
pipeline refuses dask outside 2025.3 on Python 3.11, and with the guard bypassed its
``set_index`` does not finish in 10 minutes on 100k rows.)"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from interop_util import PEER_WARNINGS

pytestmark = [pytest.mark.interop, *PEER_WARNINGS]


@pytest.fixture(scope="module")
def ids(interop_input):
    rng = np.random.default_rng(4)
    all_ids = interop_input.df["id"].to_numpy()
    polar = all_ids[all_ids >= 10_000_000][:20]  # the polar caps
    return [int(v) for v in np.concatenate([rng.choice(all_ids, 200, replace=False), polar, [-1]])]


def test_lsdb_id_search_reads_our_index(proxcompute_collection, interop_input, ids, tmp_path):
    import lsdb

    from proxcompute import open_catalog
    from proxcompute.ingest.index import build_index

    coll = tmp_path / "pc_synth"
    shutil.copytree(proxcompute_collection, coll)
    build_index(coll, "id", workers=2, show_progress=False)
    want = sorted(interop_input.df.loc[interop_input.df["id"].isin(ids), "id"].tolist())
    theirs = lsdb.open_catalog(coll).id_search(values={"id": ids}).compute()
    assert sorted(theirs["id"].tolist()) == want
    ours = open_catalog(coll).id_search({"id": ids}).compute()
    assert sorted(ours["id"].tolist()) == want
    # LSDB reads exactly the partitions we read
    lsdb_pixels = {
        (int(p.order), int(p.pixel))
        for p in lsdb.open_catalog(coll).id_search(values={"id": ids}).get_healpix_pixels()
    }
    assert lsdb_pixels == {(p.order, p.pixel) for p in open_catalog(coll).id_search({"id": ids}).partitions}
