"""Unit tests of the ingest building blocks (no Dask)."""

from __future__ import annotations

import numpy as np
import pytest

from proxcompute.ingest import _inputs, _plan, _tasks
from proxcompute.sky.healpix import radec_to_healpix29
from proxcompute.storage.partitioning import histogram


def test_scan_histogram_stays_bounded_and_exact(monkeypatch):
    monkeypatch.setattr(_tasks._ScanAccumulator, "FLUSH_ROWS", 1_000)
    acc = _tasks._ScanAccumulator("/data/x.parquet", 100)
    rng = np.random.default_rng(1)
    ras, decs = [], []
    for _ in range(30):
        ra, dec = rng.uniform(-360, 720, 700), np.degrees(np.arcsin(rng.uniform(-1, 1, 700)))
        dec[::97] = np.nan
        acc.add(ra, dec)
        ras.append(ra)
        decs.append(dec)
    assert len(acc.sparse) <= 2  # merged as it goes
    pix, cnt = acc.histogram()
    ra, dec = np.concatenate(ras), np.concatenate(decs)
    ok = np.isfinite(dec)
    ref_pix, ref_cnt = histogram(radec_to_healpix29(ra[ok] % 360.0, dec[ok]), _tasks.HISTOGRAM_ORDER)
    np.testing.assert_array_equal(pix, ref_pix)
    np.testing.assert_array_equal(cnt, ref_cnt)
    assert acc.rows == 21_000 and acc.invalid == int((~ok).sum())
    assert acc.examples[0][:2] == ["x.parquet", 100]  # file name and row number in the file
    assert len(acc.examples) == _tasks.MAX_EXAMPLES


def test_wrap_ra():
    ra, changed = _tasks.wrap_ra(np.array([0.0, 359.5, 360.0, -0.5, -1e-17, 725.0]))
    assert changed
    np.testing.assert_allclose(ra, [0.0, 359.5, 0.0, 359.5, 0.0, 5.0])
    assert ((ra >= 0) & (ra < 360)).all()
    same = np.array([1.0, 2.0])
    assert _tasks.wrap_ra(same) == (same, False)


def test_invalid_mask():
    ra = np.array([1.0, np.nan, 1.0, np.inf, 1.0, 1.0])
    dec = np.array([90.0, 0.0, np.nan, 0.0, -90.0001, -np.inf])
    assert _tasks.invalid_mask(ra, dec).tolist() == [False, True, True, True, True, True]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.parquet", "parquet"),
        ("a.PQ", "parquet"),
        ("a.csv", "csv"),
        ("a.csv.gz", "csv"),
        ("a.fits.gz", "fits"),
        ("a.fit", "fits"),
        ("a.vot", "votable"),
        ("a.xml", "votable"),
        ("a.txt", None),
        ("a.gz", None),
    ],
)
def test_detect_format(name, fmt):
    assert _inputs.detect_format(name) == fmt


def test_group_rows_into_chunks():
    assert _plan._group([3, 3, 3, 10, 1], 6) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert _plan._group([], 6) == []


def test_csv_type_widening():
    import pyarrow as pa

    types: dict = {}
    names = lambda: ["a", "b"]  # noqa: E731
    exc = pa.ArrowInvalid("In CSV column #1: Row #9: CSV conversion error to int64: invalid value '1.5'")
    assert _inputs.widen_csv_type(exc, names, types) and types == {"b": pa.float64()}
    exc = pa.ArrowInvalid("In CSV column #1: CSV conversion error to double: invalid value 'x'")
    assert _inputs.widen_csv_type(exc, names, types) and types == {"b": pa.string()}
    assert not _inputs.widen_csv_type(exc, names, {"b": pa.string()})
    assert not _inputs.widen_csv_type(pa.ArrowInvalid("CSV parse error: Expected 2 columns"), names, types)
