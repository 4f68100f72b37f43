"""Pipeline `map` and `skymap` steps: results equal pandas/healpy, resumable by partition, clean CLI errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import healpy
import numpy as np
import pytest

import proxcompute as pc
from proxcompute.cli import main
from proxcompute.pipeline import PipelineError, run_pipeline
from proxcompute.synthetic import generate_catalog

USER_MODULE = '''
import os

import numpy as np


def colours(df):
    out = df.assign(r=df["mag"] - df["color"], g_r=df["color"])
    return out[out["g_r"] > 0.5]


def fails_in_one_partition(df, pixel):
    marker = os.path.join(os.path.dirname(__file__), "FAIL_AT")
    if os.path.exists(marker) and open(marker).read() == f"{pixel.order}/{pixel.pixel}":
        raise RuntimeError("bad calibration in this pixel")
    return colours(df)
'''

PIPELINE = """
name: user-code
steps:
  - name: survey
    ingest: {inputs: [raw.parquet], out: catalogs/survey, max_rows: 1500, margin_arcsec: 10}
  - name: colours
    map: {catalog: catalogs/survey, function: "mycode.photometry:FUNC", include_pixel: INCLUDE_PIXEL, out: catalogs/colours}
  - name: density
    skymap: {catalog: catalogs/colours, order: 5, aggregates: {n: count, mean_r: [r, mean]}, out: maps/density.fits}
"""


def colours_ref(df):
    out = df.assign(r=df["mag"] - df["color"], g_r=df["color"])
    return out[out["g_r"] > 0.5]


@pytest.fixture
def project(tmp_path):
    for name in [m for m in sys.modules if m == "mycode" or m.startswith("mycode.")]:
        del sys.modules[name]  # each test has its own mycode/ next to its pipeline
    df = generate_catalog(30_000, seed=21)
    df.to_parquet(tmp_path / "raw.parquet", index=False)
    (tmp_path / "mycode").mkdir()
    (tmp_path / "mycode" / "__init__.py").write_text("")
    (tmp_path / "mycode" / "photometry.py").write_text(USER_MODULE)
    return tmp_path, df


def _write(tmp, func="colours"):
    text = PIPELINE.replace("FUNC", func).replace("INCLUDE_PIXEL", "true" if func != "colours" else "false")
    (tmp / "pipe.yaml").write_text(text)
    return tmp / "pipe.yaml"


def _pixels(df, order):
    return healpy.ang2pix(2**order, df["ra"].to_numpy(), df["dec"].to_numpy(), nest=True, lonlat=True)


def test_map_and_skymap_steps_equal_pandas_and_healpy(project, capsys):
    tmp, df = project
    assert main(["run", str(_write(tmp))]) == 0
    assert "[done] density (skymap)" in capsys.readouterr().err
    want = colours_ref(df)
    got = pc.open_catalog(tmp / "catalogs" / "colours").compute()
    assert sorted(got["id"]) == sorted(want["id"])
    np.testing.assert_allclose(got.sort_values("id")["r"], want.sort_values("id")["r"])
    n, mean_r = healpy.read_map(tmp / "maps" / "density.fits", field=(0, 1), nest=True)
    np.testing.assert_array_equal(n, np.bincount(_pixels(want, 5), minlength=12 * 4**5))
    ref = want.assign(pix=_pixels(want, 5)).groupby("pix")["r"].mean()
    np.testing.assert_allclose(mean_r[ref.index], ref.to_numpy(), rtol=1e-12)
    assert (mean_r[n == 0] == healpy.UNSEEN).all()
    png = (tmp / "maps" / "density.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_failed_map_step_names_the_partition_and_resumes_by_partition(project):
    tmp, df = project
    path = _write(tmp, func="fails_in_one_partition")
    run_pipeline(path)  # a first full run tells which partitions there are
    pixels = pc.open_catalog(tmp / "catalogs" / "survey").partitions
    victim = pixels[-1]  # the last partition: the ones before it are written first
    (tmp / "mycode" / "FAIL_AT").write_text(f"{victim.order}/{victim.pixel}")
    with pytest.raises(PipelineError, match=rf"Norder={victim.order}/Npix={victim.pixel}.*bad calibration") as err:
        run_pipeline(path)
    assert "--resume" in str(err.value) and "raise RuntimeError" in str(err.value)
    staged = list((tmp / "catalogs").glob(".colours.resume/**/Npix=*.parquet"))
    assert staged, "partitions finished before the failure are kept"
    mtimes = {p: p.stat().st_mtime_ns for p in staged}
    (tmp / "mycode" / "FAIL_AT").unlink()
    results = run_pipeline(path, resume=True)
    assert [r.status for r in results] == ["skipped", "done", "done"]
    for p, m in mtimes.items():
        kept = tmp / "catalogs" / "colours" / p.relative_to(tmp / "catalogs" / ".colours.resume")
        assert kept.stat().st_mtime_ns == m
    assert pc.open_catalog(tmp / "catalogs" / "colours").count() == len(colours_ref(df))


def test_interrupted_skymap_merges_the_kept_partitions(project):
    """Resume proof: after the failure, the partitions already aggregated are made unreadable, yet
    the resumed map is complete (their kept partial states are merged, not recomputed)."""
    tmp, df = project
    path = _write(tmp)
    run_pipeline(path)
    files = sorted(f for f in (tmp / "catalogs" / "colours").rglob("Npix=*.parquet"))
    victim = files[-1]
    good = victim.read_bytes()
    victim.write_bytes(good[:64])
    (tmp / "maps" / "density.fits").unlink()  # the map step must run again
    with pytest.raises(PipelineError, match="cannot read partition file"):
        run_pipeline(path, resume=True)  # survey and colours are skipped, the skymap fails
    kept = list((tmp / "maps").glob(".density.fits.resume/_progress/*.partial.pkl"))
    assert 0 < len(kept) < len(files)
    victim.write_bytes(good)
    saved = {}
    for k in kept:  # these partitions cannot be read any more: only their kept states can count
        order, pix = (int(x.split("=")[1]) for x in k.name.split(".")[0].split("_"))
        f = tmp / "catalogs" / "colours" / "dataset" / f"Norder={order}" / f"Dir={pix // 10000 * 10000}" / f"Npix={pix}.parquet"
        saved[f] = f.read_bytes()
        f.write_bytes(saved[f][:64])
    results = run_pipeline(path, resume=True)
    assert [r.status for r in results] == ["skipped", "skipped", "done"]
    n = healpy.read_map(tmp / "maps" / "density.fits", nest=True)
    np.testing.assert_array_equal(n, np.bincount(_pixels(colours_ref(df), 5), minlength=12 * 4**5))
    assert not (tmp / "maps" / ".density.fits.resume").exists()


@pytest.mark.parametrize(
    ("function", "match"),
    [
        ("mycode.photometry", "package.module:callable"),
        ("mycode.nothere:colours", "cannot import 'mycode.nothere'"),
        ("mycode.photometry:nothere", "has no 'nothere'"),
        ("mycode.photometry:np", "not callable"),
    ],
)
def test_bad_function_is_a_clean_cli_error(project, function, match):
    tmp, _ = project
    (tmp / "p.yaml").write_text(textwrap.dedent(f"""
        steps:
          - map: {{catalog: raw.parquet, function: "{function}", out: out.parquet}}
    """))
    proc = subprocess.run([sys.executable, "-m", "proxcompute.cli", "run", str(tmp / "p.yaml")], capture_output=True,
                          text=True, cwd=tmp)  # fmt: skip
    assert proc.returncode != 0
    assert match in proc.stderr and "Traceback" not in proc.stderr


def test_bad_skymap_settings_are_clean_errors(project):
    tmp, _ = project
    for settings, match in (
        ("{catalog: raw.parquet, order: 31, out: m.fits}", "outside 0..29"),
        ("{catalog: raw.parquet, order: 3, aggregates: {m: [magg, mean]}, out: m.fits}", "magg"),
        ("{catalog: raw.parquet, out: m.fits}", "missing required setting"),
    ):
        (tmp / "s.yaml").write_text(f"steps:\n  - skymap: {settings}\n")
        with pytest.raises(PipelineError, match=match):
            run_pipeline(tmp / "s.yaml")
        assert not (tmp / "m.fits").exists()
