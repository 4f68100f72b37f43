"""Fixtures for the ingest tests: one in-process Dask client, input writers, an output checker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ingest_helpers import check_catalog, read_output, write_frame  # noqa: F401 (re-exported)

from proxcompute.synthetic import generate_catalog


@pytest.fixture(scope="session")
def client():
    """Threads in this process: starts in ~0.2 s, and lets tests patch task functions."""
    from distributed import Client

    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0", set_as_default=False
    ) as c:
        yield c


@pytest.fixture(scope="session")
def sky() -> pd.DataFrame:
    """20k non-uniform rows (dense band and clusters: several partition orders at small max_rows)."""
    return generate_catalog(20_000, seed=7)


@pytest.fixture
def write_parts(tmp_path) -> Callable[..., list[Path]]:
    """``write_parts(df, n, ending)``: split ``df`` into ``n`` files under ``tmp_path/in``."""

    def _write(df: pd.DataFrame, n: int = 3, ending: str = ".parquet", directory: str = "in") -> list[Path]:
        d = tmp_path / directory
        d.mkdir(parents=True, exist_ok=True)
        return [
            write_frame(df.iloc[idx], d / f"part{i}{ending}")
            for i, idx in enumerate(np.array_split(np.arange(len(df)), n))
        ]

    return _write


