"""The Aggregate and MapPartitions plan nodes: checks at build time, labels, and the optimizer barrier."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from proxcompute.errors import ColumnNotFoundError, InvalidOrderError, PlanError
from proxcompute.plan import Filter, OptFlags, Project, RegionFilter, optimize, parse_predicate, render_tree
from proxcompute.plan.aggregate import Aggregate, AggSpec, HealpixKey
from proxcompute.plan.map_partitions import MapPartitions, schema_from_meta
from proxcompute.sky import Cone

FIXTURES = Path(__file__).parent / "fixtures"


def add_colour(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(faint=df["mag"] > 21)


@pytest.mark.parametrize("order", [-1, 30, 1.5, None, True])
def test_healpix_key_order_outside_0_29_is_named(order):
    with pytest.raises(InvalidOrderError):
        HealpixKey(order)


def test_healpix_key_and_spec_labels():
    assert HealpixKey(np.int64(12), "pix").label() == "healpix(12) AS pix"
    assert HealpixKey(0).npix == 12 and HealpixKey(29).npix == 12 * 4**29
    assert AggSpec("s", "std", "mag").label() == "std(mag) AS s"
    with pytest.raises(PlanError, match="unknown aggregate"):
        AggSpec("x", "median", "mag")
    with pytest.raises(PlanError, match="needs a column"):
        AggSpec("x", "sum")


def test_aggregate_checks_columns_at_build_time(scan):
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'mag'"):
        Aggregate(scan, (HealpixKey(3),), (AggSpec("m", "mean", "magg"),))
    with pytest.raises(ColumnNotFoundError):
        Aggregate(scan, ("nope",), (AggSpec("n", "count"),))
    with pytest.raises(ColumnNotFoundError, match="_healpix_29"):
        Aggregate(Project(scan, ("ra", "dec", "mag")), (HealpixKey(3),), (AggSpec("n", "count"),))
    with pytest.raises(PlanError, match="named twice"):
        Aggregate(scan, ("flag",), (AggSpec("flag", "count"),))


def test_aggregate_output_schema_and_columns(scan):
    node = Aggregate(
        scan,
        (HealpixKey(5), "flag"),
        (
            AggSpec("n", "count"),
            AggSpec("s", "sum", "flag"),
            AggSpec("lo", "min", "mag"),
            AggSpec("sd", "std", "mag"),
        ),
    )
    assert node.output_columns() == ["pixel", "flag", "n", "s", "lo", "sd"]
    schema = node.output_arrow_schema()
    assert [str(t) for t in schema.types] == ["int64", "int16", "int64", "int64", "double", "double"]
    assert node.input_columns() == ["_healpix_29", "flag", "mag"]
    assert node.healpix_key is None
    assert Aggregate(scan, (HealpixKey(5),), (AggSpec("n", "count"),)).healpix_key == HealpixKey(5)


def _barrier_plan(scan):
    schema = scan.source.schema
    p = RegionFilter(scan, Cone(45.0, 30.0, 72000.0))
    p = Filter(p, parse_predicate("flag in [1, 2]", schema))
    p = MapPartitions(
        p, add_colour, schema_from_meta({**dict(zip(schema.names, schema.types, strict=True)), "faint": bool})
    )
    p = Filter(p, parse_predicate("mag < 20", schema))
    p = RegionFilter(p, Cone(50.0, 30.0, 36000.0))
    p = Project(p, ("id", "ra", "dec", "mag", "faint", "_healpix_29"))
    return Aggregate(p, (HealpixKey(4),), (AggSpec("n", "count"), AggSpec("m", "mean", "mag")))


def test_optimizer_never_moves_work_through_a_user_function(scan):
    """Golden fixture: filters, regions and columns above MapPartitions stay above it."""
    plan = _barrier_plan(scan)
    text = f"{render_tree(plan)}\n=>\n{render_tree(optimize(plan))}\n"
    path = FIXTURES / "barriers.txt"
    if os.environ.get("PROXCOMPUTE_REGEN"):
        path.write_text(text)
    assert text == path.read_text()
    assert optimize(plan, OptFlags.none()) is plan


def test_every_flag_combination_gives_the_same_aggregate(scan):
    from itertools import product

    from proxcompute.execute import compute_table

    plan = _barrier_plan(scan)
    want = compute_table(plan).to_pandas()
    assert want["n"].sum() > 0
    names = list(OptFlags.__dataclass_fields__)
    for values in product([False, True], repeat=len(names)):
        got = compute_table(plan, flags=OptFlags(**dict(zip(names, values, strict=True)))).to_pandas()
        pd.testing.assert_frame_equal(got, want)


def test_group_by_columns_with_nulls_matches_pandas(scan):
    """The generic (hashed) path: SQL-style GROUP BY on columns, nulls as one group."""
    from proxcompute.execute import compute_table

    df = scan.source.table.to_pandas()
    node = Aggregate(
        scan, ("flag",), (AggSpec("n", "count"), AggSpec("m", "max", "mag"), AggSpec("sd", "std", "mag"))
    )
    got = compute_table(node).to_pandas()
    g = df.groupby("flag")
    want = pd.DataFrame(
        {
            "flag": g.size().index,
            "n": g.size().to_numpy(),
            "m": g["mag"].max().to_numpy(),
            "sd": g["mag"].std().to_numpy(),
        }
    )
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)
    whole = compute_table(
        Aggregate(scan, (), (AggSpec("n", "count"), AggSpec("s", "sum", "flag")))
    ).to_pylist()
    assert whole == [{"n": len(df), "s": int(df["flag"].sum())}]


def test_group_by_key_with_nulls():
    from proxcompute.execute import compute_table
    from proxcompute.plan import MemorySource, Scan

    rng = np.random.default_rng(1)
    n = 3_000
    df = pd.DataFrame({"ra": rng.uniform(0, 360, n), "dec": rng.uniform(-80, 80, n), "x": rng.normal(size=n)})
    df["k"] = pd.array(rng.integers(0, 3, n), dtype="Int64")
    df.loc[::7, "k"] = pd.NA
    scan = Scan(MemorySource.from_pandas(df, name="t", max_rows=100))
    got = compute_table(
        Aggregate(scan, ("k",), (AggSpec("n", "count"), AggSpec("s", "sum", "x")))
    ).to_pandas()
    want = df.groupby("k", dropna=False).agg(n=("x", "size"), s=("x", "sum")).reset_index()
    want["k"] = want["k"].astype("float64")  # Arrow's nullable int64 comes to pandas as float
    assert got["k"].isna().sum() == 1
    pd.testing.assert_frame_equal(
        got.sort_values("k", na_position="last").reset_index(drop=True), want, check_dtype=False, rtol=1e-12
    )


def test_map_partitions_node_needs_healpix_in_schema(scan):
    with pytest.raises(PlanError, match="_healpix_29"):
        MapPartitions(scan, add_colour, pa.schema([("ra", pa.float64())]))
    assert schema_from_meta(pd.DataFrame({"ra": [1.0], "name": ["x"]})).names == ["_healpix_29", "ra", "name"]
    assert str(schema_from_meta({"name": object}).field("name").type) == "string"
    with pytest.raises(PlanError, match="meta"):
        schema_from_meta([1, 2])
