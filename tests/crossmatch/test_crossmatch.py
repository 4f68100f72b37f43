"""Crossmatch results equal astropy pair for pair (nearest, k nearest, all pairs, left join)."""

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord, search_around_sky
from astropy.table import Table

import proxcompute as pc
from proxcompute.errors import ColumnNotFoundError, InvalidCoordinatesError, PlanError

RADIUS_ARCSEC = 5.0


def _coords(df):
    return SkyCoord(df.ra.to_numpy() * u.deg, df.dec.to_numpy() * u.deg)


def _nearest_reference(targets, survey, radius_arcsec):
    idx, sep, _ = _coords(targets).match_to_catalog_sky(_coords(survey))
    ok = sep.arcsec <= radius_arcsec
    return dict(zip(targets.tid.to_numpy()[ok].tolist(), survey.id.to_numpy()[idx[ok]].tolist(), strict=True))


def _pairs_reference(targets, survey, radius_arcsec):
    il, ir, sep, _ = search_around_sky(_coords(targets), _coords(survey), radius_arcsec * u.arcsec)
    return il, ir, sep.arcsec


def test_table_x_catalog_nearest_equals_astropy(survey_catalog, survey_data, targets):
    survey = pc.open_catalog(survey_catalog)
    assert len({p.order for p in survey.partitions}) >= 3
    result = pc.crossmatch(targets, survey, radius_arcsec=RADIUS_ARCSEC).compute()
    got = dict(zip(result.tid_targets.tolist(), result.id_survey.tolist(), strict=True))
    assert got == _nearest_reference(targets, survey_data, RADIUS_ARCSEC)
    assert len(got) > 5_000
    assert list(result.columns[:2]) == ["_healpix_29", "tid_targets"]
    assert "_dist_arcsec" in result.columns and (result._dist_arcsec <= RADIUS_ARCSEC).all()


def test_catalog_x_catalog_all_pairs_equal_astropy(tmp_path, survey_catalog, survey_data, targets):
    left = pc.from_dataframe(targets, name="targets", max_rows=700).to_catalog(tmp_path / "targets")
    survey = pc.open_catalog(survey_catalog)
    result = left.crossmatch(survey, radius_arcsec=10.0, how="all").compute()
    il, ir, sep = _pairs_reference(targets, survey_data, 10.0)
    expected = set(zip(targets.tid.to_numpy()[il].tolist(), survey_data.id.to_numpy()[ir].tolist(), strict=True))
    got = set(zip(result.tid_targets.tolist(), result.id_survey.tolist(), strict=True))
    assert got == expected
    assert len(result) == len(expected) > 5_000
    # separations agree with astropy to 1e-8 arcsec
    ref = dict(zip(zip(targets.tid.to_numpy()[il].tolist(), survey_data.id.to_numpy()[ir].tolist(), strict=True), sep, strict=True))
    np.testing.assert_allclose(
        result._dist_arcsec.to_numpy(),
        [ref[(a, b)] for a, b in zip(result.tid_targets, result.id_survey, strict=True)],
        atol=1e-8,
    )


def test_k_nearest_and_min_radius(survey_catalog, survey_data, targets):
    survey = pc.open_catalog(survey_catalog)
    il, ir, sep = _pairs_reference(targets, survey_data, 10.0)
    ref = pd.DataFrame({"tid": targets.tid.to_numpy()[il], "id": survey_data.id.to_numpy()[ir], "sep": sep})
    ref = ref.sort_values(["tid", "sep", "id"])
    k3 = ref.groupby("tid").head(3)
    got = pc.crossmatch(targets, survey, radius_arcsec=10.0, n_neighbors=3).compute()
    assert sorted(zip(got.tid_targets, got.id_survey, strict=True)) == sorted(zip(k3.tid, k3.id, strict=True))
    far = pc.crossmatch(targets, survey, radius_arcsec=10.0, how="all", min_radius_arcsec=4.0).compute()
    exp = ref[ref.sep >= 4.0]
    assert sorted(zip(far.tid_targets, far.id_survey, strict=True)) == sorted(zip(exp.tid, exp.id, strict=True))


def test_left_join_keeps_unmatched_rows(survey_catalog, survey_data, targets):
    survey = pc.open_catalog(survey_catalog)
    result = pc.crossmatch(targets, survey, radius_arcsec=RADIUS_ARCSEC, how="left").compute()
    assert sorted(result.tid_targets) == sorted(targets.tid)
    expected = _nearest_reference(targets, survey_data, RADIUS_ARCSEC)
    unmatched = result[result.id_survey.isna()]
    assert set(unmatched.tid_targets) == set(targets.tid) - set(expected)
    assert unmatched._dist_arcsec.isna().all()


def test_memory_right_and_ensure_margin_agree_with_margin_path(survey_catalog, survey_data, targets):
    survey = pc.open_catalog(survey_catalog)
    expected = _nearest_reference(targets, survey_data, RADIUS_ARCSEC)
    on_the_fly = pc.crossmatch(targets, survey, radius_arcsec=RADIUS_ARCSEC, ensure_margin=True)
    # a wider radius than the margin works with ensure_margin
    wide = pc.crossmatch(targets.head(3000), survey, radius_arcsec=15.0, ensure_margin=True).compute()
    assert dict(zip(wide.tid_targets, wide.id_survey, strict=True)) == _nearest_reference(targets.head(3000), survey_data, 15.0)
    got = on_the_fly.compute()
    assert dict(zip(got.tid_targets, got.id_survey, strict=True)) == expected
    memory = pc.crossmatch(pc.from_dataframe(targets, name="targets", max_rows=2_000), Table.from_pandas(survey_data),
                           radius_arcsec=RADIUS_ARCSEC).compute()
    assert dict(zip(memory.tid_targets, memory.id_right, strict=True)) == expected


def test_chaining_and_to_catalog(tmp_path, survey_catalog, survey_data, targets):
    survey = pc.open_catalog(survey_catalog)
    matched = (
        pc.crossmatch(targets, survey.where("mag < 21"), radius_arcsec=RADIUS_ARCSEC)
        .cone_search(45.0, 30.0, 2 * 3600)
        .where("_dist_arcsec < 4")[["tid_targets", "id_survey", "mag_survey", "_dist_arcsec"]]
    )
    got = matched.compute()
    bright = survey_data[survey_data.mag < 21]
    ref = _nearest_reference(targets, bright, RADIUS_ARCSEC)
    from proxcompute import kernels

    inside = kernels.cone_mask(targets.ra.to_numpy(), targets.dec.to_numpy(), 45.0, 30.0, 2.0)
    idx, sep, _ = _coords(targets).match_to_catalog_sky(_coords(bright))
    keep = inside & (sep.arcsec < 4)
    expected = dict(zip(targets.tid.to_numpy()[keep].tolist(), bright.id.to_numpy()[idx[keep]].tolist(), strict=True))
    assert dict(zip(got.tid_targets, got.id_survey, strict=True)) == expected
    assert len(expected) > 50 and set(expected.items()) <= set(ref.items())
    assert "partitions" in matched.explain()
    pc.crossmatch(targets, survey, radius_arcsec=RADIUS_ARCSEC).to_catalog(tmp_path / "matched")
    again = pc.open_catalog(tmp_path / "matched").compute()
    assert len(again) == len(_nearest_reference(targets, survey_data, RADIUS_ARCSEC))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"radius_arcsec": 0}, PlanError, "radius_arcsec must be > 0"),
        ({"radius_arcsec": -1}, PlanError, "radius_arcsec must be > 0"),
        ({"radius_arcsec": 1, "n_neighbors": 0}, PlanError, "n_neighbors must be an integer >= 1"),
        ({"radius_arcsec": 1, "how": "inner"}, PlanError, "how must be one of"),
        ({"radius_arcsec": 30}, PlanError, "margin of 10\"[^\n]*ensure_margin=True"),
    ],
)
def test_bad_arguments(survey_catalog, targets, kwargs, error, message):
    with pytest.raises(error, match=message):
        pc.crossmatch(targets, pc.open_catalog(survey_catalog), **kwargs)


def test_bad_tables(survey_catalog, targets):
    survey = pc.open_catalog(survey_catalog)
    with pytest.raises(ColumnNotFoundError, match="'ra'"):
        pc.crossmatch(targets.rename(columns={"ra": "RA"}), survey, radius_arcsec=1)
    with pytest.raises(InvalidCoordinatesError, match="1 of"):
        bad = targets.copy()
        bad.loc[3, "dec"] = np.nan
        pc.crossmatch(bad, survey, radius_arcsec=1)
    with pytest.raises(InvalidCoordinatesError, match="numeric"):
        pc.crossmatch(targets.assign(ra=targets.ra.astype(str)), survey, radius_arcsec=1)


def test_projected_inputs_without_the_index_still_match():
    """Selecting columns without _healpix_29 before a crossmatch must not break it."""
    import numpy as np

    from proxcompute.catalog import from_dataframe
    from proxcompute.synthetic import generate_catalog

    survey = from_dataframe(generate_catalog(20_000, seed=4), name="s", max_rows=300)  # fine partitions
    targets = from_dataframe(generate_catalog(3_000, seed=5), name="t", max_rows=5_000)  # coarse: sliced
    full = targets.crossmatch(survey, 600.0, how="all").compute()
    slim = targets[["id", "ra", "dec"]].crossmatch(survey[["id", "ra", "dec"]], 600.0, how="all").compute()
    assert len(slim) == len(full) > 0
    np.testing.assert_array_equal(np.sort(slim["id_t"].to_numpy()), np.sort(full["id_t"].to_numpy()))
