"""SQL over stored catalogs: names under a catalog root, margins in joins, results, the CLI."""

import subprocess
import sys
import warnings

import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.io.votable import parse_single_table

import proxcompute
from proxcompute.cli import main
from proxcompute.errors import SqlError
from proxcompute.ingest import ingest
from proxcompute.sql import CatalogRegistry, SqlTruncatedWarning
from proxcompute.synthetic import generate_catalog


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """ROOT/survey/gaia (an ingested collection with a 10" margin) and ROOT/targets (a plain catalog)."""
    base = tmp_path_factory.mktemp("sqlroot")
    df = generate_catalog(40_000, seed=21)
    (base / "in").mkdir()
    df.to_parquet(base / "in" / "gaia.parquet")
    ingest([str(base / "in" / "gaia.parquet")], base / "root" / "survey" / "gaia_dr3", name="gaia",
           max_rows=3_000, margin_arcsec=10.0, workers=1)  # fmt: skip
    targets = df.sample(3_000, random_state=2)[["id", "ra", "dec"]].rename(columns={"id": "tid"})
    targets["ra"] = (targets["ra"] + 1.0 / 3600) % 360
    proxcompute.from_dataframe(targets, name="targets", max_rows=1_000).to_catalog(base / "root" / "targets")
    return base / "root", df, targets


def test_registry_names_catalogs_by_directory_name_and_own_name(root):
    reg = CatalogRegistry(catalog_root=root[0])
    assert reg.names() == ["survey.gaia", "survey.gaia_dr3", "targets"]
    assert reg.lookup("GAIA").qualified == "survey.gaia"
    assert reg.lookup("gaia_dr3", "survey").name == "gaia_dr3"
    assert reg.lookup("nope") is None


@pytest.mark.parametrize("name", ["survey.gaia", "gaia", "Survey.Gaia", "survey.gaia_dr3"])
def test_query_by_name_and_schema(root, name):
    base, df, _ = root
    out = proxcompute.sql(f"SELECT COUNT(*) AS n FROM {name} WHERE mag < 20", catalog_root=base).compute()
    assert int(out["n"][0]) == int((df["mag"] < 20).sum())


def test_unknown_table_suggests_and_lists(root):
    with pytest.raises(SqlError) as info:
        proxcompute.sql("SELECT ra FROM survey.gaai", catalog_root=root[0])
    err = info.value
    assert err.phase == "unknown table" and (err.line, err.column) == (1, 16)
    assert "Did you mean 'survey.gaia'?" in str(err) and "targets" in str(err)


def test_positional_join_uses_the_margin_and_matches_brute_force(root):
    base, df, targets = root
    q = (
        "SELECT t.tid, g.id, DISTANCE(POINT(t.ra, t.dec), POINT(g.ra, g.dec)) AS d FROM targets AS t "
        "JOIN survey.gaia AS g ON 1 = CONTAINS(POINT('ICRS', t.ra, t.dec), CIRCLE('ICRS', g.ra, g.dec, 5.0/3600))"
    )
    res = proxcompute.sql(q, catalog_root=base)
    assert "right margin" in res.explain()
    out = res.compute()
    import astropy.units as u
    from astropy.coordinates import SkyCoord, search_around_sky

    tc = SkyCoord(targets["ra"].to_numpy(), targets["dec"].to_numpy(), unit="deg")
    gc = SkyCoord(df["ra"].to_numpy(), df["dec"].to_numpy(), unit="deg")
    it, ig, _, _ = search_around_sky(tc, gc, 5 * u.arcsec)
    want = set(zip(targets["tid"].to_numpy()[it].tolist(), df["id"].to_numpy()[ig].tolist(), strict=True))
    assert len(want) >= 3_000
    assert set(zip(out["tid"].tolist(), out["id"].tolist(), strict=True)) == want


def test_maxrec_truncates_and_says_so(root):
    res = proxcompute.sql("SELECT id FROM gaia WHERE mag < 22", catalog_root=root[0], maxrec=100)
    with pytest.warns(SqlTruncatedWarning, match="maxrec=100"):
        out = res.compute()
    assert len(out) == 100 and res.overflow is True
    small = proxcompute.sql("SELECT TOP 5 id FROM gaia", catalog_root=root[0], maxrec=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(small.compute()) == 5
    assert small.overflow is False


def test_iter_batches_streams_the_same_rows(root):
    base, df, _ = root
    res = proxcompute.sql("SELECT id, mag + 1 AS m1 FROM gaia WHERE color > 0.5", catalog_root=base)
    batches = list(res.iter_batches())
    assert len(batches) > 1
    got = pd.concat([b.to_pandas() for b in batches], ignore_index=True)
    pd.testing.assert_frame_equal(got, res.compute())
    assert sorted(got["id"]) == sorted(df.loc[df["color"] > 0.5, "id"])


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id, ra, dec, mag FROM gaia WHERE CONTAINS(POINT(ra, dec), CIRCLE(45, 30, 5)) = 1 AND mag < 21",
        "SELECT id, ra, dec, mag * 2 AS m2 FROM gaia WHERE mag + 0 < 21",
    ],
)
def test_to_catalog_writes_a_queryable_catalog(root, tmp_path, query):
    base, _df, _ = root
    res = proxcompute.sql(query, catalog_root=base)
    cat = res.to_catalog(tmp_path / "out", name="bright")
    assert cat.name == "bright"
    want = res.compute().sort_values("id", ignore_index=True)
    got = cat.compute().sort_values("id", ignore_index=True)[list(want.columns)]
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    again = proxcompute.sql("SELECT COUNT(*) AS n FROM bright", {"bright": tmp_path / "out"}).compute()
    assert int(again["n"][0]) == len(want)


def test_to_catalog_needs_coordinates(root, tmp_path):
    res = proxcompute.sql("SELECT flag, COUNT(*) AS n FROM gaia GROUP BY flag", catalog_root=root[0])
    with pytest.raises(SqlError, match="coordinate columns"):
        res.to_catalog(tmp_path / "agg")
    assert not (tmp_path / "agg").exists()


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_preview(root, capsys):
    q = "SELECT TOP 3 id, mag FROM survey.gaia ORDER BY mag"
    assert main(["sql", q, "--catalog-root", str(root[0])]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 rows") and "mag" in out


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".vot"])
def test_cli_writes_each_format(root, tmp_path, suffix, capsys):
    base, _df, _ = root
    out = tmp_path / f"res{suffix}"
    q = "SELECT id, ra, dec FROM gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 45, 30, 3))"
    assert main(["sql", q, "--catalog-root", str(base), "--out", str(out)]) == 0
    if suffix == ".parquet":
        got = pq.read_table(out).to_pandas()
    elif suffix == ".vot":
        got = parse_single_table(str(out)).to_table().to_pandas()
    else:
        got = pd.read_csv(out, sep="\t" if suffix == ".tsv" else ",")
    want = proxcompute.sql(q, catalog_root=base).compute()
    assert len(want) > 50
    assert sorted(got["id"].tolist()) == sorted(want["id"].tolist())
    assert not list(tmp_path.glob(".*tmp*"))


def test_cli_catalog_option_and_explain(root, capsys):
    base, _, _ = root
    q = "SELECT id FROM g WHERE CONTAINS(POINT(ra, dec), CIRCLE(45, 30, 0.5)) = 1"
    assert main(["sql", q, "--catalog", f"g={base / 'survey' / 'gaia_dr3'}", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "mode: catalog" in out and "region: Cone(ra=45, dec=30, radius_arcsec=1800)" in out


def test_cli_error_is_one_line_with_caret_and_exit_1(root):
    q = "SELECT id, phot_g_mean_mag\nFROM gaia"
    proc = subprocess.run(
        [sys.executable, "-m", "proxcompute.cli", "sql", q, "--catalog-root", str(root[0])],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: SQL unknown column error at line 1, column 12")
    assert lines[1].strip() == "SELECT id, phot_g_mean_mag"
    assert lines[2].index("^") == lines[1].index("phot_g_mean_mag")


def test_cli_refuses_writes_and_missing_catalogs(root, tmp_path, capsys):
    assert main(["sql", f"COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'", "--catalog-root", str(root[0])]) == 1
    assert "refused" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    assert main(["sql", "SELECT 1"]) == 1
    assert "--catalog-root" in capsys.readouterr().err
    assert main(["sql", "SELECT id FROM gaia", "--catalog", "gaia"]) == 1
    assert "NAME=PATH" in capsys.readouterr().err


def test_streaming_stops_at_maxrec_without_computing_everything(root):
    """iter_batches reads a few partitions at a time and stops once maxrec rows are out."""
    from proxcompute import execute
    from proxcompute.sql.result import STREAM_CHUNK_PARTITIONS

    base, df, _ = root
    res = proxcompute.sql("SELECT id, mag + 1 AS m FROM gaia", catalog_root=base, maxrec=10)
    n_parts = len(res.partitions)
    assert n_parts > STREAM_CHUNK_PARTITIONS
    obs = execute.TaskObserver()
    with pytest.warns(SqlTruncatedWarning), execute.observe(obs):
        rows = sum(b.num_rows for b in res.iter_batches())
    assert rows == 10 and res.overflow is True
    assert obs.done <= STREAM_CHUNK_PARTITIONS < n_parts
    whole = proxcompute.sql("SELECT id FROM gaia WHERE mag < 21", catalog_root=base)
    batches = list(whole.iter_batches())
    assert sum(b.num_rows for b in batches) == int((df["mag"] < 21).sum()) and whole.overflow is False


def test_to_astropy_keeps_nulls_masked():
    """SQL NULLs become masked entries in the astropy Table (not NaN or 0 fill values)."""
    from proxcompute.sql import sql
    from proxcompute.synthetic import generate_catalog

    cat = generate_catalog(2_000, seed=3)
    q = "SELECT id, CASE WHEN mag < 18 THEN id END AS bright_id FROM s ORDER BY id"
    t = sql(q, {"s": cat}).to_astropy()
    df = cat.sort_values("id")
    expected_null = (df["mag"] >= 18).to_numpy()
    assert t["bright_id"].mask.tolist() == expected_null.tolist()
    assert t["bright_id"][~expected_null].tolist() == df["id"][~expected_null].tolist()
