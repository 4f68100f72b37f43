"""The TAP service under real clients: pyvo latency for cones, and a concurrent load run.

Serves the cached 10M-row benchmark catalog (``bench-data/pc-10000000``, built by
``bench_foundation.py``) with ``proxcompute serve`` on 127.0.0.1 and measures, through pyvo:

- a 1' cone (sync, VOTable BINARY2, rows to the client): median of N, target < 50 ms
  (LSDB's hats-tap: 0.98 s);
- a 1 deg cone of ~500k rows (sync, MAXREC raised): VOTable through pyvo, and Parquet over
  plain HTTP (hats-tap: 40 s, mostly writing VOTable);
- a load run: 50 concurrent sync 1' cones at random positions plus 10 concurrent async jobs
  (GROUP BY over 1 deg cones), reporting latency percentiles and errors (there must be none).

Run: ``.venv/bin/python benchmarks/bench_tap.py [--repeats 20] [--rows 10000000]``.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "service"))

from tap_server import running_server  # noqa: E402

CONE_1M = "SELECT ra, dec, mag FROM big WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {r}))"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--concurrent-sync", type=int, default=50)
    ap.add_argument("--concurrent-async", type=int, default=10)
    args = ap.parse_args()

    import pyvo

    catalog = ROOT / "bench-data" / f"pc-{args.rows}"
    if not catalog.exists():
        sys.exit(f"{catalog} is missing: run benchmarks/bench_foundation.py --rows {args.rows} first")
    with tempfile.TemporaryDirectory(prefix="bench-tap-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        os.symlink(catalog.resolve(), root / "big")
        with running_server(root) as url:
            tap = pyvo.dal.TAPService(url)
            rows = []

            # warm-up: numba kernels, DuckDB connections, footers
            for _ in range(3):
                tap.search(CONE_1M.format(ra=45, dec=30, r=1 / 60))

            times, n = [], 0
            for i in range(args.repeats):
                t0 = time.perf_counter()
                res = tap.search(CONE_1M.format(ra=45 + i * 0.01, dec=30, r=1 / 60))
                n = len(res)
                times.append(time.perf_counter() - t0)
            rows.append(("1' cone, pyvo sync (VOTable BINARY2)", n, statistics.median(times), "< 50 ms", "0.98 s"))

            q1 = CONE_1M.format(ra=45, dec=30, r=1)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                res = tap.search(q1, maxrec=5_000_000)
                n = len(res.to_table())
                times.append(time.perf_counter() - t0)
            rows.append(("1 deg cone, pyvo sync (VOTable BINARY2)", n, statistics.median(times), "", "40 s"))
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                r = httpx.post(url + "/sync", data={"LANG": "ADQL", "QUERY": q1, "MAXREC": "5000000",
                                                    "RESPONSEFORMAT": "parquet"}, timeout=600)  # fmt: skip
                import pyarrow.parquet as pq

                n = pq.read_table(io.BytesIO(r.content)).num_rows
                times.append(time.perf_counter() - t0)
            rows.append(("1 deg cone, HTTP sync (Parquet)", n, statistics.median(times), "", ""))

            # load: 50 concurrent sync cones + 10 async jobs at once
            rng = np.random.default_rng(1)
            positions = [(float(rng.uniform(0, 360)), float(np.degrees(np.arcsin(rng.uniform(-1, 1)))))
                         for _ in range(args.concurrent_sync)]  # fmt: skip
            errors: list[str] = []

            def one_sync(pos):
                t0 = time.perf_counter()
                try:
                    pyvo.dal.TAPService(url).search(CONE_1M.format(ra=pos[0], dec=pos[1], r=1 / 60))
                except Exception as exc:  # counted and reported, never hidden
                    errors.append(f"sync: {type(exc).__name__}: {exc}")
                return time.perf_counter() - t0

            def one_async(i):
                t0 = time.perf_counter()
                q = ("SELECT FLOOR(mag) AS m, COUNT(*) AS n FROM big WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
                     f"CIRCLE('ICRS', {20 + 30 * i}, {10 - 2 * i}, 1)) GROUP BY m")  # fmt: skip
                try:
                    pyvo.dal.TAPService(url).run_async(q)
                except Exception as exc:
                    errors.append(f"async: {type(exc).__name__}: {exc}")
                return time.perf_counter() - t0

            t_all = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.concurrent_sync + args.concurrent_async) as pool:
                fa = [pool.submit(one_async, i) for i in range(args.concurrent_async)]
                fs = [pool.submit(one_sync, p) for p in positions]
                sync_lat = [f.result() for f in fs]
                async_lat = [f.result() for f in fa]
            wall = time.perf_counter() - t_all

    print(f"\nTAP service, {args.rows:,}-row catalog, pyvo {pyvo.__version__}, {os.cpu_count()} CPUs\n")
    print("| request | rows | median | target | hats-tap |")
    print("|---|---|---|---|---|")
    for name, n, t, target, peer in rows:
        print(f"| {name} | {n:,} | {_ms(t)} | {target} | {peer} |")
    print(f"\nLoad: {args.concurrent_sync} concurrent sync 1' cones + {args.concurrent_async} async GROUP BY jobs, "
          f"wall {wall:.2f} s, errors {len(errors)}\n")  # fmt: skip
    print("| kind | n | p50 | p90 | p99 | max |")
    print("|---|---|---|---|---|---|")
    for kind, lat in (("sync 1' cone", sync_lat), ("async job (submit to result)", async_lat)):
        print(f"| {kind} | {len(lat)} | {_ms(_pct(lat, 50))} | {_ms(_pct(lat, 90))} | {_ms(_pct(lat, 99))} | "
              f"{_ms(max(lat))} |")  # fmt: skip
    for e in errors[:10]:
        print("error:", e)
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
