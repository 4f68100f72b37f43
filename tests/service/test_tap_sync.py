"""The TAP service through real clients (pyvo, raw HTTP) against `proxcompute serve` on 127.0.0.1."""

import httpx
import numpy as np
import pytest
import pyvo
from astropy.table import Table
from tap_server import running_server

import proxcompute
from proxcompute.catalog import from_dataframe
from proxcompute.synthetic import generate_catalog


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A catalog root with survey.gaia (50k rows), served by a real `proxcompute serve` process."""
    root = tmp_path_factory.mktemp("taproot")
    df = generate_catalog(50_000, seed=17)
    from_dataframe(df, name="gaia", max_rows=5_000).to_catalog(root / "survey" / "gaia")
    with running_server(root) as url:
        yield url, root, df


@pytest.fixture(scope="module")
def tap(served):
    return pyvo.dal.TAPService(served[0])


def test_pyvo_sync_cone_equals_brute_force(tap, served):
    _, _, df = served
    q = "SELECT id, ra, dec FROM survey.gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 45, 30, 2))"
    result = tap.search(q)
    got = np.sort(np.asarray(result.to_table()["id"]))
    r1, d1, r2, d2 = map(np.radians, (df["ra"], df["dec"], 45.0, 30.0))
    sep = np.degrees(2 * np.arcsin(np.sqrt(np.sin((d2 - d1) / 2) ** 2
                                           + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2)))  # fmt: skip
    want = np.sort(df["id"].to_numpy()[sep <= 2])
    assert len(want) > 50
    np.testing.assert_array_equal(got, want)
    assert result.query_status == "OK"


def test_group_by_in_a_box_equals_pandas(tap, served):
    _, _, df = served
    q = ("SELECT flag, COUNT(*) AS n, MAX(mag) AS top FROM survey.gaia "
         "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), BOX('ICRS', 45, 30, 6, 4)) GROUP BY flag ORDER BY flag")  # fmt: skip
    got = tap.search(q).to_table()
    # BOX as the service defines it: centre (45, 30), 6 degrees of RA by 4 of Dec (a coordinate box)
    sel = df[(np.abs(df["ra"] - 45) <= 3) & (np.abs(df["dec"] - 30) <= 2)]
    want = sel.groupby("flag").agg(n=("mag", "size"), top=("mag", "max")).reset_index()
    assert len(want) > 1
    np.testing.assert_array_equal(np.asarray(got["flag"]), want["flag"])
    np.testing.assert_array_equal(np.asarray(got["n"]), want["n"])
    np.testing.assert_allclose(np.asarray(got["top"]), want["top"])


def test_pyvo_values_and_types_round_trip(tap, served):
    _, root, _ = served
    q = "SELECT TOP 20 id, ra, dec, mag, color, flag FROM survey.gaia WHERE mag < 20 ORDER BY id"
    got = tap.search(q).to_table()
    want = proxcompute.sql(q, catalog_root=root).compute()
    assert got.colnames == list(want.columns)
    for c in want.columns:
        np.testing.assert_array_equal(np.asarray(got[c]), want[c].to_numpy())
    assert got["flag"].dtype == np.int16 and got["color"].dtype == np.float32


def test_maxrec_overflow_and_top(tap):
    res = tap.search("SELECT id FROM survey.gaia", maxrec=25)
    assert len(res) == 25 and res.query_status == "OVERFLOW"
    res = tap.search("SELECT TOP 7 id FROM survey.gaia", maxrec=100)
    assert len(res) == 7 and res.query_status == "OK"


def test_maxrec_zero_is_metadata_only(served):
    url = served[0]
    r = httpx.post(url + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT id, ra FROM survey.gaia", "MAXREC": "0"})
    assert r.status_code == 200
    from io import BytesIO

    from astropy.io.votable import parse

    table = parse(BytesIO(r.content)).get_first_table().to_table()
    assert table.colnames == ["id", "ra"] and len(table) == 0


def test_errors_reach_pyvo_with_their_message(tap):
    with pytest.raises(pyvo.dal.DALQueryError, match="must begin with SELECT"):
        tap.search("DUFF QUERY")
    with pytest.raises(pyvo.dal.DALQueryError, match="Did you mean 'mag'"):
        tap.search("SELECT magg FROM survey.gaia")
    with pytest.raises(pyvo.dal.DALQueryError, match="unknown table"):
        tap.search("SELECT * FROM nope")


@pytest.mark.parametrize(
    "data, status, text",
    [
        ({"LANG": "OOBLECK", "QUERY": "SELECT 1"}, 400, "LANG=OOBLECK"),
        ({"QUERY": "SELECT TOP 1 id FROM survey.gaia"}, 400, "LANG is missing"),
        ({"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM survey.gaia", "MAXREC": "many"}, 400, "MAXREC"),
        ({"LANG": "ADQL", "QUERY": "SELECT TOP 1 id FROM survey.gaia", "FORMAT": "pdf"}, 400, "unknown output format"),
        ({"LANG": "ADQL", "QUERY": "SELECT * FROM \"../../etc/passwd\""}, 400, "not a table name"),
        ({"LANG": "ADQL", "QUERY": "SELECT * FROM read_csv('/etc/passwd')"}, 400, "forbidden"),
        ({"LANG": "ADQL", "QUERY": "DROP TABLE survey.gaia"}, 400, "refused"),
    ],
)
def test_bad_requests_get_votable_errors_and_the_server_keeps_serving(served, data, status, text):
    url = served[0]
    r = httpx.post(url + "/sync", data=data)
    assert r.status_code == status
    assert '<INFO name="QUERY_STATUS" value="ERROR">' in r.text and text in r.text
    assert httpx.get(url + "/availability").status_code == 200


def test_unknown_params_are_ignored_and_names_are_case_insensitive(served):
    url = served[0]
    q = "SELECT TOP 3 id FROM survey.gaia ORDER BY id"
    a = httpx.get(url + "/sync", params={"lang": "ADQL", "query": q, "DUMMY": "ignore-me", "format": "csv"})
    b = httpx.post(url + "/sync", data={"LANG": "ADQL-2.1", "REQUEST": "doQuery", "QUERY": q, "RESPONSEFORMAT": "csv"})
    assert a.status_code == b.status_code == 200
    assert a.text == b.text and a.text.splitlines()[0].strip() == "id"


@pytest.mark.parametrize("fmt", ["votable", "votable/td", "votable/b", "csv", "tsv", "parquet"])
def test_every_declared_format(served, fmt):
    url = served[0]
    r = httpx.post(url + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT TOP 5 id, mag FROM survey.gaia ORDER BY id",
                                        "RESPONSEFORMAT": fmt})  # fmt: skip
    assert r.status_code == 200
    from io import BytesIO

    if fmt.startswith("votable"):
        t = Table.read(BytesIO(r.content), format="votable")
    elif fmt == "parquet":
        t = Table.read(BytesIO(r.content), format="parquet")
    else:
        t = Table.read(r.text, format="ascii.csv" if fmt == "csv" else "ascii.tab")
    assert list(t["id"]) == sorted(t["id"]) and len(t) == 5


def test_tables_and_tap_schema_agree(tap):
    names = {t.name for t in tap.tables}
    assert {"survey.gaia", "TAP_SCHEMA.tables", "TAP_SCHEMA.columns"} <= names
    cols = {c.name for c in tap.tables["survey.gaia"].columns}
    schema_cols = tap.search(
        "SELECT column_name, datatype FROM TAP_SCHEMA.columns WHERE table_name = 'survey.gaia'"
    ).to_table()
    assert set(schema_cols["column_name"]) == cols
    listed = set(tap.search("SELECT table_name FROM TAP_SCHEMA.tables").to_table()["table_name"])
    assert listed == names


def test_capabilities_as_pyvo_reads_them(tap):
    assert tap.maxrec == 100_000 and tap.hardlimit == 100_000_000
    assert {m.ivo_id for m in tap.upload_methods} >= {
        "ivo://ivoa.net/std/TAPRegExt#upload-inline",
        "ivo://ivoa.net/std/TAPRegExt#upload-http",
    }


def test_every_example_runs(tap):
    examples = tap.examples
    assert len(examples) >= 5
    for ex in examples:
        ex.execute()  # raises on error


def test_server_header_names_the_software(served):
    r = httpx.get(served[0] + "/capabilities")
    assert r.headers["server"].startswith("proxcompute/")


def test_inline_upload_joins_through_the_crossmatch(tap, served):
    _, _, df = served
    pick = df.sample(300, random_state=4)
    targets = Table({"tid": np.arange(300), "ra": pick["ra"].to_numpy() + 1 / 3600, "dec": pick["dec"].to_numpy()})
    q = (
        "SELECT t.tid, g.id, DISTANCE(POINT('ICRS', t.ra, t.dec), POINT('ICRS', g.ra, g.dec)) AS d "
        "FROM TAP_UPLOAD.targets AS t JOIN survey.gaia AS g "
        "ON 1 = CONTAINS(POINT('ICRS', t.ra, t.dec), CIRCLE('ICRS', g.ra, g.dec, 3.0/3600))"
    )
    out = tap.search(q, uploads={"targets": targets}).to_table()
    from astropy import units as u
    from astropy.coordinates import SkyCoord, search_around_sky

    tc = SkyCoord(targets["ra"], targets["dec"], unit="deg")
    gc = SkyCoord(df["ra"].to_numpy(), df["dec"].to_numpy(), unit="deg")
    it, ig, _, _ = search_around_sky(tc, gc, 3 * u.arcsec)
    want = set(zip(np.asarray(targets["tid"])[it].tolist(), df["id"].to_numpy()[ig].tolist(), strict=True))
    assert len(want) >= 300
    assert set(zip(np.asarray(out["tid"]).tolist(), np.asarray(out["id"]).tolist(), strict=True)) == want


def test_upload_without_coordinates_is_a_plain_table(tap):
    t = Table({"k": [1, 2, 3], "name": ["a", "b", "c"]})
    out = tap.search("SELECT name FROM TAP_UPLOAD.lookup WHERE k >= 2 ORDER BY k", uploads={"lookup": t}).to_table()
    assert list(out["name"]) == ["b", "c"]


@pytest.mark.parametrize(
    "upload, text",
    [
        ("t,param:missing", "no multipart part"),
        ("bad-name,param:x", "expected name,param:part"),
        ("t,http://127.0.0.1:1/x.vot", "local or private"),
        ("t,ftp://example.org/x", "or an http(s) URL"),
    ],
)
def test_bad_uploads_are_refused(served, upload, text):
    r = httpx.post(served[0] + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t", "UPLOAD": upload})
    assert r.status_code == 400 and text in r.text


def test_malformed_upload_is_named(served):
    files = {"t": ("t", b"<VOTABLE><broken", "application/octet-stream")}
    r = httpx.post(served[0] + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                                              "UPLOAD": "t,param:t"}, files=files)  # fmt: skip
    assert r.status_code == 400 and "UPLOAD t: cannot read the table" in r.text


def test_astroquery_tapplus_sync(served):
    from astroquery.utils.tap.core import TapPlus

    tap = TapPlus(url=served[0], verbose=False)
    job = tap.launch_job("SELECT TOP 5 id, ra, dec FROM survey.gaia ORDER BY id")
    table = job.get_results()
    assert len(table) == 5 and list(table["id"]) == sorted(table["id"])
