"""A small deterministic in-memory source for plan tests (no files)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from proxcompute.plan import MemorySource, Scan


@pytest.fixture(scope="session")
def source() -> MemorySource:
    rng = np.random.default_rng(5)
    n = 4_000
    df = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "ra": rng.uniform(0, 360, n),
            "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
            "mag": rng.normal(20, 1.5, n),
            "flag": rng.integers(0, 4, n).astype(np.int16),
        }
    )
    return MemorySource.from_pandas(df, name="plantest", max_rows=200)


@pytest.fixture
def scan(source) -> Scan:
    return Scan(source)


@pytest.fixture
def table() -> pa.Table:
    rng = np.random.default_rng(9)
    n = 500
    mag = rng.normal(20, 1.5, n)
    mag[::37] = np.nan
    return pa.table(
        {
            "mag": pa.array(mag, mask=np.arange(n) % 53 == 0),
            "flag": pa.array(rng.integers(0, 4, n).astype(np.int16)),
            "id": pa.array(rng.integers(-(2**62), 2**62, n)),
            "name": pa.array(rng.choice(["star", "galaxy", "qso"], n)),
            "ok": pa.array(rng.random(n) < 0.5),
        }
    )
