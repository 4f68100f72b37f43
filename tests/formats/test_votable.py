"""VOTable writer: round trips through astropy for every serialization, dtype and null pattern."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
import struct
import xml.etree.ElementTree as ET
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from astropy.io.votable import parse

from proxcompute.errors import InputError
from proxcompute.formats import write_table, write_votable_error

SERIALIZATIONS = {"votable/b2": "BINARY2", "votable/b": "BINARY", "votable/td": "TABLEDATA"}
NS = "{http://www.ivoa.net/xml/VOTable/v1.3}"
# the BINARY/TABLEDATA null sentinels a real value can hit (the minimum of the VOTable type)
SENTINELS = {"i16": -(2**15), "i32": -(2**31), "i64": -(2**63)}
SPECIAL = [
    "",
    "plain",
    "<&>\"'",
    "a]]>b",
    "héllo wörld",
    "日本語",
    "emoji 😀 outside the BMP",
    "tab\tand\nnewline",
]


def make_table(n: int, seed: int = 0, null_frac: float = 0.2) -> pa.Table:
    """Every supported dtype, nulls in every column, NaN and infinities in the floats."""
    rng = np.random.default_rng(seed)

    def nulls():
        return rng.random(n) < null_frac

    cols = {}
    for name, np_type in [
        ("i8", np.int8),
        ("u8", np.uint8),
        ("i16", np.int16),
        ("u16", np.uint16),
        ("i32", np.int32),
        ("u32", np.uint32),
        ("i64", np.int64),
        ("u64", np.uint64),
    ]:
        info = np.iinfo(np_type)
        lo, hi = int(info.min), min(int(info.max), 2**63 - 1)
        values = rng.integers(lo, hi, n, dtype=np.int64 if np_type != np.uint64 else np.uint64, endpoint=True)
        if n >= 2:
            values[:2] = [lo, hi]
        if name == "u8":  # 255 is the BINARY null sentinel of unsignedByte
            values[values == 255] = 254
        cols[name] = pa.array(values.astype(np_type), mask=nulls())
    f64 = rng.normal(0, 1e5, n) * 10.0 ** rng.integers(-300, 300, n)
    f64[rng.random(n) < 0.05] = np.nan
    f64[rng.random(n) < 0.02] = np.inf
    f64[rng.random(n) < 0.02] = -np.inf
    cols["f64"] = pa.array(f64, mask=nulls())
    f32 = rng.normal(0, 1e3, n).astype(np.float32)
    f32[rng.random(n) < 0.05] = np.nan
    cols["f32"] = pa.array(f32, mask=nulls())
    cols["b"] = pa.array(rng.random(n) < 0.5, mask=nulls())
    strings = [SPECIAL[i] for i in rng.integers(0, len(SPECIAL), n)]
    strings = [s + str(i) if i % 3 else s for i, s in enumerate(strings)]
    cols["s"] = pa.array(strings, mask=nulls())
    cols["ls"] = pa.array([f"id_{i}" for i in range(n)], pa.large_string(), mask=nulls())
    ts = rng.integers(0, 2_000_000_000_000_000, n)
    cols["ts"] = pa.array(ts, pa.timestamp("us"), mask=nulls())
    return pa.table(cols)


def to_votable(table, fmt, **kw) -> bytes:
    out = io.BytesIO()
    source = table.to_batches(max_chunksize=kw.pop("chunk", None)) if "chunk" in kw else table
    n = write_table(source, table.schema, out, fmt, **kw)
    assert n == table.num_rows
    return out.getvalue()


def read_votable(data: bytes):
    return parse(io.BytesIO(data), verify="exception")


def expected_iso(arr: pa.Array) -> list[str | None]:
    return [None if v is None else v.isoformat(timespec="microseconds") for v in arr.to_pylist()]


def check_roundtrip(table: pa.Table, data: bytes, serialization: str) -> None:
    vt = read_votable(data)
    votable = vt.get_first_table()
    rec = votable.array
    assert len(rec) == table.num_rows
    assert [f.name for f in votable.fields] == table.column_names
    for name in table.column_names:
        col = table[name].combine_chunks()
        null = col.is_null().to_numpy(zero_copy_only=False)
        got = rec[name]
        got_mask = np.ma.getmaskarray(got)
        got_data = np.ma.getdata(got)
        t = col.type
        if pa.types.is_integer(t) or pa.types.is_boolean(t):
            want = col.fill_null(0 if pa.types.is_integer(t) else False).to_numpy(zero_copy_only=False)
            if serialization != "BINARY2" and name in SENTINELS:  # a value equal to VALUES null is null
                assert np.array_equal(got_mask, null | (want == SENTINELS[name])), name
                null = got_mask
            else:
                assert np.array_equal(got_mask, null), name
            assert np.array_equal(got_data[~null], want[~null]), name
        elif pa.types.is_floating(t):
            want = col.fill_null(np.nan).to_numpy(zero_copy_only=False)
            nan = np.isnan(want)
            assert np.array_equal(got_mask, null | nan), name  # astropy masks NaN itself
            assert got_data.dtype == want.dtype, name
            ok = ~(null | nan)
            assert np.array_equal(got_data[ok], want[ok]), name
            assert np.isnan(got_data[nan & ~null]).all(), name
        else:
            want = expected_iso(col) if pa.types.is_timestamp(t) else col.to_pylist()
            # astropy reads a null string as "" (it ignores BINARY2 flags of strings, its issue 8995)
            values = [str(v) for v in got_data.tolist()]
            assert values == ["" if w is None else w for w in want], name
    if serialization == "BINARY2":  # the flags themselves, decoded independently
        flags = binary2_null_flags(data)
        for i, name in enumerate(table.column_names):
            assert np.array_equal(flags[:, i], table[name].is_null().to_numpy(zero_copy_only=False)), name


SIZES = {"boolean": 1, "unsignedByte": 1, "short": 2, "int": 4, "long": 8, "float": 4, "double": 8}


def binary2_null_flags(data: bytes) -> np.ndarray:
    """Walk a BINARY2 stream row by row with struct (a reference decoder independent of the writer)."""
    root = ET.fromstring(data)
    fields = [(f.get("datatype"), f.get("arraysize")) for f in root.iter(NS + "FIELD")]
    stream = base64.b64decode(root.find(f".//{NS}STREAM").text or "")
    nflag = (len(fields) + 7) // 8
    rows, pos = [], 0
    while pos < len(stream):
        bits = np.unpackbits(np.frombuffer(stream[pos : pos + nflag], np.uint8), bitorder="big")
        rows.append(bits[: len(fields)].astype(bool))
        pos += nflag
        for datatype, arraysize in fields:
            if arraysize == "*":
                (count,) = struct.unpack(">i", stream[pos : pos + 4])
                pos += 4 + count * (2 if datatype == "unicodeChar" else 1)
            else:
                pos += SIZES[datatype]
    assert pos == len(stream)
    return np.array(rows, dtype=bool).reshape(-1, len(fields))


@pytest.mark.parametrize("fmt", list(SERIALIZATIONS))
@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_roundtrip_every_dtype(fmt, n):
    table = make_table(n, seed=n)
    check_roundtrip(table, to_votable(table, fmt), SERIALIZATIONS[fmt])


@pytest.mark.parametrize("fmt", list(SERIALIZATIONS))
def test_roundtrip_many_batches_of_odd_sizes(fmt):
    table = make_table(2000, seed=3)
    sizes = [1, 2, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43]
    batches, start = [], 0
    while start < table.num_rows:
        size = sizes[len(batches) % len(sizes)]
        batches.append(table.slice(start, size).to_batches()[0])
        start += size
    batches.insert(3, batches[0].slice(0, 0))  # an empty batch in the middle
    out = io.BytesIO()
    assert write_table(iter(batches), table.schema, out, fmt) == table.num_rows
    check_roundtrip(table, out.getvalue(), SERIALIZATIONS[fmt])


@pytest.mark.parametrize("fmt", list(SERIALIZATIONS))
def test_roundtrip_100k_rows(fmt):
    table = make_table(100_000, seed=5)
    check_roundtrip(table, to_votable(table, fmt, chunk=30_001), SERIALIZATIONS[fmt])


def test_base64_stream_is_one_valid_stream_of_76_char_lines():
    table = make_table(3001, seed=9)
    data = to_votable(table, "votable", chunk=1000).decode()
    body = re.search(r'<STREAM encoding="base64">\n(.*)</STREAM>', data, re.S).group(1)
    lines = body.split("\n")
    assert lines[-1] == ""
    assert all(len(line) == 76 for line in lines[:-2])
    assert 0 < len(lines[-2]) <= 76
    assert "=" not in "".join(lines[:-2])
    base64.b64decode("".join(lines), validate=True)


@pytest.mark.filterwarnings("ignore:.*W03")  # astropy derives an ID from the table name
@pytest.mark.parametrize("fmt", list(SERIALIZATIONS))
def test_document_structure_and_infos(fmt):
    table = make_table(5)
    infos = [("QUERY", "SELECT *\nFROM t WHERE a < 1 AND b = 'x' & \"y\""), ("REQUEST", "doQuery")]
    data = to_votable(table, fmt, infos=infos, table_name="my <table>")
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<VOTABLE version="1.4"')
    root = ET.fromstring(data)
    assert root.tag == NS + "VOTABLE"
    (resource,) = root.findall(NS + "RESOURCE")
    assert resource.get("type") == "results"
    children = [c.tag.removeprefix(NS) for c in resource]
    assert children == ["INFO", "INFO", "INFO", "TABLE"]
    status, query, request = resource.findall(NS + "INFO")
    assert (status.get("name"), status.get("value")) == ("QUERY_STATUS", "OK")
    assert (query.get("name"), query.get("value")) == infos[0]  # the newline survives
    assert (request.get("name"), request.get("value")) == infos[1]
    assert resource.find(NS + "TABLE").get("name") == "my <table>"
    vt = read_votable(data)
    assert [(i.name, i.value) for i in vt.resources[0].infos] == [("QUERY_STATUS", "OK"), *infos]


@pytest.mark.parametrize("fmt", list(SERIALIZATIONS))
def test_overflow_info_after_the_table(fmt):
    table = make_table(3)
    root = ET.fromstring(to_votable(table, fmt, overflow=True))
    resource = root.find(NS + "RESOURCE")
    tags = [c.tag.removeprefix(NS) for c in resource]
    assert tags == ["INFO", "TABLE", "INFO"]
    last = resource[-1]
    assert (last.get("name"), last.get("value")) == ("QUERY_STATUS", "OVERFLOW")
    assert 'value="OVERFLOW"' not in to_votable(table, fmt).decode()


@pytest.mark.filterwarnings("ignore:.*W03")  # astropy derives an ID for '2bad id'
def test_field_declarations_and_column_meta():
    table = make_table(3)
    table = table.append_column("2bad id", pa.array([1.0, 2.0, 3.0]))
    meta = {
        "f64": {
            "unit": "deg",
            "ucd": "pos.eq.ra;meta.main",
            "description": "Right <ascension>",
            "utype": "u:t",
        },
        "s": {"xtype": "adql:CLOB"},
        "ls": {"datatype": "char"},
        "i32": {"ignored": "x"},
    }
    data = to_votable(table, "votable/b", column_meta=meta)
    fields = {f.get("name"): f for f in ET.fromstring(data).iter(NS + "FIELD")}
    want = {
        "i8": "short",
        "u8": "unsignedByte",
        "i16": "short",
        "u16": "int",
        "i32": "int",
        "u32": "long",
        "i64": "long",
        "u64": "long",
        "f64": "double",
        "f32": "float",
        "b": "boolean",
        "s": "unicodeChar",
        "ls": "char",
        "ts": "char",
        "2bad id": "double",
    }
    assert {k: f.get("datatype") for k, f in fields.items()} == want
    assert fields["ts"].get("xtype") == "timestamp" and fields["ts"].get("arraysize") == "*"
    assert fields["s"].get("xtype") == "adql:CLOB"
    f64 = fields["f64"]
    assert (f64.get("unit"), f64.get("ucd"), f64.get("utype")) == ("deg", "pos.eq.ra;meta.main", "u:t")
    assert f64.find(NS + "DESCRIPTION").text == "Right <ascension>"
    assert fields["i8"].get("ID") == "i8"
    assert fields["2bad id"].get("ID") is None
    assert fields["i64"].find(NS + "VALUES").get("null") == str(-(2**63))
    vt = read_votable(data)
    assert vt.get_first_table().get_field_by_id_or_name("f64").unit == "deg"
    # BINARY2 needs no null sentinels
    b2 = ET.fromstring(to_votable(table, "votable"))
    assert not list(b2.iter(NS + "VALUES"))


@pytest.mark.filterwarnings("ignore:.*W55")  # non-ASCII in a TABLEDATA char column: read, with a warning
def test_char_datatype_rejects_non_ascii_in_binary():
    table = pa.table({"s": ["ok", "héllo"]})
    with pytest.raises(InputError, match="non-ASCII"):
        to_votable(table, "votable", column_meta={"s": {"datatype": "char"}})
    vt = read_votable(to_votable(table, "votable/td", column_meta={"s": {"datatype": "char"}}))
    assert list(vt.get_first_table().array["s"]) == ["ok", "héllo"]


@pytest.mark.parametrize("fmt", list(SERIALIZATIONS))
def test_dictionary_null_and_misc_types(fmt):
    table = pa.table(
        {
            "cat": pa.array(["a", "b", None, "a"]).dictionary_encode(),
            "nothing": pa.nulls(4),
            "day": pa.array([dt.date(2020, 1, 2), None, dt.date(1999, 12, 31), dt.date(2000, 2, 29)]),
            "tz": pa.array([0, 1_000, None, 86_400_000], pa.timestamp("ms", tz="Europe/Paris")),
            "dec": pa.array([Decimal("1.5"), None, Decimal("-2.25"), Decimal(0)], pa.decimal128(10, 3)),
        }
    )
    rec = read_votable(to_votable(table, fmt)).get_first_table().array
    assert [str(v) for v in rec["cat"].filled("")] == ["a", "b", "", "a"]
    assert [str(v) for v in rec["nothing"].filled("")] == [""] * 4
    assert [str(v) for v in rec["day"].filled("")] == ["2020-01-02", "", "1999-12-31", "2000-02-29"]
    tz = [str(v) for v in rec["tz"].filled("")]
    assert tz == ["1970-01-01T00:00:00.000", "1970-01-01T00:00:01.000", "", "1970-01-02T00:00:00.000"]
    assert rec["dec"].filled(99).tolist() == [1.5, 99, -2.25, 0]


def test_unsupported_type_and_overflowing_uint64():
    table = pa.table({"l": pa.array([[1, 2]])})
    with pytest.raises(InputError, match="cannot write column 'l'"):
        to_votable(table, "votable")
    big = pa.table({"u": pa.array([2**64 - 1], pa.uint64())})
    for fmt in SERIALIZATIONS:
        with pytest.raises(InputError, match="cannot be written as long"):
            to_votable(big, fmt)


def test_tabledata_floats_round_trip_exactly_and_name_non_finite():
    special = [-0.0, np.nan, np.inf, -np.inf]
    d = np.array([0.1, 1 / 3, 5e-324, 1.7976931348623157e308, 123456789.123456789, *special])
    f = np.array([0.1, 1 / 3, 1e-45, 3.4028235e38, 16777217.0, *special], dtype=np.float32)
    rng = np.random.default_rng(1)
    d = np.concatenate([d, rng.normal(size=500) * 10.0 ** rng.integers(-300, 300, 500)])
    f = np.concatenate([f, (rng.normal(size=500) * 10.0 ** rng.integers(-30, 30, 500)).astype(np.float32)])
    table = pa.table({"d": d, "f": f})
    data = to_votable(table, "votable/td")
    assert b"<TD>NaN</TD>" in data and b"<TD>+Inf</TD>" in data and b"<TD>-Inf</TD>" in data
    rec = read_votable(data).get_first_table().array
    for name, want in (("d", d), ("f", f)):
        got = np.ma.getdata(rec[name])
        assert got.dtype == want.dtype
        assert np.array_equal(got, want, equal_nan=True)
        assert np.array_equal(np.signbit(got), np.signbit(want))


def test_empty_result_documents():
    schema = pa.schema({"a": pa.int32(), "s": pa.string()})
    for fmt, tag in (("votable", "BINARY2"), ("votable/b", "BINARY"), ("votable/td", "TABLEDATA")):
        out = io.BytesIO()
        assert write_table(iter([]), schema, out, fmt) == 0
        root = ET.fromstring(out.getvalue())
        assert root.find(f"{NS}RESOURCE/{NS}TABLE/{NS}DATA/{NS}{tag}") is not None
        votable = read_votable(out.getvalue()).get_first_table()
        assert len(votable.array) == 0 and [f.name for f in votable.fields] == ["a", "s"]


def test_error_document():
    out = io.BytesIO()
    message = "SQL syntax error at line 1, column 8: unexpected '<' & \"quote\""
    write_votable_error(out, message)
    data = out.getvalue()
    root = ET.fromstring(data)
    resource = root.find(NS + "RESOURCE")
    assert resource.get("type") == "results"
    info = resource.find(NS + "INFO")
    assert (info.get("name"), info.get("value"), info.text) == ("QUERY_STATUS", "ERROR", message)
    vt = parse(io.BytesIO(data), verify="exception")
    (info,) = vt.resources[0].infos
    assert (info.name, info.value, info.content) == ("QUERY_STATUS", "ERROR", message)
    try:
        from pyvo.dal import DALQueryError, DALResults
    except ImportError:
        return
    with pytest.raises(DALQueryError, match="unexpected"):
        DALResults(parse(io.BytesIO(data)))


def test_illegal_xml_characters_are_replaced_in_tabledata_and_attributes():
    table = pa.table({"s": ["bell\x07", "ok"]})
    data = to_votable(table, "votable/td", infos=[("QUERY", "nul\x00byte")])
    vt = read_votable(data)
    assert list(vt.get_first_table().array["s"]) == ["bell\ufffd", "ok"]
    assert vt.resources[0].infos[1].value == "nul\ufffdbyte"
    # binary serializations carry them unchanged
    rec = read_votable(to_votable(table, "votable")).get_first_table().array
    assert list(rec["s"]) == ["bell\x07", "ok"]
