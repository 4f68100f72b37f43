"""The portal's security, over plain HTTP with the service's test client (no browser).

CSRF on every state-changing form, no session fixation, cookie flags, a generic sign-in
failure, and everything a user or a catalog controls (column and table names, the query, an
error message) escaped on every page that shows it.
"""

from __future__ import annotations

import re

import pytest
from starlette.routing import Mount
from starlette.testclient import TestClient

from proxcompute.catalog import from_dataframe
from proxcompute.service import ServiceConfig, create_app
from proxcompute.service.access import hash_password
from proxcompute.service.portal import portal_routes
from proxcompute.service.portal.account import SIGN_IN_FAILED
from proxcompute.service.portal.sessions import COOKIE, SignInThrottle
from proxcompute.synthetic import generate_catalog

ALICE, BOB, CAROL = "tok-alice-0123456789", "tok-bob-0123456789", "tok-carol-0123456789"
ALICE_PASSWORD = "correct horse battery"
XSS_COLUMN = "<img src=x onerror=alert(1)>"
XSS_QUERY = "SELECT TOP 3 id FROM gaia -- </textarea><script>alert(2)</script>"
XSS_ERROR = 'SELECT "<script>alert(3)</script>" FROM gaia'
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("portalsec")
    df = generate_catalog(4_000, seed=5)
    from_dataframe(df, name="gaia", max_rows=1_000).to_catalog(root / "gaia")
    weird = df[["id", "ra", "dec"]].assign(**{XSS_COLUMN: df.mag})
    from_dataframe(weird, name="weird", max_rows=2_000).to_catalog(root / "weird")
    from_dataframe(df, name="secret_survey", max_rows=2_000).to_catalog(root / "secret_survey")
    access = root.parent / "access.yaml"
    access.write_text(
        f"users:\n  alice: {{token: {ALICE}, password_hash: '{hash_password(ALICE_PASSWORD)}', groups: [team]}}\n"
        f"  bob: {{token: {BOB}, groups: [team]}}\n"
        f"  carol: {{token: {CAROL}}}\n"
        "groups:\n  team: {}\n"
        "catalogs:\n  secret_survey: {groups: [team]}\n"
    )
    app = create_app(ServiceConfig(root, access_file=access))
    yield app
    app.state.tap.close()  # the clients below do not run the lifespan (its end would close the service)


def visitor(app) -> TestClient:
    """A browser of its own (its own cookies) on the shared app."""
    return TestClient(app, follow_redirects=False)


@pytest.fixture()
def client(app):
    return visitor(app)


def csrf_of(client: TestClient, path: str = "/signin") -> str:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return CSRF.search(r.text).group(1)


def sign_in(client: TestClient, token: str) -> None:
    r = client.post("/signin", data={"token": token, "csrf_token": csrf_of(client)})
    assert r.status_code == 303, r.text


def run(client: TestClient, query: str, **extra: str):
    return client.post("/query", data={"query": query, "action": "run", "row_limit": "10",
                                       "csrf_token": csrf_of(client, "/query"), **extra})  # fmt: skip


def _post_routes() -> list[str]:
    return sorted({r.path for r in portal_routes() if not isinstance(r, Mount) and "POST" in (r.methods or ())})


def test_every_post_route_is_covered_below():
    # a new state-changing route must be added to the CSRF test's table
    assert _post_routes() == sorted(
        ["/query", "/signin", "/signout", "/jobs/{job_id}/abort", "/jobs/{job_id}/delete", "/mydb/{name}/drop",
         "/mydb/{name}/share", "/mydb/{name}/unshare"]
    )  # fmt: skip


def test_csrf_on_every_state_changing_form(client, app):
    sign_in(client, ALICE)
    r = run(client, "SELECT TOP 5 id, ra, dec FROM gaia")
    job = r.headers["location"].rsplit("/", 1)[-1]
    r = run(client, "SELECT TOP 5 id, ra, dec FROM gaia", table_name="t1")
    assert r.status_code == 303
    forms = {
        "/query": {"query": "SELECT TOP 1 id FROM gaia", "action": "run"},
        "/signin": {"token": BOB},
        "/signout": {},
        f"/jobs/{job}/abort": {},
        f"/jobs/{job}/delete": {},
        "/mydb/t1/drop": {},
        "/mydb/t1/share": {"with": "group:team"},
        "/mydb/t1/unshare": {"with": "group:team"},
    }
    assert len(forms) == len(_post_routes())
    foreign = csrf_of(visitor(app))  # another visitor's token is not this session's
    for path, data in forms.items():
        for token in (None, "", foreign, "x" * 43):
            body = dict(data) if token is None else {**data, "csrf_token": token}
            r = client.post(path, data=body)
            assert r.status_code == 403, (path, token, r.status_code)
            assert "did not come from this site" in r.text
    # nothing changed: still alice, the job and the table are there
    assert "Signed in as <strong>alice</strong>" in client.get("/jobs").text
    assert job in client.get("/jobs").text
    assert "mydb.t1" in client.get("/mydb").text
    assert "group:team</span>" not in client.get("/mydb").text  # not shared by the refused forms
    # and the same forms with the right token work
    token = csrf_of(client, "/jobs")
    assert client.post("/mydb/t1/share", data={"with": "group:team", "csrf_token": token}).status_code == 303
    assert "group:team</span>" in client.get("/mydb").text
    assert client.post("/mydb/t1/unshare", data={"with": "group:team", "csrf_token": token}).status_code == 303
    assert "group:team</span>" not in client.get("/mydb").text
    assert client.post(f"/jobs/{job}/delete", data={"csrf_token": token}).status_code == 303
    assert job not in client.get("/jobs").text
    assert client.post("/mydb/t1/drop", data={"csrf_token": token}).status_code == 303
    assert "mydb.t1" not in client.get("/mydb").text


def test_no_session_fixation_and_cookie_flags(client):
    planted = "attacker-chosen-session-id"
    r = client.get("/signin", headers={"cookie": f"{COOKIE}={planted}"})
    cookie = r.headers["set-cookie"]
    assert planted not in cookie  # an unknown id is never adopted
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "path=/" in cookie.lower()
    before = client.cookies[COOKIE]
    token = CSRF.search(r.text).group(1)
    r = client.post("/signin", data={"token": ALICE, "csrf_token": token})
    assert r.status_code == 303
    after = client.cookies[COOKIE]
    assert after != before  # rotated at sign-in
    assert "Signed in as <strong>alice</strong>" in client.get("/").text
    # the pre-sign-in id (which an attacker could have planted) is worth nothing now
    attacker = visitor(client.app)
    assert "alice" not in attacker.get("/", headers={"cookie": f"{COOKIE}={before}"}).text
    # nor is the CSRF token of the old session
    assert client.post("/signout", data={"csrf_token": token}).status_code == 403
    # sign-out rotates again and the signed-in id dies with it
    r = client.post("/signout", data={"csrf_token": csrf_of(client, "/")})
    assert r.status_code == 303 and client.cookies[COOKIE] != after
    assert "alice" not in visitor(client.app).get("/", headers={"cookie": f"{COOKIE}={after}"}).text


def test_password_sign_in(client):
    r = client.post("/signin", data={"username": "alice", "password": ALICE_PASSWORD,
                                     "csrf_token": csrf_of(client)})  # fmt: skip
    assert r.status_code == 303
    assert "Signed in as <strong>alice</strong>" in client.get("/").text


def test_sign_in_failure_is_generic(client):
    answers = []
    for data in ({"token": "no-such-token-at-all"}, {"token": ALICE[:-1]}, {"username": "alice", "password": "wrong"},
                 {"username": "nobody", "password": "wrong"}, {"username": "alice", "password": ""},
                 {"username": "bob", "password": "anything"}, {}):  # fmt: skip
        r = client.post("/signin", data={**data, "csrf_token": csrf_of(client)})
        assert r.status_code == 401
        answers.append(re.search(r'id="signin-error">([^<]*)<', r.text).group(1))
    assert set(answers) == {SIGN_IN_FAILED.replace("'", "&#39;")}


def test_sign_in_guessing_is_throttled(client):
    portal = client.app.state.portal
    saved = portal.sign_in_throttle
    portal.sign_in_throttle = SignInThrottle(max_failures=3, window_seconds=60)
    try:
        for _ in range(3):
            r = client.post("/signin", data={"username": "alice", "password": "guess", "csrf_token": csrf_of(client)})
            assert r.status_code == 401
        # now even the right password waits, and the answer says nothing about it
        r = client.post("/signin", data={"username": "alice", "password": ALICE_PASSWORD, "csrf_token": csrf_of(client)})
        assert r.status_code == 429 and "Too many failed sign-ins" in r.text
        assert "Signed in as" not in client.get("/").text
    finally:
        portal.sign_in_throttle = saved


def test_security_headers(client):
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in r.text.replace('<script src="/static/portal.js" defer></script>', "")


def test_xss_through_a_column_name(client):
    r = client.get("/catalogs/weird")
    assert r.status_code == 200
    assert XSS_COLUMN not in r.text and "&lt;img src=x onerror=alert(1)&gt;" in r.text
    r = run(client, "SELECT TOP 3 * FROM weird")
    page = client.get(r.headers["location"])
    assert page.status_code == 200 and "<th" in page.text
    assert XSS_COLUMN not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text


def test_xss_through_a_table_name(client):
    r = client.get("/catalogs/" + "<img src=x onerror=alert(4)>")
    assert r.status_code == 404
    assert "<img src=x onerror=alert(4)>" not in r.text and "&lt;img src=x onerror=alert(4)&gt;" in r.text
    sign_in(client, ALICE)
    r = run(client, "SELECT TOP 2 id, ra, dec FROM gaia", table_name="<b>x</b>")
    assert r.status_code == 400
    assert "<b>x</b>" not in r.text and "&lt;b&gt;x&lt;/b&gt;" in r.text


def test_xss_through_the_query(client):
    r = run(client, XSS_QUERY)
    assert r.status_code == 303
    page = client.get(r.headers["location"])
    assert "<script>alert(2)" not in page.text and "&lt;/textarea&gt;&lt;script&gt;alert(2)" in page.text
    editor = client.get("/query", params={"query": XSS_QUERY})
    assert "<script>alert(2)" not in editor.text and "&lt;script&gt;alert(2)" in editor.text


def test_xss_through_an_error_message(client):
    r = run(client, XSS_ERROR)
    assert r.status_code == 400
    assert "<script>alert(3)" not in r.text and "&lt;script&gt;alert(3)" in r.text
    assert 'id="query-error-position">line 1, column' in r.text


def test_other_users_jobs_and_tables_are_invisible(app):
    alice, bob, anon1, anon2 = (visitor(app) for _ in range(4))
    sign_in(alice, ALICE)
    sign_in(bob, BOB)
    job = run(alice, "SELECT TOP 5 id, ra, dec FROM gaia", table_name="secret").headers["location"]
    job_id = job.rsplit("/", 1)[-1]
    anon_job = run(anon1, "SELECT TOP 5 id, ra, dec FROM gaia").headers["location"].rsplit("/", 1)[-1]
    for other in (bob, anon1, anon2):
        assert job_id not in other.get("/jobs").text
        assert other.get(f"/jobs/{job_id}").status_code == 404
        assert other.get(f"/jobs/{job_id}/result.csv").status_code == 404
        assert "secret" not in other.get("/mydb").text
        assert other.get("/catalogs/mydb.secret").status_code == 404
    assert anon1.get(f"/jobs/{anon_job}").status_code == 200
    for other in (alice, bob, anon2):  # anonymous jobs belong to the session that made them
        assert anon_job not in other.get("/jobs").text
        assert other.get(f"/jobs/{anon_job}").status_code == 404
    token = csrf_of(bob, "/jobs")
    assert bob.post(f"/jobs/{job_id}/delete", data={"csrf_token": token}).status_code == 404
    assert bob.post("/mydb/secret/drop", data={"csrf_token": token}).status_code == 400
    assert bob.post("/mydb/secret/share", data={"with": "authenticated", "csrf_token": token}).status_code == 400
    assert job_id in alice.get("/jobs").text and "mydb.secret" in alice.get("/mydb").text
    # a restricted catalog: its group sees it, an anonymous visitor gets the same 404 as for no catalog
    assert "secret_survey" in alice.get("/catalogs").text
    for anon in (anon1, anon2):
        assert "secret_survey" not in anon.get("/catalogs").text
        assert anon.get("/catalogs/secret_survey").status_code == 404
        assert anon.get("/catalogs/secret_survey/coverage.png").status_code == 404
        r = run(anon, "SELECT TOP 1 id FROM secret_survey")
        assert r.status_code == 400 and "unknown table" in r.text


def test_sharing_shows_the_table_to_the_group_only(app):
    alice, bob, carol = (visitor(app) for _ in range(3))
    for c, token in ((alice, ALICE), (bob, BOB), (carol, CAROL)):
        sign_in(c, token)
    assert run(alice, "SELECT TOP 40 id, ra, dec FROM gaia ORDER BY id", table_name="shared40").status_code == 303
    assert "mydb_alice.shared40" not in bob.get("/catalogs").text
    token = csrf_of(alice, "/mydb")
    assert alice.post("/mydb/shared40/share", data={"with": "group:team", "csrf_token": token}).status_code == 303
    assert "mydb_alice.shared40" in bob.get("/mydb").text and "mydb_alice.shared40" in bob.get("/catalogs").text
    r = run(bob, "SELECT COUNT(*) AS n FROM mydb_alice.shared40")
    assert r.status_code == 303 and "<td>40</td>" in bob.get(r.headers["location"]).text
    assert "shared40" not in carol.get("/catalogs").text  # not in the group
    bad = alice.post("/mydb/shared40/share", data={"with": "group:<i>nope</i>", "csrf_token": token})
    assert bad.status_code == 400 and "<i>nope" not in bad.text and "&lt;i&gt;nope" in bad.text
    assert alice.post("/mydb/shared40/unshare", data={"with": "group:team", "csrf_token": token}).status_code == 303
    assert "mydb_alice.shared40" not in bob.get("/catalogs").text


def test_sessions_outlive_a_restart_and_are_shared_through_the_database(tmp_path):
    """Signed-in browsers stay signed in across a service restart; sign-out in one process ends the session in all.

    Two apps on one job database stand for a restart (the first closed, a second opened) and for
    two service processes behind one address; the database keeps only a digest of each cookie.
    """
    import sqlalchemy as sa

    from proxcompute.service.portal.sessions import sessions_table

    from_dataframe(generate_catalog(2_000, seed=6), name="gaia", max_rows=1_000).to_catalog(tmp_path / "gaia")
    access = tmp_path / "access.yaml"
    access.write_text(f"users:\n  alice: {{token: {ALICE}}}\n")
    config = dict(access_file=access, data_dir=tmp_path / "service")
    first = create_app(ServiceConfig(tmp_path, **config))
    alice, anonymous = visitor(first), visitor(first)
    sign_in(alice, ALICE)
    r = run(anonymous, "SELECT TOP 3 id FROM gaia")
    assert r.status_code == 303, r.text
    job_path = r.headers["location"]
    cookies = {"alice": alice.cookies[COOKIE], "anonymous": anonymous.cookies[COOKIE]}
    first.state.tap.close()  # the service stops ...

    second = create_app(ServiceConfig(tmp_path, **config))  # ... and starts again
    third = create_app(ServiceConfig(tmp_path, **config))  # another process on the same database
    try:
        again = visitor(second)
        again.cookies.set(COOKIE, cookies["alice"])
        assert "Signed in as <strong>alice</strong>" in again.get("/").text
        anon = visitor(second)
        anon.cookies.set(COOKIE, cookies["anonymous"])
        assert anon.get(job_path).status_code == 200  # the anonymous visitor still sees their job
        assert job_path.rsplit("/", 1)[1] in anon.get("/jobs").text
        stranger = visitor(second)
        assert stranger.get(job_path).status_code == 404

        r = again.post("/signout", data={"csrf_token": csrf_of(again, "/")})
        assert r.status_code == 303
        elsewhere = visitor(third)
        elsewhere.cookies.set(COOKIE, cookies["alice"])
        assert "Signed in as" not in elsewhere.get("/").text  # signed out everywhere

        engine = sa.create_engine(f"sqlite:///{tmp_path / 'service' / 'jobs.sqlite'}")
        with engine.connect() as conn:
            stored = " ".join(str(v) for row in conn.execute(sa.select(sessions_table)) for v in row)
        engine.dispose()
        assert cookies["anonymous"] not in stored and cookies["alice"] not in stored
    finally:
        second.state.tap.close()
        third.state.tap.close()
