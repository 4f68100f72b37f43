"""``proxcompute demo``: generate a survey, ingest it, open it, run cones, print timings."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from proxcompute import kernels
from proxcompute.synthetic import write_synthetic

__all__ = ["run_demo"]

DENSE_SPOT = (45.0, 30.0)  # centre of a synthetic cluster
SPARSE_SPOT = (150.0, 70.0)  # uniform background only
N_FILES = 4
SEED = 2026


def _write_inputs(rows: int, input_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    paths = write_synthetic(rows, N_FILES, input_dir, seed=SEED)
    table = pa.concat_tables(pq.read_table(p, columns=["ra", "dec"]) for p in paths)
    return table.column("ra").to_numpy(), table.column("dec").to_numpy()


def _timed(fn, repeat: int = 1) -> tuple[float, object]:
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def _crossmatch_step(cat, ra_all: np.ndarray, dec_all: np.ndarray) -> tuple[float, int, int]:
    import astropy.units as u
    import pandas as pd
    from astropy.coordinates import SkyCoord

    from proxcompute.catalog import crossmatch

    rng = np.random.default_rng(SEED)
    pick = rng.integers(0, len(ra_all), 20_000)
    targets = pd.DataFrame(
        {
            "target": np.arange(20_000),
            "ra": (ra_all[pick] + rng.normal(0, 1.5 / 3600, pick.size)) % 360.0,
            "dec": np.clip(dec_all[pick] + rng.normal(0, 1.5 / 3600, pick.size), -90, 90),
        }
    )
    t_xm, matched = _timed(lambda: crossmatch(targets, cat, radius_arcsec=2.0).compute())
    _, sep, _ = SkyCoord(targets.ra.to_numpy() * u.deg, targets.dec.to_numpy() * u.deg).match_to_catalog_sky(
        SkyCoord(ra_all * u.deg, dec_all * u.deg)
    )
    return t_xm, len(matched), int((sep.arcsec <= 2.0).sum())


def run_demo(rows: int = 3_000_000, workdir: Path = Path("demo-data"), workers: int | None = None, console=None) -> dict:
    """Run the end-to-end demo and return its measurements.

    Parameters
    ----------
    rows
        Rows in the synthetic catalog (a band and clusters over a uniform sky).
    workdir
        Directory for the generated inputs and the catalog (replaced on each run).
    workers
        Local Dask workers for the ingest.
    console
        A ``rich`` console to print to.
    """
    from rich.console import Console
    from rich.table import Table

    from proxcompute.catalog import open_catalog
    from proxcompute.ingest import ingest

    con = console or Console()
    workdir = Path(workdir)
    t_start = time.perf_counter()
    con.rule("[bold]proxcompute demo")
    con.print(f"1. generating {rows:,} seeded rows (uniform sky + a tilted band + 4 clusters) ...")
    t_gen, (ra_all, dec_all) = _timed(lambda: _write_inputs(rows, workdir / "input"))

    con.print("2. ingesting (count -> plan partitions -> split -> sort/write -> 10\" margin) ...")
    max_rows = max(1_000, rows // 15)
    t_ingest, result = _timed(
        lambda: ingest(
            workdir / "input",
            workdir / "survey",
            name="survey",
            max_rows=max_rows,
            margin_arcsec=10.0,
            workers=workers,
            overwrite=True,
        )
    )
    con.print(str(result))

    con.print("3. opening the catalog (metadata only) ...")
    t_open, cat = _timed(lambda: open_catalog(workdir / "survey"), repeat=5)
    orders = Counter(p.order for p in cat.partitions)
    summary = Table("order", "partitions", title=f"{cat.name}: {len(cat):,} rows in {len(cat.partitions)} partitions")
    for order, n in sorted(orders.items()):
        summary.add_row(str(order), str(n))
    con.print(summary)

    con.print("4. cone searches (warm medians of 7; results checked against brute force) ...")
    cones = Table("where", "ra", "dec", "radius", "rows", "brute force", "first call", "warm median")
    measurements = {"generate_s": t_gen, "ingest_s": t_ingest, "open_s": t_open, "cones": []}
    for label, (ra, dec) in (("dense", DENSE_SPOT), ("sparse", SPARSE_SPOT)):
        for radius_arcsec in (60.0, 600.0):
            query = cat.cone_search(ra, dec, radius_arcsec)
            t_first, df = _timed(query.compute)
            t_warm, df = _timed(query.compute, repeat=7)
            expected = int(kernels.cone_mask(ra_all, dec_all, ra, dec, radius_arcsec / 3600.0).sum())
            ok = "[green]equal[/green]" if len(df) == expected else f"[red]{expected}[/red]"
            cones.add_row(
                label, f"{ra:g}", f"{dec:g}", f'{radius_arcsec:g}"', f"{len(df):,}", ok,
                f"{t_first * 1e3:.1f} ms", f"{t_warm * 1e3:.2f} ms",
            )
            measurements["cones"].append(
                {"where": label, "radius_arcsec": radius_arcsec, "rows": len(df), "expected": expected, "warm_s": t_warm}
            )
            if len(df) != expected:
                raise AssertionError(f"cone at {label} spot returned {len(df)} rows, brute force says {expected}")
    con.print(cones)

    con.print("5. crossmatch of 20,000 targets (a user's table, not ingested) within 2\" ...")
    t_xm, n_matched, n_expected = _crossmatch_step(cat, ra_all, dec_all)
    con.print(f"   {n_matched:,} matches in {t_xm:.2f} s; astropy match_to_catalog_sky agrees: {n_expected:,}")
    if n_matched != n_expected:
        raise AssertionError(f"crossmatch found {n_matched} matches, astropy {n_expected}")
    measurements["crossmatch_s"] = t_xm

    t_count, n_bright = _timed(lambda: cat.where("mag < 20").count(), repeat=3)
    timings = Table("step", "seconds", title="timings")
    timings.add_row("generate inputs", f"{t_gen:.2f}")
    timings.add_row(f"ingest {rows:,} rows", f"{t_ingest:.2f}")
    timings.add_row("open catalog", f"{t_open * 1e3:.1f} ms")
    timings.add_row("crossmatch 20,000 targets", f"{t_xm:.2f}")
    timings.add_row(f"count(mag < 20) = {n_bright:,}", f"{t_count:.3f}")
    timings.add_row("total", f"{time.perf_counter() - t_start:.1f}")
    con.print(timings)
    measurements["count_s"] = t_count
    con.print(f"catalog at {workdir / 'survey'}; try: proxcompute info {workdir / 'survey'}")
    return measurements
