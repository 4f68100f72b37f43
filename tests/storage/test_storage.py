"""Storage layout: write/read round trip, row-group pruning, corrupt files, atomic publish."""

import numpy as np
import pyarrow as pa
import pytest

from proxcompute import storage
from proxcompute.errors import CatalogExistsError, CorruptPartitionError, StorageError
from proxcompute.sky import Cone, healpix
from proxcompute.storage.partitioning import assign_partitions, histogram, plan_partitions
from proxcompute.synthetic import generate_catalog


def _build(dest, n=60_000, max_rows=8_000, row_group_rows=1_000):
    df = generate_catalog(n, seed=11)
    idx = healpix.radec_to_healpix29(df.ra.to_numpy(), df.dec.to_numpy())
    table = pa.Table.from_pandas(df, preserve_index=False).append_column(healpix.INDEX_COLUMN, pa.array(idx))
    pix, cnt = histogram(idx, 8)
    parts, rows = plan_partitions(pix, cnt, 8, max_rows=max_rows)
    where = assign_partitions(idx, parts)
    builder = storage.CatalogBuilder(dest, name="demo")
    written = {}
    for i, p in enumerate(parts):
        sub = table.filter(pa.array(where == i))
        written[p] = storage.write_partition_file(builder.staging, p, sub, row_group_rows=row_group_rows)
    assert written == rows
    builder.finish(written, storage.sort_by_index(table).schema, max_rows=max_rows)
    return df, parts


def test_round_trip_every_row_once_sorted(tmp_path):
    df, parts = _build(tmp_path / "cat")
    meta = storage.read_catalog_meta(tmp_path / "cat")
    assert meta.total_rows == len(df)
    assert list(meta.pixels) == parts
    assert meta.columns[0] == healpix.INDEX_COLUMN
    assert len({p.order for p in parts}) >= 2  # the non-uniform sky gives several orders
    ids = []
    for p in meta.pixels:
        t = storage.read_partition(meta.partition_path(p))
        idx = t.column(healpix.INDEX_COLUMN).to_numpy()
        assert np.all(np.diff(idx) >= 0)
        assert np.all(healpix.healpix29_to_order(idx, p.order) == p.pixel)
        ids.append(t.column("id").to_numpy())
    ids = np.concatenate(ids)
    assert np.array_equal(np.sort(ids), np.sort(df.id.to_numpy()))
    assert (tmp_path / "cat" / "dataset" / "_metadata").exists()
    assert not list(tmp_path.glob("cat.tmp-*"))


def test_row_group_pruning_reads_only_touched_groups(tmp_path):
    df, _ = _build(tmp_path / "cat")
    meta = storage.read_catalog_meta(tmp_path / "cat")
    cone = Cone(45.0, 30.0, 120.0)  # inside a dense cluster
    ranges = cone.healpix29_ranges()
    touched = 0
    total_groups = 0
    got = []
    for p in meta.pixels:
        import pyarrow.parquet as pq

        md = pq.read_metadata(meta.partition_path(p))
        total_groups += md.num_row_groups
        touched += len(storage.select_row_groups(md, ranges))
        t = storage.read_partition(meta.partition_path(p), ["id", "ra", "dec"], ranges)
        assert t.column_names == ["id", "ra", "dec"]
        mask = cone.contains(t.column("ra").to_numpy(), t.column("dec").to_numpy())
        got.append(t.column("id").to_numpy()[mask])
    expected = df.id.to_numpy()[cone.contains(df.ra.to_numpy(), df.dec.to_numpy())]
    assert np.array_equal(np.sort(np.concatenate(got)), np.sort(expected))
    assert len(expected) > 0
    assert touched < total_groups / 10


def test_corrupt_partition_names_the_file(tmp_path):
    _build(tmp_path / "cat", n=5_000, max_rows=100_000)
    meta = storage.read_catalog_meta(tmp_path / "cat")
    path = meta.partition_path(meta.pixels[0])
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(CorruptPartitionError, match=str(path)):
        storage.read_partition(path)
    path.unlink()
    with pytest.raises(CorruptPartitionError, match="missing"):
        storage.read_partition(path)


def test_existing_destination_is_refused_and_overwrite_is_atomic(tmp_path):
    _build(tmp_path / "cat", n=2_000, max_rows=100_000)
    with pytest.raises(CatalogExistsError, match="--overwrite"):
        storage.CatalogBuilder(tmp_path / "cat", name="x")
    df, _ = _build_overwrite(tmp_path / "cat")
    assert storage.read_catalog_meta(tmp_path / "cat").total_rows == len(df)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat"]


def _build_overwrite(dest):
    df = generate_catalog(3_000, seed=5)
    idx = healpix.radec_to_healpix29(df.ra.to_numpy(), df.dec.to_numpy())
    table = pa.Table.from_pandas(df, preserve_index=False).append_column(healpix.INDEX_COLUMN, pa.array(idx))
    builder = storage.CatalogBuilder(dest, name="demo", overwrite=True)
    parts = {}
    for pix in range(12):
        sub = table.filter(pa.array(healpix.healpix29_to_order(idx, 0) == pix))
        p = storage.PartitionPixel(0, pix)
        parts[p] = storage.write_partition_file(builder.staging, p, sub)
    builder.finish(parts, storage.sort_by_index(table).schema)
    return df, parts


def test_not_a_catalog(tmp_path):
    with pytest.raises(StorageError, match="does not exist"):
        storage.resolve_catalog_paths(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StorageError, match="not a catalog"):
        storage.resolve_catalog_paths(tmp_path / "empty")
    # a half-built staging dir (no properties) never opens
    builder = storage.CatalogBuilder(tmp_path / "half", name="half")
    with pytest.raises(StorageError):
        storage.resolve_catalog_paths(builder.staging)
    assert not (tmp_path / "half").exists()


def test_errors_survive_pickling():
    import pickle

    from proxcompute.errors import ColumnNotFoundError

    for exc in (CorruptPartitionError("/x/Npix=1.parquet", "bad magic"), ColumnNotFoundError("magg", ["mag", "ra"])):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and str(back) == str(exc)
