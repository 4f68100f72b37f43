"""User code next to the data: map_partitions overhead and sky maps, against a plain loop and LSDB.

Usage::

    .venv/bin/python benchmarks/bench_user_code.py [--map-rows 10000000] [--sky-rows 100000000]
        [--workdir bench-data] [--repeat 5] [--markdown out.md]

1. Generate the input in chunks of 10M rows (``generate_catalog(..., id_offset=...)``, one
   seed per chunk) as Parquet files and ingest it with ``proxcompute.ingest`` (max_rows 1M,
   no margin); both are cached in ``--workdir``.
2. **map_partitions overhead** (``--map-rows`` catalog): a user function computing colours
   and a colour cut (keeps ~8%) run (a) as a plain loop over the partition files
   (``ParquetFile.read`` -> ``to_pandas`` -> fn, on a pool of one thread per core, then
   ``pandas.concat``; with Arrow's decoding threads on, its default, and off), (b) as ``Catalog.map_partitions(fn, meta=...).compute()``,
   (c) as LSDB's ``open_catalog(...).map_partitions(fn, meta=...).compute()`` on the same
   catalog. The three run interleaved, ``--repeat`` times; medians. Every answer is checked
   (same ids).
3. **sky map, order 10** (``--sky-rows`` catalog): count and mean magnitude per pixel, as
   (a) a plain loop (read ``_healpix_29`` and ``mag`` per partition, shift, ``bincount`` into
   dense arrays, threads), (b) ``Catalog.skymap(10, ...)``, (c) LSDB: ``map_partitions``
   returning per-pixel counts and sums of each partition, then a pandas ``groupby`` of the
   concatenated result (LSDB 0.11 has no sky map). Checked: the three count maps are equal
   and the means agree to 1e-9. Peak RSS of the process is sampled during (b).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

CHUNK = 10_000_000
ORDER = 10


def colours(df: pd.DataFrame) -> pd.DataFrame:
    """The benchmark's user function: colours and a colour cut."""
    out = df.assign(r=df["mag"] - df["color"], g_r=df["color"] * 1.0)
    return out[out["g_r"] > 1.2]


def ensure_catalog(workdir: Path, rows: int) -> Path:
    """``rows`` generated in chunks and ingested once; the catalog directory."""
    import proxcompute as pc

    out = workdir / f"pc-{rows}"
    if (out / "collection.properties").exists() or (out / "hats.properties").exists():
        print(f"catalog: reusing {out}", flush=True)
        return out
    raw = workdir / f"raw-{rows}"
    raw.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    files = []
    for i, lo in enumerate(range(0, rows, CHUNK)):
        f = raw / f"part-{i:03d}.parquet"
        files.append(str(f))
        if f.exists():
            continue
        n = min(CHUNK, rows - lo)
        df = pc.generate_catalog(n, seed=1000 + i, id_offset=lo)
        df.to_parquet(f.with_suffix(".tmp"), index=False)
        os.replace(f.with_suffix(".tmp"), f)
        print(f"  generated {lo + n:,} rows ({time.perf_counter() - t0:.0f} s)", flush=True)
    t1 = time.perf_counter()
    pc.ingest(files, out, max_rows=1_000_000, margin_arcsec=0, workers=2, overwrite=True)
    print(f"catalog: generated in {t1 - t0:.0f} s, ingested in {time.perf_counter() - t1:.0f} s", flush=True)
    return out


def _files(cat) -> list[str]:
    from proxcompute.storage import partition_path

    return [str(partition_path(cat.path, p.order, p.pixel)) for p in cat.partitions]


def _threads() -> int:
    return os.cpu_count() or 1


# -- map_partitions ----------------------------------------------------------------------------


def loop_map(files: list[str], arrow_threads: bool = True) -> pd.DataFrame:
    """The plain loop: read each partition file, to pandas, the function; one thread per core."""

    def one(f):
        return colours(pq.ParquetFile(f).read(use_threads=arrow_threads).to_pandas())

    with ThreadPoolExecutor(_threads()) as pool:
        return pd.concat(list(pool.map(one, files)), ignore_index=True)


def loop_map_single(files: list[str]) -> pd.DataFrame:
    """The same loop without Arrow's own decoding threads (one level of parallelism, as ours)."""
    return loop_map(files, arrow_threads=False)


def ours_map(cat, meta) -> pd.DataFrame:
    return cat.map_partitions(colours, meta=meta).compute()


def lsdb_map(path: Path, meta) -> pd.DataFrame:
    import lsdb

    # LSDB keeps _healpix_29 as the index: its meta has the other columns
    lmeta = meta.set_index("_healpix_29")
    return lsdb.open_catalog(path).map_partitions(colours, meta=lmeta).compute(progress_bar=False)


# -- sky maps ----------------------------------------------------------------------------------


def loop_skymap(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    npix = 12 * 4**ORDER
    shift = 2 * (29 - ORDER)

    def one(f):
        t = pq.read_table(f, columns=["_healpix_29", "mag"])
        pix = t.column("_healpix_29").to_numpy() >> shift
        mag = t.column("mag").to_numpy()
        return np.bincount(pix, minlength=npix), np.bincount(pix, weights=mag, minlength=npix)

    n = np.zeros(npix, dtype=np.int64)
    s = np.zeros(npix)
    lock = threading.Lock()
    with ThreadPoolExecutor(_threads()) as pool:
        for cn, cs in pool.map(one, files):
            with lock:
                n += cn
                s += cs
    mean = np.full(npix, np.nan)
    np.divide(s, n, out=mean, where=n > 0)
    return n, mean


def ours_skymap(cat) -> tuple[np.ndarray, np.ndarray]:
    sm = cat.skymap(ORDER, {"n": "count", "mean_mag": ("mag", "mean")})
    return sm.to_numpy("n"), sm.to_numpy("mean_mag")


def _lsdb_pixel_sums(df: pd.DataFrame) -> pd.DataFrame:
    pix = df.index.to_numpy() >> (2 * (29 - ORDER))
    g = pd.DataFrame({"pix": pix, "mag": df["mag"].to_numpy()}).groupby("pix")["mag"]
    return pd.DataFrame({"pix": g.size().index.to_numpy(), "n": g.size().to_numpy(), "s": g.sum().to_numpy()})


def lsdb_skymap(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import lsdb

    cat = lsdb.open_catalog(path, columns=["mag"])
    meta = pd.DataFrame({"pix": pd.Series([], dtype="int64"), "n": pd.Series([], dtype="int64"),
                         "s": pd.Series([], dtype="float64")})  # fmt: skip
    parts = cat.map_partitions(_lsdb_pixel_sums, meta=meta).compute(progress_bar=False)
    g = parts.groupby("pix")[["n", "s"]].sum()
    npix = 12 * 4**ORDER
    n = np.zeros(npix, dtype=np.int64)
    s = np.zeros(npix)
    n[g.index.to_numpy()] = g["n"].to_numpy()
    s[g.index.to_numpy()] = g["s"].to_numpy()
    mean = np.full(npix, np.nan)
    np.divide(s, n, out=mean, where=n > 0)
    return n, mean


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.start = self._proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


CPU: dict[str, list[float]] = {}
"""CPU seconds of this process (all threads) per timed call, by label: steadier than wall time
on a machine shared with other work."""


def timed(fn, *args, label: str = ""):
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = fn(*args)
    wall = time.perf_counter() - t0
    CPU.setdefault(label, []).append(time.process_time() - c0)
    return wall, out


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--map-rows", type=int, default=10_000_000)
    ap.add_argument("--sky-rows", type=int, default=100_000_000)
    ap.add_argument("--workdir", type=Path, default=Path("bench-data"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    os.environ.setdefault("PROXCOMPUTE_PROGRESS", "0")
    import dask

    import proxcompute as pc

    dask.config.set(scheduler="threads", num_workers=_threads())  # LSDB on the same threads as ours
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"uptime_start": _uptime(), "maxrss_start_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(results["uptime_start"], flush=True)

    # map_partitions overhead
    map_path = ensure_catalog(workdir, args.map_rows)
    cat = pc.open_catalog(map_path)
    files = _files(cat)
    meta = colours(pq.read_table(files[0]).slice(0, 10).to_pandas()).iloc[:0]
    times: dict[str, list[float]] = {"loop": [], "loop1": [], "proxcompute": [], "lsdb": []}
    want = None
    for i in range(args.repeat + 1):  # the first round warms caches and is not counted
        for name, fn, a in (("loop", loop_map, (files,)), ("loop1", loop_map_single, (files,)),
                            ("proxcompute", ours_map, (cat, meta)), ("lsdb", lsdb_map, (map_path, meta))):  # fmt: skip
            t, out = timed(fn, *a, label=f"map {name}" if i else "warm-up")
            ids = np.sort(out["id"].to_numpy())
            if want is None:
                want = ids
            assert np.array_equal(ids, want), f"{name} returned other rows"
            if i:
                times[name].append(t)
            print(f"  map {name:12s} {t:7.2f} s  ({len(ids):,} rows)", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    results["map"] = {"rows": args.map_rows, "partitions": len(files), "out_rows": len(want),
                      "times": times, "median": med}  # fmt: skip

    # sky map at order 10
    sky_path = ensure_catalog(workdir, args.sky_rows)
    sky = pc.open_catalog(sky_path)
    sfiles = _files(sky)
    stimes: dict[str, list[float]] = {"loop": [], "proxcompute": [], "lsdb": []}
    peaks = []
    ref = None
    for i in range(max(args.repeat // 2, 1) + 1):
        for name in ("loop", "proxcompute", "lsdb"):
            if name == "proxcompute":
                with PeakRSS() as mem:
                    t, (n, mean) = timed(ours_skymap, sky, label=f"skymap {name}" if i else "warm-up")
                peaks.append((mem.start, mem.peak))
            elif name == "loop":
                t, (n, mean) = timed(loop_skymap, sfiles, label=f"skymap {name}" if i else "warm-up")
            else:
                t, (n, mean) = timed(lsdb_skymap, sky_path, label=f"skymap {name}" if i else "warm-up")
            if ref is None:
                ref = (n, mean)
            assert np.array_equal(n, ref[0]), f"{name}: other counts"
            np.testing.assert_allclose(mean, ref[1], rtol=1e-9, equal_nan=True)
            if i:
                stimes[name].append(t)
            print(f"  skymap {name:12s} {t:7.2f} s  ({int(n.sum()):,} rows)", flush=True)
    smed = {k: statistics.median(v) for k, v in stimes.items()}
    results["skymap"] = {"rows": args.sky_rows, "partitions": len(sfiles), "order": ORDER, "times": stimes,
                         "median": smed, "rss_mb": [(a / 2**20, b / 2**20) for a, b in peaks],
                         "largest_partition_rows": int(max(pq.ParquetFile(f).metadata.num_rows for f in sfiles))}  # fmt: skip
    results["cpu_median"] = {k: statistics.median(v) for k, v in CPU.items() if k != "warm-up"}
    results["uptime_end"] = _uptime()
    print(results["uptime_end"], flush=True)
    (workdir / "user-code-results.json").write_text(json.dumps(results, indent=1))
    md = render(results)
    print(md)
    if args.markdown:
        args.markdown.write_text(md)


def render(r: dict) -> str:
    m, s = r["map"], r["skymap"]
    mm, sm = m["median"], s["median"]
    rss = max(b - a for a, b in s["rss_mb"])
    best = min(mm["loop"], mm["loop1"])
    lines = [
        f"map_partitions: {m['rows']:,} rows, {m['partitions']} partitions, colours + cut -> {m['out_rows']:,} rows",
        "",
        "| | loop (Arrow threads on) | loop (Arrow threads off) | proxcompute | LSDB 0.11.1 |",
        "|---|---:|---:|---:|---:|",
        f"| median (s) | {mm['loop']:.2f} | {mm['loop1']:.2f} | {mm['proxcompute']:.2f} | {mm['lsdb']:.2f} |",
        f"| over the faster loop | {100 * (mm['loop'] / best - 1):+.0f}% | {100 * (mm['loop1'] / best - 1):+.0f}% | "
        f"{100 * (mm['proxcompute'] / best - 1):+.0f}% | {100 * (mm['lsdb'] / best - 1):+.0f}% |",
        "| median CPU (s, all threads) | " + " | ".join(f"{r['cpu_median'][f'map {k}']:.2f}"
                                                      for k in ("loop", "loop1", "proxcompute", "lsdb")) + " |",
        "",
        f"sky map, order {s['order']}: {s['rows']:,} rows, {s['partitions']} partitions (largest "
        f"{s['largest_partition_rows']:,} rows), count + mean(mag)",
        "",
        "| | numpy loop (full-sky bincount per partition) | proxcompute | LSDB 0.11.1 (map_partitions + groupby) |",
        "|---|---:|---:|---:|",
        f"| median (s) | {sm['loop']:.2f} | {sm['proxcompute']:.2f} | {sm['lsdb']:.2f} |",
        f"| vs proxcompute | {sm['loop'] / sm['proxcompute']:.2f}x | 1 | {sm['lsdb'] / sm['proxcompute']:.2f}x |",
        "| median CPU (s, all threads) | " + " | ".join(f"{r['cpu_median'][f'skymap {k}']:.2f}"
                                                      for k in ("loop", "proxcompute", "lsdb")) + " |",
        "",
        f"proxcompute's peak RSS growth during the sky map: {rss:,.0f} MB.",
        "",
        f"Load: start `{r['uptime_start']}`; end `{r['uptime_end']}`.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
