"""Golden plans: what each query class compiles to (mode, pushdown, the plan nodes before and after the optimizer).

Regenerate after an intended change with ``PROXCOMPUTE_UPDATE_GOLDEN=1 pytest tests/sql/test_golden_plans.py``
and review the diff.
"""

import os
from pathlib import Path

import pytest

import proxcompute
from proxcompute.catalog import from_dataframe
from proxcompute.plan import optimize, render_tree
from proxcompute.synthetic import generate_catalog

GOLDEN = Path(__file__).parent / "golden"

QUERIES = {
    "cone_columns": "SELECT id, ra, dec FROM s WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 45, 30, 0.5))",
    "cone_top_renamed": "SELECT TOP 10 id AS source_id, mag FROM s WHERE DISTANCE(POINT(ra, dec), POINT(10, -5)) < 1",
    "box_and_filters": (
        "SELECT * FROM s WHERE CONTAINS(POINT(ra, dec), BOX('ICRS', 0, 0, 4, 2)) = 1 AND mag BETWEEN 15 AND 20 "
        "AND flag IN (1, 3) AND color > 0.2"
    ),
    "expressions_residual": "SELECT id, mag - color AS g, ABS(dec) AS ad FROM s WHERE mag - color > 18 OR flag = 0",
    "order_top": "SELECT TOP 5 id, mag FROM s WHERE mag > 16 ORDER BY mag DESC, id",
    "order_hidden_key": "SELECT id FROM s ORDER BY ra * 2 OFFSET 3",
    "distinct": "SELECT DISTINCT flag FROM s WHERE mag < 20",
    "count_star": "SELECT COUNT(*) FROM s WHERE mag < 20",
    "group_by": (
        "SELECT FLOOR(dec) AS band, COUNT(*) AS n, AVG(mag) AS m, MIN(color), MAX(color) FROM s "
        "GROUP BY FLOOR(dec) HAVING COUNT(*) > 3 ORDER BY band"
    ),
    "group_by_columns_generic": (
        "SELECT flag, COUNT(*) AS n, AVG(mag) AS m, STDDEV(mag) AS sd, MAX(color) FROM s GROUP BY flag "
        "ORDER BY n DESC"
    ),
    "count_distinct_two_level": "SELECT flag, COUNT(DISTINCT id) AS n FROM s GROUP BY flag",
    "positional_join": (
        "SELECT a.id, b.id, DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) AS d FROM t AS a "
        "JOIN s AS b ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, 1.0/3600)) "
        "WHERE b.mag < 20"
    ),
    "subquery_gather": "SELECT x.flag, x.n FROM (SELECT flag, COUNT(*) AS n FROM s GROUP BY flag) AS x WHERE x.n > 1",
    "healpix_udf": "SELECT ivo_healpix_index(5, ra, dec) AS pix, COUNT(*) AS n FROM s GROUP BY ivo_healpix_index(5, ra, dec)",
}


@pytest.fixture(scope="module")
def catalogs():
    s = from_dataframe(generate_catalog(5_000, seed=4), name="s", max_rows=1_000)
    t = from_dataframe(generate_catalog(500, seed=5), name="t", max_rows=1_000)
    return {"s": s, "t": t}


def summary(res) -> str:
    p = res._plan
    lines = [f"mode: {p.mode}"]
    lines += [f"pushed: {n}" for n in p.notes]
    if res.plan is not None:
        lines += ["plan:"] + ["  " + line for line in render_tree(res.plan).splitlines()]
        lines += ["optimized:"] + ["  " + line for line in render_tree(optimize(res.plan)).splitlines()]
    for key, cat in p.gather.items():
        cols = cat.column_names if hasattr(cat, "column_names") else cat.columns
        lines.append(f"gathered {key}: {getattr(cat, 'name', 'table')} [{', '.join(cols)}]")
    if p.gather_sql:
        lines.append(f"final: {p.gather_sql}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_plan_matches_golden(catalogs, name):
    res = proxcompute.sql(QUERIES[name], catalogs)
    text = summary(res)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("PROXCOMPUTE_UPDATE_GOLDEN"):
        path.write_text(f"-- {QUERIES[name]}\n{text}")
    expected = path.read_text().split("\n", 1)[1]
    assert text == expected
    res.compute()  # and the plan runs
