"""The command line: the happy paths and one-line errors with non-zero exit codes."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from proxcompute.cli import main
from proxcompute.synthetic import generate_catalog

N_ROWS = 20_000


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """A small catalog ingested through the CLI from a CSV file."""
    root = tmp_path_factory.mktemp("cli")
    df = generate_catalog(N_ROWS, seed=3)
    df.to_csv(root / "input.csv", index=False)
    code = main(
        ["ingest", str(root / "input.csv"), "--out", str(root / "survey"), "--max-rows", "2000", "--workers", "1"]
    )
    assert code == 0
    return root, df


def test_info_json_reads_metadata(survey, capsys):
    root, df = survey
    capsys.readouterr()
    assert main(["info", str(root / "survey"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "survey"
    assert info["rows"] == len(df)
    assert sum(info["orders"].values()) == info["partitions"] > 1
    assert info["margin"] is not None and info["margin"]["threshold_arcsec"] == 10.0
    assert "_healpix_29" in info["columns"]


def test_info_table(survey, capsys):
    root, _ = survey
    assert main(["info", str(root / "survey")]) == 0
    out = capsys.readouterr().out
    assert "partitions by order" in out and "mag" in out


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_cone_writes_file_equal_to_brute_force(survey, suffix, capsys):
    root, df = survey
    out = root / f"cone{suffix}"
    args = ["cone", str(root / "survey"), "--ra", "45", "--dec", "30", "--radius-arcsec", "3600"]
    assert main([*args, "--columns", "id,ra,dec", "--out", str(out)]) == 0
    got = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert list(got.columns) == ["id", "ra", "dec"]
    expected = df.id[_separation_deg(df, 45.0, 30.0) <= 1.0]  # numpy, not the library's kernel
    assert len(expected) > 0
    assert np.array_equal(np.sort(got.id.to_numpy()), np.sort(expected.to_numpy()))


def _separation_deg(df, ra0, dec0):
    """Haversine separation (deg) of every row from (ra0, dec0), in plain numpy."""
    r1, d1, r2, d2 = map(np.radians, (df["ra"].to_numpy(), df["dec"].to_numpy(), ra0, dec0))
    return np.degrees(2 * np.arcsin(np.sqrt(np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2)))


def test_sql_group_by_in_a_cone_equals_pandas(survey, capsys):
    root, df = survey
    out = root / "groups.csv"
    q = ("SELECT flag, COUNT(*) AS n, AVG(mag) AS m FROM survey "
         "WHERE DISTANCE(POINT(ra, dec), POINT(45, 30)) < 2 AND mag < 21 GROUP BY flag ORDER BY flag")  # fmt: skip
    assert main(["sql", q, "--catalog-root", str(root), "--out", str(out)]) == 0
    got = pd.read_csv(out)
    sel = df[(_separation_deg(df, 45.0, 30.0) < 2) & (df["mag"] < 21)]
    want = sel.groupby("flag").agg(n=("mag", "size"), m=("mag", "mean")).reset_index()
    assert len(want) > 1
    np.testing.assert_array_equal(got["flag"], want["flag"])
    np.testing.assert_array_equal(got["n"], want["n"])
    np.testing.assert_allclose(got["m"], want["m"], rtol=1e-12)


def test_cone_preview(survey, capsys):
    root, _ = survey
    assert main(["cone", str(root / "survey"), "--ra", "45", "--dec", "30", "--radius-arcsec", "600"]) == 0
    assert "rows" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cone", "{root}/survey", "--ra", "1", "--dec", "1", "--radius-arcsec", "0"], "radius_arcsec must be > 0"),
        (["cone", "{root}/survey", "--ra", "1", "--dec", "95", "--radius-arcsec", "5"], "dec must be within"),
        (["cone", "{root}/nope", "--ra", "1", "--dec", "1", "--radius-arcsec", "5"], "does not exist"),
        (["cone", "{root}/survey", "--ra", "1", "--dec", "1", "--radius-arcsec", "5", "--columns", "magg"], "Did you mean 'mag'"),
        (["cone", "{root}/survey", "--ra", "1", "--dec", "1", "--radius-arcsec", "5", "--out", "x.txt"], ".parquet or .csv"),
        (["ingest", "{root}/input.csv", "--out", "{root}/survey"], "already exists"),
        (["ingest", "{root}/input.csv", "--out", "{root}/other", "--ra-column", "RA"], "'RA' not found"),
        (["ingest", "{root}/missing.csv", "--out", "{root}/other"], "missing.csv"),
        (["info", "{root}/input.csv"], "does not exist|not a catalog"),
    ],
)
def test_user_errors_are_one_line(survey, args, message, capsys):
    root, _ = survey
    code = main([a.format(root=root) for a in args])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    import re

    assert re.search(message, " ".join(err.split())), err
    assert not (root / "other").exists()


def test_console_script_has_no_traceback(survey):
    root, _ = survey
    proc = subprocess.run(
        [sys.executable, "-m", "proxcompute.cli", "cone", str(root / "survey"), "--ra", "abc", "--dec", "1",
         "--radius-arcsec", "5"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "--ra" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "proxcompute.cli", "cone", str(root / "survey"), "--ra", "1", "--dec", "-91",
         "--radius-arcsec", "5"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "dec" in proc.stderr


def test_ingest_progress_shows_rows_per_second_and_time_left(tmp_path, capsys, monkeypatch):
    """Every ingest stage draws a bar; those whose tasks count rows show rows/s, all show the time left."""
    import re

    monkeypatch.setenv("PROXCOMPUTE_PROGRESS", "1")
    generate_catalog(5_000, seed=4).to_csv(tmp_path / "input.csv", index=False)
    capsys.readouterr()
    args = ["ingest", str(tmp_path / "input.csv"), "--out", str(tmp_path / "s"), "--max-rows", "1000", "--workers", "1"]
    assert main(args) == 0
    stages = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ingest: ")]
    assert len(stages) >= 3, stages
    assert all(re.search(r"elapsed, \d+:\d\d:\d\d left$", line) for line in stages), stages
    scan = [line for line in stages if line.startswith("ingest: scan")]
    assert scan and re.search(r"\d(\.\d)?[kMG]? rows/s", scan[0]), stages
