"""LSDB opens what ingest writes, and finds the same rows (and the margin, when there is one)."""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
from ingest_helpers import check_catalog, write_frame

from proxcompute.errors import IngestError
from proxcompute.ingest import _pipeline, ingest
from proxcompute.storage import CatalogBuilder, read_partition_info, write_partition_file

HAVE_MARGIN = importlib.util.find_spec("proxcompute.ingest.margin") is not None


def run(inputs, out, client, **kw):
    kw.setdefault("show_progress", False)
    return ingest(inputs, out, client=client, **kw)


@pytest.mark.interop
def test_lsdb_opens_the_collection(sky, write_parts, tmp_path, client):
    import lsdb

    files = write_parts(sky, n=3)
    run(files, tmp_path / "cat", client, max_rows=3_000, margin_arcsec=0)
    cat = lsdb.open_catalog(tmp_path / "cat")
    assert cat.hc_structure.catalog_info.total_rows == len(sky)
    df = cat.compute()
    assert sorted(df["id"].tolist()) == sorted(sky["id"].tolist())
    got = df.sort_values("id")
    exp = sky.sort_values("id")
    np.testing.assert_array_equal(got["ra"].to_numpy(), exp["ra"].to_numpy())
    np.testing.assert_array_equal(got["mag"].to_numpy(), exp["mag"].to_numpy())
    assert len(cat.get_healpix_pixels()) == len(read_partition_info(tmp_path / "cat" / "cat"))


def _fake_margin_module(calls: list):
    """A stand-in margin builder: a margin catalog holding each partition's first row."""
    import pyarrow.parquet as pq

    from proxcompute.storage.layout import partition_path

    def build_margin_catalog(catalog_dir, margin_dir, *, margin_arcsec, name, client, show_progress):
        calls.append(
            {
                "catalog_dir": catalog_dir,
                "margin_dir": margin_dir,
                "margin_arcsec": margin_arcsec,
                "name": name,
            }
        )
        builder = CatalogBuilder(margin_dir, name=name, catalog_type="margin", staging=margin_dir,
                                 extra_properties={"hats_margin_threshold": margin_arcsec})  # fmt: skip
        rows = {}
        schema = None
        for p in read_partition_info(catalog_dir):
            t = pq.read_table(partition_path(catalog_dir, p.order, p.pixel)).slice(0, 1)
            schema = t.schema
            rows[p] = write_partition_file(margin_dir, p, t)
        builder.finish(rows, schema, publish_now=False)
        return sum(rows.values())

    mod = types.ModuleType("proxcompute.ingest.margin")
    mod.__spec__ = importlib.machinery.ModuleSpec("proxcompute.ingest.margin", None)
    mod.build_margin_catalog = build_margin_catalog
    return mod


def test_margin_step_is_wired_into_the_collection(sky, write_parts, tmp_path, client, monkeypatch):
    """The wiring (arguments, directory names, collection.properties), with a stand-in builder."""
    calls: list = []
    monkeypatch.setitem(sys.modules, "proxcompute.ingest.margin", _fake_margin_module(calls))
    files = write_parts(sky, n=2)
    res = run(files, tmp_path / "cat", client, max_rows=3_000, margin_arcsec=5.0)
    check_catalog(tmp_path / "cat", sky, name="cat", max_rows=3_000, margin="cat_5arcs")
    assert len(calls) == 1 and calls[0]["name"] == "cat_5arcs" and calls[0]["margin_arcsec"] == 5.0
    assert res.margin_rows == res.partitions and res.margin_name == "cat_5arcs"
    assert (tmp_path / "cat" / "cat_5arcs" / "hats.properties").exists()
    assert "cat_5arcs" in str(res)


def test_missing_margin_builder_is_a_clear_error(sky, tmp_path, client, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        _pipeline.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "proxcompute.ingest.margin" else real_find_spec(name, *a),
    )
    f = write_frame(sky.iloc[:100], tmp_path / "a.parquet")
    with pytest.raises(IngestError, match="margin_arcsec=0"):
        run(f, tmp_path / "cat", client)
    assert not (tmp_path / "cat").exists()


@pytest.mark.interop
@pytest.mark.skipif(not HAVE_MARGIN, reason="proxcompute.ingest.margin is not written yet")
def test_lsdb_finds_the_real_margin(sky, write_parts, tmp_path, client):
    import lsdb

    files = write_parts(sky, n=2)
    res = run(files, tmp_path / "cat", client, max_rows=3_000, margin_arcsec=10.0)
    check_catalog(tmp_path / "cat", sky, name="cat", max_rows=3_000, margin="cat_10arcs")
    cat = lsdb.open_catalog(tmp_path / "cat")
    assert cat.margin is not None
    assert len(cat.margin.compute()) == res.margin_rows > 0
