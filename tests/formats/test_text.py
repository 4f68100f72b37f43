"""CSV, TSV and Parquet writers, format names and the dispatcher."""

from __future__ import annotations

import csv
import datetime as dt
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from proxcompute.errors import InputError
from proxcompute.formats import FORMATS, MEDIA_TYPES, normalize_format, write_table


def sample(n: int = 500, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)

    def nulls():
        return rng.random(n) < 0.2

    strings = [
        "plain",
        'with "quotes"',
        "comma, here",
        "new\nline",
        "cr\rhere",
        "  spaced  ",
        "ünïcödé 😀",
        "x",
    ]
    return pa.table(
        {
            "id": pa.array(rng.integers(-(2**62), 2**62, n), mask=nulls()),
            "u64": pa.array(rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True), mask=nulls()),
            "small": pa.array(rng.integers(-128, 127, n).astype(np.int8), mask=nulls()),
            "x": pa.array(rng.normal(0, 1, n) * 10.0 ** rng.integers(-300, 300, n), mask=nulls()),
            "f32": pa.array(rng.normal(0, 1, n).astype(np.float32), mask=nulls()),
            "flag": pa.array(rng.random(n) < 0.5, mask=nulls()),
            "name": pa.array([strings[i] for i in rng.integers(0, len(strings), n)], mask=nulls()),
            "when": pa.array(rng.integers(0, 2 * 10**15, n), pa.timestamp("us"), mask=nulls()),
        }
    )


def write(table: pa.Table, fmt: str, chunk: int | None = 97) -> bytes:
    out = io.BytesIO()
    assert write_table(table.to_batches(max_chunksize=chunk), table.schema, out, fmt) == table.num_rows
    return out.getvalue()


def check_frame(df: pd.DataFrame, table: pa.Table) -> None:
    assert list(df.columns) == table.column_names
    for name in table.column_names:
        col = table[name]
        null = col.is_null().to_numpy(zero_copy_only=False)
        got = df[name]
        assert np.array_equal(got.isna().to_numpy(), null), name
        want = col.to_pylist()
        if pa.types.is_timestamp(col.type):
            want = [None if v is None else v.isoformat(timespec="microseconds") for v in want]
        if pa.types.is_floating(col.type):
            assert np.array_equal(
                got.to_numpy(dtype=col.type.to_pandas_dtype())[~null], np.array(want)[~null]
            )
        else:
            assert [v for v, m in zip(got.tolist(), null, strict=True) if not m] == [
                w for w in want if w is not None
            ]


def read_kwargs(table: pa.Table) -> dict:
    dtypes = {
        "id": "Int64",
        "u64": "UInt64",
        "small": "Int8",
        "name": object,
        "when": object,
        "flag": "boolean",
    }
    return {"dtype": {k: v for k, v in dtypes.items() if k in table.column_names}, "keep_default_na": False}


def test_csv_round_trip_through_pandas():
    table = sample()
    data = write(table, "csv")
    df = pd.read_csv(io.BytesIO(data), na_values=[""], **read_kwargs(table))
    check_frame(df, table)


def test_csv_is_rfc4180():
    table = pa.table(
        {"a b": [1, None, 3], "s": ['say "hi"', "", None], "t": ["x,y", "line\r\nbreak", "plain"]}
    )
    text = write(table, "csv").decode()
    assert text == 'a b,s,t\r\n1,"say ""hi""","x,y"\r\n,"","line\r\nbreak"\r\n3,,plain\r\n'
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [
        ["a b", "s", "t"],
        ["1", 'say "hi"', "x,y"],
        ["", "", "line\r\nbreak"],
        ["3", "", "plain"],
    ]


def test_tsv_round_trip_through_pandas():
    table = sample(seed=1)
    names = table["name"].to_pylist()
    tsv_safe = ["no tabs" if v is not None and ("\n" in v or "\r" in v) else v for v in names]
    table = table.set_column(table.schema.get_field_index("name"), "name", pa.array(tsv_safe))
    data = write(table, "tsv")
    df = pd.read_csv(io.BytesIO(data), sep="\t", quoting=csv.QUOTE_NONE, na_values=[""], **read_kwargs(table))
    check_frame(df, table)


def test_tsv_escapes_separators():
    table = pa.table({"s": ["a\tb", "c\nd", "back\\slash", '"q"', None], "n": [1, 2, 3, 4, 5]})
    text = write(table, "tsv").decode()
    assert text == 's\tn\na\\tb\t1\nc\\nd\t2\nback\\\\slash\t3\n"q"\t4\n\t5\n'


def test_text_non_finite_floats_and_booleans():
    table = pa.table({"x": [np.nan, np.inf, -np.inf, 0.1, None], "b": [True, False, None, True, False]})
    for fmt in ("csv", "tsv"):
        lines = write(table, fmt).decode().splitlines()
        sep = "," if fmt == "csv" else "\t"
        assert lines[1:] == [
            f"NaN{sep}true",
            f"Infinity{sep}false",
            f"-Infinity{sep}",
            f"0.1{sep}true",
            f"{sep}false",
        ]
        df = pd.read_csv(io.BytesIO(write(table, fmt)), sep=sep)
        assert np.array_equal(
            df["x"].to_numpy(), np.array([np.nan, np.inf, -np.inf, 0.1, np.nan]), equal_nan=True
        )


def test_text_empty_results_have_a_header():
    schema = pa.schema({"a": pa.int32(), "b": pa.string()})
    for fmt, want in (("csv", b"a,b\r\n"), ("tsv", b"a\tb\n")):
        out = io.BytesIO()
        assert write_table(iter([]), schema, out, fmt) == 0
        assert out.getvalue() == want


def test_text_dictionary_and_dates():
    table = pa.table(
        {
            "cat": pa.array(["a", None, "b"]).dictionary_encode(),
            "day": pa.array([dt.date(2020, 1, 2), None, dt.date(1999, 12, 31)]),
            "tz": pa.array([0, 1000, None], pa.timestamp("s", tz="America/New_York")),
        }
    )
    text = write(table, "csv").decode()
    assert (
        text == "cat,day,tz\r\na,2020-01-02,1970-01-01T00:00:00\r\n,,1970-01-01T00:16:40\r\nb,1999-12-31,\r\n"
    )


def test_parquet_round_trip():
    table = sample(seed=2)
    table = table.append_column("cat", pa.array(["u", "v", None, "u", "w"] * 100).dictionary_encode())
    data = write(table, "parquet")
    back = pq.read_table(io.BytesIO(data))
    assert back.num_rows == table.num_rows
    for name in table.column_names:
        want = table[name]
        if pa.types.is_dictionary(want.type):
            want = want.cast(want.type.value_type)
        assert back[name].combine_chunks().equals(want.combine_chunks()), name
    out = io.BytesIO()
    assert write_table(iter([]), table.schema, out, "parquet") == 0
    assert pq.read_table(io.BytesIO(out.getvalue())).num_rows == 0


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("votable", "votable"),
        ("VOTABLE", "votable"),
        ("application/x-votable+xml", "votable"),
        ("text/xml", "votable"),
        ("votable/td", "votable/td"),
        ("votable/b", "votable/b"),
        ("votable/b2", "votable/b2"),
        ("application/x-votable+xml;serialization=TABLEDATA", "votable/td"),
        ("application/x-votable+xml; serialization=binary", "votable/b"),
        ("Application/X-VOTable+XML;Serialization=Binary2", "votable/b2"),
        ("text/xml;serialization=tabledata", "votable/td"),
        ("csv", "csv"),
        ("text/csv", "csv"),
        ("text/csv;header=present", "csv"),
        ("tsv", "tsv"),
        ("text/tab-separated-values", "tsv"),
        ("parquet", "parquet"),
        ("application/vnd.apache.parquet", "parquet"),
        (" CSV ", "csv"),
    ],
)
def test_normalize_format_aliases(name, want):
    assert normalize_format(name) == want


@pytest.mark.parametrize(
    "name", ["fits", "", "application/x-votable+xml;serialization=FITS", "csv;serialization=binary"]
)
def test_normalize_format_unknown(name):
    with pytest.raises(InputError, match=r"unknown output format .*; known: votable, votable/b2"):
        normalize_format(name)


def test_every_format_has_a_media_type_and_writes():
    assert set(MEDIA_TYPES) == set(FORMATS)
    assert MEDIA_TYPES["votable"] == "application/x-votable+xml"
    assert MEDIA_TYPES["tsv"] == "text/tab-separated-values"
    assert MEDIA_TYPES["parquet"] == "application/vnd.apache.parquet"
    assert MEDIA_TYPES["csv"].startswith("text/csv")
    table = sample(20).drop_columns(["u64"])  # uint64 beyond 2**63 has no VOTable type
    for fmt in FORMATS:
        assert normalize_format(fmt) == fmt
        assert normalize_format(MEDIA_TYPES[fmt]) in (fmt, "votable")
        assert write(table, fmt)
    with pytest.raises(InputError, match="unknown output format 'nope'"):
        write_table(table, table.schema, io.BytesIO(), "nope")
