"""proxcompute.client.Client against a real `proxcompute serve`: sync/async queries, jobs, files,
uploads, MAXREC overflow, errors, bearer tokens and MyDB."""

import re
import time
import warnings

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tap_server import free_port, running_server

import proxcompute
from proxcompute.catalog import from_dataframe
from proxcompute.client import Client, ResultTruncatedWarning, TapError, TapQueryError, TapTimeoutError
from proxcompute.errors import ProxError
from proxcompute.synthetic import generate_catalog

Q = "SELECT id, ra, dec, mag, color, flag FROM survey.gaia WHERE mag < 17 ORDER BY id"
HEAVY = (
    "SELECT a.id, b.id AS bid FROM survey.gaia AS a JOIN survey.gaia AS b "
    "ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 1.5"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("clientroot")
    from_dataframe(generate_catalog(30_000, seed=11), name="gaia", max_rows=3_000).to_catalog(
        root / "survey" / "gaia"
    )
    with running_server(root) as url:
        yield url, root


@pytest.fixture(scope="module")
def tap(served):
    with Client(served[0], timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def want(served):
    return proxcompute.sql(Q, catalog_root=served[1]).compute()


@pytest.fixture(scope="module")
def secured(served, tmp_path_factory):
    """A second server on the same catalogs with bearer tokens (tok1: alice, tok2: bob)."""
    _, root = served
    tokens = tmp_path_factory.mktemp("tokens") / "tokens.yaml"
    tokens.write_text("tok1: alice\ntok2: bob\n")
    data = tmp_path_factory.mktemp("securedata")
    with running_server(root, "--tokens", str(tokens), "--data-dir", str(data)) as url:
        yield url


def _votable_only(client: Client) -> Client:
    """The client as it behaves against a service without Parquet (results and uploads as VOTable)."""
    caps = client._capabilities()
    caps.parquet_mime = None
    caps.server = "some-other-tap/1.0"
    return client


def _as_frame(result) -> pd.DataFrame:
    if isinstance(result, pa.Table):
        return result.to_pandas()
    if isinstance(result, pd.DataFrame):
        return result
    return result.to_pandas()


def test_repr_shows_url_and_hides_token(served):
    url = served[0]
    assert repr(Client(url)) == f"Client({url!r}, token=None)"
    r = repr(Client(url, token="s3cret-token"))
    assert url in r and "<set>" in r and "s3cret" not in r


def test_client_errors_are_prox_errors():
    assert issubclass(TapError, ProxError) and issubclass(TapQueryError, TapError)
    assert issubclass(TapTimeoutError, TapError)


@pytest.mark.parametrize("fmt", ["pandas", "table", "arrow"])
def test_sync_query_equals_sql(tap, want, fmt):
    got = tap.query(Q, fmt=fmt)
    kind = {"pandas": pd.DataFrame, "arrow": pa.Table}.get(fmt)
    if kind is not None:
        assert isinstance(got, kind)
    else:
        from astropy.table import Table

        assert isinstance(got, Table)
    df = _as_frame(got)
    assert len(want) > 50
    pd.testing.assert_frame_equal(df.reset_index(drop=True), want.reset_index(drop=True))


def test_votable_results_when_the_service_has_no_parquet(served, want):
    with Client(served[0]) as client:
        _votable_only(client)
        got = client.query(Q, fmt="table")
        assert got["ra"].unit == "deg" and got["dec"].unit == "deg"  # VOTable metadata (column units) survives
        assert got["mag"].unit is None
        df = client.query(Q)
    np.testing.assert_array_equal(df["id"].to_numpy(), want["id"].to_numpy())
    np.testing.assert_allclose(df["mag"].to_numpy(), want["mag"].to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(df["flag"].to_numpy(), want["flag"].to_numpy())


def test_async_query_equals_sql_and_deletes_its_job(tap, want):
    before = {j["job_id"] for j in tap.jobs()}
    got = tap.query(Q, async_=True, timeout=60)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
    assert {j["job_id"] for j in tap.jobs()} <= before


def test_submit_status_wait_results_delete(tap, want):
    job = tap.submit(Q, params={"RUNID": "client-test"})
    assert tap.wait(job, timeout=60) == "COMPLETED"
    st = tap.status(job)
    assert st["job_id"] == job and st["phase"] == "COMPLETED" and st["run_id"] == "client-test"
    assert st["error"] is None and st["parameters"]["QUERY"] == Q
    assert st["created"].tzinfo is not None and st["ended"] >= st["started"] >= st["created"]
    done, total = st["progress"]
    assert done == total >= 1
    assert any(j["job_id"] == job for j in tap.jobs(phase="COMPLETED"))
    assert not any(j["job_id"] == job for j in tap.jobs(phase=["PENDING", "EXECUTING"]))
    assert len(tap.jobs(last=1)) == 1
    got = tap.results(job, fmt="arrow")
    assert got.column("id").to_pylist() == want["id"].tolist()
    tap.delete(job)
    with pytest.raises(TapError) as info:
        tap.status(job)
    assert info.value.status == 404


def test_abort_a_running_job(tap):
    job = tap.submit(HEAVY)  # millions of pairs: seconds of work, so it is still running when aborted
    deadline = time.monotonic() + 30
    while (phase := tap.status(job)["phase"]) != "EXECUTING":
        assert phase in ("PENDING", "QUEUED"), f"the job ended ({phase}) before it could be aborted"
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    tap.abort(job)  # refused (TapError) if the job had finished in between
    assert tap.status(job)["phase"] == "ABORTED"
    with pytest.raises(TapError, match="aborted") as info:
        tap.wait(job)
    assert not isinstance(info.value, TapQueryError)
    with pytest.raises(TapError, match="ABORTED"):
        tap.results(job)
    tap.delete(job)


def test_wait_timeout_leaves_the_job_running(tap):
    job = tap.submit(HEAVY)
    try:
        with pytest.raises(TapTimeoutError) as info:
            tap.wait(job, timeout=0.2)
        assert info.value.job_id == job and job in str(info.value)
        assert tap.status(job)["phase"] in ("QUEUED", "EXECUTING")
    finally:
        tap.abort(job)
        tap.delete(job)


def _read_back(path):
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".tsv":
        return pd.read_csv(path, sep="\t")
    from astropy.table import Table

    return Table.read(path, format="votable").to_pandas()


@pytest.mark.parametrize(
    "name, async_",
    [("r.parquet", False), ("r.csv", False), ("r.tsv", True), ("r.vot", False), ("r.xml", True)],
)
def test_out_files_in_each_format(tap, want, tmp_path, name, async_):
    out = tmp_path / name
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResultTruncatedWarning)
        assert tap.query(Q, out=out, async_=async_, timeout=60) == out
    df = _read_back(out)
    assert df["id"].tolist() == want["id"].tolist()
    np.testing.assert_allclose(df["mag"].to_numpy(), want["mag"].to_numpy(), rtol=1e-12)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no partial file left behind


def test_out_file_overflow_and_errors(tap, tmp_path):
    with pytest.warns(ResultTruncatedWarning):
        tap.query(Q, out=tmp_path / "cut.vot", maxrec=5)
    with pytest.warns(ResultTruncatedWarning, match="may be truncated"):
        tap.query(Q, out=tmp_path / "cut.parquet", maxrec=5)
    assert len(pd.read_parquet(tmp_path / "cut.parquet")) == 5
    with pytest.raises(TapQueryError, match="nope"):
        tap.query("SELECT nope FROM survey.gaia", out=tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()
    with pytest.raises(TapError, match="suffix"):
        tap.query(Q, out=tmp_path / "r.xlsx")


@pytest.fixture(scope="module")
def targets(want):
    """Catalog rows shifted by 0.5 arcsec, as an upload."""
    pick = want.iloc[::7].head(20)
    return pd.DataFrame(
        {"tid": np.arange(len(pick)), "ra": pick["ra"].to_numpy() + 0.5 / 3600, "dec": pick["dec"].to_numpy(),
         "want_id": pick["id"].to_numpy()}
    )  # fmt: skip


JOIN = (
    "SELECT t.tid, t.want_id, g.id FROM TAP_UPLOAD.targets AS t JOIN survey.gaia AS g "
    "ON 1 = CONTAINS(POINT('ICRS', t.ra, t.dec), CIRCLE('ICRS', g.ra, g.dec, 2.0/3600)) ORDER BY t.tid"
)


def _check_join(result, targets):
    df = _as_frame(result)
    assert df["tid"].tolist() == targets["tid"].tolist()
    assert df["id"].tolist() == targets["want_id"].tolist()


@pytest.mark.parametrize("kind", ["pandas", "astropy", "arrow", "parquet-file", "votable-file", "csv-file"])
def test_upload_joined_with_the_catalog(tap, targets, tmp_path, kind):
    if kind == "pandas":
        table = targets
    elif kind == "astropy":
        from astropy.table import Table

        table = Table.from_pandas(targets)
    elif kind == "arrow":
        table = pa.Table.from_pandas(targets)
    elif kind == "parquet-file":
        table = tmp_path / "t.parquet"
        targets.to_parquet(table)
    elif kind == "votable-file":
        from astropy.table import Table

        table = tmp_path / "t.vot"
        Table.from_pandas(targets).write(table, format="votable")
    else:
        table = tmp_path / "t.csv"
        targets.to_csv(table, index=False)
    _check_join(tap.query(JOIN, uploads={"targets": table}), targets)


def test_upload_as_votable_to_other_services_and_async(served, targets, tmp_path):
    with Client(served[0]) as client:
        _votable_only(client)
        _check_join(client.query(JOIN, uploads={"targets": targets}, async_=True, timeout=60), targets)
        path = tmp_path / "t.parquet"  # Parquet files become VOTable for services that only read VOTable
        targets.to_parquet(path)
        _check_join(client.query(JOIN, uploads={"targets": path}), targets)
    with pytest.raises(TapError, match="upload name"):
        Client(served[0]).query(JOIN, uploads={"bad name": targets})
    with pytest.raises(TapError, match="cannot upload"):
        Client(served[0]).query(JOIN, uploads={"targets": [1, 2, 3]})


def test_maxrec_overflow_warning(served, tap, want):
    n = len(want)
    with pytest.warns(ResultTruncatedWarning, match="MAXREC=10"):
        got = tap.query(Q, maxrec=10)
    assert got["id"].tolist() == want["id"].head(10).tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResultTruncatedWarning)
        assert len(tap.query(Q, maxrec=n)) == n  # exactly the limit: not truncated
        assert len(tap.query(Q.replace("SELECT", "SELECT TOP 5"), maxrec=10)) == 5
        assert len(tap.query(Q, maxrec=0, fmt="arrow")) == 0  # metadata only
    with pytest.warns(ResultTruncatedWarning):
        assert len(tap.query(Q, maxrec=7, async_=True, timeout=60)) == 7
    job = tap.submit(Q, maxrec=3)
    tap.wait(job, timeout=60)
    with pytest.warns(ResultTruncatedWarning):
        assert len(tap.results(job)) == 3
    tap.delete(job)
    with Client(served[0]) as client:  # VOTable: the OVERFLOW INFO
        _votable_only(client)
        with pytest.warns(ResultTruncatedWarning):
            assert len(client.query(Q, maxrec=4)) == 4
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResultTruncatedWarning)
            assert len(client.query(Q, maxrec=n)) == n


def test_bad_adql_is_a_query_error_with_the_message(tap):
    with pytest.raises(TapQueryError, match="column 'nope' not found") as info:
        tap.query("SELECT nope FROM survey.gaia")
    assert info.value.status == 400 and "nope" in info.value.message
    with pytest.raises(TapQueryError, match="column 'nope' not found"):
        tap.query("SELECT nope FROM survey.gaia", async_=True, timeout=60)
    job = tap.submit("SELEC 1")
    with pytest.raises(TapQueryError):
        tap.wait(job, timeout=60)
    assert tap.status(job)["error"]
    with pytest.raises(TapQueryError):
        tap.results(job)
    tap.delete(job)
    with pytest.raises(TapError, match="maxrec"):
        tap.query(Q, maxrec=-1)
    with pytest.raises(TapError, match="fmt"):
        tap.query(Q, fmt="excel")


@pytest.mark.parametrize("call", ["status", "wait", "results", "abort", "delete"])
def test_unknown_job_is_404(tap, call):
    with pytest.raises(TapError) as info:
        getattr(tap, call)("doesnotexist")
    assert info.value.status == 404 and not isinstance(info.value, TapQueryError)


def test_server_down_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/tap"
    client = Client(url, timeout=5)
    for call in (lambda: client.query("SELECT 1"), client.jobs, lambda: client.status("x")):
        with pytest.raises(TapError, match=re.escape(url)) as info:
            call()
        assert info.value.status is None and not isinstance(info.value.__cause__, httpx.HTTPError)


def test_wrong_token_is_401(secured):
    client = Client(secured, token="wrong")
    with pytest.raises(TapError) as info:
        client.query("SELECT TOP 1 id FROM survey.gaia")
    assert info.value.status == 401 and not isinstance(info.value, TapQueryError)
    with pytest.raises(TapError) as info:
        client.jobs()
    assert info.value.status == 401


def test_tokens_scope_the_job_list(secured):
    alice, bob, anonymous = Client(secured, token="tok1"), Client(secured, token="tok2"), Client(secured)
    job = alice.submit("SELECT TOP 3 id FROM survey.gaia ORDER BY id")
    try:
        assert alice.wait(job, timeout=60) == "COMPLETED"
        mine = alice.jobs()
        assert any(j["job_id"] == job for j in mine) and all(j["owner"] == "alice" for j in mine)
        assert alice.status(job)["owner"] == "alice"
        assert job not in {j["job_id"] for j in anonymous.jobs()}
        assert job not in {j["job_id"] for j in bob.jobs()}
        with pytest.raises(TapError) as info:
            anonymous.results(job)
        assert info.value.status == 404
        assert len(alice.results(job)) == 3
    finally:
        alice.delete(job)


@pytest.fixture(scope="module")
def mydb_url(secured):
    return secured


def test_mydb_import_query_list_drop(mydb_url, targets, want):
    alice, bob = Client(mydb_url, token="tok1"), Client(mydb_url, token="tok2")
    assert alice.mydb_import("targets", targets, timeout=60) == "mydb.targets"
    try:
        assert "targets" in alice.mydb_list()
        assert "targets" not in bob.mydb_list()
        got = alice.query("SELECT tid, want_id FROM mydb.targets ORDER BY tid")
        assert got["want_id"].tolist() == targets["want_id"].tolist()
        join = JOIN.replace("TAP_UPLOAD.targets", "mydb.targets")
        _check_join(alice.query(join), targets)
        with pytest.raises(TapQueryError):
            bob.query("SELECT tid FROM mydb.targets")
        assert alice.mydb_create("bright", Q, timeout=60) == "mydb.bright"
        n = alice.query("SELECT COUNT(*) AS n FROM mydb.bright")["n"].iloc[0]
        assert n == len(want)
        assert sorted(set(alice.mydb_list()) & {"bright", "targets"}) == ["bright", "targets"]
        alice.mydb_drop("mydb.bright")
        assert "bright" not in alice.mydb_list()
    finally:
        alice.mydb_drop("targets")
    assert "targets" not in alice.mydb_list()
    with pytest.raises(TapError):
        alice.mydb_drop("targets")
    with pytest.raises(TapError, match="MyDB table name"):
        alice.mydb_drop("../etc")


def test_mydb_needs_a_user(mydb_url, targets):
    with pytest.raises(TapError, match=r"(?i)token|user"):
        Client(mydb_url).mydb_import("anon", targets, timeout=60)
