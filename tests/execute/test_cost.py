"""The cost model: what it counts is checked against the data, and estimates order queries
the way their work does. No timing: estimates come from metadata and fixed rates."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import proxcompute as pc
from proxcompute.catalog import from_dataframe
from proxcompute.execute import (
    DEFAULT_RATES,
    CostRates,
    describe_reads,
    estimate_cost,
    load_rates,
    save_rates,
)
from proxcompute.execute import reader as reader_module
from proxcompute.execute.cost_reads import FOOTER_PARTITIONS, covered
from proxcompute.plan import optimize
from proxcompute.plan.nodes import find_scan
from proxcompute.synthetic import generate_catalog

GROUP_SQL = "SELECT flag, COUNT(*) AS n, AVG(mag) AS m FROM s GROUP BY flag"


def _stored(root, rows, seed, max_rows):
    df = generate_catalog(rows, seed=seed)
    from_dataframe(df, name="s", max_rows=max_rows).to_catalog(root)
    return df, pc.open_catalog(root)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The quick start's catalog size: 200k rows in partitions of at most 20k."""
    root = tmp_path_factory.mktemp("cost") / "s"
    df, cat = _stored(root, 200_000, 5, 20_000)
    return df, cat


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """A catalog with more partitions than the footer limit."""
    root = tmp_path_factory.mktemp("costmany") / "s"
    df, cat = _stored(root, 150_000, 6, 1_000)
    assert len(cat.plan.source.pixels) > FOOTER_PARTITIONS
    return df, cat


def _files(cat):
    src = cat.plan.source
    return [f for p in src.pixels for f in src.meta.partition_files(p)]


def test_full_scan_reads_every_stored_row_and_row_group(demo):
    df, cat = demo
    est = estimate_cost(cat[["id", "mag"]])
    assert est.rows_read == len(df)  # independent: the generator's rows
    reads = describe_reads(optimize(cat.plan))
    assert sum(r.row_groups_total for r in reads.partitions) == sum(pq.read_metadata(f).num_row_groups for f in _files(cat))


def test_cone_reads_the_row_groups_explain_lists_and_holds_its_rows(demo):
    _, cat = demo
    cone = cat.cone_search(45.0, 30.0, 1800.0)  # on a dense cluster
    optimized = optimize(cone.plan)
    reads = describe_reads(optimized)
    groups = sum(r.row_groups_read for r in reads.partitions)
    est = estimate_cost(cone)
    scan = find_scan(optimized)
    # rows decoded: exactly the rows of the selected row groups (from the footers)
    want = 0
    for pixel in scan.partitions:
        for f in scan.source.meta.partition_files(pixel):
            md = pq.read_metadata(f)
            want += sum(md.row_group(i).num_rows for i in reader_module.selected_row_groups(md, scan.ranges, None))
    assert est.rows_read == want and groups >= 1
    assert est.partitions == len(scan.partitions) < len(cat.plan.source.pixels)


def test_cone_is_far_below_a_full_group_by_and_below_a_crossmatch(demo):
    df, cat = demo
    cone = estimate_cost(cat.cone_search(45.0, 30.0, 60.0))
    group = estimate_cost(pc.sql(GROUP_SQL, catalogs={"s": cat}))
    targets = from_dataframe(df.sample(20_000, random_state=1)[["id", "ra", "dec"]], name="t")
    xmatch = estimate_cost(targets.crossmatch(cat, radius_arcsec=1.0, ensure_margin=True))
    assert cone.rows_read * 10 < group.rows_read
    assert cone.seconds * 3 < group.seconds  # at 200k rows the GROUP BY's partitions dominate
    assert cone.seconds * 10 < xmatch.seconds
    assert dict(xmatch.breakdown)["crossmatch"] > 0
    assert cone.strategy == "partitions" and group.strategy == "single-scan"


def test_estimate_grows_with_rows_and_partitions(tmp_path, demo):
    _, big = demo
    _, small = _stored(tmp_path / "small", 50_000, 5, 20_000)
    assert estimate_cost(small[["id", "mag"]]).seconds < estimate_cost(big[["id", "mag"]]).seconds
    sizes = [estimate_cost(big.cone_search(200.0, 20.0, r)) for r in (60.0, 3600.0, 36_000.0, 180_000.0)]
    parts = [e.partitions for e in sizes]
    secs = [e.seconds for e in sizes]
    assert parts == sorted(parts) and parts[-1] > parts[0]
    assert secs == sorted(secs) and secs[-1] > 2 * secs[0]


def test_count_star_from_stored_counts_costs_only_the_query(demo):
    _, cat = demo
    est = estimate_cost(pc.sql("SELECT COUNT(*) AS n FROM s", catalogs={"s": cat}))
    assert est.strategy == "count" and est.rows_read == 0
    assert est.breakdown == (("open/plan", pytest.approx(DEFAULT_RATES.query_s + DEFAULT_RATES.sql_s)),)
    filtered = estimate_cost(pc.sql("SELECT COUNT(*) AS n FROM s WHERE mag < 20", catalogs={"s": cat}))
    assert filtered.seconds > 5 * est.seconds and filtered.rows_read == est.rows_read + len(cat)


def test_many_partitions_use_the_stored_counts_not_every_footer(many):
    df, cat = many
    pc.execute.clear_footer_cache()
    est = estimate_cost(cat[["id"]])
    assert est.rows_read == len(df)  # point_map.fits, summed over the partitions
    assert len(reader_module._footers) <= 3  # a few footers sampled for the row-group size
    # a cone over many partitions: the rows in it by the point map, against the brute force
    ra0, dec0, r_deg = 45.0, 30.0, 20.0  # dense clusters and sparse background
    cone = cat.cone_search(ra0, dec0, r_deg * 3600)
    assert len(find_scan(optimize(cone.plan)).partitions) > FOOTER_PARTITIONS
    d = np.degrees(np.arccos(np.clip(
        np.sin(np.radians(df.dec)) * np.sin(np.radians(dec0))
        + np.cos(np.radians(df.dec)) * np.cos(np.radians(dec0)) * np.cos(np.radians(df.ra - ra0)), -1, 1)))  # fmt: skip
    inside = int(np.count_nonzero(d <= r_deg))
    # the HEALPix cover holds the cone and a rim: the region test sees at least the cone's rows
    region_rows = dict(estimate_cost(cone, rates=_only("region_row_s")).breakdown)["region"] / 1.0
    assert inside <= region_rows * est.workers <= 1.5 * inside


def _only(name):
    zero = DEFAULT_RATES.with_rates(**{n: 0.0 for n in CostRates.rate_names()})
    return zero.with_rates(**{name: 1.0})


def test_estimate_is_linear_in_the_rates(demo):
    _, cat = demo
    q = pc.sql(GROUP_SQL, catalogs={"s": cat})
    double = DEFAULT_RATES.with_rates(**{n: 2 * getattr(DEFAULT_RATES, n) for n in CostRates.rate_names()})
    assert estimate_cost(q, rates=double).seconds == pytest.approx(2 * estimate_cost(q).seconds)
    parts = sum(estimate_cost(q, rates=_only(n)).seconds * getattr(DEFAULT_RATES, n) for n in CostRates.rate_names())
    assert parts == pytest.approx(estimate_cost(q).seconds)


def test_job_path_and_workers(demo):
    _, cat = demo
    q = pc.sql(GROUP_SQL, catalogs={"s": cat})
    job = estimate_cost(q, observed=True)
    assert job.strategy == "aggregate"  # an observed job aggregates partition by partition
    one, four = estimate_cost(q, observed=True, workers=1), estimate_cost(q, observed=True, workers=4)
    assert four.seconds < one.seconds


def test_maxrec_limits_the_estimate_of_a_full_select(demo):
    _, cat = demo
    everything = estimate_cost(pc.sql("SELECT id, ra, dec FROM s", catalogs={"s": cat}), write_result=True)
    capped = estimate_cost(pc.sql("SELECT id, ra, dec FROM s", catalogs={"s": cat}, maxrec=100), write_result=True)
    assert capped.strategy == "stream" and capped.seconds < everything.seconds / 3
    assert dict(everything.breakdown)["write"] > 0


def test_explain_shows_the_estimate_on_one_line(demo):
    _, cat = demo
    text = cat.cone_search(45.0, 30.0, 60.0).explain()
    assert text.splitlines()[-1].startswith("estimated ") and ": " in text.splitlines()[-1]
    sql_text = pc.sql(GROUP_SQL, catalogs={"s": cat}).explain()
    assert any(line.startswith("the query: estimated ") for line in sql_text.splitlines())


def test_estimate_takes_plans_catalogs_and_results_only(demo):
    _, cat = demo
    assert estimate_cost(cat.plan).seconds == estimate_cost(cat).seconds
    with pytest.raises(TypeError, match="estimate_cost takes"):
        estimate_cost("SELECT 1")


def test_covered_matches_brute_force():
    rng = np.random.default_rng(3)
    edges = np.sort(rng.choice(1000, 20, replace=False)).reshape(-1, 2)
    lo, hi = rng.integers(0, 900, 50), rng.integers(0, 100, 50)
    hi = lo + hi
    mask = np.zeros(1100, bool)
    for a, b in edges:
        mask[a:b] = True
    want = [mask[a:b].sum() for a, b in zip(lo, hi, strict=True)]
    np.testing.assert_array_equal(covered(edges, lo, hi), want)


def test_rates_file_round_trip_and_bad_files(tmp_path):
    rates = DEFAULT_RATES.with_rates(scan_cell_s=1e-8, measured_on="test")
    path = save_rates(rates, tmp_path / "sub" / "rates.json")
    assert load_rates(path) == rates
    good = json.loads(rates.to_json())
    bad = {
        "not-json.json": "{nope",
        "no-format.json": json.dumps({"query_s": 1}),
        "negative.json": json.dumps({**good, "query_s": -1}),
        "missing.json": json.dumps({k: v for k, v in good.items() if k != "scan_row_s"}),
        "unknown.json": json.dumps({**good, "warp_s": 1.0}),
        "text.json": json.dumps({**good, "filter_row_s": "fast"}),
        "infinite.json": json.dumps({**good, "region_row_s": float("inf")}),
    }
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(pc.CostRatesError, match=name.replace(".", r"\.")):
            load_rates(tmp_path / name)
    with pytest.raises(pc.CostRatesError, match="cannot read"):
        load_rates(tmp_path / "absent.json")


def test_default_rates_path_follows_the_environment(tmp_path, monkeypatch):
    from proxcompute.execute import default_rates_path

    monkeypatch.setenv("PROXCOMPUTE_COST_RATES", str(tmp_path / "r.json"))
    assert default_rates_path() == tmp_path / "r.json"
    assert load_rates() is DEFAULT_RATES  # no file there yet: the shipped defaults
    save_rates(DEFAULT_RATES.with_rates(query_s=1.0), tmp_path / "r.json")
    assert load_rates().query_s == 1.0
