"""``proxcompute crossmatch``: files and catalogs in and out, one-line errors."""

import pandas as pd
import pytest

import proxcompute as pc
from proxcompute.cli import main


def test_target_file_x_catalog_to_parquet_and_catalog(tmp_path, survey_catalog, targets):
    targets.to_csv(tmp_path / "targets.csv", index=False)
    out = tmp_path / "matches.parquet"
    assert main(["crossmatch", str(tmp_path / "targets.csv"), str(survey_catalog), "--radius-arcsec", "5",
                 "--out", str(out)]) == 0
    from_file = pd.read_parquet(out)
    expected = pc.crossmatch(targets, pc.open_catalog(survey_catalog), radius_arcsec=5).compute()
    assert sorted(from_file.tid_targets) == sorted(expected.tid_targets)
    assert main(["crossmatch", str(tmp_path / "targets.csv"), str(survey_catalog), "--radius-arcsec", "5",
                 "--how", "all", "--workers", "1", "--out", str(tmp_path / "matched")]) == 0
    cat = pc.open_catalog(tmp_path / "matched")
    assert cat.count() >= len(expected)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--radius-arcsec", "0"], "radius_arcsec must be > 0"),
        (["--radius-arcsec", "5", "--n-neighbors", "0"], "n_neighbors"),
        (["--radius-arcsec", "60"], "--ensure-margin"),
        (["--radius-arcsec", "5", "--how", "outer"], "how must be one of"),
    ],
)
def test_errors(tmp_path, survey_catalog, targets, extra, message, capsys):
    targets.to_csv(tmp_path / "t.csv", index=False)
    code = main(["crossmatch", str(tmp_path / "t.csv"), str(survey_catalog), *extra, "--out", str(tmp_path / "o.csv")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()


def test_missing_and_existing_paths(tmp_path, survey_catalog, capsys):
    assert main(["crossmatch", str(tmp_path / "nope.csv"), str(survey_catalog), "--radius-arcsec", "1",
                 "--out", str(tmp_path / "o.csv")]) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "o.csv").write_text("keep me")
    assert main(["crossmatch", str(survey_catalog), str(survey_catalog), "--radius-arcsec", "1",
                 "--out", str(tmp_path / "o.csv")]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "o.csv").read_text() == "keep me"
