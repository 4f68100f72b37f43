"""formats.tables: one suffix map, table readers and writers, Arrow to astropy with masks."""

import gzip

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from proxcompute.catalog import from_dataframe
from proxcompute.cli import main
from proxcompute.errors import InputError
from proxcompute.formats import arrow_to_astropy, format_of, read_table, read_table_bytes, write_file
from proxcompute.storage.atomic import atomic_path, atomic_write, atomic_write_json


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.csv", "csv"), ("A.CSV.GZ", "csv"), ("a.tsv", "tsv"), ("a.pq", "parquet"), ("a.parquet", "parquet"),
     ("a.fits.gz", "fits"), ("a.fit", "fits"), ("a.vot", "votable"), ("a.xml", "votable"), ("a.txt", None),
     ("csv", None)],
)
def test_format_of(name, fmt):
    assert format_of(name) == fmt


def _frame(n=50):
    rng = np.random.default_rng(4)
    return pd.DataFrame({"id": np.arange(n), "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-90, 90, n)})


def test_csv_gz_is_csv_for_the_reader_the_cli_and_the_pipeline(tmp_path, capsys):
    df = _frame()
    path = tmp_path / "targets.csv.gz"
    with gzip.open(path, "wt") as fh:
        df.to_csv(fh, index=False)
    pd.testing.assert_frame_equal(read_table(path), df)
    cat = tmp_path / "cat"
    from_dataframe(df, name="cat").to_catalog(cat)
    out = tmp_path / "m.csv"
    assert main(["crossmatch", str(path), str(cat), "--radius-arcsec", "1", "--ensure-margin",
                 "--out", str(out)]) == 0  # fmt: skip
    assert len(pd.read_csv(out)) == len(df)  # every target matches itself
    from proxcompute.pipeline import run_pipeline

    (tmp_path / "p.yaml").write_text(
        "name: gz\nsteps:\n  - name: m\n    crossmatch: {left: targets.csv.gz, right: cat, radius_arcsec: 1, ensure_margin: true, out: p.parquet}\n"
    )
    run_pipeline(tmp_path / "p.yaml")
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == len(df)


def test_unknown_or_unreadable_files_are_named(tmp_path):
    with pytest.raises(InputError, match=r"notes\.txt: unknown table format"):
        read_table(tmp_path / "notes.txt")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"cannot read table file .*bad\.parquet"):
        read_table(bad)
    with pytest.raises(InputError, match="does not exist"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="UPLOAD t: cannot read the table"):
        read_table_bytes(b"PAR1 not really parquet", name="UPLOAD t")


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".tsv", ".vot"])
def test_write_file_round_trips(tmp_path, suffix):
    df = _frame()
    out = tmp_path / f"r{suffix}"
    assert write_file(df, out) == len(df)
    back = read_table(out)
    np.testing.assert_array_equal(back["id"], df["id"])
    np.testing.assert_allclose(back["ra"], df["ra"], rtol=1e-15)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_a_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "r.csv"
    out.write_text("old\n")

    def half_then_fail(table, schema, fh, fmt, **kw):
        fh.write(b"id,ra\n1,")
        raise OSError("disk full")

    monkeypatch.setattr("proxcompute.formats._write.write_table", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_file(_frame(), out)
    assert out.read_text() == "old\n"
    with pytest.raises(RuntimeError), atomic_write(out, "w") as fh:
        fh.write("half")
        raise RuntimeError("disk full")
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]
    with pytest.raises(InputError, match="cannot write"):
        write_file(_frame(), tmp_path / "r.fits")


def test_atomic_helpers(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    assert (tmp_path / "m.json").read_text() == '{"a":1}'
    with atomic_path(tmp_path / "x.bin") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".x.bin.")
        tmp.write_bytes(b"1")
    assert (tmp_path / "x.bin").read_bytes() == b"1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "x.bin"]


def test_arrow_to_astropy_keeps_nulls_masked():
    t = pa.table({
        "i": pa.array([1, None, 3], pa.int64()), "f": pa.array([1.5, None, np.nan]),
        "s": pa.array(["a", None, "c"]), "b": pa.array([True, None, False]),
        "d": pa.array(["x", "y", None]).dictionary_encode(),
    })  # fmt: skip
    out = arrow_to_astropy(t, units={"f": "mag"})
    for name in ("i", "f", "s", "b", "d"):
        assert out[name].mask.tolist() == [False, name not in ("d",), name == "d"], name
    assert out["i"][0] == 1 and out["s"][2] == "c" and out["d"][1] == "y"
    assert np.isnan(out["f"][2]) and not out["f"].mask[2]  # NaN is a value, not a null
    assert str(out["f"].unit) == "mag"


def test_catalog_to_astropy_keeps_nulls_masked():
    df = _frame(200)
    df["mag"] = pd.array([None if i % 3 == 0 else float(i) for i in range(200)], dtype="Float64")
    t = from_dataframe(df, name="n").to_astropy()
    ids = np.asarray(t["id"])
    assert t["mag"].mask.tolist() == [i % 3 == 0 for i in ids]
    assert str(t["ra"].unit) == "deg"
