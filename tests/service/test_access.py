"""Access rules over every front of the service: two users (alice in desi, bob not) and anonymous.

A catalog a user may not read must be indistinguishable from one that does not exist: the same
"unknown table" error (no "did you mean" naming it), absent from TAP_SCHEMA, /tables and the
landing page, for sync, async, uploads joined with it, and under its alias too.
"""

from __future__ import annotations

import hmac
import io
import re
import time

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from proxcompute.catalog import from_dataframe
from proxcompute.service import ServiceConfig, create_app
from proxcompute.service.access import hash_password
from proxcompute.synthetic import generate_catalog

ALICE_TOKEN, BOB_TOKEN = "alice-secret-token", "bob-secret-token"
CAROL_TOKEN = "carol-secret-token"  # a third user, for the quota rules only
ALICE_PASSWORD = "correct horse battery"


def access_yaml(*, bob_in_desi: bool = False, alice_hash: str = "") -> str:
    members = "[alice, bob]" if bob_in_desi else "[alice]"
    password = f', password_hash: "{alice_hash}"' if alice_hash else ""
    return f"""\
users:
  alice: {{token: "{ALICE_TOKEN}"{password}, groups: [team]}}
  bob: {{token: "{BOB_TOKEN}", groups: [team]}}
  carol: {{token: "{CAROL_TOKEN}"}}
groups:
  desi: {{members: {members}}}
catalogs:
  survey: public
  desi_dr2: {{groups: [desi]}}
quotas:
  default: {{mydb_bytes: 1GB, active_jobs: 4}}
  carol: {{mydb_bytes: 2KB, active_jobs: 0}}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Catalogs ``survey.gaia`` (public) and ``desi_dr2`` (alias ``desi_main``; group desi only)."""
    root = tmp_path_factory.mktemp("access-root")
    gaia = generate_catalog(20_000, seed=11)
    desi = generate_catalog(12_000, seed=12)
    from_dataframe(gaia, name="gaia", max_rows=4_000).to_catalog(root / "survey" / "gaia")
    from_dataframe(desi, name="desi_main", max_rows=3_000).to_catalog(root / "desi_dr2")
    access = root.parent / "access.yaml"
    access.write_text(access_yaml(alice_hash=hash_password(ALICE_PASSWORD)))
    return root, access, gaia, desi


@pytest.fixture(scope="module")
def http(world, tmp_path_factory):
    root, access, _, _ = world
    config = ServiceConfig(root, data_dir=tmp_path_factory.mktemp("access-data"), access_file=access)
    with TestClient(create_app(config)) as client:
        yield client


def h(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def sync(http, token, query, **extra):
    return http.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query, "FORMAT": "csv", **extra}, headers=h(token))


def csv(response) -> pd.DataFrame:
    assert response.status_code == 200, response.text
    return pd.read_csv(io.StringIO(response.text))


def error_text(response) -> str:
    """The message of a DALI error document, with the table name it is about made generic."""
    m = re.search(r"<INFO[^>]*QUERY_STATUS[^>]*>(.*?)</INFO>", response.text, re.S)
    assert m, response.text
    return m.group(1).strip()


def test_sync_restricted_catalog_reads_for_members_and_is_unknown_for_others(http, world):
    _, _, _, desi = world
    q = "SELECT COUNT(*) AS n FROM {t} WHERE mag < 18"
    assert csv(sync(http, ALICE_TOKEN, q.format(t="desi_dr2")))["n"][0] == (desi.mag < 18).sum()
    assert csv(sync(http, ALICE_TOKEN, q.format(t="desi_main")))["n"][0] == (desi.mag < 18).sum()  # the alias
    for token in (BOB_TOKEN, None):
        for name in ("desi_dr2", "desi_main"):
            denied = sync(http, token, q.format(t=name))
            missing = sync(http, token, q.format(t=name + "x"))  # a catalog that does not exist
            assert denied.status_code == missing.status_code == 400
            assert "unknown table" in error_text(denied)
            # the same message but for the name: no "did you mean desi_dr2" for the one that exists
            assert error_text(denied).replace(name, "T") == error_text(missing).replace(name + "x", "T")
            assert "desi" not in error_text(missing).replace(name + "x", "T")
        # nor can its rows be copied into MyDB
        r = sync(http, token, "SELECT id, ra, dec FROM desi_dr2", TABLE_NAME="copied")
        assert r.status_code in (400, 401) and "copied" not in http.get("/tap/mydb", headers=h(token)).text
        # the public catalog still answers, with the right count
        assert csv(sync(http, token, "SELECT COUNT(*) AS n FROM survey.gaia"))["n"][0] == 20_000


def test_tap_schema_and_tables_list_only_readable_catalogs(http):
    q = "SELECT table_name FROM TAP_SCHEMA.tables"
    qc = "SELECT DISTINCT table_name FROM TAP_SCHEMA.columns"
    alice = set(csv(sync(http, ALICE_TOKEN, q))["table_name"])
    assert {"survey.gaia", "desi_dr2"} <= alice
    assert "desi_dr2" in set(csv(sync(http, ALICE_TOKEN, qc))["table_name"])
    for token in (BOB_TOKEN, None):
        names = set(csv(sync(http, token, q))["table_name"])
        assert "survey.gaia" in names and not any("desi" in n for n in names)
        assert not any("desi" in n for n in csv(sync(http, token, qc))["table_name"])
        listing = http.get("/tap/tables", headers=h(token))
        assert listing.status_code == 200 and "survey.gaia" in listing.text and "desi" not in listing.text
        assert http.get("/tap/tables/desi_dr2", headers=h(token)).status_code == 404
        assert "desi" not in http.get("/tap/", headers=h(token)).text
        assert "desi" not in http.get("/tap/examples", headers=h(token)).text
    assert "desi_dr2" in http.get("/tap/tables", headers=h(ALICE_TOKEN)).text
    assert http.get("/tap/tables/desi_dr2", headers=h(ALICE_TOKEN)).status_code == 200


def run_job(http, token, query, **extra) -> str:
    r = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": query, "PHASE": "RUN", **extra},
                  headers=h(token), follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    job = r.headers["location"].split("/tap", 1)[1]
    for _ in range(300):
        doc = http.get(f"/tap{job}", params={"WAIT": "2"}, headers=h(token)).text
        if any(f"<uws:phase>{p}</uws:phase>" in doc for p in ("COMPLETED", "ERROR", "ABORTED")):
            return doc
    raise AssertionError("the job did not finish")


def test_async_jobs_obey_the_same_rule(http):
    assert "<uws:phase>COMPLETED</uws:phase>" in run_job(http, ALICE_TOKEN, "SELECT TOP 5 id FROM desi_dr2")
    for token in (BOB_TOKEN, None):
        doc = run_job(http, token, "SELECT TOP 5 id FROM desi_dr2")
        assert "<uws:phase>ERROR</uws:phase>" in doc


def test_upload_joined_with_a_restricted_catalog(http, world):
    _, _, _, desi = world
    targets = desi.sample(25, random_state=3)[["id", "ra", "dec"]].rename(columns={"id": "want"})
    body = targets.to_csv(index=False).encode()
    q = ("SELECT t.want, d.id FROM TAP_UPLOAD.t AS t JOIN desi_dr2 AS d "
         "ON 1 = CONTAINS(POINT('ICRS', d.ra, d.dec), CIRCLE('ICRS', t.ra, t.dec, 0.0001))")  # fmt: skip

    def post(token):
        return http.post("/tap/sync", data={"LANG": "ADQL", "QUERY": q, "FORMAT": "csv", "UPLOAD": "t,param:t"},
                         files={"t": ("t.csv", body, "text/csv")}, headers=h(token))  # fmt: skip

    got = csv(post(ALICE_TOKEN))
    assert (got["want"] == got["id"]).all() and set(got["want"]) == set(targets["want"])
    for token in (BOB_TOKEN, None):
        r = post(token)
        assert r.status_code == 400 and "unknown table" in error_text(r)


def test_bearer_tokens_compared_timing_safe(http, monkeypatch):
    wrong_same_length = "x" * len(ALICE_TOKEN)
    near_miss = ALICE_TOKEN[:-1] + ("X" if ALICE_TOKEN[-1] != "X" else "Y")
    for token in (wrong_same_length, near_miss, ALICE_TOKEN[:-1], ALICE_TOKEN + " extra"):
        r = sync(http, token, "SELECT TOP 1 id FROM survey.gaia")
        assert r.status_code == 401 and "token is not valid" in r.text
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((len(a), len(b))) or real(a, b))
    state = http.app.state.tap
    for token in (ALICE_TOKEN, BOB_TOKEN, wrong_same_length):
        calls.clear()
        state.user_for_token(token)
        # every known token is compared (no early exit), as equal-length digests (no length leak)
        assert len(calls) == 3 and all(a == b == 32 for a, b in calls)
    assert state.user_for_token(ALICE_TOKEN) == "alice" and state.user_for_token(BOB_TOKEN) == "bob"


def test_passwords_and_basic_auth(http):
    state = http.app.state.tap
    assert state.check_password("alice", ALICE_PASSWORD)
    assert not state.check_password("alice", ALICE_PASSWORD + "!")
    assert not state.check_password("bob", ALICE_PASSWORD)  # bob has no password
    assert not state.check_password("mallory", ALICE_PASSWORD)

    def median_seconds(user):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            state.check_password(user, "wrong password")
            times.append(time.perf_counter() - t0)
        return sorted(times)[1]

    known, unknown = median_seconds("alice"), median_seconds("nobody-at-all")
    # HTTP Basic sends the password with every request: one argon2 check, then remembered
    # until the rules change; a wrong password is never remembered
    access = state.access
    verified = []
    real = access.check_password
    access.check_password = lambda u, p: verified.append(u) or real(u, p)
    try:
        assert access.user_for_password("alice", ALICE_PASSWORD) == "alice"
        assert access.user_for_password("alice", ALICE_PASSWORD) == "alice" and verified == ["alice"]
        assert access.user_for_password("alice", "nope") is None and access.user_for_password("alice", "nope") is None
        assert verified == ["alice", "alice", "alice"]
        access.version += 1  # a reload
        assert access.user_for_password("alice", ALICE_PASSWORD) == "alice" and len(verified) == 4
    finally:
        del access.check_password
    assert unknown > 0.3 * known, (known, unknown)  # an unknown user also pays for an argon2 verify
    ok = http.post("/tap/sync", data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM desi_dr2", "FORMAT": "csv"},
                   auth=("alice", ALICE_PASSWORD))  # fmt: skip
    assert ok.status_code == 200
    wrong = http.get("/tap/tables", auth=("alice", "nope"))
    unknown_user = http.get("/tap/tables", auth=("mallory", "nope"))
    assert wrong.status_code == unknown_user.status_code == 401
    assert wrong.text == unknown_user.text and "unknown user or wrong password" in wrong.text


def test_groups_quotas_and_can_read(http):
    state = http.app.state.tap
    assert state.groups_of("alice") == {"desi", "team"} and state.groups_of("bob") == {"team"}
    assert state.groups_of(None) == set()
    assert state.can_read("alice", "desi_dr2") and state.can_read("alice", "desi_main")
    assert not state.can_read("bob", "desi_main") and not state.can_read(None, "desi_dr2")
    assert state.can_read(None, "survey.gaia") and state.can_read(None, "gaia")
    assert not state.can_read("alice", "no_such_catalog")
    assert state.quota_for("alice").mydb_bytes == 10**9 and state.quota_for("alice").active_jobs == 4
    assert state.quota_for("carol").mydb_bytes == 2_000 and state.quota_for("carol").active_jobs == 0
    assert state.quota_for("bob").mydb_bytes == 10**9 and state.quota_for(None).active_jobs == 4


def test_mydb_quota_and_active_jobs_quota(http):
    r = sync(http, CAROL_TOKEN, "SELECT TOP 2000 id, ra, dec, mag FROM survey.gaia", TABLE_NAME="too_big")
    assert r.status_code == 403 and "mydb_bytes" in r.text and "2,000 bytes" in r.text
    assert "too_big" not in http.get("/tap/mydb", headers=h(CAROL_TOKEN)).text  # nothing half-written
    assert not (http.app.state.tap.config.mydb_dir / "carol" / "too_big").exists()
    r = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM survey.gaia"},
                  headers=h(CAROL_TOKEN), follow_redirects=False)  # fmt: skip
    assert r.status_code == 403 and "active_jobs" in r.text
    r = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM survey.gaia"},
                  headers=h(ALICE_TOKEN), follow_redirects=False)  # fmt: skip
    assert r.status_code == 303


def share(http, token, table, target, action="share"):
    return http.post(f"/tap/mydb/{table}/{action}", json={"with": target}, headers=h(token))


def test_share_and_unshare_a_mydb_table(http, world):
    _, _, gaia, _ = world
    q = "SELECT id, ra, dec, mag FROM survey.gaia WHERE mag < 16"
    assert sync(http, ALICE_TOKEN, q, TABLE_NAME="bright").status_code == 200
    want = sorted(gaia.id[gaia.mag < 16])
    read = "SELECT id FROM mydb_alice.bright"
    listed = "SELECT table_name FROM TAP_SCHEMA.tables WHERE schema_name = 'mydb_alice'"
    assert sync(http, BOB_TOKEN, read).status_code == 400  # private until shared
    assert share(http, ALICE_TOKEN, "bright", "group:desi").json()["shared_with"] == ["group:desi"]
    assert sync(http, BOB_TOKEN, read).status_code == 400  # bob is not in desi
    r = share(http, ALICE_TOKEN, "bright", "group:team")
    assert r.status_code == 200 and r.json()["shared_with"] == ["group:desi", "group:team"]
    assert sorted(csv(sync(http, BOB_TOKEN, read))["id"]) == want
    assert list(csv(sync(http, BOB_TOKEN, listed))["table_name"]) == ["mydb_alice.bright"]
    assert "<uws:phase>COMPLETED</uws:phase>" in run_job(http, BOB_TOKEN, read)  # async sees it too
    assert "mydb_alice.bright" in http.get("/tap/tables", headers=h(BOB_TOKEN)).text
    assert sync(http, None, read).status_code == 400  # anonymous users see no shared tables
    assert "mydb_alice" not in http.get("/tap/tables").text
    assert http.app.state.tap.shares_of("alice") == {"bright": {"group:desi", "group:team"}}
    # unsharing takes effect at once
    assert share(http, ALICE_TOKEN, "bright", "group:team", "unshare").json()["shared_with"] == ["group:desi"]
    r = sync(http, BOB_TOKEN, read)
    assert r.status_code == 400 and "unknown table" in error_text(r)
    assert share(http, ALICE_TOKEN, "bright", "authenticated").status_code == 200
    assert sorted(csv(sync(http, BOB_TOKEN, read))["id"]) == want
    # read-only: bob cannot share, drop or write over it; alice's drop ends the share
    assert share(http, BOB_TOKEN, "bright", "authenticated").status_code == 400
    assert http.delete("/tap/mydb/bright", headers=h(BOB_TOKEN)).status_code == 400
    assert http.delete("/tap/mydb/bright", headers=h(ALICE_TOKEN)).status_code == 204
    assert sync(http, BOB_TOKEN, read).status_code == 400
    assert http.app.state.tap.shares_of("alice") == {}


@pytest.mark.parametrize(("token", "table", "target", "status", "text"), [
    (ALICE_TOKEN, "nothing", "authenticated", 400, "no table mydb.nothing"),
    (ALICE_TOKEN, "t", "group:nosuch", 400, "no such group"),
    (ALICE_TOKEN, "t", "everyone", 400, "group:NAME"),
    (None, "t", "authenticated", 401, "signed-in"),
])  # fmt: skip
def test_bad_share_requests(http, token, table, target, status, text):
    if token is not None and table == "t":
        sync(http, token, "SELECT TOP 3 id, ra, dec FROM survey.gaia", TABLE_NAME="t")
    r = share(http, token, table, target)
    assert r.status_code == status and text in r.text, r.text
    r = share(http, ALICE_TOKEN, "t", "authenticated", "unshare")
    assert r.status_code == 400 and "not shared with authenticated" in r.text


def test_reload_on_change_keeps_old_rules_when_the_new_file_is_bad(world, tmp_path, caplog):
    root, _, _, _ = world
    access = tmp_path / "access.yaml"
    access.write_text(access_yaml())
    config = ServiceConfig(root, data_dir=tmp_path / "data", access_file=access)
    with TestClient(create_app(config)) as http:
        q = "SELECT COUNT(*) AS n FROM desi_dr2"
        assert sync(http, BOB_TOKEN, q).status_code == 400
        access.write_text(access_yaml(bob_in_desi=True) + "\n")  # a new size: a change the stat sees
        assert csv(sync(http, BOB_TOKEN, q))["n"][0] == 12_000
        access.write_text(access_yaml() + "catalogs_typo: {}\n")
        with caplog.at_level("ERROR", logger="proxcompute.service.access"):
            assert csv(sync(http, BOB_TOKEN, q))["n"][0] == 12_000  # the bad file is not used
        assert any("previous ones stay in force" in r.getMessage() and "catalogs_typo" in r.getMessage()
                   for r in caplog.records)  # fmt: skip
        state = http.app.state.tap
        assert state.access.last_error is not None and ":13: the access file: unknown key 'catalogs_typo'" in (
            state.access.last_error
        )
        access.write_text(access_yaml())
        assert sync(http, BOB_TOKEN, q).status_code == 400 and state.access.last_error is None


NESTED = {
    "parentheses": "SELECT id FROM survey.gaia WHERE " + "(" * 5000 + "mag < 20" + ")" * 5000,
    "NOT chain": "SELECT id FROM survey.gaia WHERE " + "NOT " * 5000 + "mag < 20",
    "subqueries": "SELECT * FROM " + "(SELECT * FROM " * 3000 + "survey.gaia" + ") AS s" * 3000,
    "AND chain": "SELECT id FROM survey.gaia WHERE " + " AND ".join(["mag < 20"] * 10000),
    "sign chain": "SELECT " + "- " * 5000 + "1 AS x FROM survey.gaia",
}


@pytest.mark.parametrize("shape", sorted(NESTED))
def test_deeply_nested_queries_are_a_400_and_the_service_keeps_serving(http, shape):
    r = sync(http, ALICE_TOKEN, NESTED[shape])
    assert r.status_code == 400, r.text[:500]
    assert "nested" in r.text or "in a row" in r.text or "characters" in r.text
    assert csv(sync(http, ALICE_TOKEN, "SELECT COUNT(*) AS n FROM survey.gaia"))["n"][0] == 20_000


def test_megabyte_query_is_a_400(http):
    q = "SELECT id FROM survey.gaia WHERE id IN (" + ", ".join(str(i) for i in range(200_000)) + ")"
    assert len(q) > 1_000_000
    r = sync(http, ALICE_TOKEN, q)
    assert r.status_code == 400 and "characters; the limit is 200,000" in r.text
    via_job = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": q}, headers=h(ALICE_TOKEN),
                        follow_redirects=False)  # fmt: skip
    assert via_job.status_code == 400 and "characters" in via_job.text
    assert csv(sync(http, ALICE_TOKEN, "SELECT COUNT(*) AS n FROM survey.gaia"))["n"][0] == 20_000


def test_public_catalog_results_match_an_independent_count(http, world):
    """The rules filter tables, never rows: a cone over the public catalog equals brute force."""
    _, _, gaia, _ = world
    q = "SELECT id FROM survey.gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 359.5, -1, 5))"
    got = set(csv(sync(http, None, q))["id"])
    ra, dec = np.radians(gaia.ra), np.radians(gaia.dec)
    ra0, dec0 = np.radians(359.5), np.radians(-1)
    cos_d = np.sin(dec) * np.sin(dec0) + np.cos(dec) * np.cos(dec0) * np.cos(ra - ra0)
    want = set(gaia.id[np.degrees(np.arccos(np.clip(cos_d, -1, 1))) <= 5])
    assert got == want and len(want) > 10
