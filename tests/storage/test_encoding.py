"""Partition-file encoding: BYTE_STREAM_SPLIT floats and delta-packed integers, read back by
pyarrow and DuckDB exactly as written, and smaller than plain encoding."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from proxcompute.sky import INDEX_COLUMN, radec_to_healpix29
from proxcompute.storage import PartitionPixel
from proxcompute.storage.layout import partition_path
from proxcompute.storage.writer import COMPRESSION, dictionary_columns, write_partition_file
from proxcompute.synthetic import generate_catalog


def _table(n: int = 40_000) -> pa.Table:
    df = generate_catalog(n, seed=5)
    df = df[(df["ra"] < 90) & (df["dec"] > 0)]  # one order-0 pixel's worth, roughly
    t = pa.Table.from_pandas(df, preserve_index=False)
    t = t.set_column(t.schema.get_field_index("color"), "color", t["color"].cast(pa.float32()))
    return t.append_column(INDEX_COLUMN, pa.array(radec_to_healpix29(df["ra"], df["dec"])))


def test_default_encoding_is_written_and_reads_back(tmp_path):
    table = _table()
    pixel = PartitionPixel(0, 0)
    keep = pa.compute.equal(pa.compute.shift_right(table[INDEX_COLUMN], 2 * 29), 0)
    table = table.filter(keep)
    n = write_partition_file(tmp_path, pixel, table, row_group_rows=4_096)
    path = partition_path(tmp_path, 0, 0)
    md = pq.read_metadata(path)
    enc = {md.row_group(0).column(j).path_in_schema: md.row_group(0).column(j).encodings for j in range(md.num_columns)}
    for col in ("ra", "dec", "mag", "color"):
        assert "BYTE_STREAM_SPLIT" in enc[col], (col, enc[col])
    assert "DELTA_BINARY_PACKED" in enc[INDEX_COLUMN] and "DELTA_BINARY_PACKED" in enc["id"]
    assert "RLE_DICTIONARY" in enc["flag"]  # small integers keep their dictionary
    back = pq.read_table(path)
    want = table.sort_by(INDEX_COLUMN)
    assert n == back.num_rows == table.num_rows
    for col in table.column_names:
        assert back[col].equals(want[col]), col
    # DuckDB (the single-scan path reads the files itself) decodes the same values
    con = duckdb.connect()
    got = con.execute(
        f"SELECT sum({INDEX_COLUMN} % 1000003), sum(ra), min(dec), max(mag), sum(color) FROM read_parquet('{path}')"
    ).fetchone()
    idx = want[INDEX_COLUMN].to_numpy()
    assert got[0] == int(np.sum(idx % 1000003))
    assert np.isclose(got[1], np.sum(want["ra"].to_numpy()), rtol=1e-12)
    assert got[2] == want["dec"].to_numpy().min() and got[3] == want["mag"].to_numpy().max()
    assert np.isclose(got[4], np.sum(want["color"].to_numpy().astype(np.float64)), rtol=1e-6)


def test_encoded_files_are_smaller_than_plain(tmp_path):
    """The writer's encodings against plain encoding, same codec and row groups, on sky data."""
    table = _table(80_000).sort_by(INDEX_COLUMN).select([INDEX_COLUMN, "id", "ra", "dec", "mag", "color", "flag"])
    part = table.filter(pa.compute.equal(pa.compute.shift_right(table[INDEX_COLUMN], 2 * 29), 0))
    write_partition_file(tmp_path / "enc", PartitionPixel(0, 0), part)
    plain = tmp_path / "plain.parquet"
    pq.write_table(part, plain, row_group_size=16_384, compression=COMPRESSION,
                   use_dictionary=dictionary_columns(part.schema))  # fmt: skip
    encoded = partition_path(tmp_path / "enc", 0, 0)
    assert pq.read_table(encoded).equals(pq.read_table(plain))
    assert encoded.stat().st_size < 0.9 * plain.stat().st_size
