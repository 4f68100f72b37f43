"""Proper-motion crossmatch: positions moved as astropy's apply_space_motion moves them, then
matched pair for pair as astropy's match_to_catalog_sky / search_around_sky match them.

The right survey (conftest) is at epoch 2016 with dense clusters, polar caps and an RA-wrap
strip, ingested with a 10" margin; the left catalogue is at 1991.25, built by moving survey
stars back in time (some by up to a few arcminutes: far beyond the margin).
"""

import warnings

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord, search_around_sky
from astropy.time import Time

from proxcompute import ColumnNotFoundError, PlanError, ProperMotion, crossmatch, from_dataframe, open_catalog
from proxcompute.cli import main
from proxcompute.ops.proper_motion import apply_space_motion
from proxcompute.sky import radec_to_healpix29
from proxcompute.storage import read_partition

FROM, TO = 1991.25, 2016.0
RADIUS = 1.0


def _astropy_move(ra, dec, pmra, pmdec, t0, t1):
    unknown = np.isnan(pmra) | np.isnan(pmdec)  # documented: no motion when either is unknown
    pmra, pmdec = np.where(unknown, 0.0, pmra), np.where(unknown, 0.0, pmdec)
    c = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, pm_ra_cosdec=np.nan_to_num(pmra) * u.mas / u.yr,
                 pm_dec=np.nan_to_num(pmdec) * u.mas / u.yr, obstime=Time(t0, format="jyear"))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ERFA warns about the distance it assumes
        m = c.apply_space_motion(new_obstime=Time(t1, format="jyear"))
    return m.ra.deg, m.dec.deg


@pytest.fixture(scope="module")
def old_epoch(survey_data):
    """Survey stars at 1991.25 (moved back from 2016), with a few NaN motions, plus noise stars."""
    rng = np.random.default_rng(11)
    n = 12_000
    pick = rng.choice(len(survey_data), n, replace=False)
    pick[:2000] = np.arange(2000)  # polar caps (the survey's first rows)
    pick[2000:3000] = np.arange(24_000, 25_000)  # RA-wrap strip
    s = survey_data.iloc[pick]
    pmra = rng.normal(0, 200, n)
    pmdec = rng.normal(0, 200, n)
    pmra[:300] = rng.uniform(-8000, 8000, 300)  # up to 8"/yr: ~3' in 24.75 yr, far beyond the margin
    pmdec[300:600] = rng.uniform(-8000, 8000, 300)
    ra0, dec0 = _astropy_move(s.ra.to_numpy(), s.dec.to_numpy(), pmra, pmdec, TO, FROM)
    pmra[5000:5050] = np.nan  # no motion known: matched at the catalogue position
    ra0[5000:5050] = s.ra.to_numpy()[5000:5050]
    dec0[5000:5050] = s.dec.to_numpy()[5000:5050]
    return pd.DataFrame({"oid": np.arange(n), "ra": ra0, "dec": dec0, "pmra": pmra, "pmdec": pmdec})


def _reference_nearest(left, survey, radius):
    ra, dec = _astropy_move(
        left.ra.to_numpy(), left.dec.to_numpy(), left.pmra.to_numpy(), left.pmdec.to_numpy(), FROM, TO
    )
    moved = SkyCoord(ra * u.deg, dec * u.deg)
    idx, sep, _ = moved.match_to_catalog_sky(
        SkyCoord(survey.ra.to_numpy() * u.deg, survey.dec.to_numpy() * u.deg)
    )
    ok = sep.to_value(u.arcsec) <= radius
    return {
        int(o): (int(survey.id.to_numpy()[i]), float(d))
        for o, i, d, k in zip(left.oid, idx, sep.to_value(u.arcsec), ok, strict=True)
        if k
    }, (ra, dec)


def test_space_motion_equals_astropy_near_poles_and_wrap():
    rng = np.random.default_rng(3)
    n = 50_000
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    dec[:500] = 90 - rng.uniform(0, 1e-3, 500)  # within 3.6" of the poles
    dec[500:1000] = -90 + rng.uniform(0, 1e-3, 500)
    ra[1000:2000] = rng.uniform(-1e-4, 1e-4, 1000) % 360
    pmra, pmdec = rng.normal(0, 500, n), rng.normal(0, 500, n)
    # Barnard's star moves ~10"/yr. (Not within a few arcsec of a pole: there ERFA, which astropy
    # calls, leaves a star that fast unmoved, its RA rate being superluminal at ERFA's assumed
    # distance; the tangent-line motion here is the physical one.)
    pmra[2000:2100] = 20_000
    for t0, t1 in ((FROM, TO), (TO, FROM), (2016.0, 2100.0)):
        ours = apply_space_motion(ra, dec, pmra, pmdec, t1 - t0)
        ref = _astropy_move(ra, dec, pmra, pmdec, t0, t1)
        sep = SkyCoord(*ours, unit="deg").separation(SkyCoord(*ref, unit="deg")).to_value(u.mas)
        assert sep.max() < 1e-2, (t0, t1, sep.max())  # mas
        assert sep[:1000].max() < 1e-5  # the polar rows
        assert ((ours[0] >= 0) & (ours[0] < 360)).all()


def test_nearest_equals_astropy_pair_for_pair(survey_catalog, survey_data, old_epoch):
    pm = ProperMotion(pmra="pmra", pmdec="pmdec", from_epoch=FROM, to_epoch=TO)
    left = from_dataframe(old_epoch, name="old", max_rows=1_500)
    got = left.crossmatch(open_catalog(survey_catalog), radius_arcsec=RADIUS, proper_motion=pm).compute()
    ref, (ra, dec) = _reference_nearest(old_epoch, survey_data, RADIUS)
    assert len(ref) > 11_000  # nearly every star finds itself again, the fast movers included
    assert dict(zip(got.oid_old, got.id_survey, strict=True)) == {k: v[0] for k, v in ref.items()}
    seps = dict(zip(got.oid_old, got._dist_arcsec, strict=True))
    assert max(abs(seps[k] - v[1]) for k, v in ref.items()) < 1e-5
    # the output keeps the catalogue positions and adds the moved ones
    by_oid = got.set_index("oid_old")
    np.testing.assert_allclose(by_oid.ra_old, old_epoch.ra.to_numpy()[by_oid.index])
    moved = SkyCoord(by_oid.ra_epoch.to_numpy(), by_oid.dec_epoch.to_numpy(), unit="deg")
    expect = SkyCoord(ra[by_oid.index], dec[by_oid.index], unit="deg")
    assert moved.separation(expect).to_value(u.mas).max() < 1e-3
    # rows without a known motion are matched at their catalogue position
    nan_rows = by_oid.loc[by_oid.index.isin(range(5000, 5050))]
    assert len(nan_rows) == 50
    np.testing.assert_array_equal(nan_rows.ra_epoch, nan_rows.ra_old)


def test_left_keeps_every_row_once_in_storage_order(survey_catalog, survey_data, old_epoch):
    """Slow rows match through the margin, fast ones around their moved positions: the two
    groups come back merged in the left's storage order, unmatched rows with nulls."""
    pm = ProperMotion(from_epoch=FROM, to_epoch=TO)
    left = from_dataframe(old_epoch, name="old", max_rows=1_500)
    got = left.crossmatch(open_catalog(survey_catalog), radius_arcsec=RADIUS, how="left", proper_motion=pm).compute()
    assert got.oid_old.tolist() == left.compute().oid.tolist()
    ref, _ = _reference_nearest(old_epoch, survey_data, RADIUS)
    matched = got[got.id_survey.notna()]
    assert dict(zip(matched.oid_old, matched.id_survey.astype(np.int64), strict=True)) == {
        k: v[0] for k, v in ref.items()
    }
    assert got.id_survey.isna().sum() == len(old_epoch) - len(ref) > 0


def test_all_pairs_equal_astropy(survey_catalog, survey_data, old_epoch):
    pm = ProperMotion(from_epoch=FROM, to_epoch=TO)
    radius = 4.0
    got = crossmatch(
        old_epoch, open_catalog(survey_catalog), radius_arcsec=radius, how="all", proper_motion=pm
    ).compute()
    ra, dec = _astropy_move(old_epoch.ra.to_numpy(), old_epoch.dec.to_numpy(), old_epoch.pmra.to_numpy(),
                            old_epoch.pmdec.to_numpy(), FROM, TO)  # fmt: skip
    li, ri, _, _ = search_around_sky(SkyCoord(ra, dec, unit="deg"),
                                     SkyCoord(survey_data.ra.to_numpy(), survey_data.dec.to_numpy(), unit="deg"),
                                     radius * u.arcsec)  # fmt: skip
    ref = set(zip(old_epoch.oid.to_numpy()[li].tolist(), survey_data.id.to_numpy()[ri].tolist(), strict=True))
    assert set(zip(got.oid_targets.tolist(), got.id_survey.tolist(), strict=True)) == ref
    assert len(got) == len(ref)


def test_a_pair_that_crosses_a_partition_edge_only_after_motion(survey_catalog, survey_data):
    cat = open_catalog(survey_catalog)
    parts = cat.partitions
    bounds = np.array([p.healpix29_range for p in parts])
    margin = open_catalog(survey_catalog).margin

    def partition_of(ra, dec):
        h = int(radec_to_healpix29(np.array([ra]), np.array([dec]))[0])
        return parts[int(np.searchsorted(bounds[:, 0], h, side="right")) - 1]

    margin_src = margin.plan.source
    rng = np.random.default_rng(5)
    for i in rng.permutation(len(survey_data))[:400]:
        star = survey_data.iloc[i]
        if abs(star.dec) > 80:
            continue
        start_ra = (star.ra - (60 / 3600) / np.cos(np.radians(star.dec))) % 360  # 60" west in 1991
        home = partition_of(start_ra, star.dec)
        if home == partition_of(star.ra, star.dec):
            continue
        # the star is neither in the old position's partition nor in that partition's margin
        in_margin = home in margin_src.pixels and int(star.id) in set(
            read_partition(margin_src.partition_path(home), ["id"]).column("id").to_pylist()
        )
        if not in_margin:
            break
    else:  # pragma: no cover - the survey always has such a star
        pytest.fail("no star found whose motion crosses a partition edge")
    pm_ra = 60.0 / (TO - FROM) * 1000  # mas/yr east
    left = pd.DataFrame({"oid": [1], "ra": [start_ra], "dec": [star.dec], "pmra": [pm_ra], "pmdec": [0.0]})
    got = crossmatch(
        left, cat, radius_arcsec=RADIUS, proper_motion=ProperMotion(from_epoch=FROM, to_epoch=TO)
    ).compute()
    assert got.id_survey.tolist() == [int(star.id)]
    assert got._dist_arcsec.iloc[0] < 0.05  # a tangent-line step of 60" lands within mas of the arc
    # without the motion nothing is within the radius
    assert len(crossmatch(left, cat, radius_arcsec=RADIUS).compute()) == 0


def test_chaining_to_catalog_and_explain(tmp_path, survey_catalog, old_epoch):
    pm = ProperMotion(from_epoch=FROM, to_epoch=TO)
    xm = from_dataframe(old_epoch, name="old").crossmatch(
        open_catalog(survey_catalog), radius_arcsec=RADIUS, proper_motion=pm
    )
    assert "proper motion (pmra, pmdec) from 1991.25 to 2016" in str(xm.explain())
    out = xm.where("_dist_arcsec < 0.5")[["oid_old", "ra_epoch", "dec_epoch", "id_survey"]].to_catalog(
        tmp_path / "m"
    )
    df = out.compute()
    assert {"ra_epoch", "dec_epoch", "ra_old", "dec_old"} <= set(df.columns)
    assert len(df) == xm.where("_dist_arcsec < 0.5").count()


def test_bad_input(survey_catalog, old_epoch):
    right = open_catalog(survey_catalog)
    left = from_dataframe(old_epoch, name="old")
    with pytest.raises(ColumnNotFoundError, match="pm_ra"):
        left.crossmatch(right, proper_motion=ProperMotion(pmra="pm_ra", from_epoch=FROM, to_epoch=TO))
    with pytest.raises(PlanError, match="from_epoch"):
        ProperMotion(from_epoch=float("nan"), to_epoch=TO)
    with pytest.raises(PlanError, match="to_epoch"):
        ProperMotion(from_epoch=FROM, to_epoch="J2016")
    with pytest.raises(PlanError, match="column name"):
        ProperMotion(pmra=None, from_epoch=FROM, to_epoch=TO)
    with pytest.raises(PlanError, match="ProperMotion"):
        left.crossmatch(right, proper_motion={"pmra": "pmra"})
    text = from_dataframe(old_epoch.assign(pmra="x"), name="old")
    with pytest.raises(PlanError, match="numeric"):
        text.crossmatch(right, proper_motion=ProperMotion(from_epoch=FROM, to_epoch=TO))
    assert ProperMotion(from_epoch=Time(2000.0, format="jyear"), to_epoch=TO).from_epoch == 2000.0


def test_cli_flags(tmp_path, survey_catalog, survey_data, old_epoch, capsys):
    src = tmp_path / "old.parquet"
    old_epoch.iloc[:3000].to_parquet(src)
    out = tmp_path / "m.parquet"
    args = ["crossmatch", str(src), str(survey_catalog), "--radius-arcsec", "1", "--out", str(out),
            "--from-epoch", str(FROM), "--to-epoch", str(TO), "--pmra", "pmra", "--pmdec", "pmdec"]  # fmt: skip
    assert main(args) == 0
    got = pd.read_parquet(out)
    ref, _ = _reference_nearest(old_epoch.iloc[:3000], survey_data, 1.0)
    assert dict(zip(got.oid_old, got.id_survey, strict=True)) == {k: v[0] for k, v in ref.items()}
    assert "ra_epoch" in got.columns
    capsys.readouterr()
    assert main(["crossmatch", str(src), str(survey_catalog), "--radius-arcsec", "1", "--out",
                 str(tmp_path / "x.parquet"), "--from-epoch", "1991.25"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "--to-epoch" in err and "Traceback" not in err
    assert main(["crossmatch", str(src), str(survey_catalog), "--radius-arcsec", "1", "--out",
                 str(tmp_path / "y.parquet"), "--from-epoch", "1991.25", "--to-epoch", "2016",
                 "--pmra", "nope"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err
