"""Round trips: every input row lands exactly once, in the right partition, sorted."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_helpers import check_catalog, read_output, write_frame

from proxcompute.ingest import IngestResult, ingest
from proxcompute.ingest import _inputs as inputs_mod


def run(inputs, out, client, **kw):
    kw.setdefault("margin_arcsec", 0)
    kw.setdefault("show_progress", False)
    return ingest(inputs, out, client=client, **kw)


def test_parquet_round_trip_several_orders(sky, write_parts, tmp_path, client):
    files = write_parts(sky, n=4)
    res = run([str(f) for f in files], tmp_path / "cat", client, max_rows=500)
    assert isinstance(res, IngestResult)
    check_catalog(tmp_path / "cat", sky, name="cat", max_rows=500)
    assert res.rows == len(sky) and res.dropped_rows == 0 and res.margin_rows == 0
    assert len(res.orders) >= 3, res.orders  # the clusters force deeper orders
    assert res.partitions == sum(res.orders.values())
    assert not (tmp_path / "cat.tmp-ingest").exists()
    text = str(res)
    assert "20,000 rows" in text and "partitions" in text and "time" in text


def test_result_matches_partition_info(sky, write_parts, tmp_path, client):
    files = write_parts(sky, n=2)
    res = run(files, tmp_path / "out", client, name="mysky", max_rows=5_000)
    check_catalog(tmp_path / "out", sky, name="mysky", max_rows=5_000)
    lines = (tmp_path / "out" / "mysky" / "partition_info.csv").read_text().split()
    assert lines[0] == "Norder,Npix" and len(lines) - 1 == res.partitions
    assert Counter(int(line.split(",")[0]) for line in lines[1:]) == res.orders
    assert set(res.timings) >= {"scan", "plan", "split", "reduce", "metadata", "publish"}


def test_big_parquet_file_is_split_into_row_group_chunks(sky, tmp_path, client, monkeypatch):
    from proxcompute.ingest import _plan, _tasks

    monkeypatch.setattr(_plan, "CHUNK_ROWS", 3_000)
    monkeypatch.setattr(_plan, "MIN_BATCH_ROWS", 1_000)
    monkeypatch.setattr(_plan, "MAX_BATCH_ROWS", 1_000)
    monkeypatch.setattr(_tasks, "PIECE_ROWS", 10)  # several batches per chunk
    f = tmp_path / "one.parquet"
    pq.write_table(pa.Table.from_pandas(sky, preserve_index=False), f, row_group_size=1_000)
    run(f, tmp_path / "cat", client, max_rows=4_000)
    check_catalog(tmp_path / "cat", sky, name="cat", max_rows=4_000)
    chunks = list((tmp_path / "cat").rglob("*.arrow"))
    assert not chunks  # staging is gone


@pytest.mark.parametrize("ending", [".csv", ".csv.gz", ".fits", ".vot", ".xml"])
def test_each_format(ending, sky, write_parts, tmp_path, client):
    df = sky.iloc[:3_000] if ending in (".vot", ".xml") else sky  # astropy's VOTable writer is slow
    files = write_parts(df, n=2, ending=ending)
    run(files, tmp_path / "cat", client, max_rows=2_000)
    rows = check_catalog(tmp_path / "cat", df, name="cat", max_rows=2_000)
    if ending in (".fits", ".vot", ".xml"):  # binary formats keep the column types
        assert rows.schema.field("color").type == pa.float32()
        assert rows.schema.field("flag").type == pa.int16()


def test_directory_and_glob_inputs(sky, tmp_path, client):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    write_frame(sky.iloc[:8_000], d / "a.parquet")
    write_frame(sky.iloc[8_000:14_000], d / "sub" / "b.csv")
    write_frame(sky.iloc[14_000:], d / "sub" / "c.fits")
    (d / "README.txt").write_text("not an input")
    (d / ".hidden.csv").write_text("garbage")
    run(d, tmp_path / "from_dir", client, max_rows=3_000)
    check_catalog(tmp_path / "from_dir", sky, name="from_dir", max_rows=3_000)
    run(str(d / "**" / "*.[cf]*"), tmp_path / "from_glob", client, max_rows=3_000)
    check_catalog(tmp_path / "from_glob", sky.iloc[8_000:], name="from_glob", max_rows=3_000)


def test_ra_is_wrapped(tmp_path, client):
    df = pd.DataFrame(
        {
            "id": np.arange(6),
            "ra": [-10.0, 370.0, 720.5, 359.999, -1e-300, 0.0],
            "dec": [0.0, 10.0, -20.0, 45.0, 0.0, 90.0],
        }
    )
    write_frame(df, tmp_path / "w.parquet")
    run(tmp_path / "w.parquet", tmp_path / "cat", client)
    got = read_output(tmp_path / "cat").to_pandas().sort_values("id")
    np.testing.assert_allclose(got["ra"], [350.0, 10.0, 0.5, 359.999, 0.0, 0.0], atol=1e-9)
    assert ((got["ra"] >= 0) & (got["ra"] < 360)).all()
    expected = df.assign(ra=got["ra"].to_numpy())
    check_catalog(tmp_path / "cat", expected, name="cat", max_rows=10**6)


def test_existing_index_and_hats_columns_are_recomputed(sky, tmp_path, client):
    df = sky.iloc[:2_000].copy()
    df.insert(0, "_healpix_29", np.int64(-1))
    df["Norder"] = 3
    df["Npix"] = 7
    df.index = np.arange(len(df)) * 3  # not a RangeIndex: pandas stores it as __index_level_0__
    df.to_parquet(tmp_path / "h.parquet", index=True)
    assert "__index_level_0__" in pq.read_schema(tmp_path / "h.parquet").names
    run(tmp_path / "h.parquet", tmp_path / "cat", client)
    check_catalog(tmp_path / "cat", sky.iloc[:2_000], name="cat", max_rows=10**6)


def test_mixed_formats_unify_types(sky, tmp_path, client):
    a = write_frame(sky.iloc[:10_000], tmp_path / "a.parquet")  # flag int16, color float32
    b = write_frame(sky.iloc[10_000:], tmp_path / "b.csv")  # read back as int64 / float64
    run([a, b], tmp_path / "cat", client, max_rows=5_000)
    rows = check_catalog(tmp_path / "cat", sky, name="cat", max_rows=5_000)
    assert rows.schema.field("flag").type == pa.int64()
    assert rows.schema.field("color").type == pa.float64()


def test_csv_types_widen_after_the_first_block(tmp_path, client, monkeypatch):
    monkeypatch.setattr(inputs_mod, "CSV_BLOCK_BYTES", 4096)  # inference sees the first 4 KiB only
    n = 3_000
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"id": np.arange(n), "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-90, 90, n)})
    df["x"] = np.arange(n).astype(object)
    df.loc[n - 5, "x"] = 1.5  # int column with one float near the end
    df["label"] = "1"
    df.loc[n - 3, "label"] = "one"  # numbers, then text
    write_frame(df, tmp_path / "w.csv")
    run(tmp_path / "w.csv", tmp_path / "cat", client)
    rows = read_output(tmp_path / "cat").to_pandas().sort_values("id")
    assert rows["x"].dtype == np.float64 and rows["x"].iloc[n - 5] == 1.5
    assert rows["label"].iloc[n - 3] == "one" and rows["label"].iloc[0] == "1"


def test_dense_pixel_beyond_max_rows_warns(tmp_path, client):
    n = 500
    df = pd.DataFrame({"id": np.arange(n), "ra": 10.0 + np.arange(n) * 1e-6, "dec": np.full(n, 5.0)})
    write_frame(df, tmp_path / "dense.parquet")
    with pytest.warns(UserWarning, match="more than max_rows=100"):
        res = run(tmp_path / "dense.parquet", tmp_path / "cat", client, max_rows=100)
    assert res.rows == n and res.orders == Counter({10: 1})


def test_local_cluster_with_processes(sky, write_parts, tmp_path):
    """The default path: a temporary local cluster of worker processes."""
    files = write_parts(sky, n=2)
    res = ingest(files, tmp_path / "cat", max_rows=4_000, margin_arcsec=0, workers=2, show_progress=False)
    check_catalog(tmp_path / "cat", sky, name="cat", max_rows=4_000)
    assert res.rows == len(sky)


def test_categorical_and_string_columns(sky, tmp_path, client):
    df = sky.iloc[:6_000].copy()
    df["band"] = pd.Categorical(np.where(df["flag"] > 1, "g", "r"))
    df["name"] = [f"src-{i}" for i in df["id"]]
    write_frame(df.iloc[:3_000], tmp_path / "a.parquet")
    write_frame(
        df.iloc[3_000:].assign(band=pd.Categorical(df["band"].iloc[3_000:], categories=["r", "g", "i"])),
        tmp_path / "b.parquet",
    )
    run([tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path / "cat", client, max_rows=1_000)
    rows = read_output(tmp_path / "cat").to_pandas().sort_values("id")
    assert rows["band"].astype(str).tolist() == df["band"].astype(str).tolist()
    assert rows["name"].tolist() == df["name"].tolist()


@pytest.mark.parametrize("fmt", ["fits", "votable"])
def test_astropy_strings_and_masked_values(fmt, tmp_path, client):
    from astropy.table import MaskedColumn, Table

    n = 500
    rng = np.random.default_rng(5)
    t = Table()
    t["ra"] = rng.uniform(0, 360, n)
    t["dec"] = rng.uniform(-90, 90, n)
    t["name"] = [f"star {i}" for i in range(n)]
    t["count"] = MaskedColumn(np.arange(n, dtype=np.int32), mask=np.arange(n) % 7 == 0)
    t["vec"] = rng.normal(size=(n, 3))
    path = tmp_path / ("t.fits" if fmt == "fits" else "t.vot")
    t.write(path, format=fmt)
    run(path, tmp_path / "cat", client)
    rows = read_output(tmp_path / "cat").to_pandas().sort_values("count", na_position="first")
    got = read_output(tmp_path / "cat")
    assert got.num_rows == n
    names = sorted(got.column("name").to_pylist())
    assert names == sorted(f"star {i}" for i in range(n))
    assert got.column("count").null_count == int(np.sum(np.arange(n) % 7 == 0))
    assert got.schema.field("vec").type.list_size == 3
    assert len(rows) == n
