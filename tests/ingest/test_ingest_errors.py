"""Bad input and bad options: clear errors, and nothing left at ``out``."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ingest_helpers import write_frame

from proxcompute.errors import (
    CatalogExistsError,
    ColumnNotFoundError,
    IngestError,
    InputError,
    InvalidCoordinatesError,
    ProxError,
)
from proxcompute.ingest import ingest


def run(inputs, out, client, **kw):
    kw.setdefault("margin_arcsec", 0)
    kw.setdefault("show_progress", False)
    return ingest(inputs, out, client=client, **kw)


@pytest.fixture
def small(sky):
    return sky.iloc[:3_000].reset_index(drop=True)


def assert_no_output(out):
    assert not out.exists(), f"{out} exists after a failed ingest"
    assert not out.with_name(out.name + ".tmp-ingest").exists(), "staging left after an input error"


@pytest.mark.parametrize("ending", [".parquet", ".csv", ".fits"])
def test_missing_coordinate_column(ending, small, tmp_path, client):
    f = write_frame(small.rename(columns={"dec": "declination"}), tmp_path / f"nodec{ending}")
    with pytest.raises(ColumnNotFoundError) as info:
        run(f, tmp_path / "cat", client)
    msg = str(info.value)
    assert "'dec'" in msg and "nodec" in msg and "declination" in msg and "mag" in msg
    assert_no_output(tmp_path / "cat")


def test_custom_coordinate_columns(small, tmp_path, client):
    f = write_frame(small.rename(columns={"ra": "RAJ2000", "dec": "DEJ2000"}), tmp_path / "c.parquet")
    res = run(f, tmp_path / "cat", client, ra_column="RAJ2000", dec_column="DEJ2000")
    assert res.rows == len(small)
    props = (tmp_path / "cat" / "cat" / "hats.properties").read_text()
    assert "hats_col_ra=RAJ2000" in props and "hats_col_dec=DEJ2000" in props


def _with_invalid(df, rows, values):
    df = df.copy()
    for r, (ra, dec) in zip(rows, values, strict=True):
        df.loc[r, "ra"] = ra
        df.loc[r, "dec"] = dec
    return df


def test_invalid_coordinates_counted_over_all_inputs(small, tmp_path, client):
    a = write_frame(
        _with_invalid(small.iloc[:1500], [3, 10], [(np.nan, 0.0), (10.0, 95.0)]), tmp_path / "a.parquet"
    )
    b_df = _with_invalid(
        small.iloc[1500:].reset_index(drop=True),
        [0, 7, 8, 9],
        [(np.inf, 0), (1, -np.inf), (1, -90.5), (np.nan, np.nan)],
    )
    b = write_frame(b_df, tmp_path / "b.csv")
    with pytest.raises(InvalidCoordinatesError) as info:
        run([a, b], tmp_path / "cat", client)
    msg = str(info.value)
    assert "6 of 3,000" in msg
    assert "a.parquet row 3" in msg and "a.parquet row 10" in msg and "b.csv row 0" in msg
    assert msg.count(" row ") == 5  # at most 5 examples
    assert "drop_invalid" in msg
    assert not (tmp_path / "cat").exists()
    assert (tmp_path / "cat.tmp-ingest").exists()  # kept for resume=True, drop_invalid=True

    res = run([a, b], tmp_path / "cat", client, drop_invalid=True)
    assert res.dropped_rows == 6 and res.rows == len(small) - 6
    assert "6 rows with invalid" in str(res)


def test_null_coordinates_are_invalid(tmp_path, client):
    f = tmp_path / "nulls.csv"
    f.write_text("id,ra,dec\n1,10.0,20.0\n2,,5.0\n3,30.0,\n")
    with pytest.raises(InvalidCoordinatesError, match="2 of 3"):
        run(f, tmp_path / "cat", client)
    assert run(f, tmp_path / "cat", client, drop_invalid=True).rows == 1


def test_non_numeric_coordinate_column(small, tmp_path, client):
    df = small.assign(ra=small["ra"].map(lambda v: f"{v:.3f}d"))
    pq_file = write_frame(df, tmp_path / "s.parquet")
    with pytest.raises(InputError, match=r"'ra' in input file .*s\.parquet has type (string|large_string)"):
        run(pq_file, tmp_path / "cat", client)
    csv_file = write_frame(df, tmp_path / "s.csv")
    with pytest.raises(InputError, match=r"'ra' in input file .*s\.csv has type string"):
        run(csv_file, tmp_path / "cat", client)
    assert_no_output(tmp_path / "cat")


@pytest.mark.parametrize("ending", [".parquet", ".fits", ".vot", ".csv.gz"])
def test_corrupt_file(ending, tmp_path, client):
    f = tmp_path / f"broken{ending}"
    f.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(InputError, match=re.escape(f"broken{ending}")):
        run(f, tmp_path / "cat", client)
    assert_no_output(tmp_path / "cat")


def test_ragged_csv(tmp_path, client):
    f = tmp_path / "ragged.csv"
    f.write_text("id,ra,dec\n1,10.0,20.0\n2,11.0\n")
    with pytest.raises(InputError, match=r"ragged\.csv"):
        run(f, tmp_path / "cat", client)
    assert_no_output(tmp_path / "cat")


def test_files_with_different_columns(small, tmp_path, client):
    a = write_frame(small.iloc[:100], tmp_path / "a.parquet")
    b = write_frame(small.iloc[100:].drop(columns=["mag"]), tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"different columns: .*b\.parquet lacks \['mag'\]"):
        run([a, b], tmp_path / "cat", client)
    assert_no_output(tmp_path / "cat")


def test_bad_paths(tmp_path, client):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"notes\.txt"):
        run(tmp_path / "notes.txt", tmp_path / "cat", client)
    with pytest.raises(InputError, match=r"nope\.parquet does not exist"):
        run(tmp_path / "nope.parquet", tmp_path / "cat", client)
    with pytest.raises(InputError, match=r"\*\.parquet"):
        run(str(tmp_path / "*.parquet"), tmp_path / "cat", client)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty"):
        run(tmp_path / "empty", tmp_path / "cat", client)
    with pytest.raises(InputError):
        run([], tmp_path / "cat", client)
    assert_no_output(tmp_path / "cat")


def test_no_rows(tmp_path, client):
    f = tmp_path / "header.csv"
    f.write_text("id,ra,dec\n")
    with pytest.raises(IngestError, match="no rows"):
        run(f, tmp_path / "cat", client)
    assert_no_output(tmp_path / "cat")


def test_existing_output_refused_before_any_work(small, tmp_path, client):
    out = tmp_path / "cat"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(CatalogExistsError, match="overwrite"):
        run(tmp_path / "does-not-matter.parquet", out, client)  # refused before the inputs are looked at
    assert (out / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "cat.tmp-ingest").exists()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"max_rows": 0}, "max_rows"),
        ({"margin_arcsec": -1}, "margin_arcsec"),
        ({"margin_arcsec": float("nan")}, "margin_arcsec"),
        ({"name": "a/b"}, "name"),
    ],
)
def test_bad_options(kw, match, small, tmp_path, client):
    f = write_frame(small, tmp_path / "s.parquet")
    with pytest.raises(IngestError, match=match):
        run(f, tmp_path / "cat", client, **kw)
    assert not (tmp_path / "cat.tmp-ingest").exists()
    assert_no_output(tmp_path / "cat")


def test_all_errors_are_prox_errors():
    for cls in (CatalogExistsError, ColumnNotFoundError, IngestError, InputError, InvalidCoordinatesError):
        assert issubclass(cls, ProxError)


def test_point_map_comes_from_the_scan_and_counts_only_written_rows(sky, tmp_path, client, monkeypatch):
    """The point map is the scan's histogram (the files are not read again for it) and equals
    a healpy count of the rows written, invalid ones dropped."""
    import healpy as hp

    from proxcompute.storage import writer
    from proxcompute.storage.skymap import POINT_MAP_ORDER, read_point_map

    df = _with_invalid(sky.copy(), [5, 50, 500], [(np.nan, 1.0), (20.0, 91.0), (np.inf, 0.0)])
    f = write_frame(df, tmp_path / "in.parquet")

    def no_file_count(*a, **kw):
        raise AssertionError("the point map was counted from the partition files")

    monkeypatch.setattr(writer, "point_map_histogram", no_file_count)
    res = run(f, tmp_path / "cat", client, drop_invalid=True, max_rows=4_000)
    assert res.dropped_rows == 3 and res.partitions > 1
    pix, counts, order = read_point_map(tmp_path / "cat" / "cat" / "point_map.fits")
    good = df.drop(index=[5, 50, 500])
    want = np.bincount(
        hp.ang2pix(1 << order, good.ra.to_numpy(), good.dec.to_numpy(), nest=True, lonlat=True),
        minlength=12 * 4**POINT_MAP_ORDER,
    )
    np.testing.assert_array_equal(pix, np.flatnonzero(want))
    np.testing.assert_array_equal(counts, want[want > 0])
