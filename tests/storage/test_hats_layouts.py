"""Every layout HATS allows reads right: another index column/order, npix suffixes and
directories, no summary files, ``_healpix_29`` anywhere or as the pandas index, collections
with several margins and indexes; and bad layouts fail with a named error.

Each layout is derived from one stored catalog by rewriting its files the way other writers
lay them out; answers are checked against brute force (cones, where) and astropy (crossmatch).
"""

from __future__ import annotations

import itertools
import shutil

import astropy.units as u
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import SkyCoord, search_around_sky

from proxcompute import storage
from proxcompute.catalog import from_dataframe, open_catalog
from proxcompute.errors import CorruptPartitionError, StorageError
from proxcompute.execute.reader import clear_footer_cache
from proxcompute.sky import Cone, healpix
from proxcompute.storage.properties import read_properties, write_properties
from proxcompute.synthetic import generate_catalog

N_ROWS = 20_000
CONES = [
    ("dense cluster", 45.2, 29.8, 1800.0),
    ("across ra=0", 359.9, 0.2, 3600.0),
    ("north pole", 0.0, 90.0, 3.0 * 3600),
    ("south pole", 250.0, -89.5, 3.0 * 3600),
]


def _sky() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    df = generate_catalog(N_ROWS, seed=5)
    k = 400
    polar = pd.DataFrame(
        {
            "id": np.arange(10**6, 10**6 + 2 * k),
            "ra": rng.uniform(0, 360, 2 * k),
            "dec": np.concatenate([90 - rng.uniform(0, 2, k), -90 + rng.uniform(0, 2, k)]),
        }
    )
    polar["mag"] = rng.normal(19, 1, 2 * k)
    return pd.concat([df, polar], ignore_index=True)[["id", "ra", "dec", "mag"]]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    df = _sky()
    root = tmp_path_factory.mktemp("layouts")
    from_dataframe(df, name="base", max_rows=2_000).to_catalog(root / "base")
    return root, df


def _files(cat_dir):
    return sorted((cat_dir / "dataset").rglob("Npix=*.parquet"))


def _copy(root, name):
    dest = root / name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(root / "base", dest)
    clear_footer_cache()
    return dest


def _set_props(cat_dir, **changes):
    props = read_properties(cat_dir / "hats.properties")
    props.update({k: str(v) for k, v in changes.items() if v is not None})
    for k in [k for k, v in changes.items() if v is None]:
        props.pop(k, None)
    write_properties(cat_dir, props)


def _drop_summaries(cat_dir):
    for name in ("_metadata", "_common_metadata"):
        (cat_dir / "dataset" / name).unlink(missing_ok=True)


def _healpix13(root):
    """Index ``_healpix_13`` (order 13) instead of ``_healpix_29``, in the middle of the columns,
    rows sorted by it only (as hats-import writes with ``add_healpix_29=False``), small groups."""
    dest = _copy(root, "h13")
    for f in _files(dest):
        t = pq.read_table(f)
        h13 = pc_shift(t.column("_healpix_29").to_numpy())
        t = t.drop_columns(["_healpix_29"])
        rng = np.random.default_rng(0)
        t = t.take(pa.array(np.lexsort((rng.random(t.num_rows), h13))))  # not sorted at order 29
        h13 = np.sort(h13)
        t = t.add_column(2, "_healpix_13", pa.array(h13))
        pq.write_table(t, f, row_group_size=200)
    _drop_summaries(dest)
    _set_props(dest, hats_col_healpix="_healpix_13", hats_col_healpix_order=13)
    return dest


def pc_shift(h29):
    return np.right_shift(h29, 2 * (29 - 13))


def _npix_dirs(root):
    """``hats_npix_suffix=/``: each ``Npix=n/`` a directory of 1-3 files (rows split unevenly)."""
    dest = _copy(root, "npixdir")
    for i, f in enumerate(_files(dest)):
        t = pq.read_table(f)
        f.unlink()
        d = f.with_name(f.name.removesuffix(".parquet"))
        d.mkdir()
        cuts = sorted({0, t.num_rows, *np.random.default_rng(i).integers(0, t.num_rows + 1, i % 3)})
        for j, (a, b) in enumerate(itertools.pairwise(cuts)):
            pq.write_table(t.slice(a, b - a), d / f"part{j}.snappy.parquet", row_group_size=300)
    _drop_summaries(dest)
    _set_props(dest, hats_npix_suffix="/")
    return dest


def _parq(root):
    """``hats_npix_suffix=.parq`` and no ``_metadata``/``_common_metadata``."""
    dest = _copy(root, "parq")
    for f in _files(dest):
        f.rename(f.with_name(f.name.removesuffix(".parquet") + ".parq"))
    _drop_summaries(dest)
    _set_props(dest, hats_npix_suffix=".parq")
    return dest


def _pandas_index(root):
    """``_healpix_29`` stored as the pandas index (last column, pandas metadata), no
    ``hats_col_healpix`` property and no row count (older LSDB)."""
    dest = _copy(root, "pdindex")
    for f in _files(dest):
        df = pq.read_table(f).to_pandas().set_index("_healpix_29")
        df.to_parquet(f, row_group_size=250)
    _drop_summaries(dest)
    _set_props(dest, hats_col_healpix=None, hats_col_healpix_order=None, hats_nrows=None)
    return dest


LAYOUTS = {"h13": _healpix13, "npixdir": _npix_dirs, "parq": _parq, "pdindex": _pandas_index}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def layout(request, base):
    root, df = base
    return request.param, LAYOUTS[request.param](root), df


def _ids(frame):
    return np.sort(frame["id"].to_numpy())


def test_open_and_count(layout):
    name, path, df = layout
    cat = open_catalog(path)
    assert cat.count() == len(df), name
    assert healpix.INDEX_COLUMN in cat.columns
    got = cat.compute()
    assert np.array_equal(_ids(got), np.sort(df["id"].to_numpy()))
    want29 = healpix.radec_to_healpix29(got["ra"].to_numpy(), got["dec"].to_numpy())
    assert np.array_equal(got[healpix.INDEX_COLUMN].to_numpy(), want29)


@pytest.mark.parametrize(("label", "ra", "dec", "r"), CONES)
def test_cone_matches_brute_force(layout, label, ra, dec, r):
    name, path, df = layout
    want = np.sort(df["id"].to_numpy()[Cone(ra, dec, r).contains(df.ra.to_numpy(), df.dec.to_numpy())])
    assert want.size > 0
    got = open_catalog(path).cone_search(ra, dec, r).compute()
    np.testing.assert_array_equal(_ids(got), want, err_msg=f"{name}: {label}")


def test_where_and_explain(layout):
    _name, path, df = layout
    cat = open_catalog(path).cone_search(45.2, 29.8, 3600.0).where("mag < 19")
    inside = Cone(45.2, 29.8, 3600.0).contains(df.ra.to_numpy(), df.dec.to_numpy())
    np.testing.assert_array_equal(_ids(cat.compute()), np.sort(df[inside & (df.mag < 19).to_numpy()]["id"]))
    assert "row groups" in str(cat.explain())


def test_crossmatch_matches_astropy(layout):
    name, path, df = layout
    rng = np.random.default_rng(3)
    pick = df.sample(600, random_state=1)
    probe = pd.DataFrame(
        {
            "pid": np.arange(len(pick)),
            "ra": (pick.ra.to_numpy() + rng.normal(0, 0.5, len(pick)) / 3600 / np.cos(np.radians(pick.dec)))
            % 360,
            "dec": np.clip(pick.dec.to_numpy() + rng.normal(0, 0.5, len(pick)) / 3600, -90, 90),
        }
    )
    radius = 3.0
    got = from_dataframe(probe, name="probe").crossmatch(
        open_catalog(path), radius, how="all", ensure_margin=True
    )
    got = got.compute()
    pc = SkyCoord(probe.ra.to_numpy() * u.deg, probe.dec.to_numpy() * u.deg)
    cc = SkyCoord(df.ra.to_numpy() * u.deg, df.dec.to_numpy() * u.deg)
    i, j, _, _ = search_around_sky(pc, cc, radius * u.arcsec)
    want = sorted(zip(probe.pid.to_numpy()[i], df.id.to_numpy()[j], strict=True))
    id_col = next(c for c in got.columns if c.startswith("id_"))
    have = sorted(zip(got["pid_probe"].to_numpy(), got[id_col].to_numpy(), strict=True))
    assert have == want and len(want) >= 600, name


def test_sql_reads_every_layout(layout):
    from proxcompute.sql import sql

    name, path, df = layout
    res = sql("SELECT COUNT(*) AS n FROM t WHERE mag < 19", {"t": open_catalog(path)}).compute()
    assert int(res["n"].iloc[0]) == int((df.mag < 19).sum()), name


# -- bad input ---------------------------------------------------------------------------


def test_missing_index_column_is_a_named_storage_error(base):
    root, _ = base
    dest = _copy(root, "badindex")
    _set_props(dest, hats_col_healpix="_healpix_13", hats_col_healpix_order=13)
    with pytest.raises(StorageError, match=r"hats\.properties sets hats_col_healpix=_healpix_13.*no column"):
        open_catalog(dest)
    _set_props(dest, hats_col_healpix="_healpix_29", hats_col_healpix_order="x")
    with pytest.raises(StorageError, match="hats_col_healpix_order=x"):
        open_catalog(dest)


def test_npix_file_and_directory_for_one_pixel(base):
    root, _ = base
    dest = _copy(root, "twins")
    f = _files(dest)[0]
    twin = f.with_name(f.name.removesuffix(".parquet"))
    twin.mkdir()
    shutil.copy(f, twin / "part0.parquet")
    cat = open_catalog(dest)
    with pytest.raises(CorruptPartitionError, match=r"both as a file and as a directory.*hats_npix_suffix"):
        cat.compute()
    _set_props(dest, hats_npix_suffix="/")
    with pytest.raises(CorruptPartitionError, match=r"hats_npix_suffix='/'"):
        open_catalog(dest).compute()
    with pytest.raises(CorruptPartitionError, match=rf"{twin}.*both as a file and as a directory"):
        open_catalog(dest).plan.source.meta.partition_files(storage.PartitionPixel(*_pixel_of(twin)))


def _pixel_of(path):
    import re

    return int(re.search(r"Norder=(\d+)", str(path)).group(1)), int(
        re.search(r"Npix=(\d+)", str(path)).group(1)
    )


def test_npix_directory_missing_or_empty(base):
    root, _ = base
    dest = _npix_dirs(root)
    d = sorted(p for p in (dest / "dataset").rglob("Npix=*") if p.is_dir())[0]
    for f in d.iterdir():
        f.unlink()
    with pytest.raises(CorruptPartitionError, match="holds no Parquet file"):
        open_catalog(dest).compute()
    d.rmdir()
    with pytest.raises(CorruptPartitionError, match="directory is missing"):
        open_catalog(dest).where("mag < 20").count()


def test_nested_lists_of_different_lengths(tmp_path):
    df = generate_catalog(2_000, seed=1)
    dest = tmp_path / "nested"
    from_dataframe(df, name="n", max_rows=100_000).to_catalog(dest)
    files = _files(dest)
    for k, f in enumerate(files):
        t = pq.read_table(f)
        n = t.num_rows
        a = pa.ListArray.from_arrays(pa.array(np.arange(n + 1) * 2, pa.int32()), pa.array(np.ones(2 * n)))
        lengths = np.full(n, 2)
        if k == len(files) // 2:
            lengths[n // 2] = 3  # one row whose band list is longer than its mjd list
        offsets = pa.array(np.concatenate(([0], np.cumsum(lengths))), pa.int32())
        b = pa.ListArray.from_arrays(offsets, pa.array(np.ones(lengths.sum())))
        t = t.append_column("lc", pa.StructArray.from_arrays([a, b], names=["mjd", "band"]))
        pq.write_table(t, f)
    _drop_summaries(dest)
    clear_footer_cache()
    bad = files[len(files) // 2]
    with pytest.raises(CorruptPartitionError, match=rf"{bad}.*nested column 'lc'.*'mjd' and 'band' differ"):
        open_catalog(dest).compute()
    assert len(open_catalog(dest)[["id"]].compute()) == len(df)  # other columns still read


# -- collections ---------------------------------------------------------------------------


def test_collection_with_two_margins_and_an_index(base):
    from proxcompute.cli import catalog_summary
    from proxcompute.storage.properties import write_collection_properties

    root, _df = base
    coll = root / "coll"
    coll.mkdir(exist_ok=True)
    for name in ("cat", "cat_10arcs", "cat_60arcs", "cat_id_index"):
        if not (coll / name).exists():
            shutil.copytree(root / "base", coll / name)
    _set_props(coll / "cat_10arcs", dataproduct_type="margin", hats_margin_threshold=10.0)
    _set_props(coll / "cat_60arcs", dataproduct_type="margin", hats_margin_threshold=60.0)
    write_collection_properties(coll, "coll", "cat", ["cat_10arcs", "cat_60arcs"], "cat_60arcs")
    with open(coll / "collection.properties", "a") as fh:
        fh.write("all_indexes=id cat_id_index\ndefault_index=id\n")
    info = storage.read_collection(coll)
    assert list(info.margins) == ["cat_10arcs", "cat_60arcs"] and info.default_margin == "cat_60arcs"
    assert info.indexes == {"id": coll / "cat_id_index"}
    cat = open_catalog(coll)
    assert cat.margin.margin_threshold_arcsec == 60.0
    text = repr(cat)
    assert "cat_10arcs" in text and "cat_60arcs (default)" in text and "index on id" in text
    assert "cat_60arcs (default)" in cat._repr_html_()
    summary = catalog_summary(cat)
    assert summary["collection"]["margins"] == ["cat_10arcs", "cat_60arcs"]
    assert summary["collection"]["default_margin"] == "cat_60arcs"
    assert summary["collection"]["indexes"] == {"id": "cat_id_index"}


def test_a_file_missing_a_column_is_named(base):
    root, _ = base
    dest = _copy(root, "missingcol")
    f = _files(dest)[3]
    pq.write_table(pq.read_table(f).drop_columns(["mag"]), f)
    with pytest.raises(CorruptPartitionError, match=rf"{f}.*no column 'mag'"):
        open_catalog(dest).where("mag < 20").compute()
