"""Row-group statistics are looked up by leaf column path, never by top-level position.

A catalog with nested columns (a struct of lists, as LSDB/nested-pandas write light curves;
a list of structs; a plain struct) *before* ``_healpix_29`` used to have its cones answered
from the statistics of a nested leaf: every row group was pruned and a cone returned 0 rows
without an error. Every answer here is checked against brute force.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from proxcompute import storage
from proxcompute.catalog import open_catalog
from proxcompute.execute.reader import clear_footer_cache
from proxcompute.sky import Cone, healpix
from proxcompute.storage.partitioning import assign_partitions, histogram, plan_partitions
from proxcompute.synthetic import generate_catalog

N_ROWS = 30_000


def _nested_table(n: int, seed: int) -> tuple[pa.Table, np.ndarray]:
    """Columns: ``lc`` (struct of lists, floats first), ``pos`` (struct), ``_healpix_29``, the
    flat columns, then ``sources`` (list of structs) last."""
    df = generate_catalog(n, seed=seed)
    rng = np.random.default_rng(seed)
    idx = healpix.radec_to_healpix29(df.ra.to_numpy(), df.dec.to_numpy())
    lengths = rng.integers(0, 5, n)
    offsets = pa.array(np.concatenate(([0], np.cumsum(lengths))).astype(np.int32))
    total = int(lengths.sum())
    # leaf values far below any _healpix_29: read as index statistics they prune everything
    mjd = pa.ListArray.from_arrays(offsets, pa.array(rng.uniform(58000, 60000, total)))
    flux = pa.ListArray.from_arrays(offsets, pa.array(rng.normal(1.0, 0.1, total)))
    lc = pa.StructArray.from_arrays([mjd, flux], names=["mjd", "flux"])
    pos = pa.StructArray.from_arrays(
        [pa.array(rng.integers(0, 1000, n)), pa.array(rng.normal(0, 1, n))], names=["x", "y"]
    )
    src_struct = pa.StructArray.from_arrays(
        [pa.array(rng.normal(17, 1.5, total)), pa.array(rng.choice(["g", "r"], total))], names=["mag", "band"]
    )
    sources = pa.ListArray.from_arrays(offsets, src_struct)
    flat = pa.Table.from_pandas(df, preserve_index=False)
    table = pa.table(
        {
            "lc": lc,
            "pos": pos,
            healpix.INDEX_COLUMN: pa.array(idx),
            **{c: flat.column(c) for c in flat.column_names},
        }
    ).append_column("sources", sources)
    order = np.argsort(idx, kind="stable")
    return table.take(pa.array(order)), idx[order]


def write_nested_catalog(
    dest, n: int = N_ROWS, seed: int = 7, row_group_rows: int = 500, flat: bool = False
) -> pa.Table:
    """A HATS catalog whose files keep the nested columns in front of ``_healpix_29``
    (``flat``: the same rows and partitions without the nested columns)."""
    table, idx = _nested_table(n, seed)
    if flat:
        table = table.drop_columns(["lc", "pos", "sources"])
    pix, cnt = histogram(idx, 8)
    parts, _ = plan_partitions(pix, cnt, 8, max_rows=6_000)
    where = assign_partitions(idx, parts)
    builder = storage.CatalogBuilder(dest, name="nested")
    rows = {}
    for i, p in enumerate(parts):
        sub = table.filter(pa.array(where == i))
        path = storage.partition_path(builder.staging, p.order, p.pixel)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(sub, path, row_group_size=row_group_rows, write_statistics=True)
        rows[p] = sub.num_rows
    builder.finish(rows, table.schema)
    return table


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    dest = tmp_path_factory.mktemp("nested") / "cat"
    table = write_nested_catalog(dest)
    write_nested_catalog(dest.with_name("flat"), flat=True)
    clear_footer_cache()
    return dest, table.to_pandas()


CONES = [
    ("dense cluster", 45.2, 29.8, 1800.0),
    ("across ra=0", 359.9, 0.2, 3600.0),
    ("near the north pole", 10.0, 89.5, 7200.0),
    ("sparse sky", 200.0, -40.0, 5.0 * 3600),
]


def _brute(df, ra, dec, r):
    return np.sort(df["id"].to_numpy()[Cone(ra, dec, r).contains(df.ra.to_numpy(), df.dec.to_numpy())])


def test_the_files_really_have_nested_leaves_before_the_index(nested):
    dest, _ = nested
    meta = storage.read_catalog_meta(dest)
    md = pq.read_metadata(meta.partition_path(meta.pixels[0]))
    top = md.schema.to_arrow_schema().names.index(healpix.INDEX_COLUMN)
    assert md.schema.column(top).path != healpix.INDEX_COLUMN  # position among fields != leaf position


@pytest.mark.parametrize(("label", "ra", "dec", "r"), CONES)
def test_cone_matches_brute_force(nested, label, ra, dec, r):
    dest, df = nested
    want = _brute(df, ra, dec, r)
    assert want.size > 0, label
    got = open_catalog(dest).cone_search(ra, dec, r).compute()
    np.testing.assert_array_equal(np.sort(got["id"].to_numpy()), want, err_msg=label)


def test_read_partition_prunes_by_leaf_path(nested):
    dest, df = nested
    meta = storage.read_catalog_meta(dest)
    cone = Cone(45.2, 29.8, 600.0)
    ranges = cone.healpix29_ranges()
    got, kept, total = [], 0, 0
    for p in meta.pixels:
        md = pq.read_metadata(meta.partition_path(p))
        total += md.num_row_groups
        kept += len(storage.select_row_groups(md, ranges))
        t = storage.read_partition(meta.partition_path(p), ["id", "ra", "dec"], ranges)
        m = cone.contains(t.column("ra").to_numpy(), t.column("dec").to_numpy())
        got.append(t.column("id").to_numpy()[m])
    np.testing.assert_array_equal(np.sort(np.concatenate(got)), _brute(df, 45.2, 29.8, 600.0))
    assert 0 < kept < total / 4  # pruning still works, by the right column


@pytest.mark.parametrize("expr", ["mag < 17", "flag == 2 and mag > 19", "id >= 25000", "color > 1.2"])
def test_where_matches_pandas(nested, expr):
    dest, df = nested
    want = np.sort(df.query(expr)["id"].to_numpy())
    assert want.size > 0
    got = open_catalog(dest).where(expr).compute()
    np.testing.assert_array_equal(np.sort(got["id"].to_numpy()), want, err_msg=expr)


def test_cone_and_where_together(nested):
    dest, df = nested
    ra, dec, r = 45.2, 29.8, 1800.0
    inside = Cone(ra, dec, r).contains(df.ra.to_numpy(), df.dec.to_numpy())
    want = np.sort(df[inside & (df.mag < 19).to_numpy()]["id"].to_numpy())
    got = open_catalog(dest).cone_search(ra, dec, r).where("mag < 19").compute()
    np.testing.assert_array_equal(np.sort(got["id"].to_numpy()), want)


def test_nested_columns_are_read_and_projected(nested):
    dest, df = nested
    ra, dec, r = 45.2, 29.8, 900.0
    got = open_catalog(dest).cone_search(ra, dec, r)[["id", "sources", "lc"]].compute()
    assert list(got.columns) == ["id", "sources", "lc"]
    want = df.set_index("id").loc[got["id"].to_numpy()]
    for a, b in zip(got["sources"], want["sources"], strict=True):
        assert [s["mag"] for s in a] == [s["mag"] for s in b]
    for a, b in zip(got["lc"], want["lc"], strict=True):
        assert list(a["mjd"]) == list(b["mjd"])


def test_margin_reader_prunes_by_leaf_path(nested):
    from proxcompute.ingest.margin import margin_for_partition

    dest, _df = nested
    meta = storage.read_catalog_meta(dest)
    pixels = list(meta.pixels)
    checked = 0
    for target in pixels[:: max(1, len(pixels) // 6)]:
        sources = [p for p in pixels if p != target]
        got = margin_for_partition(
            dest, target, sources, margin_arcsec=60.0, columns=[healpix.INDEX_COLUMN, "id", "ra", "dec"]
        )
        want = margin_for_partition(
            dest.with_name("flat"),
            target,
            sources,
            margin_arcsec=60.0,
            columns=[healpix.INDEX_COLUMN, "id", "ra", "dec"],
        )
        if want is None:
            assert got is None
            continue
        checked += want.num_rows
        np.testing.assert_array_equal(
            np.sort(got.column("id").to_numpy()), np.sort(want.column("id").to_numpy())
        )
    assert checked > 0


# -- nested columns as users hold them ----------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "column"),
    [
        ("sources.mag < 16", "sources.mag"),
        ("`sources.mag` < 16", "sources.mag"),
        ("pos.x > 3", "pos.x"),
        ("lc > 1", "lc"),
    ],
)
def test_where_on_a_nested_field_is_a_clear_error(nested, expr, column):
    from proxcompute.errors import PlanError

    dest, _ = nested
    with pytest.raises(PlanError, match=rf"cannot filter on '{column}'.*nested column"):
        open_catalog(dest).where(expr)


def test_to_catalog_writes_nested_columns_back(nested, tmp_path):
    dest, df = nested
    out = open_catalog(dest).cone_search(45.2, 29.8, 1800.0).to_catalog(tmp_path / "copy")
    src_types = {f.name: f.type for f in open_catalog(dest).schema}
    assert {f.name: f.type for f in out.schema} == src_types
    got = out.compute().set_index("id")
    want = df.set_index("id").loc[got.index]
    for a, b in zip(got["sources"], want["sources"], strict=True):
        assert [(s["mag"], s["band"]) for s in a] == [(s["mag"], s["band"]) for s in b]
    for a, b in zip(got["lc"], want["lc"], strict=True):
        assert list(a["flux"]) == list(b["flux"])
    assert out.where("mag < 18").count() == int((want["mag"] < 18).sum())


@pytest.mark.parametrize("fmt", ["csv", "tsv", "votable"])
def test_one_value_per_cell_formats_refuse_nested_columns(nested, fmt):
    import io

    from proxcompute.errors import InputError
    from proxcompute.formats import write_table

    dest, _ = nested
    table = open_catalog(dest).cone_search(45.2, 29.8, 600.0)[["id", "sources"]].to_arrow()
    buf = io.BytesIO()
    with pytest.raises(InputError, match=r"column 'sources': it is nested .*write Parquet"):
        write_table(table, table.schema, buf, fmt)
    assert buf.getvalue() == b""  # refused before writing anything


def test_parquet_output_keeps_nested_columns(nested):
    import io

    from proxcompute.formats import write_table

    dest, _ = nested
    table = open_catalog(dest).cone_search(45.2, 29.8, 600.0)[["id", "sources", "lc"]].to_arrow()
    buf = io.BytesIO()
    assert write_table(table, table.schema, buf, "parquet") == table.num_rows > 0
    back = pq.read_table(io.BytesIO(buf.getvalue()))
    assert back.equals(table)


def test_cli_info_and_cone_with_nested_columns(nested, tmp_path, capsys):
    import json

    from proxcompute.cli import main

    dest, df = nested
    capsys.readouterr()
    assert main(["info", str(dest), "--json"]) == 0
    nested_fields = json.loads(capsys.readouterr().out)["nested_fields"]
    assert nested_fields["sources"] == {"sources.mag": "list<double>", "sources.band": "list<string>"}
    assert set(nested_fields["lc"]) == {"lc.mjd", "lc.flux"}
    assert main(["info", str(dest)]) == 0
    assert "sources.mag" in capsys.readouterr().out
    args = ["cone", str(dest), "--ra", "45.2", "--dec", "29.8", "--radius-arcsec", "600"]
    assert main([*args, "--out", str(tmp_path / "c.csv")]) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "column 'lc': it is nested" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())
    assert main([*args, "--out", str(tmp_path / "c.parquet")]) == 0
    got = pq.read_table(tmp_path / "c.parquet")
    assert got.schema.field("sources").type == open_catalog(dest).schema.field("sources").type
    assert np.array_equal(np.sort(got.column("id").to_numpy()), _brute(df, 45.2, 29.8, 600.0))
