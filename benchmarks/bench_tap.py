"""The TAP service under real clients: pyvo latency for cones, and a concurrent load run.

Serves the cached 10M-row benchmark catalog (``bench-data/pc-10000000``, built by
``bench_foundation.py``) with ``proxcompute serve`` on 127.0.0.1 and measures, through pyvo:

- a 1' cone (sync, VOTable BINARY2, rows to the client): median of N, target < 50 ms
  (LSDB's hats-tap: 0.98 s);
- a 1 deg cone of ~500k rows (sync, MAXREC raised): VOTable through pyvo, and Parquet over
  plain HTTP (hats-tap: 40 s, mostly writing VOTable);
- a load run: 50 concurrent sync 1' cones at random positions plus 10 concurrent async jobs
  (GROUP BY over 1 deg cones), reporting latency percentiles and errors (there must be none);
- the portal's first paint (target < 300 ms): a new visitor's ``GET /`` plus its stylesheet
  and script over HTTP, and, when Selenium and Chromium are installed, the browser's own
  first-contentful-paint (Paint Timing API) for ``/``.

Run: ``.venv/bin/python benchmarks/bench_tap.py [--repeats 20] [--rows 10000000] [--portal-only]``.

``--during-scans COLLECTION`` measures instead what a user of a busy service sees: two async
jobs over the whole table (``COUNT(*) WHERE mag < 20`` and a ``GROUP BY flag``) while pyvo
sends 1' cones one after another; latencies of the cones that ran while a job was running.
``--compare-src DIR`` runs the same with the server on another source tree (e.g. ``main``'s
``src``) in the same run, alternating, ``--rounds`` times each.

``--access`` measures instead what the access rules cost: the same 1' cones through pyvo,
interleaved, against two servers on the same catalog, one with ``--tokens`` and one with
``--access`` (60 users, 12 groups, 40 catalog rules, one of which restricts the catalog to a
group the querying user is in), both with a bearer token; medians and their difference (target:
< 1 ms), plus the in-process cost of resolving a user's token and registry. It uses the cached
catalog when there is one, else builds ``--access-rows`` seeded rows in a temporary directory.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
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


PORTAL_ASSETS = ("/static/portal.css", "/static/portal.js")


def portal_first_paint(site: str, repeats: int) -> list[tuple[str, int, float, str, str]]:
    """Medians of a new visitor's ``/`` with its assets (HTTP), and Chromium's first contentful paint."""
    rows = []
    times = []
    for _ in range(repeats):
        with httpx.Client(base_url=site, timeout=30) as http:  # a new visitor: no cookie, no cache
            t0 = time.perf_counter()
            page = http.get("/")
            assets = [http.get(a) for a in PORTAL_ASSETS]
            times.append(time.perf_counter() - t0)
            if page.status_code != 200 or any(a.status_code != 200 for a in assets):
                raise SystemExit(f"portal answered {page.status_code} / {[a.status_code for a in assets]}")
    rows.append(("portal: GET / + CSS + JS, new visitor (HTTP)", len(page.content), statistics.median(times),
                 "< 300 ms", ""))  # fmt: skip
    times = []
    for i in range(repeats):
        with httpx.Client(base_url=site, timeout=600) as http:
            t0 = time.perf_counter()
            http.get("/catalogs/big")
            img = http.get("/catalogs/big/coverage.png")
            times.append(time.perf_counter() - t0)
            if i == 0:
                rows.append(("portal: catalog page + coverage map, first (drawn)", len(img.content), times[0], "", ""))
    rows.append(("portal: catalog page + coverage map (cached)", len(img.content), statistics.median(times[1:] or times),
                 "", ""))  # fmt: skip
    try:
        import shutil

        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        driver_path = shutil.which("chromedriver")
        if driver_path is None:
            raise ImportError("chromedriver")
    except ImportError:
        print("(no Selenium/Chromium: browser first paint not measured; scripts/browser/setup_chromium.sh)")
        return rows
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
                "--renderer-process-limit=2"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        paints = []
        for _ in range(repeats):
            driver.delete_all_cookies()
            driver.execute_cdp_cmd("Network.clearBrowserCache", {})
            driver.get(site + "/")
            fcp = None
            for _ in range(50):  # the paint entry can land just after the load event
                fcp = driver.execute_script(
                    "const e = performance.getEntriesByName('first-contentful-paint');"
                    "return e.length ? e[0].startTime : null;")  # fmt: skip
                if fcp is not None:
                    break
                time.sleep(0.02)
            if fcp is not None:
                paints.append(fcp / 1000.0)
        if paints:
            rows.append(("portal: / first contentful paint, headless Chromium 1280x800", len(paints),
                         statistics.median(paints), "< 300 ms", ""))  # fmt: skip
    finally:
        driver.quit()
    return rows


SCAN_JOBS = ("SELECT COUNT(*) AS n FROM big WHERE mag < 20",
             "SELECT flag, COUNT(*) AS n, AVG(mag) AS m FROM big GROUP BY flag")  # fmt: skip


def during_scans(collection: Path, src: str | None, min_cones: int = 20) -> dict:
    """Async full-table jobs plus sync 1' cones through pyvo; the cones' latencies while jobs ran."""
    import pyvo

    env_before = os.environ.get("PYTHONPATH")
    if src is not None:  # the server process inherits it
        os.environ["PYTHONPATH"] = src
    try:
        with tempfile.TemporaryDirectory(prefix="bench-tap-") as tmp:
            root = Path(tmp) / "root"
            root.mkdir()
            os.symlink(collection.resolve(), root / "big")
            with running_server(root, timeout=120) as url:
                tap = pyvo.dal.TAPService(url)
                cone = CONE_1M.format(ra=45, dec=30, r=1 / 60)
                for _ in range(3):
                    tap.search(cone)  # warm-up
                t0 = time.perf_counter()
                jobs = [tap.submit_job(q) for q in SCAN_JOBS]
                for job in jobs:
                    job.run()
                during: list[float] = []
                while any(j.phase not in ("COMPLETED", "ERROR", "ABORTED") for j in jobs):
                    t1 = time.perf_counter()
                    tap.search(cone)
                    during.append(time.perf_counter() - t1)
                jobs_s = time.perf_counter() - t0
                if any(j.phase != "COMPLETED" for j in jobs):
                    raise RuntimeError(f"a job failed: {[j.phase for j in jobs]}")
                quiet = []
                for _ in range(min_cones):
                    t1 = time.perf_counter()
                    tap.search(cone)
                    quiet.append(time.perf_counter() - t1)
                for job in jobs:
                    job.delete()
                t0 = time.perf_counter()  # the same jobs with no cones: their own run time
                jobs = [tap.submit_job(q) for q in SCAN_JOBS]
                for job in jobs:
                    job.run()
                for job in jobs:
                    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=3600)
                alone_s = time.perf_counter() - t0
                for job in jobs:
                    job.delete()
    finally:
        if env_before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_before
    return {"jobs_s": jobs_s, "alone_s": alone_s, "during": during, "quiet": quiet}


def main_during_scans(args: argparse.Namespace) -> None:
    trees = {"this tree": str(ROOT / "src")}
    if args.compare_src:
        trees[f"compare ({args.compare_src})"] = str(Path(args.compare_src).resolve())
    res: dict[str, list[dict]] = {k: [] for k in trees}
    load0 = os.getloadavg()[0]
    for i in range(args.rounds):
        order = list(trees.items()) if i % 2 == 0 else list(reversed(trees.items()))  # no order bias
        for name, src in order:
            res[name].append(during_scans(Path(args.during_scans), src))
    print(f"\nload average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end ({os.cpu_count()} CPUs)\n")
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}\n")
    print("| server | jobs alone (median) | jobs while cones run (median) | 1' cones during jobs | median | p95 "
          "| 1' cone, idle: median | p95 |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, runs in res.items():
        during = [t for r in runs for t in r["during"]]
        quiet = [t for r in runs for t in r["quiet"]]
        jobs = statistics.median(r["jobs_s"] for r in runs)
        alone = statistics.median(r["alone_s"] for r in runs)
        print(f"| {name} | {_ms(alone)} | {_ms(jobs)} | {len(during)} | {_ms(_pct(during, 50)) if during else '-'} | "
              f"{_ms(_pct(during, 95)) if during else '-'} | {_ms(_pct(quiet, 50))} | {_ms(_pct(quiet, 95))} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--during-scans", type=Path, help="a collection: cones while async full scans run")
    ap.add_argument("--compare-src", help="with --during-scans: also run the server on this source tree")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--concurrent-sync", type=int, default=50)
    ap.add_argument("--concurrent-async", type=int, default=10)
    ap.add_argument("--portal-only", action="store_true", help="Only the portal's first-paint measurements.")
    ap.add_argument("--catalog", type=Path, help="Serve this catalog instead of bench-data/pc-ROWS.")
    ap.add_argument("--access", action="store_true", help="measure the cost of the access rules only")
    ap.add_argument("--access-rows", type=int, default=2_000_000, help="rows when no cached catalog exists")
    args = ap.parse_args()
    if args.during_scans:
        main_during_scans(args)
        return
    if args.access:
        access_overhead(args)
        return

    import pyvo

    catalog = args.catalog or ROOT / "bench-data" / f"pc-{args.rows}"
    if not catalog.exists():
        sys.exit(f"{catalog} is missing: run benchmarks/bench_foundation.py --rows {args.rows} first")
    with tempfile.TemporaryDirectory(prefix="bench-tap-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        os.symlink(catalog.resolve(), root / "big")
        with running_server(root) as url:
            tap = pyvo.dal.TAPService(url)
            rows = portal_first_paint(url.rsplit("/tap", 1)[0], args.repeats)
            if args.portal_only:
                _table(args, rows, pyvo.__version__)
                return

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

    _table(args, rows, pyvo.__version__)
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


def _table(args, rows, pyvo_version: str) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nTAP service, {args.rows:,}-row catalog, pyvo {pyvo_version}, {os.cpu_count()} CPUs, load {load}\n")
    print("| request | rows (bytes for pages) | median | target | hats-tap |")
    print("|---|---|---|---|---|")
    for name, n, t, target, peer in rows:
        print(f"| {name} | {n:,} | {_ms(t)} | {target} | {peer} |")


ACCESS_TOKEN = "bench-user-token-0123456789"


def _access_file(path: Path) -> None:
    """60 users, 12 groups, 40 catalog rules; ``big`` readable by group g0 (bench is in it)."""
    lines = ["users:", f'  bench: {{token: "{ACCESS_TOKEN}", groups: [g0, g5]}}']
    lines += [f'  user{i}: {{token: "user-{i:04d}-token-abcdefgh", groups: [g{i % 12}]}}' for i in range(59)]
    lines += ["groups:"] + [f"  g{i}: {{members: [user{i}]}}" for i in range(12)]
    lines += ["catalogs:", "  big: {groups: [g0]}"]
    lines += [f"  other{i}: {{groups: [g{i % 12}]}}" for i in range(20)]
    lines += [f"  survey{i}.part: authenticated" for i in range(19)]
    lines += ["quotas:", "  default: {mydb_bytes: 1GB, active_jobs: 4}"]
    path.write_text("\n".join(lines) + "\n")


def access_overhead(args) -> None:
    """Median 1' cone through pyvo with and without --access (interleaved), and the in-process check."""
    import pyvo
    import requests

    from proxcompute.catalog import from_dataframe
    from proxcompute.service import ServiceConfig
    from proxcompute.service.state import ServiceState
    from proxcompute.synthetic import generate_catalog

    with tempfile.TemporaryDirectory(prefix="bench-tap-access-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        catalog = ROOT / "bench-data" / f"pc-{args.rows}"
        if catalog.exists():
            os.symlink(catalog.resolve(), root / "big")
            n_rows = args.rows
        else:
            from_dataframe(generate_catalog(args.access_rows, seed=7), name="big", max_rows=250_000).to_catalog(
                root / "big"
            )
            n_rows = args.access_rows
        access, tokens = Path(tmp) / "access.yaml", Path(tmp) / "tokens.yaml"
        _access_file(access)
        tokens.write_text(f"{ACCESS_TOKEN}: bench\n")

        state = ServiceState(ServiceConfig(root, data_dir=Path(tmp) / "state", access_file=access))
        state.registry_for("bench")
        t0 = time.perf_counter()
        calls = 20_000
        for _ in range(calls):
            state.registry_for(state.user_for_token(ACCESS_TOKEN))
        per_call_us = (time.perf_counter() - t0) / calls * 1e6
        state.close()

        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {ACCESS_TOKEN}"
        with (
            running_server(root, "--tokens", str(tokens), "--data-dir", str(Path(tmp) / "d1")) as plain_url,
            running_server(root, "--access", str(access), "--data-dir", str(Path(tmp) / "d2")) as access_url,
        ):
            services = {"tokens": pyvo.dal.TAPService(plain_url, session=session),
                        "access": pyvo.dal.TAPService(access_url, session=session)}  # fmt: skip
            for tap in services.values():
                for _ in range(3):
                    tap.search(CONE_1M.format(ra=45, dec=30, r=1 / 60))
            times: dict[str, list[float]] = {k: [] for k in services}
            counts: dict[str, int] = {}
            for i in range(max(args.repeats, 40)):
                order = list(services) if i % 2 == 0 else list(reversed(services))  # no order bias
                for name in order:
                    t0 = time.perf_counter()
                    res = services[name].search(CONE_1M.format(ra=45 + (i % 10) * 0.002, dec=30, r=1 / 60))
                    times[name].append(time.perf_counter() - t0)
                    counts[name] = len(res)
    if counts["tokens"] != counts["access"]:
        sys.exit(f"the two servers disagree: {counts}")
    plain, ruled = statistics.median(times["tokens"]), statistics.median(times["access"])
    print(f"\nAccess rules, {n_rows:,}-row catalog, {len(times['tokens'])} interleaved 1' cones each "
          f"(pyvo sync, bearer token), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print("| server | rows | median | p90 |")
    print("|---|---|---|---|")
    for name, lat in times.items():
        print(f"| {'--access (60 users, 40 rules)' if name == 'access' else '--tokens'} | {counts[name]:,} | "
              f"{_ms(statistics.median(lat))} | {_ms(_pct(lat, 90))} |")  # fmt: skip
    paired = statistics.median(a - t for t, a in zip(times["tokens"], times["access"], strict=True))
    print(f"\ndifference of medians: {(ruled - plain) * 1000:+.2f} ms; median of the paired differences "
          f"(same cone, back to back): {paired * 1000:+.2f} ms (target < 1 ms); in-process token + registry "
          f"lookup: {per_call_us:.1f} us per request")  # fmt: skip


if __name__ == "__main__":
    main()
