"""A survey with a dense cluster, polar caps and an RA-wrap strip, ingested with a margin,
and a target catalog; served by nginx over HTTP and by moto's S3 server, and kept locally
so that every remote result can be compared with the same operation on the local copy.

Served layout (HTTP base URL and S3 bucket ``hats`` alike)::

    survey/              the collection (survey/survey + survey/survey_10arcs margin)
    targets/             a small catalog of targets near survey rows
    npixdir/             the targets with each partition a directory of files (hats_npix_suffix=/)
    forbidden/survey/    a copy that nginx refuses (403)
    notacat/readme.txt   a directory that is not a catalog
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from remote_servers import CLUSTER, MARGIN_ARCSEC, Nginx, S3Server, running_nginx, running_s3

from proxcompute.catalog import from_dataframe
from proxcompute.ingest import ingest
from proxcompute.storage.location import clear_remote_cache
from proxcompute.synthetic import generate_catalog

BUCKET = "hats"


def make_survey(n: int = 40_000, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = [generate_catalog(n, seed=seed)]
    k = 2_000
    extra = {
        "cluster": (CLUSTER[0] + rng.normal(0, 0.05, 30_000), CLUSTER[1] + rng.normal(0, 0.05, 30_000)),
        "north": (rng.uniform(0, 360, k), 90.0 - rng.uniform(0, 1.0, k)),
        "south": (rng.uniform(0, 360, k), -90.0 + rng.uniform(0, 1.0, k)),
        "wrap": (rng.uniform(-0.3, 0.3, k) % 360.0, rng.uniform(-2, 2, k)),
    }
    start = n
    for ra, dec in extra.values():
        m = len(ra)
        parts.append(
            pd.DataFrame(
                {
                    "id": np.arange(start, start + m, dtype=np.int64),
                    "ra": ra,
                    "dec": dec,
                    "mag": rng.normal(20.0, 1.5, m),
                    "color": rng.normal(0.8, 0.3, m).astype(np.float32),
                    "flag": rng.integers(0, 4, m, dtype=np.int16),
                }
            )
        )
        start += m
    return pd.concat(parts, ignore_index=True)[list(parts[0].columns)]


def make_targets(survey: pd.DataFrame, n: int = 3_000, seed: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(survey), n)
    return pd.DataFrame(
        {
            "tid": np.arange(n, dtype=np.int64),
            "ra": (survey.ra.to_numpy()[pick] + rng.normal(0, 2 / 3600, n)) % 360,
            "dec": np.clip(survey.dec.to_numpy()[pick] + rng.normal(0, 2 / 3600, n), -90, 90),
        }
    )


@pytest.fixture(scope="session")
def survey_df() -> pd.DataFrame:
    return make_survey()


@pytest.fixture(scope="session")
def targets_df(survey_df) -> pd.DataFrame:
    return make_targets(survey_df)


@pytest.fixture(scope="session")
def served_root(tmp_path_factory, survey_df, targets_df):
    root = tmp_path_factory.mktemp("remote-served")
    raw = tmp_path_factory.mktemp("remote-raw") / "survey.parquet"
    survey_df.to_parquet(raw, index=False)
    ingest(raw, root / "survey", name="survey", max_rows=50_000, margin_arcsec=MARGIN_ARCSEC,
           workers=1, show_progress=False)  # fmt: skip
    from_dataframe(targets_df, name="targets", max_rows=400).to_catalog(root / "targets")
    _directory_layout(root / "targets", root / "npixdir")
    shutil.copytree(root / "survey", root / "forbidden" / "survey")
    (root / "notacat").mkdir()
    (root / "notacat" / "readme.txt").write_text("not a catalog\n")
    return root


def _directory_layout(src, dest) -> None:
    """A copy of catalog ``src`` in the HATS layout ``hats_npix_suffix=/``: each partition a
    directory ``Npix=n/`` of two Parquet files (listed over HTTP from nginx's index pages)."""
    import pyarrow.parquet as pq

    shutil.copytree(src, dest)
    (dest / "dataset" / "_metadata").unlink(missing_ok=True)  # names the single files
    for f in sorted((dest / "dataset").glob("Norder=*/Dir=*/Npix=*.parquet")):
        table = pq.read_table(f)
        d = f.with_suffix("")
        d.mkdir()
        half = table.num_rows // 2
        pq.write_table(table.slice(0, half), d / "part0.parquet")
        pq.write_table(table.slice(half), d / "part1.parquet")
        f.unlink()
    for name in ("hats.properties", "properties"):
        if (dest / name).exists():
            (dest / name).write_text((dest / name).read_text() + "hats_npix_suffix=/\n")


@pytest.fixture(scope="session")
def nginx(served_root, tmp_path_factory) -> Nginx:
    with running_nginx(served_root, tmp_path_factory.mktemp("nginx-run")) as server:
        yield server


@pytest.fixture(scope="session")
def s3(served_root) -> S3Server:
    with running_s3(BUCKET, {name: served_root / name for name in ("survey", "targets", "npixdir")}) as server:
        yield server


@dataclass(frozen=True)
class Remote:
    """How to name a served catalog: ``url(name)`` and the ``storage_options`` to pass."""

    kind: str
    url: Callable[[str], str]
    storage_options: dict[str, Any] | None


@pytest.fixture(params=["http", "s3"])
def remote(request) -> Remote:
    """Each remote test runs over HTTP (nginx) and over S3 (moto), from a cold cache."""
    clear_remote_cache()
    if request.param == "http":
        server = request.getfixturevalue("nginx")
        return Remote("http", lambda name: server.url + name, None)
    server = request.getfixturevalue("s3")
    return Remote("s3", lambda name: f"s3://{BUCKET}/{name}", server.storage_options)
