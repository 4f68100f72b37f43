"""where() against pandas.DataFrame.query, its pushdown, and its error messages."""

from __future__ import annotations

import pytest

from proxcompute.errors import ColumnNotFoundError, PlanError

EXPRESSIONS = [
    "mag < 20",
    "mag < 20 and ra > 10",
    "19 < mag <= 20.5",
    "(mag > 21) | (flag == 0)",
    "mag > 21 & flag == 0",
    "~(flag == 2) and dec < -30",
    "not (mag < 20 or color > 1)",
    "flag in [1, 3]",
    "flag not in (0, 1)",
    "name == 'galaxy' and mag < 19",
    "name in ['star', 'qso'] and dec > 60",
    "abs(dec) > 80",
    "-dec > 85",
    "mag - 2 * color > 18.5",
    "mag / 2 < 9.7",
    "ra % 90 < 1",
    "sqrt(ra) < 2",
    "flag != 3",
    "id >= 6000",
    "mag ** 2 > 400",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_where_equals_pandas_query(cat, sky_df, expr):
    got = cat.where(expr).compute()
    want = sky_df.query(expr)
    assert sorted(got["id"]) == sorted(want["id"])
    assert cat.where(expr).count() == len(want)


def test_where_chains_with_projection_and_regions(cat, sky_df):
    q = cat[["id", "mag", "dec"]].where("mag < 20").where("dec > 0")[["id", "mag"]]
    got = q.compute()
    assert list(got.columns) == ["id", "mag"]
    assert sorted(got["id"]) == sorted(sky_df.query("mag < 20 and dec > 0")["id"])


def test_isnull_notnull(mem_cat):
    assert mem_cat.where("isnull(mag)").count() == 0
    assert mem_cat.where("notnull(mag)").count() == len(mem_cat)


def test_unknown_column_suggests(mem_cat):
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'mag'") as info:
        mem_cat.where("mgg < 20")
    assert "^" in str(info.value)


def test_where_after_projection_only_sees_selected_columns(mem_cat):
    with pytest.raises(ColumnNotFoundError, match="'flag' not found"):
        mem_cat[["ra", "dec"]].where("flag == 1")


def test_syntax_error_points_at_column(mem_cat):
    with pytest.raises(PlanError) as info:
        mem_cat.where("mag < < 20")
    lines = str(info.value).splitlines()
    assert lines[-2].strip() == "mag < < 20"
    assert lines[-1].index("^") == lines[-2].index("< 20")


@pytest.mark.parametrize(
    ("expr", "match"),
    [
        ("mag = 20", "use =="),
        ("mag + 1", "needs a condition"),
        ("mag and flag", "is not a condition"),
        ("name < 3", "cannot compare"),
        ("foo(mag) > 1", "unknown function 'foo'"),
        ("mag.real > 1", "unsupported syntax"),
        ("__import__('os') > 1", "unknown function"),
        ("mag is None", "isnull"),
        ("", "empty"),
    ],
)
def test_bad_expressions(mem_cat, expr, match):
    with pytest.raises(PlanError, match=match):
        mem_cat.where(expr)


def test_predicate_skips_row_groups(tmp_path):
    """Rows are sorted by position, so a dec cut prunes row groups by their statistics."""
    from proxcompute.catalog import from_dataframe
    from proxcompute.synthetic import generate_catalog

    cat = from_dataframe(generate_catalog(200_000, seed=3), max_rows=200_000).to_catalog(tmp_path / "c")
    text = cat.where("dec > 75").explain()
    summary = next(ln for ln in text.splitlines() if ln.startswith("reads "))
    read, total = int(summary.split(", ")[1].split(" of ")[0]), int(summary.split(" of ")[2].split()[0])
    assert read < total
    assert cat.where("dec > 75").count() == int((cat.compute()["dec"] > 75).sum())


def test_null_rows_are_dropped_even_when_every_other_row_passes():
    """A partition whose non-null rows all pass still loses its null rows (SQL semantics)."""
    import pandas as pd

    from proxcompute.catalog import from_dataframe

    df = pd.DataFrame(
        {"ra": [10.0, 10.1, 10.2], "dec": [5.0, 5.1, 5.2], "band": pd.array([2, None, 3], dtype="Int64")}
    )
    cat = from_dataframe(df, name="nulls")
    assert cat.where("band > 1").count() == 2
    assert len(cat.where("band > 1").compute()) == 2
