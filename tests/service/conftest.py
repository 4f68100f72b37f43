"""Fixtures for the service tests: job-store URLs for SQLite and a throwaway PostgreSQL.

The PostgreSQL cluster comes from ``scripts/postgres/setup_postgres.sh`` (root + apt needed,
or PostgreSQL 15 already installed), in its own data directory and on a free port, so it
never touches a cluster someone else started; it is stopped and removed at the end of the
session. Set ``PROXCOMPUTE_TEST_PG_URL`` to use an existing server instead, or
``PROXCOMPUTE_TEST_PG=0`` to skip the PostgreSQL runs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "scripts" / "postgres" / "setup_postgres.sh"
SETUP_STILTS = REPO / "scripts" / "stilts" / "setup_stilts.sh"
STOP = REPO / "scripts" / "postgres" / "stop_postgres.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _skip_or_fail(reason: str, what: str = "PostgreSQL") -> None:
    print(f"\n[tests/service] {what} tests skipped: {reason}")
    if os.environ.get("CI"):
        pytest.fail(f"{what} needed in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def stilts() -> str:
    """The ``stilts`` command (Debian's package, installed by scripts/stilts/setup_stilts.sh).

    Skipped where it is missing and cannot be installed (not root, no apt-get); a failure in CI.
    """
    if shutil.which("stilts") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            _skip_or_fail("stilts is not installed and installing it needs root with apt-get", "STILTS")
        proc = subprocess.run(["bash", str(SETUP_STILTS)], capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            _skip_or_fail(f"setup_stilts.sh failed ({proc.returncode}): {proc.stderr.strip()[-800:]}", "STILTS")
    return shutil.which("stilts")


@pytest.fixture(scope="session")
def postgres_server_url():
    """``postgresql+psycopg://`` URL of a fresh database on a throwaway PostgreSQL cluster."""
    if os.environ.get("PROXCOMPUTE_TEST_PG", "1") == "0":
        _skip_or_fail("PROXCOMPUTE_TEST_PG=0")  # a skip locally; in CI (CI=true) PostgreSQL is required
    given = os.environ.get("PROXCOMPUTE_TEST_PG_URL")
    if given:
        yield _fresh_database(given)
        return
    installed = Path("/usr/lib/postgresql/15/bin/pg_ctl").exists()
    if os.geteuid() != 0:
        _skip_or_fail("not root (setup_postgres.sh needs root to install and run PostgreSQL)")
    if not installed and shutil.which("apt-get") is None:
        _skip_or_fail("PostgreSQL 15 is not installed and apt-get is unavailable")
    pgdata = Path(f"/tmp/proxcompute-test-pg-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    env = dict(os.environ, PGDATA_DIR=str(pgdata), PGPORT=str(_free_port()))
    proc = subprocess.run(["bash", str(SETUP)], env=env, capture_output=True, text=True, timeout=900)
    try:
        if proc.returncode != 0:
            _skip_or_fail(f"setup_postgres.sh failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
        dsn = proc.stdout.strip().splitlines()[-1]
        yield _fresh_database(dsn)
    finally:
        subprocess.run(["bash", str(STOP)], env=env, capture_output=True, text=True, timeout=120)


def _fresh_database(dsn: str) -> str:
    url = sa.make_url(dsn).set(drivername="postgresql+psycopg")
    name = f"proxcompute_jobs_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A job-store URL on an empty database, for each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.sqlite'}"
        return
    url = request.getfixturevalue("postgres_server_url")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS jobs"))
            conn.execute(sa.text("DROP TABLE IF EXISTS portal_sessions"))
    finally:
        engine.dispose()
    yield url
