"""Non-spatial SQL against Python's sqlite3 on the same rows, partitioned and not, in memory and on disk.

Each case is an ADQL query and, where the dialects differ, the sqlite query with the same
meaning: ``TOP n`` is ``LIMIT n``; ADQL sorts NULLs last in ascending order (as PostgreSQL),
sqlite first, so sqlite gets ``NULLS LAST``/``NULLS FIRST``; ADQL's ``LOG`` is natural.
Patterns for ``LIKE`` are lower case and digits only (sqlite's LIKE ignores ASCII case,
ADQL's does not; the data make both agree). No query divides two integers (sqlite truncates).

Results are compared in order when the query orders every row (ties broken by ``id``), and
as multisets otherwise; numbers with a relative tolerance of 1e-9.
"""

from __future__ import annotations

import decimal
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import proxcompute


def P(adql: str, sqlite: str | None = None, *, ordered: bool = False, disk: bool = False, id: str):
    """A case: ``disk`` also runs it on the stored catalog; ``ordered`` compares in order."""
    return pytest.param(adql, sqlite or adql, ordered, disk, id=id)


CASES = [
    # -- projection and expressions -------------------------------------------------------
    P("SELECT id, mag FROM stars", disk=True, id="project"),
    P("SELECT id AS ident, mag AS m, name FROM stars", disk=True, id="project-alias"),
    P("SELECT ID, Mag, NAME FROM STARS WHERE FLAG = 1", id="case-insensitive-names"),
    P(
        "SELECT id, mag + color AS s, mag - 2 * color AS t, -mag AS neg FROM stars",
        disk=True,
        id="arith",
    ),
    P("SELECT id, (mag - color) / 2.0 AS half, mag * mag AS sq FROM stars WHERE flag = 1", id="arith-div"),
    P("SELECT id, ABS(color) AS a, ROUND(mag, 1) AS r, ROUND(color) AS r0 FROM stars", id="abs-round"),
    P(
        "SELECT id, SQRT(ABS(color)) AS s, FLOOR(mag) AS f, CEILING(mag) AS c FROM stars",
        "SELECT id, SQRT(ABS(color)) AS s, FLOOR(mag) AS f, CEIL(mag) AS c FROM stars",
        id="sqrt-floor-ceil",
    ),
    P("SELECT id, POWER(color, 2) AS p, MOD(id, 7) AS md FROM stars", id="power-mod"),
    P(
        "SELECT id, LOG(mag) AS ln, LOG10(mag) AS l10, EXP(color) AS e FROM stars",
        "SELECT id, LN(mag) AS ln, LOG10(mag) AS l10, EXP(color) AS e FROM stars",
        id="log-exp",
    ),
    P(
        "SELECT id, COALESCE(mag, -1.0) AS m, NULLIF(flag, 0) AS f FROM stars",
        disk=True,
        id="coalesce-nullif",
    ),
    P(
        "SELECT id, CASE WHEN mag < 18 THEN 'bright' WHEN mag < 21 THEN 'mid' ELSE 'faint' END AS cls "
        "FROM stars",
        id="case-when",
    ),
    P("SELECT id, UPPER(name) AS u, LOWER(name) AS l, LENGTH(name) AS n FROM stars", id="string-funcs"),
    P("SELECT id, name || '_x' AS nx FROM stars", id="concat-null"),
    P(
        "SELECT id, SUBSTRING(name, 1, 6) AS pre FROM stars WHERE id < 500",
        "SELECT id, SUBSTR(name, 1, 6) AS pre FROM stars WHERE id < 500",
        id="substring",
    ),
    P("SELECT id, mag < color * 10 AS cmp FROM stars WHERE id < 300", id="boolean-value"),
    # -- WHERE -----------------------------------------------------------------------------
    P("SELECT id, mag FROM stars WHERE mag < 16 AND flag = 1", disk=True, id="and"),
    P("SELECT id FROM stars WHERE mag < 15 OR color > 2.0", disk=True, id="or"),
    P("SELECT id FROM stars WHERE NOT (mag < 20)", id="not-null-excluded"),
    P("SELECT id FROM stars WHERE NOT (mag < 20 OR color IS NULL)", id="not-or"),
    P("SELECT id, mag FROM stars WHERE mag BETWEEN 18 AND 19", disk=True, id="between"),
    P("SELECT id FROM stars WHERE mag NOT BETWEEN 14 AND 24", id="not-between"),
    P("SELECT id FROM stars WHERE flag IN (0, 2)", disk=True, id="in"),
    P("SELECT id FROM stars WHERE flag NOT IN (0, 2) AND band IN (1, 3)", id="not-in-and-in"),
    P("SELECT id FROM stars WHERE band NOT IN (1, 2)", id="not-in-null-excluded"),
    P("SELECT id, name FROM stars WHERE name LIKE 'star_12%'", disk=True, id="like"),
    P("SELECT id FROM stars WHERE name NOT LIKE '%5'", id="not-like"),
    P("SELECT id FROM stars WHERE name LIKE 'star_1_3'", id="like-underscore"),
    P("SELECT id FROM stars WHERE mag IS NULL", disk=True, id="is-null"),
    P("SELECT id FROM stars WHERE color IS NOT NULL AND band IS NULL", id="is-not-null"),
    P("SELECT id, name FROM stars WHERE name = 'star_42' OR id = 7", id="string-eq"),
    P("SELECT id FROM stars WHERE name >= 'star_9' AND name < 'star_95'", id="string-range"),
    P("SELECT id FROM stars WHERE mag > color * 10 AND mag <> 20", id="column-vs-expr"),
    P("SELECT id FROM stars WHERE 17 > mag AND 1 = flag", disk=True, id="literal-left"),
    P("SELECT id, ra, dec FROM stars WHERE ra > 100 AND ra < 110 AND dec > 0", id="coordinates"),
    P("SELECT id FROM stars WHERE band = 2 AND (flag = 1 OR mag > 22)", id="nested-bool"),
    P("SELECT id, mag FROM stars WHERE id < 0", disk=True, id="empty"),
    P("SELECT id FROM stars WHERE mag + color > 23.5", id="expr-filter"),
    P("SELECT id FROM stars WHERE band <> 1", id="neq-on-nullable"),
    P("SELECT id FROM stars WHERE 0.5 < color", id="gt-on-nullable"),
    # -- aggregates ------------------------------------------------------------------------
    P("SELECT COUNT(*) FROM stars", disk=True, id="count-star"),
    P(
        "SELECT COUNT(*), COUNT(mag), COUNT(name), SUM(flag), AVG(mag), MIN(mag), MAX(color) FROM stars",
        disk=True,
        id="aggregates",
    ),
    P("SELECT COUNT(*) AS n, AVG(mag) AS m, SUM(mag) AS s FROM stars WHERE mag > 30", id="agg-empty"),
    P(
        "SELECT flag, COUNT(*), AVG(mag), MIN(color), MAX(color), SUM(mag) FROM stars GROUP BY flag",
        disk=True,
        id="group-by",
    ),
    P("SELECT band, COUNT(*) AS n FROM stars GROUP BY band", id="group-null-key"),
    P("SELECT flag, band, COUNT(*) FROM stars WHERE mag < 20 GROUP BY flag, band", id="group-two-keys"),
    P("SELECT band, AVG(mag) AS m FROM stars GROUP BY band HAVING COUNT(*) > 3500", disk=True, id="having"),
    P(
        "SELECT flag, SUM(mag) / COUNT(mag) AS mean FROM stars GROUP BY flag HAVING MAX(mag) > 20",
        id="having-hidden-agg",
    ),
    P(
        "SELECT flag, COUNT(*) AS n FROM stars GROUP BY flag ORDER BY n DESC, flag",
        ordered=True,
        id="group-order",
    ),
    P("SELECT MAX(mag) - MIN(mag) AS span, AVG(mag + color) AS mc FROM stars", id="agg-expr"),
    P("SELECT COUNT(DISTINCT band) AS nb, COUNT(DISTINCT flag) FROM stars", disk=True, id="count-distinct"),
    P("SELECT flag, COUNT(DISTINCT band) FROM stars GROUP BY flag", id="count-distinct-group"),
    P("SELECT FLOOR(mag) AS bin, COUNT(*) FROM stars GROUP BY FLOOR(mag)", id="group-expr"),
    P(
        "SELECT FLOOR(mag) AS bin, COUNT(*) AS n FROM stars GROUP BY bin ORDER BY bin",
        "SELECT FLOOR(mag) AS bin, COUNT(*) AS n FROM stars GROUP BY bin ORDER BY bin NULLS LAST",
        ordered=True,
        id="group-alias-order-nulls",
    ),
    P("SELECT band, MIN(name), MAX(name) FROM stars GROUP BY band", id="min-max-string"),
    P("SELECT flag, AVG(mag) FROM stars WHERE band IS NULL GROUP BY flag", id="group-where"),
    # -- ORDER BY, TOP/LIMIT, OFFSET ---------------------------------------------------------
    P(
        "SELECT id, mag FROM stars ORDER BY mag, id",
        "SELECT id, mag FROM stars ORDER BY mag NULLS LAST, id",
        ordered=True,
        disk=True,
        id="order-nulls-last",
    ),
    P(
        "SELECT id, mag FROM stars ORDER BY mag DESC, id",
        "SELECT id, mag FROM stars ORDER BY mag DESC NULLS FIRST, id",
        ordered=True,
        id="order-desc-nulls-first",
    ),
    P(
        "SELECT TOP 10 id, mag FROM stars WHERE mag IS NOT NULL ORDER BY mag, id",
        "SELECT id, mag FROM stars WHERE mag IS NOT NULL ORDER BY mag, id LIMIT 10",
        ordered=True,
        disk=True,
        id="top",
    ),
    P(
        "SELECT id, mag FROM stars WHERE mag IS NOT NULL ORDER BY mag DESC, id LIMIT 7",
        ordered=True,
        id="limit",
    ),
    P(
        "SELECT TOP 5 id, name FROM stars ORDER BY id OFFSET 100",
        "SELECT id, name FROM stars ORDER BY id LIMIT 5 OFFSET 100",
        ordered=True,
        disk=True,
        id="top-offset",
    ),
    P("SELECT id, mag FROM stars ORDER BY id LIMIT 5 OFFSET 19997", ordered=True, id="limit-offset-end"),
    P(
        "SELECT id FROM stars ORDER BY id OFFSET 19990",
        "SELECT id FROM stars ORDER BY id LIMIT -1 OFFSET 19990",
        ordered=True,
        id="offset-only",
    ),
    P(
        "SELECT TOP 8 id FROM stars WHERE mag IS NOT NULL AND color IS NOT NULL ORDER BY color * mag, id",
        "SELECT id FROM stars WHERE mag IS NOT NULL AND color IS NOT NULL ORDER BY color * mag, id LIMIT 8",
        ordered=True,
        id="order-hidden-expr",
    ),
    P(
        "SELECT id, mag FROM stars WHERE mag IS NOT NULL ORDER BY 2 DESC, 1 LIMIT 20",
        ordered=True,
        id="order-position",
    ),
    P(
        "SELECT TOP 3 flag, COUNT(*) AS n FROM stars GROUP BY flag ORDER BY n, flag",
        "SELECT flag, COUNT(*) AS n FROM stars GROUP BY flag ORDER BY n, flag LIMIT 3",
        ordered=True,
        id="top-group",
    ),
    P(
        "SELECT TOP 12 name, id FROM stars ORDER BY name, id",
        "SELECT name, id FROM stars ORDER BY name NULLS LAST, id LIMIT 12",
        ordered=True,
        id="order-string",
    ),
    P(
        "SELECT id, mag FROM stars ORDER BY mag NULLS FIRST, id LIMIT 10",
        ordered=True,
        id="explicit-nulls-first",
    ),
    P(
        "SELECT id, mag FROM stars ORDER BY mag DESC NULLS LAST, id LIMIT 10",
        ordered=True,
        id="explicit-nulls-last-desc",
    ),
    P(
        "SELECT TOP 6 id, mag AS m FROM stars WHERE flag = 2 ORDER BY m DESC, id",
        "SELECT id, mag AS m FROM stars WHERE flag = 2 ORDER BY m DESC NULLS FIRST, id LIMIT 6",
        ordered=True,
        id="order-alias-desc",
    ),
    # -- DISTINCT ----------------------------------------------------------------------------
    P("SELECT DISTINCT flag FROM stars", disk=True, id="distinct"),
    P("SELECT DISTINCT band, flag FROM stars", id="distinct-null"),
    P("SELECT DISTINCT flag FROM stars ORDER BY flag DESC", ordered=True, id="distinct-order"),
    P(
        "SELECT DISTINCT TOP 3 band FROM stars ORDER BY band",
        "SELECT DISTINCT band FROM stars ORDER BY band NULLS LAST LIMIT 3",
        ordered=True,
        id="distinct-top",
    ),
    P("SELECT DISTINCT FLOOR(mag) AS b FROM stars WHERE mag < 16", id="distinct-expr"),
    # -- subqueries, joins, set operations ---------------------------------------------------
    P(
        "SELECT t.flag, t.n FROM (SELECT flag, COUNT(*) AS n FROM stars GROUP BY flag) AS t WHERE t.n > 100",
        disk=True,
        id="subquery-from",
    ),
    P("SELECT id, mag FROM stars WHERE id IN (SELECT id FROM stars WHERE color > 2.5)", id="in-subquery"),
    P(
        "SELECT COUNT(*) FROM stars WHERE id NOT IN (SELECT id FROM stars WHERE mag IS NULL)",
        disk=True,
        id="not-in-subquery",
    ),
    P(
        "SELECT COUNT(*) FROM stars WHERE band NOT IN (SELECT band FROM stars WHERE id < 100)",
        id="not-in-subquery-null",
    ),
    P(
        "SELECT id FROM stars WHERE mag > (SELECT AVG(mag) + 3 FROM stars)",
        id="scalar-subquery",
    ),
    P(
        "SELECT a.id, a.mag, b.color FROM stars AS a JOIN stars AS b ON a.id = b.id WHERE a.mag < 14",
        disk=True,
        id="self-join",
    ),
    P("SELECT a.id, b.id FROM stars a JOIN stars b ON a.id = b.id + 1 WHERE a.id < 50", id="join-expr"),
    P("SELECT COUNT(*) FROM stars s1 JOIN stars s2 USING (id)", id="join-using"),
    P(
        "SELECT a.id, b.name FROM stars a LEFT JOIN (SELECT id, name FROM stars WHERE flag = 1) b "
        "ON a.id = b.id WHERE a.id < 200",
        id="left-join-subquery",
    ),
    P(
        "SELECT id FROM stars WHERE mag < 13 UNION SELECT id FROM stars WHERE color > 2.8",
        disk=True,
        id="union",
    ),
    P("SELECT flag FROM stars UNION SELECT flag FROM stars", id="union-dedup"),
    P("SELECT flag FROM stars WHERE id < 20 UNION ALL SELECT band FROM stars WHERE id < 10", id="union-all"),
    P(
        "SELECT id FROM stars WHERE mag < 15 INTERSECT SELECT id FROM stars WHERE flag = 1",
        id="intersect",
    ),
    P("SELECT id FROM stars WHERE mag < 14 EXCEPT SELECT id FROM stars WHERE flag = 1", id="except"),
    P(
        "WITH b AS (SELECT id, mag FROM stars WHERE mag < 15) SELECT COUNT(*), AVG(mag) FROM b",
        id="cte",
    ),
]


# -- comparing -------------------------------------------------------------------------------


def _norm(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        raise AssertionError("NaN in a result: the data hold no NaN, so a NULL became NaN")
    return value


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if _is_number(a) and _is_number(b):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _is_number(v) -> bool:
    return isinstance(v, (int, float))


def _columns(rows: list[tuple], width: int) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """Per column: null mask, values (float or str), whether numeric."""
    out = []
    for j in range(width):
        values = [r[j] for r in rows]
        null = np.array([v is None for v in values], dtype=bool)
        numeric = all(_is_number(v) for v in values if v is not None)
        if numeric:
            vals = np.array([0.0 if v is None else float(v) for v in values], dtype=np.float64)
        else:
            vals = np.array(["" if v is None else str(v) for v in values], dtype=object)
        out.append((null, vals, numeric))
    return out


def _order(cols) -> np.ndarray:
    """A row order that sorts by every column (NULLs first, numbers rounded so ulps do not matter)."""
    keys = {}
    for j, (null, vals, numeric) in enumerate(cols):
        keys[f"n{j}"] = null
        keys[f"v{j}"] = np.round(vals, 6) if numeric else vals
    frame = pd.DataFrame(keys)
    return frame.sort_values(list(keys), kind="mergesort", ascending=False).index.to_numpy()


def assert_same_rows(got: list[tuple], want: list[tuple], ordered: bool) -> None:
    assert len(got) == len(want), f"{len(got)} rows, sqlite has {len(want)}"
    if not got:
        return
    width = len(want[0])
    assert len(got[0]) == width, f"{len(got[0])} columns, sqlite has {width}"
    gcols, wcols = _columns(got, width), _columns(want, width)
    if ordered:
        gi = wi = np.arange(len(got))
    else:
        gi, wi = _order(gcols), _order(wcols)
    for j, ((gn, gv, gnum), (wn, wv, wnum)) in enumerate(zip(gcols, wcols, strict=True)):
        gn, gv, wn, wv = gn[gi], gv[gi], wn[wi], wv[wi]
        bad = gn != wn
        both = ~gn & ~wn
        if gnum and wnum:
            bad |= both & ~np.isclose(gv, wv, rtol=1e-9, atol=1e-12)
        else:
            bad |= both & (gv != wv)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise AssertionError(
                f"column {j}, {int(bad.sum())} rows differ; first: row {k}: "
                f"{got[gi[k]]} != sqlite {want[wi[k]]}"
            )


def rows_of(table: pa.Table) -> list[tuple]:
    columns = [c.to_pylist() for c in table.columns]  # not to_pylist(): names may repeat
    return [tuple(_norm(v) for v in row) for row in zip(*columns, strict=True)]


def run(query: str, cat) -> list[tuple]:
    return rows_of(proxcompute.sql(query, {"stars": cat}).to_arrow())


# -- tests -----------------------------------------------------------------------------------


def test_enough_cases():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("adql", "lite", "ordered", "disk"), CASES)
def test_against_sqlite(adql, lite, ordered, disk, stars_mem, sqlite_db):
    want = [tuple(_norm(v) for v in r) for r in sqlite_db.execute(lite).fetchall()]
    assert_same_rows(run(adql, stars_mem), want, ordered)


DISK_CASES = [c for c in CASES if c.values[3]]


@pytest.mark.parametrize(("adql", "lite", "ordered", "disk"), DISK_CASES)
def test_against_sqlite_on_disk(adql, lite, ordered, disk, stars_disk, sqlite_db):
    want = [tuple(_norm(v) for v in r) for r in sqlite_db.execute(lite).fetchall()]
    assert_same_rows(run(adql, stars_disk), want, ordered)


def test_disk_subset_covers_every_mode(stars_mem):
    modes = {proxcompute.sql(c.values[0], {"stars": stars_mem}).mode for c in DISK_CASES}
    assert modes == {"catalog", "rows", "aggregate", "two-level", "gather"}


PARTITION_CASES = [
    c
    for c in CASES
    if c.id
    in {
        "project",
        "arith",
        "and",
        "like",
        "is-null",
        "aggregates",
        "group-by",
        "group-null-key",
        "having",
        "count-distinct",
        "group-alias-order-nulls",
        "order-nulls-last",
        "order-desc-nulls-first",
        "top",
        "top-offset",
        "offset-only",
        "order-hidden-expr",
        "distinct-null",
        "distinct-top",
        "self-join",
        "union",
    }
]


@pytest.mark.parametrize(("adql", "lite", "ordered", "disk"), PARTITION_CASES)
def test_independent_of_partitioning(adql, lite, ordered, disk, stars_fine, stars_coarse):
    assert len(stars_fine.partitions) > 3 * len(stars_coarse.partitions)
    assert_same_rows(run(adql, stars_fine), run(adql, stars_coarse), ordered)


def test_partition_cases_found():
    assert len(PARTITION_CASES) == 21


def test_dataframe_directly(sql_df, sqlite_db):
    """A DataFrame passed as a catalog gives the same answer as sqlite."""
    q = "SELECT flag, COUNT(*), AVG(mag) FROM stars WHERE band IS NOT NULL GROUP BY flag"
    got = rows_of(proxcompute.sql(q, {"stars": sql_df}).to_arrow())
    assert_same_rows(got, sqlite_db.execute(q).fetchall(), ordered=False)


def test_top_without_order(stars_mem, sqlite_db):
    """TOP without ORDER BY: exactly n rows, each a distinct row that satisfies the filter."""
    out = proxcompute.sql("SELECT TOP 25 id, mag, name FROM stars WHERE flag = 1", {"stars": stars_mem})
    got = rows_of(out.to_arrow())
    assert len(got) == 25
    assert len({r[0] for r in got}) == 25
    lite = {r[0]: r for r in sqlite_db.execute("SELECT id, mag, name FROM stars WHERE flag = 1")}
    for r in got:
        assert r[0] in lite
        assert all(_same(a, b) for a, b in zip(r, lite[r[0]], strict=True))


def test_output_names(stars_mem):
    q = 'SELECT id, mag AS m, mag + 1 AS "Plus", name AS n2, flag FROM stars WHERE id < 5'
    out = proxcompute.sql(q, {"stars": stars_mem}).compute()
    assert list(out.columns) == ["id", "m", "Plus", "n2", "flag"]
    assert len(out) == 5


def test_compute_matches_arrow(stars_mem):
    res = proxcompute.sql("SELECT id, mag, name FROM stars WHERE band = 1 ORDER BY id", {"stars": stars_mem})
    df = res.compute()
    table = res.to_arrow()
    assert len(df) == table.num_rows
    assert df["id"].tolist() == table.column("id").to_pylist()
    assert int(df["mag"].isna().sum()) == table.column("mag").null_count
    assert int(df["name"].isna().sum()) == table.column("name").null_count


def test_pushed_predicate_drops_nulls():
    """A pushed-down predicate that every non-NULL row of a partition meets still drops the NULL rows."""
    df = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "ra": [10.0, 10.001, 10.002],
            "dec": [5.0, 5.0, 5.0],
            "band": pd.array([2, None, 3], dtype="Int64"),
        }
    )
    out = proxcompute.sql("SELECT id FROM t WHERE band > 1", {"t": df}).to_arrow()
    assert sorted(out.column("id").to_pylist()) == [1, 3]
    out = proxcompute.sql("SELECT id FROM t WHERE band <> 1", {"t": df}).to_arrow()
    assert sorted(out.column("id").to_pylist()) == [1, 3]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id, id FROM stars WHERE id < 5",
        "SELECT a.id, b.id FROM stars a JOIN stars b ON a.id = b.id WHERE a.id < 5",
        "SELECT t.id, t.id FROM (SELECT id FROM stars WHERE id < 5) AS t",
    ],
)
def test_output_names_unique_in_every_mode(query, stars_mem):
    """Repeated output names are made unique the same way whatever the plan (pandas needs that)."""
    res = proxcompute.sql(query, {"stars": stars_mem})
    names = res.to_arrow().column_names
    assert len(set(names)) == len(names), f"{res.mode}: {names}"
    assert names == ["id", "id_2"]
