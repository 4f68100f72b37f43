"""The other layouts LSDB and hats-import write read right here, with LSDB's answers.

Generated once per session by the peers themselves:

- ``nested``: a light-curve column (nested-pandas ``NestedFrame.join_nested``) written by
  ``lsdb.from_dataframe(...).to_hats(as_collection=True)``: a struct of lists *before*
  ``_healpix_29``, the layout that made cones silently return 0 rows;
- ``h13``: hats-import with ``add_healpix_29=False`` and the spatial index ``_healpix_13``
  (``hats_col_healpix=_healpix_13``, ``hats_col_healpix_order=13``), 500-row row groups;
- ``npixdir``: hats-import with ``npix_suffix="/"`` (each ``Npix=n`` a directory);
- ``collection``: hats-import collection with two margins (5" and the default 30") and an
  index catalog on ``id``. hats-import 0.11.1's index pipeline refuses (and, forced, hangs
  on) the installed dask, so the index catalog is written here as hats-import lays it out
  (``id, _healpix_29, Norder, Npix`` files; properties by hats' ``TableProperties``) and
  registered in ``collection.properties`` by hats' ``CollectionProperties``.

Each is opened, counted, cone-searched (against brute force and LSDB) and crossmatched
(against astropy and LSDB) by proxcompute; and each catalog we write opens in LSDB with a MOC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from interop_util import PEER_WARNINGS, assert_same_cone, frame_ids

pytestmark = [pytest.mark.interop, *PEER_WARNINGS]

N_ROWS = 30_000
MAX_ROWS = 3_000
CONES = [
    ("dense cluster", 45.2, 29.8, 1800.0),
    ("band across ra=0", 359.95, 0.1, 1800.0),
    ("north pole", 17.0, 89.7, 3600.0),
    ("south pole", 250.0, -89.2, 3600.0),
    ("sparse sky", 270.0, 30.0, 3600.0),
]
XMATCH_ARCSEC = 3.0


def _sky() -> pd.DataFrame:
    from proxcompute.sky import healpix
    from proxcompute.synthetic import generate_catalog

    rng = np.random.default_rng(15)
    df = generate_catalog(N_ROWS, seed=15)[["id", "ra", "dec", "mag"]]
    k = 600
    colat = np.degrees(np.arccos(rng.uniform(np.cos(np.radians(1.5)), 1.0, 2 * k)))
    polar = pd.DataFrame(
        {
            "id": np.arange(10**7, 10**7 + 2 * k),
            "ra": rng.uniform(0, 360, 2 * k),
            "dec": np.concatenate([90 - colat[:k], colat[k:] - 90]),
            "mag": rng.normal(20, 1.5, 2 * k),
        }
    )
    df = pd.concat([df, polar], ignore_index=True)
    df["_healpix_13"] = np.right_shift(healpix.radec_to_healpix29(df.ra.to_numpy(), df.dec.to_numpy()), 32)
    return df


def _sources(obj: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(16)
    n = rng.integers(0, 6, len(obj))
    total = int(n.sum())
    return pd.DataFrame(
        {
            "mjd": rng.uniform(58000, 60000, total),
            "flux": rng.normal(1.0, 0.1, total),
            "band": rng.choice(["g", "r", "i"], total),
        },
        index=np.repeat(obj.index, n),
    )


@pytest.fixture(scope="session")
def layout_input(tmp_path_factory):
    df = _sky()
    d = tmp_path_factory.mktemp("layout-input")
    f = d / "sky.parquet"
    df.to_parquet(f, index=False)
    return df, f


@pytest.fixture(scope="session")
def peer_layouts(layout_input, tmp_path_factory):
    """``{name: path}`` of the catalogs written by hats-import and LSDB."""
    import logging

    import lsdb
    import nested_pandas as npd
    from dask.distributed import Client
    from hats_import import CollectionArguments, ImportArguments
    from hats_import.pipeline import pipeline_with_client

    for name in ("distributed", "distributed.worker", "distributed.scheduler"):
        logging.getLogger(name).setLevel(logging.ERROR)
    df, f = layout_input
    out = tmp_path_factory.mktemp("peer-layouts")
    common = dict(output_path=out, progress_bar=False, resume=False)
    cat = dict(input_file_list=[str(f)], file_reader="parquet", ra_column="ra", dec_column="dec")
    with Client(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as client:
        pipeline_with_client(
            ImportArguments(
                output_artifact_name="h13", tmp_dir=out / "t1", pixel_threshold=MAX_ROWS, add_healpix_29=False,
                sort_columns="_healpix_13", row_group_kwargs={"num_rows": 500},
                addl_hats_properties={"hats_col_healpix": "_healpix_13", "hats_col_healpix_order": 13},
                **cat, **common,
            ),
            client,
        )  # fmt: skip
        pipeline_with_client(
            ImportArguments(
                output_artifact_name="npixdir", tmp_dir=out / "t2", pixel_threshold=MAX_ROWS, npix_suffix="/",
                **cat, **common,
            ),
            client,
        )  # fmt: skip
        args = (
            CollectionArguments(output_artifact_name="coll", tmp_dir=out / "t3", **common)
            .catalog(pixel_threshold=MAX_ROWS, **cat)
            .add_margin(margin_threshold=5.0)
            .add_margin(margin_threshold=30.0, is_default=True)
        )
        pipeline_with_client(args, client)
    _add_index_catalog(out / "coll", "coll", "id")
    obj = df.drop(columns=["_healpix_13"])
    nf = npd.NestedFrame(obj).join_nested(_sources(obj), "sources")
    lsdb.from_dataframe(
        nf, ra_column="ra", dec_column="dec", catalog_name="nested", margin_threshold=30.0, partition_rows=MAX_ROWS
    ).write_catalog(out / "nested", as_collection=True)
    return {"h13": out / "h13", "npixdir": out / "npixdir", "collection": out / "coll", "nested": out / "nested"}


def _add_index_catalog(collection, primary: str, column: str) -> None:
    """An index catalog on ``column`` of the collection's primary catalog, as hats-import writes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from hats.catalog.dataset.collection_properties import CollectionProperties
    from hats.catalog.dataset.table_properties import TableProperties

    from proxcompute.catalog import open_catalog
    from proxcompute.sky import healpix

    rows = open_catalog(collection / primary)[[column, "_healpix_29"]].compute()
    rows = rows.sort_values(column)
    order = np.full(len(rows), -1)
    pixel = np.full(len(rows), -1)
    for p in open_catalog(collection / primary).partitions:
        inside = healpix.healpix29_to_order(rows["_healpix_29"].to_numpy(), p.order) == p.pixel
        order[inside], pixel[inside] = p.order, p.pixel
    rows = rows.assign(Norder=order, Npix=pixel)
    name = f"{primary}_{column}"
    d = collection / name / "dataset" / "index"
    d.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), d / "part.0.parquet")
    TableProperties(
        catalog_name=name, catalog_type="index", total_rows=len(rows), primary_catalog=primary,
        indexing_column=column,
    ).to_properties_file(collection / name)  # fmt: skip
    props = CollectionProperties.read_from_dir(collection)
    props = props.model_copy(update={"all_indexes": {column: name}, "default_index": column})
    props.to_properties_file(collection)


@pytest.fixture(scope="module", params=["nested", "h13", "npixdir", "collection"])
def layout(request, peer_layouts):
    import lsdb

    from proxcompute.catalog import open_catalog

    path = peer_layouts[request.param]
    return request.param, path, open_catalog(path), lsdb.open_catalog(path)


def test_the_peers_wrote_the_layouts(peer_layouts):
    import pyarrow.parquet as pq

    from proxcompute.storage import read_properties

    props = read_properties(peer_layouts["h13"] / "hats.properties")
    assert props["hats_col_healpix"] == "_healpix_13" and props["hats_col_healpix_order"] == "13"
    first = next((peer_layouts["h13"] / "dataset").rglob("*.parquet"))
    assert "_healpix_29" not in pq.read_schema(first).names
    assert read_properties(peer_layouts["npixdir"] / "hats.properties")["hats_npix_suffix"] == "/"
    assert all(p.is_dir() for p in (peer_layouts["npixdir"] / "dataset").glob("Norder=*/Dir=*/Npix=*"))
    coll = read_properties(peer_layouts["collection"] / "collection.properties")
    assert len(coll["all_margins"].split()) == 2 and coll["default_margin"].endswith("30arcs")
    assert coll["all_indexes"].split()[0] == "id"
    nested = next((peer_layouts["nested"] / "nested" / "dataset").rglob("*.parquet"))
    md = pq.read_metadata(nested)
    leaves = [md.schema.column(i).path for i in range(md.num_columns)]
    top = md.schema.to_arrow_schema().names
    assert leaves.index("_healpix_29") != top.index("_healpix_29")  # leaves != fields: the bug's trigger


def test_open_and_count(layout, layout_input):
    name, _, pc, lsdb_cat = layout
    df, _ = layout_input
    assert pc.count() == len(df), name
    assert len(lsdb_cat.compute()) == len(df)
    assert np.array_equal(frame_ids(pc.compute()), np.sort(df["id"].to_numpy()))


@pytest.mark.parametrize(("label", "ra", "dec", "r"), CONES)
def test_cone_matches_brute_force_and_lsdb(layout, layout_input, label, ra, dec, r):
    name, _, pc, lsdb_cat = layout
    df, _ = layout_input
    ours = frame_ids(pc.cone_search(ra, dec, r).compute())
    theirs = frame_ids(lsdb_cat.cone_search(ra, dec, r).compute())
    assert_same_cone(ours, df, ra, dec, r, f"{name}: {label}")
    np.testing.assert_array_equal(ours, theirs, err_msg=f"proxcompute != LSDB: {name}, {label}")
    assert ours.size > 0 or label == "sparse sky"


def _probe(df: pd.DataFrame) -> pd.DataFrame:
    """Points within ~1" of 800 catalog rows (poles and RA wrap included) and 200 far ones."""
    rng = np.random.default_rng(8)
    near = df.sample(800, random_state=2)
    dra = rng.normal(0, 0.7, len(near)) / 3600 / np.maximum(np.cos(np.radians(near.dec.to_numpy())), 1e-3)
    ddec = rng.normal(0, 0.7, len(near)) / 3600
    far = pd.DataFrame({"ra": rng.uniform(0, 360, 200), "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, 200)))})
    probe = pd.DataFrame(
        {
            "ra": np.concatenate([(near.ra.to_numpy() + dra) % 360, far.ra.to_numpy()]),
            "dec": np.concatenate([np.clip(near.dec.to_numpy() + ddec, -90, 90), far.dec.to_numpy()]),
        }
    )
    probe.insert(0, "pid", np.arange(len(probe)))
    return probe


def test_crossmatch_matches_astropy_and_lsdb(layout, layout_input):
    import astropy.units as u
    import lsdb
    from astropy.coordinates import SkyCoord

    from proxcompute.catalog import from_dataframe

    name, _, pc, lsdb_cat = layout
    df, _ = layout_input
    probe = _probe(df)
    got = from_dataframe(probe, name="probe").crossmatch(pc, XMATCH_ARCSEC, ensure_margin=True).compute()
    ours = dict(zip(got["pid_probe"].to_numpy(), got[f"id_{pc.name}"].to_numpy(), strict=True))
    pcoord = SkyCoord(probe.ra.to_numpy() * u.deg, probe.dec.to_numpy() * u.deg)
    ccoord = SkyCoord(df.ra.to_numpy() * u.deg, df.dec.to_numpy() * u.deg)
    idx, sep, _ = pcoord.match_to_catalog_sky(ccoord)
    ok = sep.arcsec <= XMATCH_ARCSEC
    want = dict(zip(probe.pid.to_numpy()[ok], df.id.to_numpy()[idx[ok]], strict=True))
    assert ours == want and len(want) >= 750, name
    if lsdb_cat.margin is None:
        return  # LSDB needs a margin catalog to match across partition edges: compare where it has one
    theirs = lsdb.from_dataframe(probe, ra_column="ra", dec_column="dec").crossmatch(
        lsdb_cat, radius_arcsec=XMATCH_ARCSEC, n_neighbors=1, suffixes=("_probe", "_cat")
    )
    theirs = theirs.compute()
    lsdb_pairs = dict(zip(theirs["pid_probe"].to_numpy(), theirs["id_cat"].to_numpy(), strict=True))
    assert lsdb_pairs == ours, name


def test_collection_margins_and_index_are_listed(peer_layouts):
    from proxcompute.catalog import open_catalog
    from proxcompute.cli import catalog_summary

    cat = open_catalog(peer_layouts["collection"])
    assert cat.margin is not None and cat.margin.margin_threshold_arcsec == 30.0
    text = repr(cat)
    assert "coll_5arcs" in text and "coll_30arcs (default)" in text and "index on id" in text
    summary = catalog_summary(cat)
    assert summary["collection"]["margins"] == ["coll_5arcs", "coll_30arcs"]
    assert summary["collection"]["default_margin"] == "coll_30arcs"
    assert set(summary["collection"]["indexes"]) == {"id"}


def _field(value, name: str) -> list:
    """One field of a row's light curve: a dict of lists (ours), a DataFrame (nested-pandas),
    or None (a row without sources, which nested-pandas shows as an empty frame)."""
    if value is None:
        return []
    return [float(v) for v in value[name]]


def test_nested_sources_read_and_written_back(peer_layouts, tmp_path):
    import lsdb

    from proxcompute.catalog import open_catalog

    cat = open_catalog(peer_layouts["nested"])
    cone = cat.cone_search(45.2, 29.8, 1800.0)
    ours = cone.compute().set_index("id").sort_index()
    theirs = lsdb.open_catalog(peer_layouts["nested"]).cone_search(45.2, 29.8, 1800.0).compute()
    theirs = theirs.set_index("id").sort_index()
    assert len(ours) > 0 and list(ours.index) == list(theirs.index)
    for i in ours.index[:200]:
        assert _field(ours.at[i, "sources"], "flux") == _field(theirs.loc[i, "sources"], "flux")
    out = cone.to_catalog(tmp_path / "copy")
    back = lsdb.open_catalog(out.path).compute().set_index("id").sort_index()
    assert list(back.index) == list(ours.index)
    for i in ours.index[:200]:
        assert _field(back.loc[i, "sources"], "mjd") == _field(ours.at[i, "sources"], "mjd")


def test_our_catalogs_open_in_lsdb_with_a_moc(layout_input, tmp_path):
    import hats
    import lsdb

    from proxcompute.catalog import from_dataframe
    from proxcompute.sky import Cone

    df, _ = layout_input
    path = tmp_path / "ours"
    from_dataframe(df.drop(columns=["_healpix_13"]), name="ours", max_rows=MAX_ROWS).to_catalog(path)
    theirs = lsdb.open_catalog(path)
    moc = theirs.hc_structure.moc
    assert moc is not None, "LSDB built no MOC from our point_map.fits"
    assert moc.max_order == 10
    assert moc.contains_lonlat(df.ra.to_numpy() * hats_deg(), df.dec.to_numpy() * hats_deg()).all()
    assert hats.read_hats(path).catalog_info.skymap_order == 10
    cone = Cone(45.2, 29.8, 1800.0)
    got = frame_ids(theirs.cone_search(45.2, 29.8, 1800.0).compute())
    assert np.array_equal(got, np.sort(df.id.to_numpy()[cone.contains(df.ra.to_numpy(), df.dec.to_numpy())]))


def hats_deg():
    import astropy.units as u

    return u.deg
