"""COUNT(*), Catalog.count() and len() answered from the stored row counts, without reading rows."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pyarrow.parquet as pq
import pytest

from proxcompute import execute, sql
from proxcompute.catalog import open_catalog
from proxcompute.execute import reader as execute_reader
from proxcompute.plan import find_scan
from proxcompute.storage.properties import read_properties, write_properties


@pytest.fixture
def no_row_reads(monkeypatch):
    """Any read of row data (the reader's row groups, DuckDB over the files) fails the test."""

    def fail(*args, **kwargs):
        raise AssertionError("row groups were read")

    monkeypatch.setattr(execute_reader, "_read", fail)
    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", fail)
    monkeypatch.setattr(pq.ParquetFile, "read", fail)
    monkeypatch.setattr("proxcompute.execute.query.plain_file_scan", fail)
    monkeypatch.setattr("proxcompute.execute.run.filtered_count", fail)  # DuckDB over the files


def test_count_star_equals_the_rows_and_reads_none(stored_cat, sky_df, no_row_reads):
    n = len(sky_df)
    assert sql("SELECT COUNT(*) AS n FROM sky", {"sky": stored_cat}).compute()["n"].tolist() == [n]
    assert stored_cat.count() == n
    assert len(stored_cat) == n
    assert stored_cat[["id", "mag"]].count() == n  # a projection drops no rows


def test_filtered_count_still_reads(stored_cat, sky_df, no_row_reads):
    with pytest.raises(AssertionError, match="row groups were read"):
        stored_cat.where("mag < 20").count()


def test_catalog_without_hats_nrows_counts_from_footers(stored_path, sky_df, tmp_path, no_row_reads):
    path = tmp_path / "sky"
    shutil.copytree(stored_path, path)
    props = read_properties(path / "hats.properties")
    del props["hats_nrows"]
    write_properties(path, props)
    cat = open_catalog(path)
    assert cat.plan.source.total_rows == -1
    footers = sum(pq.read_metadata(cat.plan.source.partition_path(p)).num_rows for p in cat.partitions)
    assert footers == len(sky_df)
    assert len(cat) == cat.count() == len(sky_df)
    assert sql("SELECT COUNT(*) AS n FROM sky", {"sky": cat}).compute()["n"][0] == len(sky_df)


def test_chosen_partitions_count_from_footers(stored_cat, no_row_reads):
    pixels = stored_cat.partitions[3:9]
    scan = find_scan(stored_cat.plan)
    plan = replace(scan, pixels=tuple(pixels))
    want = sum(pq.read_metadata(scan.source.partition_path(p)).num_rows for p in pixels)
    assert 0 < want < scan.source.total_rows
    assert execute.stored_count(plan) == execute.count(plan) == want


def test_observed_count_star_reports_done_without_reading(stored_cat, sky_df, no_row_reads):
    """A TAP job (observed) answers COUNT(*) from metadata too, and its progress shows it finished."""
    seen = []
    obs = execute.TaskObserver(progress=lambda done, total, rows: seen.append((done, total)))
    with execute.observe(obs):
        res = sql("SELECT COUNT(*) AS n FROM sky", {"sky": stored_cat})
        assert res.compute()["n"][0] == len(sky_df)
    assert seen and seen[-1][0] == seen[-1][1] > 0


def test_in_memory_catalog_counts(mem_cat, sky_df):
    assert len(mem_cat) == mem_cat.count() == len(sky_df)
    assert sql("SELECT COUNT(*) AS n FROM s", {"s": mem_cat}).compute()["n"][0] == len(sky_df)
