"""The right side read in two steps (kernel columns near the left rows, then the other
columns of the matched rows' row groups) gives exactly what reading every column gives.

Whether a piece is read in two steps depends on how sparse its left rows are
(``SPARSE_LEFT``); each crossmatch here runs with it forced off and forced on, and the two
results must be equal value for value and type for type. The one-step results are checked
against astropy in test_crossmatch.py and test_proper_motion.py.
"""

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import proxcompute as pc
import proxcompute.execute.crossmatch as xm_exec
from proxcompute.execute.split_read import read_split
from proxcompute.plan.nodes import find_scan


@pytest.fixture(scope="module")
def small_groups(tmp_path_factory, survey_catalog):
    """The survey with row groups of 300 rows (the same rows, order and statistics), so that
    partitions have several row groups and a split read can skip some."""
    root = tmp_path_factory.mktemp("groups") / "survey"
    shutil.copytree(survey_catalog, root)
    for path in root.rglob("Npix=*.parquet"):
        pq.write_table(pq.read_table(path), path, row_group_size=300)
    return root


def _both(monkeypatch, make):
    monkeypatch.setattr(xm_exec, "SPARSE_LEFT", 0.0)  # never split
    whole = make().compute()
    calls = []
    real = xm_exec.read_split

    def spy(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(xm_exec, "SPARSE_LEFT", float("inf"))  # always split
    monkeypatch.setattr(xm_exec, "read_split", spy)
    split = make().compute()
    assert calls, "the two-step read was not used"
    return whole, split


def _same(a, b):
    assert list(a.columns) == list(b.columns)
    assert list(a.dtypes) == list(b.dtypes)
    assert len(a) == len(b) > 0
    pa_a, pa_b = pa.Table.from_pandas(a, preserve_index=False), pa.Table.from_pandas(b, preserve_index=False)
    assert pa_a.equals(pa_b)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"n_neighbors": 3},
        {"how": "all", "radius_arcsec": 8.0},
        {"how": "left"},
        {"how": "all", "min_radius_arcsec": 2.0},
    ],
)
@pytest.mark.parametrize("groups", ["ingested", "300 rows"])
def test_split_read_equals_whole_read(monkeypatch, survey_catalog, small_groups, targets, kwargs, groups):
    survey = pc.open_catalog(survey_catalog if groups == "ingested" else small_groups)
    args = {"radius_arcsec": 5.0, **kwargs}
    whole, split = _both(monkeypatch, lambda: pc.crossmatch(targets, survey, **args))
    _same(whole, split)
    if kwargs.get("how") == "left":
        assert whole.id_survey.isna().any()  # unmatched rows: nulls in the fetched columns too
        assert whole.mag_survey.isna().sum() == whole.id_survey.isna().sum()


def test_split_read_with_a_projection_and_a_sparse_target_list(monkeypatch, small_groups, targets):
    survey = pc.open_catalog(small_groups)[["ra", "dec", "mag"]]  # one column to fetch
    few = targets.sample(40, random_state=2)
    whole, split = _both(monkeypatch, lambda: pc.crossmatch(few, survey, radius_arcsec=5.0))
    _same(whole, split)
    assert list(whole.columns[-4:]) == ["ra_survey", "dec_survey", "mag_survey", "_dist_arcsec"]


def test_split_read_with_proper_motion(monkeypatch, small_groups, survey_data):
    rng = np.random.default_rng(4)
    left = survey_data.sample(3000, random_state=4)[["id", "ra", "dec"]].rename(columns={"id": "oid"})
    left["pmra"] = rng.normal(0, 300, len(left))
    left["pmdec"] = rng.normal(0, 300, len(left))
    pm = pc.ProperMotion("pmra", "pmdec", from_epoch=2000.0, to_epoch=2016.0)
    survey = pc.open_catalog(small_groups)
    whole, split = _both(monkeypatch, lambda: pc.crossmatch(left, survey, radius_arcsec=2.0, proper_motion=pm))
    _same(whole, split)


def test_a_where_on_the_right_reads_in_one_step(monkeypatch, survey_catalog, targets):
    """A filtered right side is not a plain scan: its rows are read with every column."""
    survey = pc.open_catalog(survey_catalog).where("mag < 21")
    monkeypatch.setattr(xm_exec, "SPARSE_LEFT", float("inf"))
    monkeypatch.setattr(xm_exec, "read_split", lambda *a, **k: pytest.fail("split read of a filtered scan"))
    got = pc.crossmatch(targets, survey, radius_arcsec=5.0).compute()
    assert len(got) and (got.mag_survey < 21).all()


def test_fetch_takes_rows_in_any_order_from_the_row_groups_that_hold_them(small_groups):
    survey = pc.open_catalog(small_groups)
    scan = find_scan(survey._plan)
    meta = scan.source.meta
    pixel = max(scan.partitions, key=lambda p: pq.ParquetFile(meta.partition_files(p)[0]).metadata.num_row_groups)
    # reference: the partition file read whole by pyarrow, in _healpix_29 order
    ref = pq.read_table(meta.partition_files(pixel)[0])
    ref = ref.take(np.argsort(ref.column("_healpix_29").to_numpy(), kind="stable"))
    assert pq.ParquetFile(meta.partition_files(pixel)[0]).metadata.num_row_groups > 1
    # the kernel columns of two row groups' worth of ranges, then other columns of some rows
    index = ref.column("_healpix_29").to_numpy()
    ranges = np.array([[index[10], index[10] + 1], [index[-5], index[-5] + 1]])
    split = read_split(scan, pixel, ["_healpix_29", "ra", "dec"], ranges)
    assert split is not None and split.table.column_names == ["_healpix_29", "ra", "dec"]
    assert 0 < split.table.num_rows < ref.num_rows  # only the row groups holding the ranges
    rows = np.random.default_rng(1).integers(0, split.table.num_rows, 500)
    got = split.fetch(["id", "mag"], rows)
    at = np.searchsorted(index, split.table.column("_healpix_29").to_numpy()[rows])
    assert np.array_equal(index[at], split.table.column("_healpix_29").to_numpy()[rows])
    assert got.column_names == ["id", "mag"]
    np.testing.assert_array_equal(got.column("id").to_numpy(), ref.column("id").to_numpy()[at])
    np.testing.assert_array_equal(got.column("mag").to_numpy(), ref.column("mag").to_numpy()[at])
