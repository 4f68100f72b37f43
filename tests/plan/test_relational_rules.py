"""Relational nodes (what SQL adds above a catalog plan) through the optimizer and executor.

``fuse_top_n`` against its golden fixture (tests/plan/fixtures/fuse_top_n_relational.txt,
regenerate with ``PROXCOMPUTE_REGEN=1``), the catalog rules rewriting below relational nodes,
and every node's rows against pandas, with each rule on and off.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from proxcompute import execute
from proxcompute.plan import Filter, OptFlags, Project, RegionFilter, optimize, parse_predicate, render_tree
from proxcompute.plan.relational import Distinct, Limit, Rename, Sort, SortKey, TopN
from proxcompute.plan.rules import fuse_top_n
from proxcompute.sky import Cone

FIXTURES = Path(__file__).parent / "fixtures"


def _frame(source) -> pd.DataFrame:
    return source.table.to_pandas()


def _top_chain(scan):
    """A cone, a filter and a projection under ORDER BY mag DESC, id LIMIT 7 OFFSET 2, renamed."""
    p = RegionFilter(scan, Cone(45.0, 30.0, 72000.0))
    p = Filter(p, parse_predicate("mag < 21", scan.source.schema))
    p = Project(p, ("id", "mag", "flag"))
    p = Sort(p, (SortKey("mag", descending=True), SortKey("id")))
    p = Limit(p, 7, 2)
    return Rename(p, (("mag", "magnitude"),))


def test_fuse_top_n_matches_golden_fixture(scan):
    plan = _top_chain(scan)
    text = f"{render_tree(plan)}\n=>\n{render_tree(fuse_top_n(plan))}\n"
    path = FIXTURES / "fuse_top_n_relational.txt"
    if os.environ.get("PROXCOMPUTE_REGEN"):
        path.write_text(text)
    assert text == path.read_text()
    assert render_tree(fuse_top_n(fuse_top_n(plan))) == render_tree(fuse_top_n(plan))


def test_limit_without_n_and_lone_sort_are_not_fused(scan):
    plan = Limit(Sort(Project(scan, ("id", "mag")), (SortKey("mag"),)), None, 5)
    assert render_tree(fuse_top_n(plan)) == render_tree(plan)


def test_catalog_rules_rewrite_below_relational_nodes(scan):
    optimized = optimize(_top_chain(scan))
    assert isinstance(optimized, Rename) and isinstance(optimized.child, TopN)
    inner = optimized.child.child
    assert type(inner).__name__ == "Scan"  # filters, region and projection folded into the scan
    assert inner.columns == ("id", "mag", "flag") and inner.regions and inner.predicate is not None
    assert len(inner.partitions) < len(scan.source.pixels)


def _sep_deg(ra, dec, ra0, dec0):
    ra, dec, ra0, dec0 = map(np.radians, (ra, dec, ra0, dec0))
    c = np.sin(dec) * np.sin(dec0) + np.cos(dec) * np.cos(dec0) * np.cos(ra - ra0)
    return np.degrees(np.arccos(np.clip(c, -1, 1)))


@pytest.mark.parametrize("flags", [OptFlags(), OptFlags.none(), OptFlags(fuse_top_n=False)])
def test_top_n_rows_equal_pandas(scan, source, flags):
    df = _frame(source)
    inside = (_sep_deg(df.ra, df.dec, 45.0, 30.0) <= 20.0) & (df.mag < 21)
    want = df[inside].sort_values(["mag", "id"], ascending=[False, True]).iloc[2:9][["id", "mag", "flag"]]
    got = execute.compute_query(_top_chain(scan), flags=flags).to_pandas()
    assert got.columns.tolist() == ["id", "magnitude", "flag"]
    np.testing.assert_array_equal(got["id"].to_numpy(), want["id"].to_numpy())


def test_distinct_and_streamed_limit_equal_pandas(scan, source):
    df = _frame(source)
    got = execute.compute_query(Distinct(Project(scan, ("flag",)))).to_pandas()
    assert sorted(got["flag"].tolist()) == sorted(df["flag"].unique().tolist())
    # a Limit over row-by-row work streams: the first rows in storage order
    plan = Limit(Filter(scan, parse_predicate("mag > 22", scan.source.schema)), 5, 3)
    got = pd.concat([t.to_pandas() for t in execute.iter_tables(plan)])
    assert got["id"].tolist() == df[df.mag > 22]["id"].iloc[3:8].tolist()
    assert execute.strategy(optimize(plan)) == "stream"


@pytest.mark.parametrize(("n", "offset", "desc"), [(10, 0, False), (3, 5, False), (25, 0, True), (1, 0, False)])
def test_top_n_on_a_stored_catalog_equals_numpy(tmp_path_factory, n, offset, desc):
    """The row-group statistics path (ascending) and the single scan (descending)."""
    from proxcompute.catalog import from_dataframe
    from proxcompute.plan.nodes import Scan
    from proxcompute.synthetic import generate_catalog

    df = generate_catalog(20_000, seed=11)
    path = tmp_path_factory.mktemp("topn") / "cat"
    from_dataframe(df, name="cat", max_rows=2_000).to_catalog(path)
    from proxcompute.catalog import open_catalog

    cat = open_catalog(path)
    scan = cat.plan
    assert isinstance(scan, Scan)
    plan = Limit(Sort(Project(scan, ("id", "mag")), (SortKey("mag", descending=desc), SortKey("id"))), n, offset)
    how = execute.strategy(optimize(plan))
    assert how == ("single-scan" if desc else "top-n-statistics")
    got = execute.compute_query(plan).to_pandas()
    order = np.lexsort((df["id"].to_numpy(), -df["mag"].to_numpy() if desc else df["mag"].to_numpy()))
    np.testing.assert_array_equal(got["id"].to_numpy(), df["id"].to_numpy()[order][offset : offset + n])
