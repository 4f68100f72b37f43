"""Helpers shared by the ingest tests (a module, not conftest: its name must be unique)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from proxcompute.sky.healpix import INDEX_COLUMN, radec_to_healpix29
from proxcompute.storage import read_partition_info, read_properties
from proxcompute.storage.layout import partition_path


def write_frame(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` in the format named by the ending of ``path``."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        df.to_parquet(path, index=False)
    elif name.endswith((".csv", ".csv.gz")):
        df.to_csv(path, index=False)
    elif name.endswith((".fits", ".fit", ".vot", ".votable", ".xml")):
        from astropy.table import Table

        fmt = "votable" if name.endswith((".vot", ".votable", ".xml")) else "fits"
        Table.from_pandas(df).write(path, format=fmt, overwrite=True)
    else:
        raise ValueError(path)
    return path


def read_output(out: Path, name: str | None = None) -> pa.Table:
    """Every row of the object catalog of collection ``out`` (partition files in storage order)."""
    cat = out / (name or read_properties(out / "collection.properties")["hats_primary_table_url"])
    tables = [pq.read_table(partition_path(cat, p.order, p.pixel)) for p in read_partition_info(cat)]
    return pa.concat_tables(tables)


def check_catalog(
    out: Path, expected: pd.DataFrame, *, name: str, max_rows: int, margin: str | None = None
) -> pa.Table:
    """Assert the invariants of an ingested collection; return its rows."""
    coll = read_properties(out / "collection.properties")
    assert coll["obs_collection"] == name
    assert coll["hats_primary_table_url"] == name
    assert coll.get("all_margins") == margin
    assert coll.get("default_margin") == margin
    cat = out / name
    props = read_properties(cat / "hats.properties")
    pixels = read_partition_info(cat)
    files = {p.relative_to(cat / "dataset") for p in (cat / "dataset").rglob("*.parquet")}
    assert files == {partition_path(cat, p.order, p.pixel).relative_to(cat / "dataset") for p in pixels}
    total = 0
    for p in pixels:
        t = pq.read_table(partition_path(cat, p.order, p.pixel))
        assert t.column_names[0] == INDEX_COLUMN
        idx = t.column(INDEX_COLUMN).to_numpy()
        assert 0 < len(idx) <= max_rows, (p, len(idx))
        assert np.all(idx[1:] >= idx[:-1]), f"{p} not sorted"
        assert np.all(idx >> (2 * (29 - p.order)) == p.pixel), f"{p} holds foreign rows"
        total += len(idx)
    assert int(props["hats_nrows"]) == total == len(expected)
    assert pq.read_metadata(cat / "dataset" / "_metadata").num_rows == total
    rows = read_output(out, name)
    got = rows.to_pandas().sort_values("id").reset_index(drop=True)
    exp = expected.sort_values("id").reset_index(drop=True)
    assert got["id"].tolist() == exp["id"].tolist(), "every input row exactly once"
    assert list(got.columns) == [INDEX_COLUMN, *exp.columns]
    np.testing.assert_array_equal(got["ra"].to_numpy(), exp["ra"].to_numpy())
    np.testing.assert_array_equal(got["dec"].to_numpy(), exp["dec"].to_numpy())
    np.testing.assert_array_equal(got[INDEX_COLUMN].to_numpy(), radec_to_healpix29(exp["ra"], exp["dec"]))
    for col in exp.columns:
        np.testing.assert_allclose(got[col].to_numpy(dtype=float), exp[col].to_numpy(dtype=float), rtol=1e-6)
    return rows
