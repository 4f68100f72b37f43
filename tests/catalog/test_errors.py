"""A corrupt partition file reaches the user as CorruptPartitionError naming the file."""

from __future__ import annotations

import shutil

import pytest

from proxcompute.catalog import open_catalog
from proxcompute.errors import CorruptPartitionError, StorageError


@pytest.fixture
def broken(stored_path, tmp_path):
    path = tmp_path / "broken"
    shutil.copytree(stored_path, path)
    cat = open_catalog(path)
    victim = cat.plan.source.partition_path(cat.cone_search(45.0, 30.0, 60.0).partitions[0])
    victim.write_bytes(b"this is not parquet" * 100)
    return cat, victim


def test_small_query_names_the_file(broken):
    cat, victim = broken
    with pytest.raises(CorruptPartitionError, match=str(victim)):
        cat.cone_search(45.0, 30.0, 60.0).compute()


@pytest.mark.parametrize("action", ["compute", "count", "explain"])
def test_dask_path_raises_unwrapped(broken, action):
    cat, victim = broken
    with pytest.raises(CorruptPartitionError) as info:
        getattr(cat.where("mag < 30"), action)()
    assert type(info.value) is CorruptPartitionError
    assert info.value.path == str(victim)


def test_missing_file(broken):
    cat, victim = broken
    victim.unlink()
    with pytest.raises(CorruptPartitionError, match="missing"):
        cat.compute()


def test_not_a_catalog(tmp_path):
    with pytest.raises(StorageError, match="does not exist"):
        open_catalog(tmp_path / "nope")
    with pytest.raises(StorageError, match="not a catalog"):
        open_catalog(tmp_path)
