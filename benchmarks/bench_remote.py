"""Remote catalogs: proxcompute against LSDB, both reading the same catalog from one nginx.

    .venv/bin/python benchmarks/bench_remote.py [--rows 2000000] [--workdir bench-data/remote]
                                                [--repeat 5] [--port 18481] [--markdown PATH]

Steps:

1. generate a seeded, non-uniform survey (``proxcompute.synthetic``) and ingest it with a 10"
   margin (``max_rows`` 250k: partitions of several 16k-row row groups), once per workdir;
2. serve the workdir with nginx on loopback (``scripts/remote/start_nginx.sh``; Range requests,
   an access log of every request with its bytes), the same server for both tools;
3. per tool, interleaved, ``--repeat`` times: open the catalog cold (empty caches), a 1' cone
   at a dense and at a sparse position, cold (open + cone) and warm (on the opened catalog),
   and a crossmatch (2") of 2,000 targets in a 2 deg field against the remote survey (the
   targets are an in-memory table, as a user's list would be);
4. nginx's access log between the calls gives each call's requests and bytes sent: the
   server's count, not the client's.

Every answer is checked: the cones' ids equal brute force over the generated rows (numpy
haversine) in both tools, and both tools return the same match pairs. A mismatch is a failure
(exit status 1). Times are medians; ratio = LSDB / proxcompute (> 1: proxcompute faster).
The machine is shared: ``uptime`` before and after is printed and saved.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
MAX_ROWS = 250_000
MARGIN_ARCSEC = 10.0
CONE_ARCSEC = 60.0
XMATCH_ARCSEC = 2.0
FIELD = (45.0, 30.0, 1.0)  # the crossmatch targets: within 1 deg of (45, 30)
for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "2")  # the machine has 2 cores, and so does the benchmark
os.environ.setdefault("PROXCOMPUTE_PROGRESS", "0")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def make_data(workdir: Path, rows: int) -> pd.DataFrame:
    """The survey's rows (cached as Parquet) and its catalog under ``workdir/served/survey``."""
    import proxcompute as pc

    raw = workdir / "raw.parquet"
    if not raw.exists():
        pc.generate_catalog(rows, seed=21).to_parquet(raw, index=False)
    served = workdir / "served"
    if not (served / "survey" / "collection.properties").exists():
        served.mkdir(parents=True, exist_ok=True)
        pc.ingest(raw, served / "survey", name="survey", max_rows=MAX_ROWS, margin_arcsec=MARGIN_ARCSEC,
                  workers=2, overwrite=True, show_progress=False)  # fmt: skip
    return pd.read_parquet(raw, columns=["id", "ra", "dec"])


def make_targets(df: pd.DataFrame, n: int = 2_000, seed: int = 22) -> pd.DataFrame:
    ra0, dec0, r = FIELD
    near = _sep_deg(df.ra.to_numpy(), df.dec.to_numpy(), ra0, dec0) < r
    rng = np.random.default_rng(seed)
    pick = rng.choice(np.flatnonzero(near), size=min(n, int(near.sum())), replace=False)
    return pd.DataFrame(
        {
            "tid": np.arange(len(pick), dtype=np.int64),
            "ra": df.ra.to_numpy()[pick] + rng.normal(0, 0.5 / 3600, len(pick)),
            "dec": df.dec.to_numpy()[pick] + rng.normal(0, 0.5 / 3600, len(pick)),
        }
    )


def _sep_deg(ra, dec, ra0, dec0):
    ra, dec, ra0, dec0 = map(np.radians, (ra, dec, ra0, dec0))
    h = np.sin((dec - dec0) / 2) ** 2 + np.cos(dec) * np.cos(dec0) * np.sin((ra - ra0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


def cone_positions(df: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """A dense position (the fullest 0.02 deg cell, in a cluster) and a sparse one (a row of
    the emptiest 5 deg cell away from the poles), so that neither cone is empty."""
    ra, dec = df.ra.to_numpy(), df.dec.to_numpy()
    fine = pd.Series(np.floor(ra * 50).astype(np.int64) * 100_000 + np.floor((dec + 90) * 50).astype(np.int64))
    k = int(fine.value_counts().idxmax())
    dense = ((k // 100_000 + 0.5) / 50, (k % 100_000 + 0.5) / 50 - 90)
    coarse = np.floor(ra / 5).astype(np.int64) * 100 + np.floor((dec + 90) / 5).astype(np.int64)
    counts = pd.Series(coarse).value_counts()
    counts = counts[(counts.index % 100 > 2) & (counts.index % 100 < 33)]
    i = int(np.flatnonzero(coarse == counts.idxmin())[0])
    return {"dense": dense, "sparse": (float(ra[i]), float(dec[i]))}


class Server:
    """nginx on loopback, started by the project's script; its access log counts requests."""

    def __init__(self, root: Path, port: int, run_dir: Path):
        self.port, self.run_dir = port, run_dir
        env = dict(os.environ, NGINX_DIR=str(run_dir))
        proc = subprocess.run(["bash", str(REPO / "scripts/remote/start_nginx.sh"), str(root), str(port)],
                              capture_output=True, text=True, env=env)  # fmt: skip
        if proc.returncode:
            sys.exit(f"cannot start nginx: {proc.stderr.strip()}")
        self.url = proc.stdout.strip().splitlines()[-1]
        self.log = run_dir / "access.log"

    def stop(self) -> None:
        env = dict(os.environ, NGINX_DIR=str(self.run_dir))
        subprocess.run(["bash", str(REPO / "scripts/remote/stop_nginx.sh"), str(self.port)], env=env)

    def mark(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def since(self, mark: int) -> tuple[int, int]:
        """(requests, bytes sent) logged after ``mark``."""
        time.sleep(0.05)  # nginx logs a request when its response is done
        with open(self.log, "rb") as fh:
            fh.seek(mark)
            lines = fh.read().decode().splitlines()
        return len(lines), sum(int(line.split(" ")[3]) for line in lines)


def measure(server: Server, fn, repeat: int):
    """Median seconds, requests and bytes of ``fn()`` over ``repeat`` calls, and its last result."""
    times, reqs, sent, result = [], [], [], None
    for _ in range(repeat):
        mark = server.mark()
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
        n, b = server.since(mark)
        reqs.append(n)
        sent.append(b)
    n = len(result) if hasattr(result, "__len__") else None  # rows or pairs returned
    return {"s": statistics.median(times), "requests": statistics.median(reqs), "bytes": statistics.median(sent),
            "times": times, "n": n}, result  # fmt: skip


def tool_calls(tool: str, url: str, positions: dict, targets: pd.DataFrame) -> dict:
    """``{work: callable}`` for one tool; every callable returns what is checked."""
    if tool == "proxcompute":
        import proxcompute as pc
        from proxcompute.storage.location import clear_remote_cache

        warm = pc.open_catalog(url)

        def cold_open():
            clear_remote_cache()
            return pc.open_catalog(url)

        def cone(cat_fn, ra, dec):
            return np.sort(cat_fn().cone_search(ra, dec, CONE_ARCSEC).compute().id.to_numpy())

        def xmatch():
            df = pc.crossmatch(targets, warm, radius_arcsec=XMATCH_ARCSEC, suffixes=("t", "s")).compute()
            return sorted(zip(df.tid_t, df.id_s, strict=True))

    else:
        warnings.filterwarnings("ignore")
        import lsdb

        warm = lsdb.open_catalog(url)

        def cold_open():
            return lsdb.open_catalog(url)

        def cone(cat_fn, ra, dec):
            frame = cat_fn().cone_search(ra, dec, CONE_ARCSEC).compute(progress_bar=False)
            return np.sort(frame.id.to_numpy())

        left = lsdb.from_dataframe(targets, ra_column="ra", dec_column="dec")

        def xmatch():
            df = left.crossmatch(warm, radius_arcsec=XMATCH_ARCSEC, n_neighbors=1, suffixes=("_t", "_s"))
            df = df.compute(progress_bar=False)
            return sorted(zip(df.tid_t, df.id_s, strict=True))

    calls = {"open (cold)": cold_open}
    for name, (ra, dec) in positions.items():
        calls[f"1' cone, {name}, cold (open + cone)"] = lambda ra=ra, dec=dec: cone(cold_open, ra, dec)
        calls[f"1' cone, {name}, warm"] = lambda ra=ra, dec=dec: cone(lambda: warm, ra, dec)
    calls[f"crossmatch {len(targets):,} targets, {XMATCH_ARCSEC:g}\" (warm)"] = xmatch
    return calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--workdir", type=Path, default=REPO / "bench-data" / "remote")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--port", type=int, default=18481)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    load_before = uptime()
    print(f"load before: {load_before}", flush=True)
    df = make_data(args.workdir, args.rows)
    positions = cone_positions(df)
    targets = make_targets(df)
    expected = {name: np.sort(df.id.to_numpy()[_sep_deg(df.ra.to_numpy(), df.dec.to_numpy(), ra, dec) * 3600
                                               <= CONE_ARCSEC]) for name, (ra, dec) in positions.items()}  # fmt: skip
    print({name: (round(ra, 4), round(dec, 4), len(expected[name])) for name, (ra, dec) in positions.items()})
    if not all(len(e) for e in expected.values()):
        sys.exit("an empty cone is no test: choose other positions")
    server = Server(args.workdir / "served", args.port, args.workdir / "nginx")
    url = server.url + "survey"
    failures: list[str] = []
    results: dict[str, dict] = {}
    try:
        calls = {tool: tool_calls(tool, url, positions, targets) for tool in ("proxcompute", "lsdb")}
        answers: dict[str, dict] = {}
        for work in calls["proxcompute"]:
            for tool in ("proxcompute", "lsdb"):
                fn = calls[tool][work]
                fn()  # warm-up: imports, JIT, the fsspec session
                results.setdefault(work, {})[tool], answers.setdefault(work, {})[tool] = measure(server, fn, args.repeat)
                print(f"{work:<45} {tool:<12} {results[work][tool]['s'] * 1000:9.1f} ms "
                      f"{results[work][tool]['requests']:6.0f} req {results[work][tool]['bytes'] / 1e6:9.3f} MB "
                      f"{results[work][tool]['n']} rows",
                      flush=True)  # fmt: skip
        for work, by_tool in answers.items():
            if work.startswith("open"):
                continue
            for tool, got in by_tool.items():
                want = next((e for name, e in expected.items() if f", {name}," in work), None)
                if want is not None and not np.array_equal(got, want):
                    failures.append(f"{work}: {tool} returned {len(got)} ids, brute force {len(want)}")
            if by_tool["proxcompute"] is not None and not _same(by_tool["proxcompute"], by_tool["lsdb"]):
                failures.append(f"{work}: the tools disagree")
    finally:
        server.stop()
    load_after = uptime()
    print(f"load after: {load_after}")
    table = _markdown(results, args.rows, len(targets), load_before, load_after)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    raw = {"rows": args.rows, "repeat": args.repeat, "load_before": load_before, "load_after": load_after,
           "results": results, "failures": failures}  # fmt: skip
    (args.workdir / f"results-{args.rows}.json").write_text(json.dumps(raw, indent=1))
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


def _same(a, b) -> bool:
    return np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b


def _markdown(results: dict, rows: int, n_targets: int, before: str, after: str) -> str:
    lines = [
        f"{rows:,} rows over HTTP (nginx on loopback), medians; requests and bytes from nginx's access log.",
        "",
        "| work | proxcompute | requests | MB | LSDB | requests | MB | ratio (time) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for work, by_tool in results.items():
        p, q = by_tool["proxcompute"], by_tool["lsdb"]
        lines.append(
            f"| {work} | {p['s'] * 1000:.0f} ms | {p['requests']:.0f} | {p['bytes'] / 1e6:.2f} "
            f"| {q['s'] * 1000:.0f} ms | {q['requests']:.0f} | {q['bytes'] / 1e6:.2f} | {q['s'] / p['s']:.2f}x |"
        )
    lines += ["", f"Load (`uptime`) before: `{before}`; after: `{after}`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
