"""Queries that must fail: the phase, where (line and column, 1-based), a readable message, no side effects.

Each corpus entry names the phase and, when the problem has a position in the query text,
the positions that are acceptable for it (the offending token; for an unclosed parenthesis
either the parenthesis or the place the parser gave up). Writes and file access must be
refused before anything runs: the files they name must not appear.
"""

from __future__ import annotations

import warnings

import pytest

import proxcompute
from proxcompute.errors import SqlError
from proxcompute.sql import SqlTruncatedWarning

FILES = ("x.csv", "x.db", "x.parquet")
"""Files the refused queries name, under ``{tmp}`` (the test's fresh ``tmp_path``): none may appear."""
INTERNAL = ("__part", "__partials", "__g0", "__adql", "__a0", "__o0")
ANY = object()
"""Position not asserted (the error has no single offending token)."""


def E(query: str, phase: str | tuple[str, ...], *pos, contains: str | None = None, id: str):
    """``pos``: acceptable ``(line, column)`` pairs; none means the error has no position; ANY: not checked."""
    phases = (phase,) if isinstance(phase, str) else phase
    where = ANY if pos == (ANY,) else list(pos)
    return pytest.param(query, phases, where, contains, id=id)


CORPUS = [
    # -- syntax ---------------------------------------------------------------------------------
    E("SELEC id FROM stars", "syntax", (1, 1), id="selec"),
    E("SELECT id FROM stars WHERE (mag < 3", "syntax", (1, 28), (1, 35), (1, 36), id="unclosed-paren"),
    E("SELECT id FROM stars WHERE mag < 3)", "syntax", (1, 35), id="extra-paren"),
    E(
        "SELECT id\nFROM stars\nWHERE mag < 3\n  AND (flag = 1\nORDER BY id",
        "syntax",
        (4, 7),
        (5, 1),
        id="unclosed-paren-multiline",
    ),
    E("SELECT id, FROM stars", "syntax", (1, 10), (1, 12), id="trailing-comma"),
    E("SELECT id, mag,\nFROM stars", "syntax", (1, 15), (2, 1), id="trailing-comma-multiline"),
    E("SELECT id FROM stars WHERE name = 'abc", "syntax", (1, 35), id="unterminated-string"),
    E("SELECT id\nFROM stars\nWHERE name = 'abc\n", "syntax", (3, 14), id="unterminated-string-multiline"),
    E("DUFF QUERY", "syntax", (1, 1), id="duff-query"),
    E("", "syntax", id="empty"),
    E("   \n  ", "syntax", id="blank"),
    E("SELECT id FROM stars; SELECT mag FROM stars", "syntax", (1, 23), (1, 21), id="two-statements"),
    E(
        "SELECT id FROM stars;\nSELECT mag FROM stars",
        "syntax",
        (2, 1),
        (1, 21),
        id="two-statements-multiline",
    ),
    E("SELECT id FROM stars WHERE mag <", "syntax", (1, 32), (1, 33), id="dangling-operator"),
    E("select id from stars where mag < 3 and and flag = 1", "syntax", (1, 40), id="and-and"),
    E("SELECT id\nFROM stars\nWHERE mag <<< 3", "syntax", (3, 13), (3, 12), (3, 11), id="bad-operator"),
    E("SELECT id FROM stars ORDER", "syntax", (1, 22), id="order-without-by"),
    E("SELECT FROM stars", "syntax", (1, 8), (1, 1), id="no-select-list"),
    E("SELECT TOP 5 TOP 6 id FROM stars", "syntax", (1, 14), (1, 18), id="two-tops"),
    E("SELECT id FROM stars LIMIT 5 LIMIT 6", "syntax", (1, 30), id="two-limits"),
    # -- unknown table ----------------------------------------------------------------------------
    E("SELECT id FROM starz", "unknown table", (1, 16), contains="Did you mean 'stars'", id="table-typo"),
    E(
        "SELECT id\nFROM   strs",
        "unknown table",
        (2, 8),
        contains="Did you mean 'stars'",
        id="table-multiline",
    ),
    E("SELECT id FROM nothing_like_it", "unknown table", (1, 16), id="table-unknown"),
    E("SELECT id FROM (SELECT id FROM starz) t", "unknown table", (1, 32), id="table-in-subquery"),
    E("SELECT x.id FROM stars s", "unknown table", (1, 8), id="qualifier-unknown"),
    E("SELECT * FROM a.b.stars", "unknown table", (1, 15), id="three-part-name"),
    # -- unknown column -------------------------------------------------------------------------
    E("SELECT magg FROM stars", "unknown column", (1, 8), contains="Did you mean 'mag'", id="column-typo"),
    E(
        "SELECT id,\n       magg\nFROM stars",
        "unknown column",
        (2, 8),
        contains="Did you mean 'mag'",
        id="column-multiline",
    ),
    E(
        "SELECT id\nFROM stars\nWHERE colour > 1",
        "unknown column",
        (3, 7),
        contains="Did you mean 'color'",
        id="column-in-where",
    ),
    E("SELECT s.magg FROM stars s", "unknown column", (1, 8), (1, 10), id="qualified-column"),
    E('SELECT "MAG" FROM stars', "unknown column", (1, 8), id="quoted-column-case"),
    E("SELECT id FROM stars ORDER BY magg", "unknown column", (1, 31), id="column-in-order"),
    E(
        "SELECT id FROM stars a JOIN other b ON a.id = b.id",
        "unknown column",
        (1, 8),
        contains="ambiguous",
        id="ambiguous",
    ),
    E(
        "SELECT a.id,\n  mag\nFROM stars a JOIN other b ON a.id = b.id",
        "unknown column",
        (2, 3),
        contains="ambiguous",
        id="ambiguous-multiline",
    ),
    E(
        "SELECT magg FROM (SELECT id FROM stars) t",
        "unknown column",
        (1, 8),
        id="column-over-subquery",
    ),
    # -- unknown function -----------------------------------------------------------------------
    E("SELECT SQRTT(mag) FROM stars", "unknown function", (1, 8), contains="SQRT()", id="function-typo"),
    E(
        "SELECT id\nFROM stars\nWHERE ABSS(mag) > 1",
        "unknown function",
        (3, 7),
        contains="ABS()",
        id="function-multiline",
    ),
    E("SELECT getenv('HOME') FROM stars", "unknown function", (1, 8), id="getenv"),
    E("SELECT current_setting('threads') FROM stars", "unknown function", (1, 8), id="current-setting"),
    # -- type -------------------------------------------------------------------------------------
    E("SELECT 'abc' + 1 FROM stars", "type", (1, 8), (1, 14), id="string-plus-int"),
    E("SELECT mag + 'x' FROM stars", "type", (1, 8), (1, 12), (1, 14), id="number-plus-string"),
    E(
        "SELECT id FROM stars\nWHERE CONTAINS(POINT('ICRS', ra, dec),\n               CIRCLE('ICRS', 10, 20, -1)) = 1",
        "type",
        (3, 16),
        id="negative-radius",
    ),
    E("SELECT SUM(name) FROM stars", "type", ANY, id="sum-of-strings"),
    E("SELECT UPPER(mag) FROM stars", "type", ANY, id="upper-of-number"),
    # -- geometry ---------------------------------------------------------------------------------
    E("SELECT POINT('ICRS', ra, dec) FROM stars", "unsupported", (1, 8), id="point-in-select"),
    E(
        "SELECT id FROM stars WHERE CONTAINS(POINT('GALACTIC', ra, dec), CIRCLE('GALACTIC', 10, 20, 1)) = 1",
        "unsupported",
        (1, 43),
        id="galactic",
    ),
    E(
        "SELECT id\nFROM stars\nWHERE 1 = CONTAINS(POINT(ra, dec),\n  CIRCLE('FK5', 10, 20, 1))",
        "unsupported",
        (4, 10),
        id="fk5-multiline",
    ),
    E(
        "SELECT DISTANCE(POINT('ICRS', ra, dec), POINT('ECLIPTIC', 1, 2)) FROM stars",
        "unsupported",
        (1, 47),
        id="ecliptic",
    ),
    # -- writes and commands ----------------------------------------------------------------------
    E("DROP TABLE stars", "forbidden", (1, 1), id="drop"),
    E("INSERT INTO stars VALUES (1)", "forbidden", (1, 1), id="insert"),
    E("UPDATE stars SET mag = 1", "forbidden", (1, 1), id="update"),
    E("DELETE FROM stars", "forbidden", (1, 1), id="delete"),
    E("CREATE TABLE x AS SELECT 1", "forbidden", (1, 1), id="create"),
    E("COPY stars TO '{tmp}/x.csv'", "forbidden", (1, 1), id="copy"),
    E("COPY (SELECT * FROM stars) TO '{tmp}/x.csv'", "forbidden", (1, 1), id="copy-query"),
    E("ATTACH '{tmp}/x.db'", "forbidden", (1, 1), id="attach"),
    E("ATTACH DATABASE '{tmp}/x.db' AS x", "forbidden", (1, 1), id="attach-database"),
    E("\n  DROP TABLE stars", "forbidden", (2, 3), id="drop-multiline"),
    E("PRAGMA database_list", "forbidden", (1, 1), id="pragma"),
    E("SET threads = 4", "forbidden", (1, 1), id="set"),
    E("LOAD httpfs", "forbidden", (1, 1), id="load"),
    E("INSTALL httpfs", ("forbidden", "syntax"), (1, 1), id="install"),
    # -- files and engine functions ---------------------------------------------------------------
    E("SELECT * FROM read_csv('/etc/passwd')", "forbidden", (1, 15), id="read-csv-from"),
    E(
        "SELECT read_csv('/etc/passwd') FROM stars",
        ("forbidden", "unknown function"),
        (1, 8),
        id="read-csv-select",
    ),
    E("SELECT * FROM read_parquet('{tmp}/x.parquet')", "forbidden", (1, 15), id="read-parquet"),
    E("SELECT * FROM '/etc/passwd'", ("forbidden", "unknown table"), (1, 15), id="file-as-table"),
    E("SELECT * FROM glob('/etc/*')", "forbidden", (1, 15), id="glob"),
    E('SELECT * FROM "../../etc/passwd"', ("forbidden", "unknown table"), (1, 15), id="path-name"),
    E('SELECT * FROM "/etc/passwd"', ("forbidden", "unknown table"), (1, 15), id="absolute-path-name"),
    E(
        "WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x",
        "forbidden",
        (1, 26),
        id="read-csv-in-cte",
    ),
    E(
        "SELECT id FROM stars WHERE id IN (SELECT id FROM read_json_auto('/etc/passwd'))",
        "forbidden",
        (1, 50),
        id="read-json-in-subquery",
    ),
    E("SELECT * FROM stars, read_csv('/etc/passwd')", "forbidden", (1, 22), id="read-csv-join"),
    E("SELECT * FROM duckdb_settings()", "forbidden", (1, 15), id="duckdb-settings"),
    # -- unsupported ------------------------------------------------------------------------------
    E("SELECT id, ROW_NUMBER() OVER (ORDER BY mag) FROM stars", "unsupported", (1, 12), id="window"),
    E(
        "SELECT id,\n       AVG(mag) OVER (PARTITION BY flag)\nFROM stars",
        "unsupported",
        (2, 8),
        id="window-multiline",
    ),
    # -- TOP / LIMIT / OFFSET -------------------------------------------------------------------
    E("SELECT TOP -1 id FROM stars", "syntax", (1, 12), id="top-negative"),
    E("SELECT TOP 1.5 id FROM stars", "syntax", (1, 12), id="top-fraction"),
    E("SELECT TOP x id FROM stars", "syntax", (1, 12), id="top-name"),
    E("SELECT TOP 99999999999999999999999 id FROM stars", ("syntax", "limit"), (1, 12), id="top-huge"),
    E("SELECT id FROM stars LIMIT -3", "syntax", (1, 28), (1, 29), id="limit-negative"),
    E("SELECT id FROM stars LIMIT 'a'", "syntax", (1, 28), id="limit-string"),
    E("SELECT id FROM stars OFFSET -1", "syntax", (1, 29), (1, 30), id="offset-negative"),
    # -- nesting (a RecursionError deep in the parser was a 500 in the service) -----------------
    E("SELECT id FROM stars WHERE " + "(" * 33 + "mag < 20" + ")" * 33, "limit", (1, 60),
      contains="nested more than 32 deep", id="parens-33"),
    E("SELECT id FROM stars WHERE " + "(" * 5000 + "mag < 20" + ")" * 5000, "limit", (1, 60), id="parens-5000"),
    E("SELECT * FROM " + "(SELECT * FROM " * 3000 + "stars" + ") AS s" * 3000, "limit", ANY, id="subqueries-3000"),
    E("SELECT id FROM stars WHERE " + "NOT " * 5000 + "mag < 20", "limit", (1, 156), id="not-chain"),
    E("SELECT " + "- " * 5000 + "1 AS x FROM stars", "limit", (1, 72), id="sign-chain"),
    E("SELECT id FROM stars WHERE " + " AND ".join(["mag < 20"] * 10000), "limit", contains="nested too deeply",
      id="and-chain-10000"),
]


@pytest.fixture(scope="module")
def catalogs(small_catalogs):
    return small_catalogs


def _check_message(exc: SqlError) -> None:
    for text in (exc.message, str(exc)):
        assert text.strip(), "empty message"
        assert "\n" not in text, f"not one line: {text!r}"
        assert "Traceback" not in text and 'File "' not in text, text
    assert not any(name in exc.message for name in INTERNAL), f"internal name in {exc.message!r}"
    assert str(exc).startswith(f"SQL {exc.phase} error"), str(exc)


def test_corpus_size():
    assert len(CORPUS) >= 40
    assert len({c.id for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("query", "phases", "where", "contains"), CORPUS)
def test_refused(query, phases, where, contains, catalogs, tmp_path):
    query = query.replace("{tmp}", str(tmp_path))
    with pytest.raises(SqlError) as info:
        proxcompute.sql(query, catalogs).to_arrow()
    exc = info.value
    assert exc.phase in phases, f"phase {exc.phase!r}: {exc}"
    if where is not ANY:
        got = (exc.line, exc.column)
        if where:
            assert got in where, f"position {got}, expected one of {where}: {exc}"
        else:
            assert got == (None, None), f"position {got} for an error without one: {exc}"
    if contains is not None:
        assert contains in exc.message
    _check_message(exc)
    for f in FILES:
        assert not (tmp_path / f).exists(), f"{f} was created by {query!r}"


def test_no_suggestion_when_nothing_is_close(catalogs):
    with pytest.raises(SqlError) as info:
        proxcompute.sql("SELECT id FROM nothing_like_it", catalogs)
    assert "Did you mean" not in info.value.message
    assert "stars" in info.value.message  # lists the known tables


def test_errors_are_raised_before_running(catalogs):
    """Compile-time errors surface from ``sql()`` itself, not from ``compute()``."""
    for query in ("SELECT magg FROM stars", "SELECT 'abc' + 1 FROM stars", "DROP TABLE stars"):
        with pytest.raises(SqlError):
            proxcompute.sql(query, catalogs)


@pytest.mark.parametrize("maxrec", [-1, 1.5, True, "10"])
def test_bad_maxrec(maxrec, catalogs):
    with pytest.raises(SqlError) as info:
        proxcompute.sql("SELECT id FROM stars", catalogs, maxrec=maxrec)
    assert info.value.phase == "limit"
    _check_message(info.value)


def test_unquoted_double_quoted_string_is_a_column(catalogs):
    """``"star_1"`` is an identifier in SQL, so the error is an unknown column, pointing at it."""
    with pytest.raises(SqlError) as info:
        proxcompute.sql('SELECT id FROM stars WHERE name = "star_1"', catalogs)
    assert (info.value.phase, info.value.line, info.value.column) == ("unknown column", 1, 35)


def test_star_modifiers_are_not_ignored(catalogs):
    """``SELECT * EXCLUDE (id)`` and column alias lists are refused or honoured, never silently dropped."""
    for query, absent in (
        ("SELECT * EXCLUDE (id) FROM stars WHERE flag = 1", "id"),
        ("SELECT * FROM stars AS t(a, b) WHERE flag = 1", "_healpix_29"),
    ):
        try:
            out = proxcompute.sql(query, catalogs).compute()
        except SqlError as exc:
            assert exc.phase in ("unsupported", "syntax")
            continue
        assert absent not in out.columns, f"{query!r} ignored its modifier: {list(out.columns)}"


def test_group_by_error_names_the_rule(catalogs):
    """A column neither grouped nor aggregated: the message says so (not an engine internal)."""
    with pytest.raises(SqlError) as info:
        proxcompute.sql("SELECT id FROM stars GROUP BY flag", catalogs)
    assert "GROUP BY" in info.value.message
    assert "referenced before it is defined" not in info.value.message
    _check_message(info.value)


# -- maxrec -----------------------------------------------------------------------------------


QUERIES_BY_MODE = {
    "catalog": "SELECT id, mag FROM stars WHERE flag = 1",
    "rows": "SELECT id, mag + 1 AS m FROM stars WHERE flag = 1",
    "rows-ordered": "SELECT id, mag FROM stars WHERE flag = 1 ORDER BY id",
    "aggregate": "SELECT id, COUNT(*) FROM stars GROUP BY id",
    "two-level": "SELECT DISTINCT id, COUNT(DISTINCT flag) FROM stars GROUP BY id",
    "gather": "SELECT a.id FROM stars a JOIN stars b ON a.id = b.id + 0",
}


@pytest.mark.parametrize("mode", list(QUERIES_BY_MODE))
def test_maxrec_truncates(mode, catalogs):
    query = QUERIES_BY_MODE[mode]
    full = proxcompute.sql(query, catalogs).to_arrow()
    assert full.num_rows > 10
    res = proxcompute.sql(query, catalogs, maxrec=10)
    with pytest.warns(SqlTruncatedWarning):
        out = res.to_arrow()
    assert out.num_rows == 10
    assert res.overflow is True
    assert set(out.column(0).to_pylist()) <= set(full.column(0).to_pylist())
    if mode == "rows-ordered":
        assert out.column("id").to_pylist() == full.column("id").to_pylist()[:10]


def test_maxrec_not_reached(catalogs):
    n = proxcompute.sql("SELECT DISTINCT flag FROM stars", catalogs).to_arrow().num_rows
    res = proxcompute.sql("SELECT DISTINCT flag FROM stars", catalogs, maxrec=n)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SqlTruncatedWarning)
        out = res.to_arrow()
    assert out.num_rows == n
    assert res.overflow is False

    res = proxcompute.sql("SELECT DISTINCT flag FROM stars", catalogs, maxrec=n - 1)
    with pytest.warns(SqlTruncatedWarning):
        assert res.compute().shape[0] == n - 1
    assert res.overflow is True


def test_maxrec_with_top(catalogs):
    """TOP below maxrec is not an overflow; TOP above it is."""
    res = proxcompute.sql("SELECT TOP 5 id FROM stars ORDER BY id", catalogs, maxrec=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SqlTruncatedWarning)
        assert res.to_arrow().num_rows == 5
    assert res.overflow is False
    res = proxcompute.sql("SELECT TOP 50 id FROM stars ORDER BY id", catalogs, maxrec=10)
    with pytest.warns(SqlTruncatedWarning):
        out = res.to_arrow()
    assert out.column("id").to_pylist() == list(range(10))
    assert res.overflow is True


def test_maxrec_zero(catalogs):
    res = proxcompute.sql("SELECT id FROM stars", catalogs, maxrec=0)
    with pytest.warns(SqlTruncatedWarning):
        assert res.to_arrow().num_rows == 0
    assert res.overflow is True


def test_nesting_at_the_limit_runs(catalogs):
    """32 levels (the limit) still run and give what the flat query gives."""
    deep = proxcompute.sql("SELECT id FROM stars WHERE " + "(" * 32 + "mag < 20" + ")" * 32, catalogs).compute()
    flat = proxcompute.sql("SELECT id FROM stars WHERE mag < 20", catalogs).compute()
    assert sorted(deep["id"]) == sorted(flat["id"]) and len(flat) > 0
