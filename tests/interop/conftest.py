"""Fixtures for the interop tests: one small non-uniform input, written once per session by
each tool (proxcompute ingest, hats-import), shared by every test.

The input is ~100k rows with ``max_rows`` = 5000, so both tools write several HEALPix
orders; extra rows around both poles make the polar cones non-trivial.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from interop_util import MARGIN_ARCSEC, MAX_ROWS, N_POLAR, N_ROWS, SEED


@dataclass(frozen=True)
class InteropInput:
    df: pd.DataFrame
    files: tuple[Path, ...]


def _polar_cap(rng: np.random.Generator, n: int, north: bool, id_offset: int) -> pd.DataFrame:
    """``n`` rows uniformly within 1.5 deg of a pole (ids from ``id_offset``)."""
    colat = np.degrees(np.arccos(rng.uniform(np.cos(np.radians(1.5)), 1.0, n)))
    dec = 90.0 - colat if north else colat - 90.0
    return pd.DataFrame(
        {
            "id": np.arange(id_offset, id_offset + n, dtype=np.int64),
            "ra": rng.uniform(0.0, 360.0, n),
            "dec": dec,
            "mag": rng.normal(20.0, 1.5, n),
            "color": rng.normal(0.8, 0.3, n).astype(np.float32),
            "flag": rng.integers(0, 4, n, dtype=np.int16),
        }
    )


@pytest.fixture(scope="session")
def interop_input(tmp_path_factory) -> InteropInput:
    from proxcompute.synthetic import generate_catalog

    rng = np.random.default_rng(SEED + 1)
    df = pd.concat(
        [
            generate_catalog(N_ROWS, seed=SEED),
            _polar_cap(rng, N_POLAR, True, 10_000_000),
            _polar_cap(rng, N_POLAR, False, 20_000_000),
        ],
        ignore_index=True,
    )
    d = tmp_path_factory.mktemp("interop-input")
    files = []
    for i, part in enumerate(np.array_split(np.arange(len(df)), 3)):
        f = d / f"part-{i}.parquet"
        df.iloc[part].to_parquet(f, index=False)
        files.append(f)
    return InteropInput(df=df, files=tuple(files))


def _quiet_dask() -> None:
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def hats_import_collection(interop_input, tmp_path_factory) -> Path:
    """A HATS collection (catalog + default 10" margin) written by hats-import."""
    from dask.distributed import Client
    from hats_import import CollectionArguments
    from hats_import.pipeline import pipeline_with_client

    _quiet_dask()
    out = tmp_path_factory.mktemp("hats-import")
    args = (
        CollectionArguments(
            output_artifact_name="hi_synth",
            output_path=out,
            tmp_dir=out / "tmp",
            progress_bar=False,
            resume=False,
        )
        .catalog(
            input_file_list=[str(f) for f in interop_input.files],
            file_reader="parquet",
            ra_column="ra",
            dec_column="dec",
            pixel_threshold=MAX_ROWS,
        )
        .add_margin(margin_threshold=MARGIN_ARCSEC, is_default=True)
    )
    # hats-import's progress loop needs the client to be the default one
    with Client(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as client:
        pipeline_with_client(args, client)
    return out / "hi_synth"


@pytest.fixture(scope="session")
def proxcompute_collection(interop_input, tmp_path_factory) -> Path:
    """A HATS collection (catalog + 10" margin) written by ``proxcompute.ingest``."""
    from dask.distributed import Client

    from proxcompute.ingest import ingest

    _quiet_dask()
    out = tmp_path_factory.mktemp("proxcompute") / "pc_synth"
    # an in-process cluster: starts in ~0.1 s where two worker processes take seconds
    with Client(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None, set_as_default=False
    ) as client:
        ingest(
            [str(f) for f in interop_input.files],
            out,
            name="pc_synth",
            max_rows=MAX_ROWS,
            margin_arcsec=MARGIN_ARCSEC,
            client=client,
            show_progress=False,
        )
    return out
