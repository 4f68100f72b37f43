"""TOPCAT's TAP client, as STILTS runs it, against a real `proxcompute serve` (docs/howto/topcat.md).

``stilts tapquery`` synchronous and asynchronous, ``stilts tapresume`` on a job submitted over
plain HTTP, and an upload join. Each VOTable STILTS writes is read back with astropy and must
equal the same ADQL run in-process by ``proxcompute.sql`` on the catalog files, the VOTable the
service itself returns, and a brute-force answer (astropy separations over every row). The sky
has a dense cluster, crowds at both poles and along RA 0/360, and a string column.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import astropy.units as u
import httpx
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord, search_around_sky
from astropy.table import Table
from tap_server import running_server

import proxcompute as pc
from proxcompute.catalog import from_dataframe
from proxcompute.synthetic import generate_catalog

pytestmark = pytest.mark.timeout(900)
COLS = ["id", "ra", "dec", "mag", "flag", "name"]


def _sky(n: int = 20_000, seed: int = 61) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = generate_catalog(n, seed=seed)
    k = 400
    extra = np.vstack(
        [
            np.column_stack([rng.uniform(0, 360, k), 90.0 - rng.uniform(0, 2.0, k)]),  # north cap
            np.column_stack([rng.uniform(0, 360, k), -90.0 + rng.uniform(0, 2.0, k)]),  # south cap
            np.column_stack([rng.uniform(-1.5, 1.5, k) % 360.0, rng.uniform(5, 15, k)]),  # across RA 0
            np.column_stack([rng.normal(120.0, 0.2, k), rng.normal(-30.0, 0.2, k)]),  # a cluster
        ]
    )
    more = pd.DataFrame(
        {
            "id": np.arange(n, n + len(extra), dtype=np.int64),
            "ra": extra[:, 0],
            "dec": extra[:, 1],
            "mag": rng.normal(19.0, 1.5, len(extra)),
            "color": rng.normal(0.8, 0.3, len(extra)).astype(np.float32),
            "flag": rng.integers(0, 4, len(extra), dtype=np.int16),
        }
    )
    df = pd.concat([base, more], ignore_index=True)
    df["name"] = np.where(df["flag"] == 0, "star", np.where(df["flag"] == 1, "galaxy", "qso"))
    return df


@pytest.fixture(scope="module")
def sky() -> pd.DataFrame:
    return _sky()


@pytest.fixture(scope="module")
def served(sky, tmp_path_factory):
    root = tmp_path_factory.mktemp("stiltsroot")
    from_dataframe(sky, name="gaia", max_rows=3_000).to_catalog(root / "survey" / "gaia")
    with running_server(root) as url:
        yield url, root


def _run(stilts: str, *args: str, cwd: Path) -> str:
    proc = subprocess.run([stilts, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"stilts {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _votable(path: Path) -> Table:
    return Table.read(path, format="votable")


def _frame(table: Table, key: str = "id") -> pd.DataFrame:
    df = table.to_pandas()
    for col in df.columns:  # VOTable char columns come back as bytes or str depending on the writer
        if df[col].dtype == object:
            df[col] = df[col].map(lambda v: v.decode() if isinstance(v, bytes) else v)
    return df.sort_values(key, ignore_index=True)


def _within(df: pd.DataFrame, ra_deg: float, dec_deg: float, radius_deg: float) -> pd.DataFrame:
    """Brute force: the rows whose astropy separation from the centre is at most the radius."""
    sep = SkyCoord(df["ra"].to_numpy() * u.deg, df["dec"].to_numpy() * u.deg).separation(
        SkyCoord(ra_deg * u.deg, dec_deg * u.deg)
    )
    return df[sep.deg <= radius_deg]


def _cone(ra_deg: float, dec_deg: float, radius_deg: float, cols: str = ", ".join(COLS)) -> str:
    return (
        f"SELECT {cols} FROM survey.gaia "
        f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra_deg}, {dec_deg}, {radius_deg}))"
    )


def _assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want) > 0
    for col in want.columns:
        if want[col].dtype.kind in "fc":
            np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy(), err_msg=col)
        else:
            assert got[col].tolist() == want[col].tolist(), col


def test_sync_cone_across_ra_zero_equals_our_answer(stilts, served, sky, tmp_path):
    url, root = served
    adql = _cone(0.3, 10.0, 2.0)
    _run(stilts, "tapquery", f"tapurl={url}", "sync=true", f"adql={adql}", "ofmt=votable", "out=cone.vot", cwd=tmp_path)
    table = _votable(tmp_path / "cone.vot")
    got = _frame(table)

    ours = pc.sql(adql, catalog_root=root).compute().sort_values("id", ignore_index=True)
    _assert_same_rows(got, ours)
    brute = _within(sky, 0.3, 10.0, 2.0)
    assert got["id"].tolist() == sorted(brute["id"]), "not the rows within 2 deg (astropy)"
    assert (got["ra"] < 5).any() and (got["ra"] > 355).any(), "the cone must straddle RA 0"

    # the service's own VOTable for the same query: STILTS kept its columns, types, units and values
    r = httpx.post(f"{url}/sync", data={"LANG": "ADQL", "QUERY": adql}, timeout=120)
    assert r.status_code == 200
    (tmp_path / "direct.vot").write_bytes(r.content)
    direct = _votable(tmp_path / "direct.vot")
    assert table.colnames == direct.colnames == COLS
    for col in COLS:
        assert table[col].unit == direct[col].unit, col
        assert table[col].dtype.kind == direct[col].dtype.kind, col
    _assert_same_rows(got, _frame(direct))


def test_async_aggregate_over_the_north_cap(stilts, served, sky, tmp_path):
    url, root = served
    adql = (
        "SELECT flag, COUNT(*) AS n, AVG(mag) AS mean_mag FROM survey.gaia "
        "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 30, 90, 1.5)) GROUP BY flag ORDER BY flag"
    )
    _run(stilts, "tapquery", f"tapurl={url}", "sync=false", f"adql={adql}", "ofmt=votable", "out=cap.vot", cwd=tmp_path)
    got = _frame(_votable(tmp_path / "cap.vot"), key="flag")

    ours = pc.sql(adql, catalog_root=root).compute().sort_values("flag", ignore_index=True)
    assert got["flag"].tolist() == ours["flag"].tolist()
    np.testing.assert_array_equal(got["n"].to_numpy(), ours["n"].to_numpy())
    np.testing.assert_array_equal(got["mean_mag"].to_numpy(), ours["mean_mag"].to_numpy())

    brute = _within(sky, 30.0, 90.0, 1.5).groupby("flag")["mag"].agg(["size", "mean"]).reset_index()
    assert got["flag"].tolist() == brute["flag"].tolist()
    np.testing.assert_array_equal(got["n"].to_numpy(), brute["size"].to_numpy())
    np.testing.assert_allclose(got["mean_mag"].to_numpy(), brute["mean"].to_numpy(), rtol=1e-12)
    assert brute["size"].sum() > 250, "the cap holds most of the generated polar crowd (400 rows above dec 88)"


def test_tapresume_fetches_a_job_submitted_elsewhere(stilts, served, sky, tmp_path):
    url, root = served
    adql = _cone(120.0, -30.0, 0.5)  # the dense cluster
    r = httpx.post(f"{url}/async", data={"LANG": "ADQL", "QUERY": adql, "PHASE": "RUN"}, timeout=60)
    assert r.status_code == 303, r.text
    job_url = r.headers["location"]
    assert job_url.startswith(f"{url}/async/")

    _run(stilts, "tapresume", f"joburl={job_url}", "delete=finished", "ofmt=votable", "out=resumed.vot", cwd=tmp_path)
    got = _frame(_votable(tmp_path / "resumed.vot"))
    ours = pc.sql(adql, catalog_root=root).compute().sort_values("id", ignore_index=True)
    _assert_same_rows(got, ours)
    assert got["id"].tolist() == sorted(_within(sky, 120.0, -30.0, 0.5)["id"])
    assert httpx.get(job_url, timeout=30).status_code == 404, "delete=finished removed the job"


def test_upload_join_matches_astropy(stilts, served, sky, tmp_path):
    url, _ = served
    rng = np.random.default_rng(5)
    picks = sky.iloc[rng.choice(len(sky), 40, replace=False)]
    targets = pd.DataFrame(
        {
            "name": [f"t{i}" for i in range(43)],
            "ra": [*picks["ra"], 359.99, 45.0, 0.0],  # the last three: RA 0/360 and the north pole
            "dec": [*picks["dec"], 10.0, 89.5, 90.0],
        }
    )
    targets.to_csv(tmp_path / "mine.csv", index=False)
    radius_deg = 0.05
    adql = (
        "SELECT m.name, s.id FROM TAP_UPLOAD.mine AS m JOIN survey.gaia AS s "
        f"ON 1 = CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', m.ra, m.dec, {radius_deg}))"
    )
    _run(
        stilts, "tapquery", f"tapurl={url}", "sync=true", "nupload=1", "upload1=mine.csv", "ufmt1=csv",
        "upname1=mine", f"adql={adql}", "ofmt=votable", "out=near.vot", cwd=tmp_path,
    )  # fmt: skip
    got = _frame(_votable(tmp_path / "near.vot"))
    got_pairs = sorted(zip(got["name"], got["id"], strict=True))

    t = SkyCoord(targets["ra"].to_numpy() * u.deg, targets["dec"].to_numpy() * u.deg)
    s = SkyCoord(sky["ra"].to_numpy() * u.deg, sky["dec"].to_numpy() * u.deg)
    it, isky, _, _ = search_around_sky(t, s, radius_deg * u.deg)
    want_pairs = sorted(zip(targets["name"].to_numpy()[it], sky["id"].to_numpy()[isky], strict=True))
    assert got_pairs == want_pairs
    assert {name for name, _ in got_pairs} >= set(targets["name"][:40]), "every picked row finds itself"
