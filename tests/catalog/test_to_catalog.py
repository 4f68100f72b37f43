"""to_catalog round trips, keeps the partitioning, omits empty partitions, writes atomically."""

from __future__ import annotations

import pytest

from proxcompute.catalog import open_catalog
from proxcompute.errors import CatalogExistsError
from proxcompute.sky import INDEX_COLUMN
from proxcompute.storage import read_partition_info


def test_round_trip(mem_cat, stored_cat, stored_path):
    assert stored_cat.name == "sky"
    assert len(stored_cat) == len(mem_cat)
    assert stored_cat.partitions == mem_cat.partitions
    assert read_partition_info(stored_path) == mem_cat.partitions
    assert stored_cat.columns == mem_cat.columns
    assert stored_cat.schema.equals(mem_cat.schema)
    assert stored_cat.compute().equals(mem_cat.compute())


def test_filtered_write_keeps_partitioning_and_drops_empty(stored_cat, tmp_path):
    q = stored_cat.where("dec > 45")[["id", "mag"]]
    out = q.to_catalog(tmp_path / "north", name="north")
    assert out.name == "north"
    assert set(out.partitions) < set(stored_cat.partitions)
    assert len(out) == q.count()
    # the index and coordinates are always written, first
    assert out.columns == [INDEX_COLUMN, "ra", "dec", "id", "mag"]
    df = out.compute()
    assert (df["dec"] > 45).all()
    assert sorted(df["id"]) == sorted(q.compute()["id"])


def test_small_write_and_searches_on_the_copy(stored_cat, tmp_path):
    q = stored_cat.cone_search(45.0, 30.0, 1800.0)
    out = q.to_catalog(tmp_path / "cone")
    assert out.count() == q.count() == len(out)
    assert out.cone_search(45.0, 30.0, 600.0).count() == stored_cat.cone_search(45.0, 30.0, 600.0).count()


def test_existing_destination(stored_cat, tmp_path):
    dest = tmp_path / "x"
    stored_cat.cone_search(45.0, 30.0, 600.0).to_catalog(dest)
    with pytest.raises(CatalogExistsError, match="overwrite"):
        stored_cat.cone_search(45.0, 30.0, 600.0).to_catalog(dest)
    out = stored_cat.cone_search(0.0, 90.0, 600.0).to_catalog(dest, overwrite=True)
    assert out.cone_search(45.0, 30.0, 600.0).count() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_failed_write_leaves_nothing(stored_cat, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("proxcompute.execute.partition.write_partition_file", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        stored_cat.where("mag < 20").to_catalog(tmp_path / "y")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Exception):  # noqa: B017 - any StorageError subclass
        open_catalog(tmp_path / "y")


def test_resume_dir_continues_a_failed_write_without_redoing_partitions(tmp_path):
    """A write that fails midway keeps its finished partitions in resume_dir; the rerun skips them."""
    import shutil

    import pytest

    from proxcompute.catalog import from_dataframe, open_catalog
    from proxcompute.errors import CorruptPartitionError
    from proxcompute.synthetic import generate_catalog

    src = tmp_path / "src"
    from_dataframe(generate_catalog(20_000, seed=6), name="src", max_rows=1_000).to_catalog(src)
    files = sorted(src.rglob("Npix=*.parquet"))
    victim = files[len(files) // 2]
    saved = victim.read_bytes()
    victim.write_bytes(saved[:100])  # unreadable: the write fails on this partition
    cat = open_catalog(src).where("mag < 21")
    staging = tmp_path / "staging"
    with pytest.raises(CorruptPartitionError):
        cat.to_catalog(tmp_path / "out", resume_dir=staging)
    assert not (tmp_path / "out").exists()
    written = {p: p.stat().st_mtime_ns for p in staging.rglob("Npix=*.parquet")}
    assert written, "finished partitions are kept for the resume"
    victim.write_bytes(saved)
    out = cat.to_catalog(tmp_path / "out", resume_dir=staging)
    assert not staging.exists()
    for p, mtime in written.items():  # partitions done before the failure were not rewritten
        again = tmp_path / "out" / p.relative_to(staging)
        assert again.stat().st_mtime_ns == mtime
    shutil.rmtree(tmp_path / "ref", ignore_errors=True)
    ref = cat.to_catalog(tmp_path / "ref")
    assert out.count() == ref.count() and sorted(out.compute()["id"]) == sorted(ref.compute()["id"])
