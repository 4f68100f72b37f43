"""Seeded sky data with poles, the RA wrap and many partition edges; in memory and stored."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from proxcompute.catalog import from_dataframe
from proxcompute.synthetic import generate_catalog

matplotlib.use("Agg")

MAX_ROWS = 300


def make_sky(n: int = 6_000, seed: int = 7) -> pd.DataFrame:
    """Synthetic sky plus crowds at both poles and along RA = 0/360."""
    rng = np.random.default_rng(seed)
    base = generate_catalog(n, seed=seed)
    k = 300
    north = np.column_stack([rng.uniform(0, 360, k), 90.0 - rng.uniform(0, 1.5, k)])
    south = np.column_stack([rng.uniform(0, 360, k), -90.0 + rng.uniform(0, 1.5, k)])
    wrap = np.column_stack([rng.uniform(-0.5, 0.5, k) % 360.0, rng.uniform(-30, 30, k)])
    exact = np.array([[0.0, 90.0], [180.0, -90.0], [0.0, 0.0], [359.9999999, 0.0], [0.0, 45.0]])
    extra = np.vstack([north, south, wrap, exact])
    m = len(extra)
    df_extra = pd.DataFrame(
        {
            "id": np.arange(n, n + m, dtype=np.int64),
            "ra": extra[:, 0],
            "dec": extra[:, 1],
            "mag": rng.normal(20.0, 1.5, m),
            "color": rng.normal(0.8, 0.3, m).astype(np.float32),
            "flag": rng.integers(0, 4, m, dtype=np.int16),
        }
    )
    df = pd.concat([base, df_extra], ignore_index=True)
    df["name"] = np.where(df["flag"] == 0, "star", np.where(df["flag"] == 1, "galaxy", "qso"))
    return df


@pytest.fixture(scope="session")
def sky_df() -> pd.DataFrame:
    return make_sky()


@pytest.fixture(scope="session")
def mem_cat(sky_df):
    return from_dataframe(sky_df, name="sky", max_rows=MAX_ROWS)


@pytest.fixture(scope="session")
def stored_path(mem_cat, tmp_path_factory):
    path = tmp_path_factory.mktemp("stored") / "sky"
    mem_cat.to_catalog(path)
    return path


@pytest.fixture(scope="session")
def stored_cat(stored_path):
    from proxcompute.catalog import open_catalog

    return open_catalog(stored_path)


@pytest.fixture(params=["memory", "stored"])
def cat(request, mem_cat, stored_cat):
    """Both kinds of catalog: every search test runs on each."""
    return mem_cat if request.param == "memory" else stored_cat
