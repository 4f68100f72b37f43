"""Benchmark: 10" margin of a 10M-row synthetic catalog, ours vs hats-import (not a test).

    .venv/bin/python tests/margin/bench_margin.py [--rows 10000000] [--dir /tmp/pc-margin-bench]
                                                  [--margin 10] [--hats-import]

Builds the catalog once with the storage API (max_rows = 1,000,000), then times
``build_margin_catalog`` on a 2-worker local cluster: the first run in workers that have
only done ingest-like work (pyarrow, numba and pandas loaded, healpy not), then warm runs.
With ``--hats-import`` it also times hats-import's margin pipeline on the same catalog and
counts the rows its whole-pixel selection copies.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def build_catalog(dest: Path, rows: int, max_rows: int = 1_000_000) -> None:
    import numpy as np
    import pyarrow as pa

    from proxcompute.sky.healpix import INDEX_COLUMN, radec_to_healpix29
    from proxcompute.storage import CatalogBuilder, write_partition_file
    from proxcompute.storage.partitioning import assign_partitions, histogram, plan_partitions
    from proxcompute.synthetic import generate_catalog

    df = generate_catalog(rows)
    h = radec_to_healpix29(df.ra.to_numpy(), df.dec.to_numpy())
    df.insert(0, INDEX_COLUMN, h)
    df = df.iloc[np.argsort(h, kind="stable")].reset_index(drop=True)
    h = df[INDEX_COLUMN].to_numpy()
    pix, cnt = histogram(h, 10)
    parts, counts = plan_partitions(pix, cnt, 10, max_rows=max_rows)
    table = pa.Table.from_pandas(df, preserve_index=False)
    builder = CatalogBuilder(dest, name=dest.name, overwrite=True)
    bounds = np.searchsorted(assign_partitions(h, parts), np.arange(len(parts) + 1))
    for i, p in enumerate(parts):
        write_partition_file(builder.staging, p, table.slice(int(bounds[i]), int(bounds[i + 1] - bounds[i])))
    builder.finish(counts, table.schema, max_rows=max_rows)


def _ingest_like_warmup(i: int) -> int:
    import numpy as np
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from proxcompute.sky.healpix import radec_to_healpix29

    radec_to_healpix29(np.zeros(3_000_000), np.zeros(3_000_000))  # big enough to load numba
    return i


def hats_import_counts(catalog: Path, margin_arcsec: float) -> int:
    """Rows hats-import's whole-pixel margin copies (its margin pixels, counted exactly)."""
    import numpy as np
    import pyarrow.parquet as pq
    from hats.pixel_math import get_margin
    from hats.pixel_math.healpix_shim import margin2order

    from proxcompute.storage import read_catalog_meta

    meta = read_catalog_meta(catalog)
    order = int(margin2order(margin_arcsec / 60.0))
    pix = np.concatenate(
        [
            pq.read_table(meta.partition_path(p), columns=["_healpix_29"]).column(0).to_numpy()
            >> (2 * (29 - order))
            for p in meta.pixels
        ]
    )
    uniq, cnt = np.unique(pix, return_counts=True)
    total = 0
    for p in meta.pixels:
        mp = np.asarray(get_margin(p.order, p.pixel, order - p.order), dtype=np.int64)
        i = np.minimum(np.searchsorted(uniq, mp), len(uniq) - 1)
        total += int(cnt[i][uniq[i] == mp].sum())
    return total


def run_hats_import(catalog: Path, out: Path, margin_arcsec: float, reps: int = 2) -> list[float]:
    from dask.distributed import Client
    from hats_import.margin_cache.margin_cache_arguments import MarginCacheArguments
    from hats_import.pipeline import pipeline_with_client

    times = []
    with Client(n_workers=2, threads_per_worker=1, dashboard_address=":0") as client:
        for _ in range(reps):
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            args = MarginCacheArguments(
                input_catalog_path=str(catalog),
                output_path=out,
                output_artifact_name="margin",
                margin_threshold=margin_arcsec,
                progress_bar=False,
                resume=False,
                tmp_dir=out / "tmp",
            )
            pipeline_with_client(args, client)
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/pc-margin-bench"))
    ap.add_argument("--margin", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--hats-import", action="store_true")
    args = ap.parse_args()

    from proxcompute.execute import local_client, map_tasks
    from proxcompute.ingest.margin import build_margin_catalog
    from proxcompute.storage import read_catalog_meta

    catalog = args.dir / f"synth{args.rows // 1_000_000}m"
    if not catalog.exists():
        t = time.perf_counter()
        build_catalog(catalog, args.rows)
        print(f"built {catalog} in {time.perf_counter() - t:.1f} s")
    meta = read_catalog_meta(catalog)
    print(f"catalog: {meta.total_rows:,} rows, {len(meta.pixels)} partitions")
    _ingest_like_warmup(0)
    with local_client(2) as client:
        map_tasks(_ingest_like_warmup, range(4), client=client, description="warm-up", show_progress=False)
        for rep in range(args.reps):
            out = args.dir / f"margin_{rep}"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            n = build_margin_catalog(
                catalog, out, margin_arcsec=args.margin, name="m", client=client, show_progress=False
            )
            label = "first run (healpy not yet imported)" if rep == 0 else "warm"
            print(
                f'proxcompute {args.margin:g}" margin, {label}: {time.perf_counter() - t:.2f} s, {n:,} rows'
            )
    theirs = hats_import_counts(catalog, args.margin)
    print(f"hats-import's whole-pixel selection copies {theirs:,} rows ({theirs / max(n, 1):.2f}x ours)")
    if args.hats_import:
        times = run_hats_import(catalog, args.dir / "hats_import_margin", args.margin)
        print("hats-import margin pipeline: " + ", ".join(f"{t:.2f} s" for t in times))


if __name__ == "__main__":
    main()
