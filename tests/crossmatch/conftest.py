"""A right survey with dense clusters, polar caps and an RA-wrap strip, ingested with a margin."""

import numpy as np
import pandas as pd
import pytest

from proxcompute.ingest import ingest
from proxcompute.synthetic import generate_catalog

RADIUS_ARCSEC = 5.0
MARGIN_ARCSEC = 10.0


def _survey(n: int = 120_000, seed: int = 7) -> pd.DataFrame:
    df = generate_catalog(n, seed=seed)
    rng = np.random.default_rng(seed)
    k = n // 10
    # polar caps and a strip across RA = 0/360, dense enough to cross many partition edges
    df.loc[: k - 1, "ra"] = rng.uniform(0, 360, k)
    df.loc[: k - 1, "dec"] = 90.0 - rng.uniform(0, 0.3, k)
    df.loc[k : 2 * k - 1, "ra"] = rng.uniform(0, 360, k)
    df.loc[k : 2 * k - 1, "dec"] = -90.0 + rng.uniform(0, 0.3, k)
    df.loc[2 * k : 3 * k - 1, "ra"] = rng.uniform(-0.2, 0.2, k) % 360
    df.loc[2 * k : 3 * k - 1, "dec"] = rng.uniform(-3, 3, k)
    return df


def _targets(survey: pd.DataFrame, n: int = 15_000, seed: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(survey), n)
    return pd.DataFrame(
        {
            "tid": np.arange(n),
            "ra": (survey.ra.to_numpy()[pick] + rng.normal(0, 3 / 3600, n)) % 360,
            "dec": np.clip(survey.dec.to_numpy()[pick] + rng.normal(0, 3 / 3600, n), -90, 90),
            "note": np.where(rng.random(n) < 0.5, "a", "b"),
        }
    )


@pytest.fixture(scope="session")
def survey_data():
    return _survey()


@pytest.fixture(scope="session")
def targets(survey_data):
    return _targets(survey_data)


@pytest.fixture(scope="session")
def survey_catalog(tmp_path_factory, survey_data):
    root = tmp_path_factory.mktemp("xm")
    survey_data.to_parquet(root / "survey.parquet", index=False)
    ingest(root / "survey.parquet", root / "survey", max_rows=4_000, margin_arcsec=MARGIN_ARCSEC, workers=2,
           show_progress=False)
    return root / "survey"
