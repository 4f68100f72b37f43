"""Crossmatch benchmark: proxcompute vs LSDB vs astropy on the same data, in one run.

    .venv/bin/python benchmarks/bench_crossmatch.py [--right-rows 10000000] [--left-rows 1000000]
        [--workdir bench-data] [--repeat 3] [--markdown PATH] [--scale-left-rows 100000000]

1. A seeded non-uniform right survey (``proxcompute.synthetic``) is ingested once with a
   10" margin (cached in the workdir; the margin build time is reported from the ingest).
2. The left catalog is ``--left-rows`` rows drawn from the right survey and jittered by
   0.3" (so ~all have a 1" match), ingested without margin.
3. Nearest neighbour within 1": in fresh processes (interpreter + import + open + match,
   median of ``--repeat``), and warm (the same process, median of ``--repeat``), for
   proxcompute and LSDB 0.11 on the same HATS catalogs; astropy ``match_to_catalog_sky`` on
   the same arrays. Peak RSS of each fresh process.
4. Every answer is checked pair for pair: proxcompute == astropy (within 1"), LSDB == astropy.
5. ``--scale-left-rows N``: a scale run of N left rows x the right survey, reporting
   rows/s (wall, and per CPU second of the process) and peak memory, to show linear cost
   and bounded memory.
6. ``--baseline-src DIR``: the proxcompute runs are repeated with another source tree first on
   the path (e.g. ``git archive`` of the commit before a change, its numba cache warmed),
   interleaved with the current code and LSDB, so that before and after share one run.

Prints a table and writes it as Markdown to ``--markdown``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
RADIUS_ARCSEC = 1.0
RESULT_TAG = "@@XM "


# ------------------------------------------------------------------ worker (fresh process)

class _PeakRSS:
    """Peak resident memory of this process, sampled from /proc every 5 ms.

    (``ru_maxrss`` survives ``execve`` on Linux, so a worker started by a big parent would
    report the parent's peak.)
    """

    def __init__(self) -> None:
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import os

        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            with open("/proc/self/statm") as fh:
                self.peak = max(self.peak, int(fh.read().split()[1]) * page)
            self._stop.wait(0.005)

    def gib(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 1024**3


def _worker(tool: str, left: str, right: str, repeat: int, out_ids: str | None) -> dict:
    import resource

    rss = _PeakRSS()
    t0 = time.perf_counter()
    times = []
    if tool == "proxcompute-write":  # scale run: stream matches to a catalog, never collect them
        import shutil

        import proxcompute as pc

        out = Path(out_ids)
        t = time.perf_counter()
        written = pc.open_catalog(left).crossmatch(pc.open_catalog(right), radius_arcsec=RADIUS_ARCSEC).to_catalog(
            out, overwrite=True
        )
        elapsed = time.perf_counter() - t
        usage = resource.getrusage(resource.RUSAGE_SELF)
        n = len(written)
        shutil.rmtree(out, ignore_errors=True)
        return {"fresh_s": elapsed, "warm_s": None, "rows": n, "peak_rss_gib": rss.gib(),
                "cpu_s": usage.ru_utime + usage.ru_stime}
    if tool == "proxcompute":
        import proxcompute as pc

        def run():
            lcat = pc.open_catalog(left)
            rcat = pc.open_catalog(right)
            return lcat.crossmatch(rcat, radius_arcsec=RADIUS_ARCSEC).compute()

        id_left, id_right = "id_left", "id_synth"
    else:
        import warnings

        warnings.filterwarnings("ignore")
        import lsdb

        def run():
            lcat = lsdb.open_catalog(left)
            rcat = lsdb.open_catalog(right)
            return lcat.crossmatch(rcat, radius_arcsec=RADIUS_ARCSEC, n_neighbors=1).compute()

        id_left, id_right = "id_left", "id_synth"
    for i in range(repeat):
        t = time.perf_counter()
        df = run()
        times.append(time.perf_counter() - t)
        if i == 0:
            first = time.perf_counter() - t0
    if out_ids:
        np.savez(out_ids, left=df[id_left].to_numpy(np.int64), right=df[id_right].to_numpy(np.int64))
    return {"fresh_s": first, "warm_s": statistics.median(times[1:]) if repeat > 1 else None,
            "rows": len(df), "peak_rss_gib": rss.gib()}


def _run_worker(tool: str, left: Path, right: Path, repeat: int, out_ids: Path | None = None,
                src: Path | None = None) -> dict:
    cmd = [sys.executable, str(HERE), "--worker", tool, str(left), str(right), str(repeat), str(out_ids or "")]
    env = {"PROXCOMPUTE_PROGRESS": "0", **_env()}
    if src is not None:  # another version of proxcompute first on the path
        env["PYTHONPATH"] = str(src)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            res = json.loads(line[len(RESULT_TAG):])
            res["process_wall_s"] = wall
            return res
    raise RuntimeError(f"{tool} worker failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "PROXCOMPUTE_PROGRESS"}


# ------------------------------------------------------------------ data

def _prepare(workdir: Path, right_rows: int, left_rows: int) -> tuple[Path, Path, dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    import proxcompute as pc
    from proxcompute.synthetic import write_synthetic

    info: dict = {}
    right_in = workdir / f"xm-right-input-{right_rows}"
    right_cat = workdir / f"xm-right-{right_rows}"
    if not right_cat.exists():
        write_synthetic(right_rows, 4, right_in, seed=42)
        res = pc.ingest(right_in, right_cat, name="synth", margin_arcsec=10.0, workers=2, show_progress=False)
        info["right_ingest_s"] = res.seconds
        info["margin_s"] = res.timings.get("margin")
        info["margin_rows"] = res.margin_rows
    left_cat = workdir / f"xm-left-{left_rows}-of-{right_rows}"
    if not left_cat.exists():
        left_in = workdir / f"xm-left-input-{left_rows}-of-{right_rows}"
        left_in.mkdir(parents=True, exist_ok=True)
        _write_left(right_in, left_in, left_rows)
        pc.ingest(left_in, left_cat, name="left", margin_arcsec=0, workers=2, show_progress=False)
    del pa, pq
    return left_cat, right_cat, info


def _write_left(right_in: Path, left_in: Path, left_rows: int, chunk: int = 5_000_000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    right = pa.concat_tables(pq.read_table(p, columns=["ra", "dec"]) for p in sorted(right_in.glob("*.parquet")))
    ra, dec = right.column("ra").to_numpy(), right.column("dec").to_numpy()
    rng = np.random.default_rng(7)
    for i, start in enumerate(range(0, left_rows, chunk)):
        n = min(chunk, left_rows - start)
        pick = rng.integers(0, len(ra), n)
        jitter = 0.3 / 3600
        dra = rng.normal(0, jitter, n) / np.maximum(np.cos(np.radians(dec[pick])), 1e-3)
        table = pa.table({
            "id": np.arange(start, start + n, dtype=np.int64),
            "ra": (ra[pick] + dra) % 360.0,
            "dec": np.clip(dec[pick] + rng.normal(0, jitter, n), -90, 90),
            "mag": rng.normal(20, 1, n),
        })
        pq.write_table(table, left_in / f"part-{i:04d}.parquet")


def _astropy(left_cat: Path, right_cat: Path) -> tuple[float, np.ndarray, np.ndarray]:
    import astropy.units as u
    import pyarrow.parquet as pq
    from astropy.coordinates import SkyCoord

    def load(cat: Path, name: str):
        t = pq.read_table(cat / name / "dataset", columns=["id", "ra", "dec"])
        return t.column("id").to_numpy(), t.column("ra").to_numpy(), t.column("dec").to_numpy()

    lid, lra, ldec = load(left_cat, "left")
    rid, rra, rdec = load(right_cat, "synth")
    t = time.perf_counter()
    idx, sep, _ = SkyCoord(lra * u.deg, ldec * u.deg).match_to_catalog_sky(SkyCoord(rra * u.deg, rdec * u.deg))
    elapsed = time.perf_counter() - t
    ok = sep.arcsec <= RADIUS_ARCSEC
    return elapsed, lid[ok], rid[idx[ok]]


def _same_pairs(npz: Path, left_ids: np.ndarray, right_ids: np.ndarray) -> bool:
    got = np.load(npz)
    a = np.sort(got["left"] * 10**10 + got["right"])
    b = np.sort(left_ids.astype(np.int64) * 10**10 + right_ids.astype(np.int64))
    return bool(np.array_equal(a, b))


# ------------------------------------------------------------------ main

def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        tool, left, right, repeat, out = sys.argv[2:7]
        res = _worker(tool, left, right, int(repeat), out or None)
        print(RESULT_TAG + json.dumps(res), flush=True)
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--right-rows", type=int, default=10_000_000)
    p.add_argument("--left-rows", type=int, default=1_000_000)
    p.add_argument("--workdir", type=Path, default=Path("bench-data"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--markdown", type=Path)
    p.add_argument("--skip-lsdb", action="store_true")
    p.add_argument("--scale-left-rows", type=int, default=0)
    p.add_argument("--baseline-src", type=Path, help="a source tree to run as 'before' (its src/ directory)")
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    left_cat, right_cat, info = _prepare(args.workdir, args.right_rows, args.left_rows)
    print(f"data ready: left {left_cat}, right {right_cat} {info}", flush=True)

    t_astropy, ref_left, ref_right = _astropy(left_cat, right_cat)
    print(f"astropy match_to_catalog_sky: {t_astropy:.2f} s, {len(ref_left):,} pairs within 1\"", flush=True)

    fresh, checks = {}, {}
    tools = ["proxcompute"] + (["before"] if args.baseline_src else []) + ([] if args.skip_lsdb else ["lsdb"])
    runs: dict[str, list[dict]] = {tool: [] for tool in tools}
    for i in range(args.repeat):  # interleaved: each round runs every tool once
        for tool in tools:
            npz = args.workdir / f"xm-{tool}-ids.npz" if i == 0 else None
            worker = "proxcompute" if tool == "before" else tool
            src = args.baseline_src if tool == "before" else None
            runs[tool].append(_run_worker(worker, left_cat, right_cat, 1 if i else args.repeat + 1, npz, src))
            if npz is not None:
                checks[tool] = _same_pairs(npz, ref_left, ref_right)
    for tool in tools:
        fresh[tool] = {
            "fresh_s": statistics.median(r["fresh_s"] for r in runs[tool]),
            "process_s": statistics.median(r["process_wall_s"] for r in runs[tool]),
            "warm_s": runs[tool][0]["warm_s"],
            "peak_rss_gib": max(r["peak_rss_gib"] for r in runs[tool]),
            "rows": runs[tool][0]["rows"],
        }
        print(tool, fresh[tool], "pairs equal astropy:", checks[tool], flush=True)

    pcx = fresh["proxcompute"]
    lsx = fresh.get("lsdb")
    bfx = fresh.get("before")

    def ratio(a, b):
        return f"{b / a:.1f}x" if (a and b) else "-"

    rows = [
        ("1M x 10M, 1\", nearest, fresh process (import+open+match)", "process_s", "<= 1.5 s, >= 9x LSDB"),
        ("same, match only, first call in the process", "fresh_s", ""),
        ("same, warm (repeated in-process)", "warm_s", "<= 0.7 s"),
        ("peak RSS of the process, GiB", "peak_rss_gib", "< 1 GiB"),
    ]
    lines = [
        f"Crossmatch, {args.left_rows:,} x {args.right_rows:,} rows, radius 1\", nearest; astropy "
        f"match_to_catalog_sky on the same arrays: {t_astropy:.2f} s ({t_astropy / pcx['warm_s']:.0f}x proxcompute warm).",
        "",
        "| work | proxcompute |" + (" before |" if bfx else "") + " LSDB 0.11 | LSDB / proxcompute | target |",
        "|---|---|" + ("---|" if bfx else "") + "---|---|---|",
    ]

    def fmt(x):
        return f"{x:.2f}" if x is not None else "-"

    for name, key, target in rows:
        a, b = pcx[key], lsx and lsx[key]
        before = f" {fmt(bfx[key])} |" if bfx else ""
        lines.append(f"| {name} | {fmt(a)} |{before} {fmt(b)} | {ratio(a, b) if b else '-'} | {target} |")
    if info.get("margin_s") is not None:
        lines.append(f"| 10\" margin build (in the ingest of the right survey) | {fmt(info['margin_s'])} |"
                     + (" - |" if bfx else "") + " - | - | < 3 s |")
    lines.append("")
    lines.append(
        "Pairs equal astropy (nearest within 1\"): "
        + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items())
        + f"; {len(ref_left):,} pairs."
    )
    if args.scale_left_rows:
        lines += ["", *_scale(args, right_cat)]
    text = "\n".join(lines)
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0 if all(checks.values()) else 1


def _scale(args, right_cat: Path) -> list[str]:
    out = [
        "Scale: left x right written to a catalog (streamed partition by partition, never collected).",
        "",
        "| code | left rows | right rows | seconds | left rows/s | left rows per CPU s | peak RSS (GiB) | matches |",
        "|---|---|---|---|---|---|---|---|",
    ]
    versions = [("proxcompute", None)] + ([("before", args.baseline_src)] if args.baseline_src else [])
    for n in sorted({args.left_rows, args.scale_left_rows // 10, args.scale_left_rows}):
        left_cat, _, _ = _prepare(args.workdir, args.right_rows, n)
        for name, src in versions:  # interleaved per size
            r = _run_worker("proxcompute-write", left_cat, right_cat, 1, args.workdir / "xm-scale-out", src)
            out.append(f"| {name} | {n:,} | {args.right_rows:,} | {r['fresh_s']:.1f} | {n / r['fresh_s']:,.0f} | "
                       f"{n / r['cpu_s']:,.0f} | {r['peak_rss_gib']:.2f} | {r['rows']:,} |")
            print(out[-1], flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
