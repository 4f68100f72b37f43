"""Test-wide settings (no progress bars, headless matplotlib) and what doctests need.

Doctests of ``src/proxcompute`` are collected too (``--doctest-modules``). The examples of
:mod:`proxcompute.client` talk to a real service: for them, a small catalog root is served by
``proxcompute serve`` once per session and offered as ``tap_url`` / ``tap`` (a token-holding
client, so MyDB examples work), with ``pd`` and a scratch ``tmpdir``.
"""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PROXCOMPUTE_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

DOCTEST_TOKEN = "s3cret"  # the token the Client examples show


@pytest.fixture(scope="session")
def _doctest_service(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).parent / "tests" / "service"))
    from tap_server import running_server

    from proxcompute.catalog import from_dataframe
    from proxcompute.synthetic import generate_catalog

    root = tmp_path_factory.mktemp("doctest-tap")
    from_dataframe(generate_catalog(20_000, seed=9), name="gaia", max_rows=2_000).to_catalog(root / "survey" / "gaia")
    tokens = root.parent / "doctest-tokens.yaml"
    tokens.write_text(f"{DOCTEST_TOKEN}: doctest\n")
    with running_server(root, "--tokens", str(tokens)) as url:
        yield url


@pytest.fixture(autouse=True)
def _client_doctest_namespace(request, doctest_namespace, tmp_path):
    """Only doctests of proxcompute.client start the service."""
    if request.node.__class__.__name__ == "DoctestItem" and "proxcompute.client" in request.node.name:
        import pandas as pd

        from proxcompute.client import Client

        url = request.getfixturevalue("_doctest_service")
        doctest_namespace.update(tap_url=url, tap=Client(url, token=DOCTEST_TOKEN), pd=pd, tmpdir=str(tmp_path))


def pytest_ignore_collect(collection_path, config):
    """conftest.py files are loaded as conftests, not collected as doctest modules (their names clash)."""
    if collection_path.name == "conftest.py":
        return True
    return None


@pytest.fixture(scope="session")
def wheel_envs(tmp_path_factory):
    """(plain, user) virtual environments with the wheel of this checkout, built once per run.

    ``PROXCOMPUTE_WHEEL_ENVS=DIR`` reuses (or creates) them in ``DIR`` across runs while
    working on the docs; CI leaves it unset and gets fresh ones.
    """
    sys.path.insert(0, str(Path(__file__).parent / "tests"))
    from wheel_env import WheelEnv, build_wheel_envs

    keep = os.environ.get("PROXCOMPUTE_WHEEL_ENVS")
    if keep and (Path(keep) / "user" / "bin" / "proxcompute").exists():
        return WheelEnv(Path(keep) / "plain"), WheelEnv(Path(keep) / "user")
    workdir = Path(keep) if keep else tmp_path_factory.mktemp("wheel")
    workdir.mkdir(parents=True, exist_ok=True)
    plain, user, seconds = build_wheel_envs(workdir)
    print(f"wheel environments built in {seconds:.0f} s")
    return plain, user
