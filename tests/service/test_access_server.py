"""Access rules on a real ``proxcompute serve --access`` process: SIGHUP reload, pyvo, the Python client."""

from __future__ import annotations

import os
import signal
import time

import pytest
import pyvo
import requests

from proxcompute.catalog import from_dataframe
from proxcompute.client import Client, TapError, TapQueryError
from proxcompute.service import serve_in_background
from proxcompute.synthetic import generate_catalog

ALICE, BOB = "alice-secret-token", "bob-secret-token"
RULES = """\
users:
  alice: {token: "alice-secret-token"}
  bob: {token: "bob-secret-token"}
groups:
  desi: {members: [alice]}
  team: {members: [alice, bob]}
catalogs:
  desi_dr2: {groups: [desi]}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("access-served")
    from_dataframe(generate_catalog(10_000, seed=21), name="gaia", max_rows=2_500).to_catalog(root / "survey" / "gaia")
    from_dataframe(generate_catalog(6_000, seed=22), name="desi_dr2", max_rows=2_000).to_catalog(root / "desi_dr2")
    access = root.parent / "access.yaml"
    access.write_text(RULES)
    with serve_in_background(root, "--access", str(access)) as server:
        yield server.url, access, server.process.pid


def test_pyvo_sees_what_the_rules_allow(served):
    url, _, _ = served
    alice, bob, anon = (pyvo.dal.TAPService(url, session=_session(t)) for t in (ALICE, BOB, None))
    assert alice.search("SELECT COUNT(*) AS n FROM desi_dr2").to_table()["n"][0] == 6_000
    for tap in (bob, anon):
        with pytest.raises(pyvo.dal.DALQueryError, match="unknown table"):
            tap.search("SELECT COUNT(*) AS n FROM desi_dr2")
        assert "desi_dr2" not in {t.name for t in tap.tables}
    assert "desi_dr2" in {t.name for t in alice.tables}


def _session(token):
    s = requests.Session()
    if token:
        s.headers["Authorization"] = f"Bearer {token}"
    return s


def test_python_client_shares_and_unshares(served):
    url, _, _ = served
    alice, bob, anon = Client(url, token=ALICE), Client(url, token=BOB), Client(url)
    assert alice.mydb_create("picks", "SELECT TOP 40 id, ra, dec FROM survey.gaia ORDER BY id", timeout=60) == "mydb.picks"
    try:
        with pytest.raises(TapQueryError, match="unknown table"):
            bob.query("SELECT id FROM mydb_alice.picks")
        assert alice.mydb_share("picks", "group:team") == ["group:team"]
        assert alice.mydb_shares() == {"picks": ["group:team"]}
        got = bob.query("SELECT id FROM mydb_alice.picks ORDER BY id")
        want = alice.query("SELECT id FROM mydb.picks ORDER BY id")
        assert list(got["id"]) == list(want["id"]) and len(got) == 40
        with pytest.raises(TapQueryError, match="unknown table"):
            anon.query("SELECT id FROM mydb_alice.picks")
        with pytest.raises(TapError, match="no such group"):
            alice.mydb_share("picks", "group:nobody")
        with pytest.raises(TapError, match="group:NAME"):
            alice.mydb_share("picks", "world")
        assert alice.mydb_unshare("picks", "group:team") == []
        with pytest.raises(TapQueryError, match="unknown table"):
            bob.query("SELECT id FROM mydb_alice.picks")
    finally:
        alice.mydb_drop("picks")


def test_sighup_reloads_and_a_bad_file_keeps_the_rules(served):
    url, access, pid = served
    bob = Client(url, token=BOB)
    q = "SELECT COUNT(*) AS n FROM desi_dr2"
    with pytest.raises(TapQueryError, match="unknown table"):
        bob.query(q)
    stat = os.stat(access)
    # bob joins desi; same size and mtime, so only the signal can make the server read it
    changed = RULES.replace("desi: {members: [alice]}", "desi: {members: [bob]}  ")
    assert len(changed) == len(RULES)
    access.write_text(changed)
    os.utime(access, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    time.sleep(0.2)
    with pytest.raises(TapQueryError, match="unknown table"):
        bob.query(q)  # not yet: nothing told the server
    os.kill(pid, signal.SIGHUP)
    for _ in range(50):
        try:
            assert bob.query(q)["n"][0] == 6_000
            break
        except TapQueryError:
            time.sleep(0.1)
    else:
        raise AssertionError("SIGHUP did not reload the access file")
    # a broken file on SIGHUP: the server logs and keeps serving with the rules it had
    access.write_text(RULES + "catalogs: {}\n")
    os.kill(pid, signal.SIGHUP)
    time.sleep(0.5)
    assert bob.query(q)["n"][0] == 6_000
    access.write_text(RULES)  # and a good change is picked up without a signal (it changed size)
    for _ in range(50):
        try:
            bob.query(q)
            time.sleep(0.1)
        except TapQueryError:
            break
    else:
        raise AssertionError("a changed access file was not reloaded")
