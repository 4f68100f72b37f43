"""`proxcompute run PIPELINE.yaml`: steps run as one job, results equal the API's, failures resume."""

import json
import textwrap

import numpy as np
import pandas as pd
import pytest

import proxcompute as pc
from proxcompute.cli import main
from proxcompute.pipeline import PipelineError, load_pipeline, run_pipeline
from proxcompute.synthetic import generate_catalog

PIPELINE = """
name: demo-pipe
steps:
  - name: survey
    ingest: {inputs: [raw/*.parquet], out: catalogs/survey, max_rows: 2000, margin_arcsec: 10}
  - name: match
    crossmatch: {left: targets.csv, right: catalogs/survey, radius_arcsec: 2, out: catalogs/matches}
  - name: bright
    sql:
      query: "SELECT id_targets, id_survey, _dist_arcsec FROM matches WHERE mag_survey < {cut}"
      catalogs: {matches: catalogs/matches}
      out: results/bright.parquet
  - name: export
    write: {catalog: catalogs/matches, where: "mag_survey < 21", columns: [id_targets, id_survey], out: results/m.csv}
"""


@pytest.fixture
def project(tmp_path):
    df = generate_catalog(40_000, seed=12)
    (tmp_path / "raw").mkdir()
    df.iloc[:20_000].to_parquet(tmp_path / "raw" / "a.parquet")
    df.iloc[20_000:].to_parquet(tmp_path / "raw" / "b.parquet")
    pick = df.sample(2_000, random_state=1)
    targets = pd.DataFrame({"id": np.arange(2_000), "ra": pick["ra"].to_numpy() + 0.5 / 3600, "dec": pick["dec"].to_numpy()})
    targets.to_csv(tmp_path / "targets.csv", index=False)
    return tmp_path, df, targets


def _write(tmp, cut="20"):
    (tmp / "pipe.yaml").write_text(PIPELINE.replace("{cut}", cut))
    return tmp / "pipe.yaml"


def test_pipeline_results_equal_the_api(project, capsys):
    tmp, df, targets = project
    assert main(["run", str(_write(tmp))]) == 0
    out = capsys.readouterr().out
    assert "survey" in out and "done" in out
    survey = pc.open_catalog(tmp / "catalogs" / "survey")
    assert len(survey) == len(df)
    want = pc.crossmatch(targets, survey, radius_arcsec=2).compute()
    matches = pc.open_catalog(tmp / "catalogs" / "matches")
    assert matches.count() == len(want)
    bright = pd.read_parquet(tmp / "results" / "bright.parquet")
    assert sorted(bright["id_targets"]) == sorted(want.loc[want["mag_survey"] < 20, "id_targets"])
    exported = pd.read_csv(tmp / "results" / "m.csv")
    assert list(exported.columns) == ["id_targets", "id_survey"]
    assert len(exported) == int((want["mag_survey"] < 21).sum())
    # and against astropy, independent of the library: each target's nearest survey row within 2"
    from astropy.coordinates import SkyCoord

    idx, sep, _ = SkyCoord(targets["ra"], targets["dec"], unit="deg").match_to_catalog_sky(
        SkyCoord(df["ra"], df["dec"], unit="deg")
    )
    near = sep.arcsec <= 2
    ref = pd.DataFrame({"id_targets": targets["id"][near], "id_survey": df["id"].to_numpy()[idx[near]],
                        "mag": df["mag"].to_numpy()[idx[near]]})  # fmt: skip
    got_pairs = set(zip(bright["id_targets"], bright["id_survey"], strict=True))
    assert got_pairs == set(zip(ref.loc[ref["mag"] < 20, "id_targets"], ref.loc[ref["mag"] < 20, "id_survey"], strict=True))
    assert len(got_pairs) > 100


def test_failure_then_resume_skips_finished_steps_and_partitions(project):
    tmp, _, _ = project
    path = _write(tmp, cut="nope_column")  # the sql step fails
    with pytest.raises(PipelineError, match=r"step .bright.*--resume"):
        run_pipeline(path)
    state = json.loads((tmp / ".proxcompute-run" / "demo-pipe.json").read_text())["steps"]
    assert state["survey"]["status"] == "done" and state["match"]["status"] == "done"
    assert state["bright"]["status"] == "failed"
    before = (tmp / "catalogs" / "matches" / "hats.properties").stat().st_mtime_ns
    results = run_pipeline(_write(tmp, cut="20"), resume=True)
    assert [r.status for r in results] == ["skipped", "skipped", "done", "done"]
    assert (tmp / "catalogs" / "matches" / "hats.properties").stat().st_mtime_ns == before


def test_interrupted_catalog_step_resumes_by_partition(project):
    """A crossmatch step that dies midway (here: an unreadable survey partition) continues where it stopped."""
    tmp, _, _ = project
    steps = tmp / "only.yaml"
    steps.write_text(textwrap.dedent("""
        name: two-steps
        steps:
          - name: survey
            ingest: {inputs: [raw/*.parquet], out: catalogs/survey, max_rows: 1000, margin_arcsec: 10}
          - name: match
            crossmatch: {left: catalogs/survey, right: catalogs/survey, radius_arcsec: 2, how: all, out: catalogs/pairs}
    """))
    # after the ingest, one survey partition becomes unreadable, so the crossmatch fails partway
    with pytest.raises(PipelineError, match="cannot read partition file"):
        run_pipeline(steps, on_step=lambda step, status: _break(tmp, step, status))
    staged = list((tmp / "catalogs").glob(".pairs.resume/**/Npix=*.parquet"))
    assert staged, "the partitions written before the failure are kept"
    mtimes = {p: p.stat().st_mtime_ns for p in staged}
    _restore(tmp)
    results = run_pipeline(steps, resume=True)
    assert [r.status for r in results] == ["skipped", "done"]
    for p, m in mtimes.items():
        kept = tmp / "catalogs" / "pairs" / p.relative_to(tmp / "catalogs" / ".pairs.resume")
        assert kept.stat().st_mtime_ns == m
    pairs = pc.open_catalog(tmp / "catalogs" / "pairs")
    survey = pc.open_catalog(tmp / "catalogs" / "survey")
    assert pairs.count() == survey.crossmatch(survey, 2, how="all").count()


_SAVED = {}


def _break(tmp, step, status):
    """After the ingest step, make the middle survey partition unreadable (and remember it)."""
    if step.name == "survey" and status == "done":
        files = sorted((tmp / "catalogs" / "survey").rglob("Npix=*.parquet"))
        files = [f for f in files if "_10arcs" not in str(f)]
        victim = files[len(files) // 2]
        _SAVED[victim] = victim.read_bytes()
        victim.write_bytes(_SAVED[victim][:64])


def _restore(tmp):
    for victim, data in _SAVED.items():
        victim.write_bytes(data)
    _SAVED.clear()


@pytest.mark.parametrize(
    "text, match",
    [
        ("steps: []", "non-empty list"),
        ("steps:\n  - frobnicate: {}", "exactly one of"),
        ("steps:\n  - ingest: {out: x}", "missing required setting"),
        ("steps:\n  - ingest: {inputs: a, out: x, speed: 11}", "unknown setting"),
        ("nme: x\nsteps:\n  - write: {catalog: a, out: b}", "unknown top-level"),
        ("steps: [", "not valid YAML"),
    ],
)
def test_bad_pipelines_are_named(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(PipelineError, match=match):
        load_pipeline(p)
    assert main(["run", str(p)]) == 1


def test_rerun_replaces_outputs_and_a_changed_step_reruns_the_ones_after_it(project):
    tmp, _, _ = project
    path = _write(tmp, cut="20")
    run_pipeline(path)
    again = run_pipeline(path)  # a fresh run (no --resume) replaces every output
    assert [r.status for r in again] == ["done"] * 4
    changed = run_pipeline(_write(tmp, cut="19"), resume=True)  # only the sql step changed ...
    assert [r.status for r in changed] == ["skipped", "skipped", "done", "done"]  # ... and what follows it
    bright = pd.read_parquet(tmp / "results" / "bright.parquet")
    matches = pc.open_catalog(tmp / "catalogs" / "matches").compute()
    assert len(bright) == int((matches["mag_survey"] < 19).sum())


def test_cli_prints_step_status_words(project, capsys):
    tmp, _, _ = project
    assert main(["run", str(_write(tmp))]) == 0
    err = capsys.readouterr().err
    assert "[start] survey (ingest)" in err and "[done] export (write)" in err
