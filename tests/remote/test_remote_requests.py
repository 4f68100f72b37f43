"""A remote plan fetches only the footers and row groups it needs, counted by nginx's access log
(the server's own record, not the client's), and metadata is cached between opens."""

from __future__ import annotations

import pyarrow.parquet as pq

from proxcompute.catalog import open_catalog
from proxcompute.sky import Cone
from proxcompute.storage import select_row_groups
from proxcompute.storage.location import clear_remote_cache

FOOTER_READ = 64 * 1024  # pyarrow reads the last 64 KiB of a file to find its footer
COLUMNS = ["id", "ra", "dec", "mag"]


def _parquet(requests):
    return [r for r in requests if r.uri.endswith(".parquet")]


def _cone_in_one_row_group(local) -> Cone:
    """A 10" cone around a row early in the largest partition (several row groups): the cone
    needs that partition's first row group, not the others."""
    pixel = max(local.partitions, key=lambda p: pq.read_metadata(local.plan.source.meta.partition_path(p)).num_rows)
    path = local.plan.source.meta.partition_path(pixel)
    assert pq.read_metadata(path).num_row_groups >= 2
    row = pq.ParquetFile(path).read_row_group(0, columns=["ra", "dec"]).slice(100, 1).to_pylist()[0]
    return Cone(row["ra"], row["dec"], 10.0)


def test_a_cone_reads_ranges_of_the_files_it_needs(nginx, served_root):
    clear_remote_cache()
    local = open_catalog(served_root / "survey")
    cone = _cone_in_one_row_group(local)
    cat = open_catalog(nginx.url + "survey")
    query = cat.search(cone)[COLUMNS]
    mark = nginx.mark()
    df = query.compute()
    requests = nginx.requests_since(mark)
    assert len(df) > 0
    assert all(r.status in (200, 206) for r in requests), requests
    data = [r for r in _parquet(requests) if r.method == "GET"]
    assert data and all(r.range.startswith("bytes=") for r in data), "a partition file was fetched whole"
    assert all(r.status == 206 for r in data)
    ranges = cone.healpix29_ranges()
    touched = {r.uri for r in data}
    in_cover, expected_files, needed = set(), set(), 0
    for pixel in local.partitions:
        lo, hi = pixel.healpix29_range
        if not ((ranges[:, 0] < hi) & (ranges[:, 1] > lo)).any():
            continue
        path = local.plan.source.meta.partition_path(pixel)
        rel = "/survey/" + str(path.relative_to(served_root / "survey"))
        in_cover.add(rel)
        md = pq.read_metadata(path)
        leaves = {md.schema.column(i).path: i for i in range(md.num_columns)}
        for rg in select_row_groups(md, ranges):
            expected_files.add(rel)
            for c in {"_healpix_29", *COLUMNS}:
                needed += md.row_group(rg).column(leaves[c]).total_compressed_size
    assert expected_files and expected_files <= touched <= in_cover
    total_size = sum((served_root / r.removeprefix("/")).stat().st_size for r in touched)
    sent = sum(r.bytes_sent for r in data)
    slack = 16 * 1024 * len(touched)  # pyarrow coalesces chunks across small holes
    assert needed <= sent <= needed + FOOTER_READ * len(touched) + slack
    assert sent < 0.75 * total_size  # the largest partition holds several row groups: one is read

    mark = nginx.mark()  # warm: footers and sizes are cached, only the column chunks are fetched
    assert query.compute().equals(df)
    again = nginx.requests_since(mark)
    assert [r for r in again if r.method == "HEAD"] == []
    assert sum(r.bytes_sent for r in _parquet(again)) <= needed + slack


def test_metadata_is_cached_between_opens(nginx):
    clear_remote_cache()
    mark = nginx.mark()
    first = open_catalog(nginx.url + "survey")
    cold = nginx.requests_since(mark)
    mark = nginx.mark()
    second = open_catalog(nginx.url + "survey")
    warm = nginx.requests_since(mark)
    assert len(first) == len(second) and first.partitions == second.partitions
    assert {r.uri.rsplit("/", 1)[-1] for r in cold} >= {"collection.properties", "hats.properties",
                                                        "partition_info.csv"}  # fmt: skip
    # reopening only checks the properties files (a rewritten catalog is seen); nothing else
    assert warm and all(r.uri.endswith(".properties") for r in warm), warm
    assert len(warm) < len(cold)
    assert not _parquet(cold), "opening read a partition file"


def test_a_rewritten_catalog_is_seen_on_reopening(nginx, served_root):
    import shutil

    path = served_root / "rewritten"
    shutil.copytree(served_root / "targets", path)
    try:
        before = open_catalog(nginx.url + "rewritten")
        assert len(before.compute()) == len(before)
        subset = open_catalog(path).where("dec > 0").to_catalog(served_root / "rewritten-new").compute()
        shutil.rmtree(path)
        (served_root / "rewritten-new").rename(path)
        after = open_catalog(nginx.url + "rewritten")  # new properties: cached metadata dropped
        assert len(after) == len(subset) < len(before)
        assert sorted(after.compute().tid) == sorted(subset.tid)
    finally:
        shutil.rmtree(path, ignore_errors=True)
