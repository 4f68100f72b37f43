"""Seeded data for the SQL tests: real NULLs, a string column, many partitions.

Nullable columns use pandas' nullable dtypes (``Float64``, ``Int64``, ``string``) so a missing
value is an SQL NULL in every engine. No column holds NaN: SQL engines disagree about NaN
(sqlite stores it as NULL, DuckDB as a number larger than every other), so NaN would make the
differential tests compare conventions rather than correctness.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from proxcompute.catalog import from_dataframe, open_catalog
from proxcompute.synthetic import generate_catalog

N_ROWS = 20_000
MAX_ROWS = 2_000
"""Partition size of the main catalog: the query spans dozens of partitions."""
FINE_MAX_ROWS = 500
COARSE_MAX_ROWS = 1_000_000_000


def make_sql_df(n: int = N_ROWS, seed: int = 2024) -> pd.DataFrame:
    """``id, ra, dec, mag, color, flag, band, name`` with NULLs in mag, color, band and name."""
    rng = np.random.default_rng(seed)
    df = generate_catalog(n, seed=seed)
    mag = df["mag"].astype("Float64")
    mag[rng.random(n) < 0.05] = pd.NA
    color = df["color"].astype(np.float64).astype("Float64")
    color[rng.random(n) < 0.07] = pd.NA
    band = pd.array(rng.integers(0, 5, n), dtype="Int64")
    band[rng.random(n) < 0.10] = pd.NA
    names = pd.array([f"star_{i}" for i in df["id"]], dtype="string")
    names[rng.random(n) < 0.04] = pd.NA
    out = pd.DataFrame(
        {
            "id": df["id"].astype(np.int64),
            "ra": df["ra"].astype(np.float64),
            "dec": df["dec"].astype(np.float64),
            "mag": mag,
            "color": color,
            "flag": df["flag"].astype(np.int64),
            "band": band,
            "name": names,
        }
    )
    for col in ("ra", "dec"):
        assert np.isfinite(out[col].to_numpy()).all()
    for col in ("mag", "color"):
        assert not np.isnan(out[col].dropna().to_numpy(dtype=np.float64)).any()
    return out


def _py(value):
    if value is pd.NA or value is None:
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def to_sqlite(df: pd.DataFrame, table: str) -> sqlite3.Connection:
    """An in-memory sqlite database with ``df`` as ``table`` (pd.NA -> NULL)."""
    con = sqlite3.connect(":memory:")
    types = {"id": "INTEGER", "flag": "INTEGER", "band": "INTEGER", "name": "TEXT"}
    cols = ", ".join(f"{c} {types.get(c, 'REAL')}" for c in df.columns)
    con.execute(f"CREATE TABLE {table} ({cols})")
    rows = [tuple(_py(v) for v in row) for row in df.astype(object).itertuples(index=False)]
    con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(df.columns))})", rows)
    con.commit()
    return con


@pytest.fixture(scope="session")
def sql_df() -> pd.DataFrame:
    return make_sql_df()


@pytest.fixture(scope="session")
def sqlite_db(sql_df):
    con = to_sqlite(sql_df, "stars")
    yield con
    con.close()


@pytest.fixture(scope="session")
def stars_mem(sql_df):
    """In memory, ``MAX_ROWS`` rows per partition."""
    return from_dataframe(sql_df, name="stars", max_rows=MAX_ROWS)


@pytest.fixture(scope="session")
def stars_fine(sql_df):
    return from_dataframe(sql_df, name="stars", max_rows=FINE_MAX_ROWS)


@pytest.fixture(scope="session")
def stars_coarse(sql_df):
    """As few partitions as the catalog makes (no partition is split for size)."""
    return from_dataframe(sql_df, name="stars", max_rows=COARSE_MAX_ROWS)


@pytest.fixture(scope="session")
def stars_disk(stars_mem, tmp_path_factory):
    """The in-memory catalog written to disk and opened again."""
    path = tmp_path_factory.mktemp("sql_catalogs") / "stars"
    stars_mem.to_catalog(path)
    return open_catalog(path)


@pytest.fixture(scope="session")
def small_catalogs():
    """Two small catalogs (``stars``, ``other``) with the same columns, for error tests."""
    return {
        "stars": from_dataframe(make_sql_df(3_000, seed=5), name="stars", max_rows=500),
        "other": from_dataframe(make_sql_df(1_000, seed=6), name="other", max_rows=500),
    }
