"""The scale run: generate N rows of a seeded, non-uniform sky, ingest them, and use the result.

Stages (each one's result is written to the JSON as soon as it ends, so a run cut short
still leaves its numbers):

1. ``generate``: N rows in Parquet chunks (``proxcompute.synthetic``'s sky: background,
   a tilted band, dense clusters; ``mag``/``color`` stored as float32), two processes, never
   the whole table in memory; N/10 crossmatch targets (80% within 0.9" of a survey row, 20%
   anywhere). The references are computed from the generated arrays on the way: brute-force
   cones, ``count(mag < 20)``, a GROUP BY, and the rows of the crossmatch check regions;
2. ``ingest``: :func:`proxcompute.ingest` with a 10" margin; ``ingest-targets`` the N/10 rows;
3. ``open``: open, ``info`` (the CLI's summary), ``explain`` of a cone;
4. ``cones-warm`` / ``cones-fresh``: 1' and 1 deg cones (clusters, background, RA wrap,
   a pole), warm and in a fresh process, ids checked against the brute force;
5. ``sql``: ``count(*)``, ``count(mag < 20)`` and a GROUP BY through ``proxcompute.sql``;
6. ``crossmatch``: N/10 targets x the catalog at 1", nearest, streamed with ``to_catalog``;
   pairs checked against a brute-force nearest neighbour in sample regions;
7. ``tap``: ``proxcompute serve`` in the background; async jobs over the whole table (count,
   GROUP BY) through pyvo while 1' cones run through pyvo, answers checked.

Each stage records seconds, the peak RSS of the whole process tree, the disk used under the
work directory (peak and at the end) and the load average. Run::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_scale.py --rows 10000000 --workdir /tmp/scale-1e7
    .venv/bin/python benchmarks/bench_scale.py --markdown-from /tmp/scale-1e7/bench-scale.json

The second command renders a JSON (also of a run still going) as the markdown table;
``--plot A.json B.json ... --plot-out docs/img/scale.png`` draws time per stage against rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

CHUNK_ROWS = 4_000_000
MARGIN_ARCSEC = 10.0
XMATCH_ARCSEC = 1.0
# (label, ra, dec, radius_arcsec): clusters, background, RA wrap, a pole inside the cone
CONES = (
    ("1' cluster", 45.0, 30.0, 60.0),
    ("1' background", 200.0, 20.0, 60.0),
    ("1' RA wrap", 359.999, -20.3, 60.0),
    ("1' pole", 0.0, 89.995, 60.0),
    ("1 deg background", 200.0, 20.0, 3600.0),
    ("1 deg RA wrap", 0.2, 45.0, 3600.0),
    ("1 deg south pole", 10.0, -89.5, 3600.0),
)
# crossmatch check regions (ra, dec, radius_deg): a cluster, the RA wrap, near a pole
REGIONS = ((45.1, 30.05, 0.05), (359.95, 0.5, 0.25), (180.0, 88.5, 0.4))
GROUP_SQL = "SELECT flag, COUNT(*) AS n, AVG(mag) AS mean_mag FROM sky GROUP BY flag"
COUNT_SQL = "SELECT COUNT(*) AS n FROM sky WHERE mag < 20"


# -- geometry ---------------------------------------------------------------------------


def _sep_deg(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    """Great-circle distance (haversine, stable at small angles)."""
    r1, d1, r0, d0 = np.radians(ra), np.radians(dec), np.radians(ra0), np.radians(dec0)
    h = np.sin((d1 - d0) / 2) ** 2 + np.cos(d1) * np.cos(d0) * np.sin((r1 - r0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def _near(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float, radius_deg: float) -> np.ndarray:
    """Indices of the rows within ``radius_deg`` of (ra0, dec0), with their distances."""
    cand = np.flatnonzero(np.abs(dec - dec0) <= radius_deg)
    d = _sep_deg(ra[cand], dec[cand], ra0, dec0)
    keep = d <= radius_deg
    return cand[keep], d[keep]


# -- generation -------------------------------------------------------------------------


def _generate_chunk(job: tuple[int, int, int, int, str]) -> dict:
    """Write chunk ``i`` of the survey and of the targets; return its references."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from proxcompute.synthetic import generate_catalog

    i, n, id_offset, seed, workdir = job
    df = generate_catalog(n, seed=seed + i, id_offset=id_offset)
    ids = df["id"].to_numpy()
    ra, dec = df["ra"].to_numpy(), df["dec"].to_numpy()
    mag = df["mag"].to_numpy().astype(np.float32)
    flag = df["flag"].to_numpy()
    table = pa.table(
        {"id": ids, "ra": ra, "dec": dec, "mag": mag, "color": df["color"].to_numpy(np.float32), "flag": flag}
    )
    del df
    out = Path(workdir) / "input" / f"part-{i:05d}.parquet"
    pq.write_table(table, out.with_suffix(".tmp"), row_group_size=1_000_000, compression="zstd")
    os.replace(out.with_suffix(".tmp"), out)
    ref: dict = {"rows": n, "count_mag_lt_20": int(np.count_nonzero(mag < 20))}
    ref["groups"] = {
        int(f): [int(np.count_nonzero(flag == f)), float(mag[flag == f].astype(np.float64).sum())]
        for f in np.unique(flag)
    }
    ref["cones"] = []
    for _, ra0, dec0, r in CONES:
        k, d = _near(ra, dec, ra0, dec0, r / 3600)
        ref["cones"].append([ids[k].tolist(), (r / 3600 - d).tolist()])
    # targets: every 10th row, 80% moved by up to 0.9" from its survey row, 20% anywhere
    rng = np.random.default_rng(10_000 + seed + i)
    sel = np.arange(0, n, 10)
    m = sel.size
    t_ra, t_dec = ra[sel].copy(), dec[sel].copy()
    off = rng.uniform(0, 0.9, m) / 3600
    ang = rng.uniform(0, 2 * np.pi, m)
    t_dec = np.clip(t_dec + off * np.cos(ang), -90, 90)
    t_ra = (t_ra + off * np.sin(ang) / np.maximum(np.cos(np.radians(t_dec)), 1e-6)) % 360
    anywhere = rng.random(m) < 0.2
    t_ra[anywhere] = rng.uniform(0, 360, anywhere.sum())
    t_dec[anywhere] = np.degrees(np.arcsin(rng.uniform(-1, 1, anywhere.sum())))
    t_ids = i * (CHUNK_ROWS // 10 + 1) + np.arange(m, dtype=np.int64)  # unique over the chunks
    targets = pa.table({"id": t_ids, "ra": t_ra, "dec": t_dec, "tmag": mag[sel]})
    out = Path(workdir) / "targets" / f"part-{i:05d}.parquet"
    pq.write_table(targets, out.with_suffix(".tmp"), row_group_size=1_000_000, compression="zstd")
    os.replace(out.with_suffix(".tmp"), out)
    ref["regions"] = []
    for ra0, dec0, r in REGIONS:
        ks, _ = _near(ra, dec, ra0, dec0, r + 2 * XMATCH_ARCSEC / 3600)
        kt, _ = _near(t_ra, t_dec, ra0, dec0, r)
        ref["regions"].append(
            [
                ids[ks].tolist(),
                ra[ks].tolist(),
                dec[ks].tolist(),
                t_ids[kt].tolist(),
                t_ra[kt].tolist(),
                t_dec[kt].tolist(),
            ]
        )
    return ref


def generate(rows: int, workdir: Path, seed: int, workers: int) -> dict:
    t0 = time.perf_counter()
    for d in ("input", "targets"):
        shutil.rmtree(workdir / d, ignore_errors=True)
        (workdir / d).mkdir(parents=True)
    jobs = []
    start = 0
    for i in range(-(-rows // CHUNK_ROWS)):
        n = min(CHUNK_ROWS, rows - start)
        jobs.append((i, n, start, seed, str(workdir)))
        start += n
    total = {"rows": 0, "count_mag_lt_20": 0, "groups": {}, "cones": [[[], []] for _ in CONES],
             "regions": [[[] for _ in range(6)] for _ in REGIONS]}  # fmt: skip
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for k, ref in enumerate(pool.map(_generate_chunk, jobs)):
            total["rows"] += ref["rows"]
            total["count_mag_lt_20"] += ref["count_mag_lt_20"]
            for f, (n, s) in ref["groups"].items():
                g = total["groups"].setdefault(str(f), [0, 0.0])
                g[0] += n
                g[1] += s
            for acc, part in zip(total["cones"], ref["cones"], strict=True):
                acc[0].extend(part[0])
                acc[1].extend(part[1])
            for acc, part in zip(total["regions"], ref["regions"], strict=True):
                for a, p in zip(acc, part, strict=True):
                    a.extend(p)
            print(f"generate: chunk {k + 1}/{len(jobs)}", flush=True)
    total["expected_pairs"] = [_nearest_pairs(*reg) for reg in total["regions"]]
    del total["regions"]
    (workdir / "reference.json").write_text(json.dumps(total))
    return {
        "_ref": total,
        "files": len(jobs),
        "input_gb": round(_disk_bytes(workdir / "input") / 1e9, 2),
        "targets_gb": round(_disk_bytes(workdir / "targets") / 1e9, 2),
        "rows_per_s": round(rows / (time.perf_counter() - t0)),
        "ok": total["rows"] == rows,
    }


def _nearest_pairs(s_id, s_ra, s_dec, t_id, t_ra, t_dec) -> dict[str, int]:
    """Brute force: each target's nearest survey row within 1" (target id -> survey id)."""
    s_ra, s_dec, s_id = np.asarray(s_ra), np.asarray(s_dec), np.asarray(s_id, dtype=np.int64)
    order = np.argsort(s_dec)
    s_ra, s_dec, s_id = s_ra[order], s_dec[order], s_id[order]
    r = XMATCH_ARCSEC / 3600
    pairs = {}
    for tid, ra0, dec0 in zip(t_id, t_ra, t_dec, strict=True):
        a, b = np.searchsorted(s_dec, [dec0 - r, dec0 + r])
        if b > a:
            d = _sep_deg(s_ra[a:b], s_dec[a:b], ra0, dec0)
            j = int(np.argmin(d))
            if d[j] <= r:
                pairs[str(int(tid))] = int(s_id[a + j])
    return pairs


# -- measuring ----------------------------------------------------------------------------


def _disk_bytes(path: Path) -> int:
    total = 0
    stack = [str(path)]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    else:
                        total += e.stat(follow_symlinks=False).st_blocks * 512
                except OSError:
                    pass
    return total


class Sampler:
    """Peak RSS of this process tree, disk under ``workdir`` and the load average, per stage."""

    def __init__(self, workdir: Path) -> None:
        import psutil

        self.proc = psutil.Process()
        self.workdir = workdir
        self.lock = threading.Lock()
        self.reset()
        threading.Thread(target=self._loop, daemon=True).start()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.rss = 0
            self.disk = 0
            self.load = 0.0

    def cpu_seconds(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def _tree_rss(self) -> int:
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except Exception:  # a child that just ended
                pass
        return total

    def _loop(self) -> None:
        k = 0
        while True:
            rss = self._tree_rss()
            disk = _disk_bytes(self.workdir) if k % 8 == 0 else 0
            with self.lock:
                self.rss = max(self.rss, rss)
                self.disk = max(self.disk, disk)
                self.load = max(self.load, os.getloadavg()[0])
            k += 1
            time.sleep(0.25)

    def snapshot(self) -> dict:
        end_disk = _disk_bytes(self.workdir)
        with self.lock:
            return {
                "peak_rss_gib": round(self.rss / 2**30, 3),
                "peak_disk_gb": round(max(self.disk, end_disk) / 1e9, 2),
                "end_disk_gb": round(end_disk / 1e9, 2),
                "max_load1": round(self.load, 2),
            }


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(args.workdir).absolute()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.json_path = Path(args.json or self.workdir / "bench-scale.json")
        self.sampler = Sampler(self.workdir)
        self.data = {
            "rows": args.rows,
            "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "machine": _machine(),
            "stages": [],
        }
        if self.json_path.exists():  # a resumed run (e.g. after --only-generate) keeps the stages done
            old = json.loads(self.json_path.read_text())
            if old.get("rows") == args.rows:
                self.data["stages"] = old.get("stages", [])
                self.data["started_utc"] = old.get("started_utc", self.data["started_utc"])
        self._save()

    def _save(self) -> None:
        tmp = self.json_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.json_path)

    def stage(self, name: str, fn, *a, **kw):
        print(f"== {name}  (load {os.getloadavg()[0]:.2f})", flush=True)
        self.sampler.reset()
        load0 = os.getloadavg()[0]
        cpu0 = self.sampler.cpu_seconds()
        t0 = time.perf_counter()
        err = None
        try:
            out = fn(*a, **kw)
        except Exception as exc:  # recorded; the run goes on where it can
            import traceback

            traceback.print_exc()
            out, err = {}, f"{type(exc).__name__}: {exc}"
        rec = {"stage": name, "seconds": round(time.perf_counter() - t0, 3), "load1_start": round(load0, 2)}
        # CPU seconds of this process and its finished children: on a loaded machine a
        # steadier measure of the work than the wall time
        rec["cpu_s"] = round(self.sampler.cpu_seconds() - cpu0, 1)
        rec.update(self.sampler.snapshot())
        rec["load1_end"] = round(os.getloadavg()[0], 2)
        rec["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        if err:
            rec["error"] = err
        rec.update({k: v for k, v in (out or {}).items() if not k.startswith("_")})
        self.data["stages"].append(rec)
        self._save()
        print(json.dumps(rec), flush=True)
        return out or {}


def _machine() -> dict:
    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "disk_free_gb_at_start": round(shutil.disk_usage("/").free / 1e9, 1),
    }


_last_cpu: list[float] = [0.0]
"""Median CPU seconds (this process, all threads) of the last :func:`_timed` call."""


def _timed(fn, repeats: int = 1):
    times, cpus, out = [], [], None
    for _ in range(repeats):
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    _last_cpu[0] = float(np.median(cpus))
    return out, float(np.median(times))


def _estimate_s(subject, **kw) -> float:
    """The cost model's estimate (seconds) of what a stage times, with the machine's rates
    (``proxcompute calibrate``'s file, ``$PROXCOMPUTE_COST_RATES``, else the shipped defaults)."""
    from proxcompute.execute import estimate_cost, load_rates

    return estimate_cost(subject, rates=load_rates(), **kw).seconds


def _pair(estimated_s: float, measured_s: float, cpu_s: float | None = None) -> dict:
    """Estimate and measured wall time; ``cpu_s``: the CPU seconds of the measured run (all
    threads), what the work took without the other processes' share of the cores."""
    out = {"estimated_s": round(estimated_s, 4), "measured_s": round(measured_s, 4),
           "ratio": round(estimated_s / max(measured_s, 1e-9), 2)}  # fmt: skip
    if cpu_s is not None:
        out["cpu_s"] = round(cpu_s, 4)
    return out


def _check_cone(got_ids, ref) -> bool:
    """Same ids as the brute force, but for rows within 1e-6" of the edge (either is right)."""
    ids = np.asarray(ref[0], dtype=np.int64)
    slack = np.asarray(ref[1], dtype=float)
    sure = set(ids[slack > 1e-6 / 3600].tolist())
    edge = set(ids[slack <= 1e-6 / 3600].tolist())
    got = set(np.asarray(got_ids, dtype=np.int64).tolist())
    return sure <= got and got <= sure | edge


# -- stages -------------------------------------------------------------------------------

FRESH_CONE = """
import json, sys, time
t0 = time.perf_counter()
import proxcompute as pc
t1 = time.perf_counter()
cat = pc.open_catalog(sys.argv[1])
t2 = time.perf_counter()
df = cat.cone_search(float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])).compute()
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "cone_s": t3 - t2, "ids": df["id"].tolist()}))
"""


def stage_ingest(src: Path, out: Path, margin_arcsec: float, rows: int) -> dict:
    import proxcompute as pc

    res = pc.ingest(src, out, margin_arcsec=margin_arcsec, resume=True, overwrite=True, show_progress=False)
    if res.rows != rows:
        raise AssertionError(f"ingest wrote {res.rows} rows, {rows} were generated")
    return {
        "rows_per_s": round(res.rows / res.seconds),
        "partitions": res.partitions,
        "orders": {str(k): v for k, v in sorted(res.orders.items())},
        "margin_rows": res.margin_rows,
        "ingest_timings": res.timings,
        "catalog_gb": round(_disk_bytes(out) / 1e9, 2),
        "ok": res.rows == rows,
    }


def stage_open(path: Path) -> dict:
    import proxcompute as pc
    from proxcompute.cli import catalog_summary

    cat, t_open = _timed(lambda: pc.open_catalog(path), 5)
    summary, t_info = _timed(lambda: catalog_summary(pc.open_catalog(path)), 3)
    _, t_explain = _timed(lambda: str(cat.cone_search(45.0, 30.0, 60.0).explain()), 5)
    html, t_html = _timed(lambda: cat._repr_html_() if hasattr(cat, "_repr_html_") else "", 1)
    return {
        "open_ms": round(t_open * 1e3, 2),
        "info_ms": round(t_info * 1e3, 2),
        "explain_cone_ms": round(t_explain * 1e3, 2),
        "repr_html_kb": round(len(html or "") / 1e3, 1),
        "repr_html_ms": round(t_html * 1e3, 1),
        "partitions": summary["partitions"],
        "info_rows": summary["rows"],
        "ok": summary["rows"] is not None,
    }


def stage_cones_warm(path: Path, ref: dict) -> dict:
    import proxcompute as pc

    cat = pc.open_catalog(path)
    out, ok = {}, True
    for (label, ra, dec, r), cref in zip(CONES, ref["cones"], strict=True):
        cat.cone_search(ra, dec, r).compute()  # warm: footers, kernels
        df, t = _timed(lambda ra=ra, dec=dec, r=r: pc.open_catalog(path).cone_search(ra, dec, r).compute(), 5)
        cpu = _last_cpu[0]
        good = _check_cone(df["id"].to_numpy(), cref)
        ok &= good
        est = _estimate_s(pc.open_catalog(path).cone_search(ra, dec, r))
        out[label] = {"ms": round(t * 1e3, 2), "rows": len(df), "ok": good, "estimate": _pair(est, t, cpu)}
    return {"cones": out, "ok": ok}


def stage_cones_fresh(path: Path, ref: dict) -> dict:
    out, ok = {}, True
    for (label, ra, dec, r), cref in zip(CONES, ref["cones"], strict=True):
        if "1'" not in label and label != "1 deg background":
            continue
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", FRESH_CONE, str(path), str(ra), str(dec), str(r)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        wall = time.perf_counter() - t
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        good = _check_cone(res["ids"], cref)
        ok &= good
        out[label] = {"process_s": round(wall, 3), "import_s": round(res["import_s"], 3),
                      "open_ms": round(res["open_s"] * 1e3, 1), "cone_ms": round(res["cone_s"] * 1e3, 1),
                      "rows": len(res["ids"]), "ok": good}  # fmt: skip
    return {"cones": out, "ok": ok}


def _check_groups(df, ref: dict) -> bool:
    got = {int(f): (int(n), float(m)) for f, n, m in zip(df["flag"], df["n"], df["mean_mag"], strict=True)}
    want = {int(f): (n, s / n) for f, (n, s) in ref["groups"].items()}
    return set(got) == set(want) and all(
        got[f][0] == want[f][0] and abs(got[f][1] - want[f][1]) <= 1e-6 * abs(want[f][1]) for f in want
    )


def stage_sql(path: Path, ref: dict, rows: int) -> dict:
    import proxcompute as pc

    cats = {"sky": pc.open_catalog(path)}
    total, t_total = _timed(
        lambda: int(pc.sql("SELECT COUNT(*) AS n FROM sky", catalogs=cats).compute()["n"][0]), 3
    )
    c_total = _last_cpu[0]
    n, t_first = _timed(lambda: int(pc.sql(COUNT_SQL, catalogs=cats).compute()["n"][0]), 1)
    n, t_count = _timed(lambda: int(pc.sql(COUNT_SQL, catalogs=cats).compute()["n"][0]), 2)
    c_count = _last_cpu[0]
    groups, t_group = _timed(lambda: pc.sql(GROUP_SQL, catalogs=cats).compute(), 1)
    estimates = {
        "count(*)": _pair(_estimate_s(pc.sql("SELECT COUNT(*) AS n FROM sky", catalogs=cats)), t_total, c_total),
        "count(mag<20)": _pair(_estimate_s(pc.sql(COUNT_SQL, catalogs=cats)), t_count, c_count),
        "GROUP BY": _pair(_estimate_s(pc.sql(GROUP_SQL, catalogs=cats)), t_group, _last_cpu[0]),
    }
    return {
        "estimates": estimates,
        "count_star_ms": round(t_total * 1e3, 1),
        "count_mag_first_s": round(t_first, 2),
        "count_mag_warm_s": round(t_count, 2),
        "count_mag_rows_per_s": round(rows / t_count),
        "group_by_s": round(t_group, 2),
        "ok": total == rows and n == ref["count_mag_lt_20"] and _check_groups(groups, ref),
    }


def stage_crossmatch(targets: Path, path: Path, out: Path, ref: dict, n_targets: int) -> dict:
    import proxcompute as pc

    shutil.rmtree(out, ignore_errors=True)
    # compile the crossmatch kernels first (numba, once per process): the stage times the match
    t = time.perf_counter()
    pc.open_catalog(targets).cone_search(45.0, 30.0, 60.0).crossmatch(pc.open_catalog(path), radius_arcsec=1.0).compute()
    warmup = time.perf_counter() - t
    estimated = _estimate_s(pc.open_catalog(targets).crossmatch(pc.open_catalog(path), radius_arcsec=XMATCH_ARCSEC))
    c, t = time.process_time(), time.perf_counter()
    left = pc.open_catalog(targets)
    written = left.crossmatch(pc.open_catalog(path), radius_arcsec=XMATCH_ARCSEC).to_catalog(
        out, overwrite=True
    )
    seconds = time.perf_counter() - t
    cpu = time.process_time() - c
    pairs = len(written)
    checked, ok = 0, True
    for (ra0, dec0, r), want in zip(REGIONS, ref["expected_pairs"], strict=True):
        got_df = written.cone_search(ra0, dec0, r * 3600).compute()
        got = {str(int(a)): int(b) for a, b in zip(got_df["id_targets"], got_df["id_sky"], strict=True)}
        ok &= got == want
        checked += len(want)
    return {
        "estimate": _pair(estimated, seconds, cpu),
        "kernel_warmup_s": round(warmup, 2),
        "seconds_match_write": round(seconds, 2),
        "left_rows_per_s": round(n_targets / seconds),
        "pairs": pairs,
        "pairs_checked": checked,
        "ok": ok and checked > 0,
    }


def _job_quote_and_run(url: str) -> dict:
    """A UWS job's quote (the service's estimate: quote - creationTime) and its run time
    (endTime - startTime), from its job document."""
    import re
    from datetime import datetime

    import httpx

    doc = httpx.get(url).text

    def at(name: str) -> datetime:
        text = re.search(rf"<uws:{name}>([^<]+)</uws:{name}>", doc).group(1)
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")

    quote = (at("quote") - at("creationTime")).total_seconds()
    return _pair(quote, (at("endTime") - at("startTime")).total_seconds())


def stage_tap(root: Path, ref: dict, cones: int = 20) -> dict:
    import pyvo

    from proxcompute.service import serve_in_background

    out = {}
    with serve_in_background(root, timeout=120) as server:
        tap = pyvo.dal.TAPService(server.url)
        q = "SELECT id FROM sky WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {}, {}, {}))"
        _, ra, dec, r = CONES[0]
        tap.search(q.format(ra, dec, r / 3600))  # warm-up
        t = time.perf_counter()
        jobs = [tap.submit_job(COUNT_SQL), tap.submit_job(GROUP_SQL)]
        for job in jobs:
            job.run()
        lat, ok = [], True
        while any(j.phase not in ("COMPLETED", "ERROR", "ABORTED") for j in jobs) or len(lat) < cones:
            t1 = time.perf_counter()
            res = tap.search(q.format(ra, dec, r / 3600))
            lat.append(time.perf_counter() - t1)
            ok &= _check_cone(np.asarray(res["id"]), ref["cones"][0])
            if len(lat) > 2000:
                break
        for job in jobs:
            job.wait(timeout=3600)
        async_s = time.perf_counter() - t
        quotes = {name: _job_quote_and_run(job.url) for name, job in zip(("count(mag<20) job", "GROUP BY job"), jobs,
                                                                         strict=True)}  # fmt: skip
        count = jobs[0].fetch_result().to_table()
        groups = jobs[1].fetch_result().to_table().to_pandas()
        ok &= int(count["n"][0]) == ref["count_mag_lt_20"] and _check_groups(groups, ref)
        for job in jobs:
            job.delete()
        out = {
            "estimates": quotes,
            "async_count_and_group_by_s": round(async_s, 2),
            "cone_1arcmin_median_ms": round(float(np.median(lat)) * 1e3, 1),
            "cone_1arcmin_p95_ms": round(float(np.percentile(lat, 95)) * 1e3, 1),
            "cones_during_jobs": len(lat),
            "ok": ok,
        }
    return out


# -- report -------------------------------------------------------------------------------


def _detail(s: dict) -> str:
    name = s["stage"]
    if "error" in s:
        return "error: " + s["error"][:120]
    if name.startswith("ingest"):
        return (
            f"{s['rows_per_s'] / 1e6:.2f}M rows/s, {s['partitions']} partitions, catalog {s['catalog_gb']} GB"
        )
    if name == "open":
        return (f"open {s['open_ms']} ms, info {s['info_ms']} ms, explain {s['explain_cone_ms']} ms, "
                f"HTML repr {s['repr_html_kb']} kB")  # fmt: skip
    if name == "cones-warm":
        return ", ".join(f"{k} {v['ms']} ms ({v['rows']:,})" for k, v in s["cones"].items())
    if name == "cones-fresh":
        return ", ".join(f"{k} {v['process_s']} s (cone {v['cone_ms']} ms)" for k, v in s["cones"].items())
    if name == "sql":
        return (f"count(*) {s['count_star_ms']} ms; count(mag<20) {s['count_mag_warm_s']} s warm "
                f"({s['count_mag_rows_per_s'] / 1e6:.0f}M rows/s), first {s['count_mag_first_s']} s; "
                f"GROUP BY {s['group_by_s']} s")  # fmt: skip
    if name == "crossmatch":
        return (f"{s['left_rows_per_s'] / 1e6:.2f}M left rows/s, {s['pairs']:,} pairs, "
                f"{s['pairs_checked']:,} checked")  # fmt: skip
    if name == "tap":
        return (f"async count + GROUP BY {s['async_count_and_group_by_s']} s; 1' cone meanwhile "
                f"{s['cone_1arcmin_median_ms']} ms median, {s['cone_1arcmin_p95_ms']} ms p95")  # fmt: skip
    if name == "generate":
        return (f"{s['rows_per_s'] / 1e6:.2f}M rows/s, {s['files']} files, input {s['input_gb']} GB "
                f"+ targets {s['targets_gb']} GB")  # fmt: skip
    return ""


def _cpu(s: dict) -> str:
    return f"{s['cpu_s']:.0f} s" if "cpu_s" in s else "n/a"


def markdown(data: dict) -> str:
    m = data["machine"]
    lines = [
        f"{data['rows']:,} rows, started {data['started_utc']} UTC on {m['cpus']} cores, {m['memory_gib']} GiB "
        f"({m['platform']}, Python {m['python']}).",
        "",
        "| stage | time | CPU | peak RSS (tree) | disk peak / end | load (start/max) | checked | detail |",
        "|---|---:|---:|---:|---:|---:|:-:|---|",
    ]
    for s in data["stages"]:
        ok = "error" if "error" in s else ("yes" if s.get("ok") else "NO")
        lines.append(
            f"| {s['stage']} | {s['seconds']:.1f} s | {_cpu(s)} | {s['peak_rss_gib']:.2f} GiB | "
            f"{s['peak_disk_gb']:.1f} / {s['end_disk_gb']:.1f} GB | {s['load1_start']:.1f} / {s['max_load1']:.1f} | "
            f"{ok} | {_detail(s)} |"
        )
    pairs = estimate_pairs(data)
    if pairs:
        lines += ["", "The cost model's estimate next to each timed query (`proxcompute calibrate`'s rates; "
                  "TAP jobs: the service's UWS quote against the job's run time):", "",
                  "| query | estimated | measured | ratio | CPU of the run |", "|---|---:|---:|---:|---:|"]  # fmt: skip
        for name, p in pairs.items():
            cpu = _secs(p["cpu_s"]) if "cpu_s" in p else "n/a"
            lines.append(f"| {name} | {_secs(p['estimated_s'])} | {_secs(p['measured_s'])} | {p['ratio']:.2f} | {cpu} |")
    return "\n".join(lines) + "\n"


def _secs(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def estimate_pairs(data: dict) -> dict[str, dict]:
    """Every timed query's ``{estimated_s, measured_s, ratio}`` recorded in a run's stages."""
    out: dict[str, dict] = {}
    for s in data["stages"]:
        if s["stage"] == "cones-warm":
            out.update({f"cone {k}": v["estimate"] for k, v in s.get("cones", {}).items() if "estimate" in v})
        elif s["stage"] in ("sql", "tap"):
            out.update(s.get("estimates", {}))
        elif s["stage"] == "crossmatch" and "estimate" in s:
            out["crossmatch (to_catalog)"] = s["estimate"]
    return out


def plot_growth(runs: list[dict], out: Path) -> None:
    """Log-log plots of each stage's wall time and CPU seconds against rows, one line per stage,
    from the JSONs of runs at several sizes (a stage that failed is left out at that size).
    CPU seconds are the steadier measure on a shared machine: the load inflates wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(runs, key=lambda r: r["rows"])
    rows = [r["rows"] for r in runs]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=100, sharey=True)
    for ax, key, label in ((axes[0], "seconds", "wall time"), (axes[1], "cpu_s", "CPU seconds")):
        stages: dict[str, list[tuple[int, float]]] = {}
        for run in runs:
            for st in run["stages"]:
                if "error" not in st and st.get(key, 0) > 0:
                    stages.setdefault(st["stage"], []).append((run["rows"], st[key]))
        for name, pts in stages.items():
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="o", label=name)
        base = dict(stages.get("ingest", [])).get(rows[0])
        if base and len(rows) > 1:  # slope 1 through the first ingest point, for reference
            ax.plot(rows, [base * r / rows[0] for r in rows], "k:", lw=1, label="linear in rows")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows in the catalog")
        ax.set_ylabel(f"{label} of the stage [s]")
        ax.set_title(f"{label} per stage")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    loads = ", ".join(f"{r['rows']:.0e}: load {max(s.get('max_load1', 0) for s in r['stages']):.0f}" for r in runs)
    fig.suptitle(f"bench_scale.py on 2 cores (highest load average during each run: {loads})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--json", type=Path, help="default: WORKDIR/bench-scale.json")
    ap.add_argument(
        "--markdown", type=Path, help="also write the table here (default: WORKDIR/bench-scale.md)"
    )
    ap.add_argument("--markdown-from", type=Path, help="only render this JSON as markdown and exit")
    ap.add_argument(
        "--plot", nargs="+", type=Path, metavar="JSON",
        help="only plot stage time against rows from these runs' JSONs to --plot-out, and exit",
    )  # fmt: skip
    ap.add_argument("--plot-out", type=Path, default=Path("docs/img/scale.png"))
    ap.add_argument("--keep", action="store_true", help="keep the input and the crossmatch output")
    ap.add_argument("--generate-workers", type=int, default=2)
    ap.add_argument(
        "--only-generate", action="store_true", help="stop after generating the input (to ingest later)"
    )
    ap.add_argument(
        "--only-ingest", action="store_true", help="stop after the ingest (to compare ingest versions)"
    )
    args = ap.parse_args()
    if args.plot:
        args.plot_out.parent.mkdir(parents=True, exist_ok=True)
        plot_growth([json.loads(p.read_text()) for p in args.plot], args.plot_out)
        return
    if args.markdown_from:
        sys.stdout.write(markdown(json.loads(args.markdown_from.read_text())))
        return
    if args.workdir is None:
        ap.error("--workdir is required")
    run = Run(args)
    w = run.workdir
    ref_path = w / "reference.json"
    if ref_path.exists() and json.loads(ref_path.read_text()).get("rows") == args.rows:
        ref = json.loads(ref_path.read_text())
    else:
        ref = run.stage("generate", generate, args.rows, w, args.seed, args.generate_workers)["_ref"]
    if args.only_generate:
        return
    n_targets = sum(
        len(range(0, min(CHUNK_ROWS, args.rows - s), 10)) for s in range(0, args.rows, CHUNK_ROWS)
    )
    root = w / "root"
    root.mkdir(exist_ok=True)
    sky, targets = root / "sky", root / "targets"
    if not (sky / "collection.properties").exists():
        run.stage("ingest", stage_ingest, w / "input", sky, MARGIN_ARCSEC, args.rows)
    if args.only_ingest:
        return
    if not (targets / "collection.properties").exists():
        run.stage("ingest-targets", stage_ingest, w / "targets", targets, 0.0, n_targets)
    if not args.keep:  # the references are in reference.json: the input is no longer needed
        shutil.rmtree(w / "input", ignore_errors=True)
        shutil.rmtree(w / "targets", ignore_errors=True)
    run.stage("open", stage_open, sky)
    run.stage("cones-warm", stage_cones_warm, sky, ref)
    run.stage("cones-fresh", stage_cones_fresh, sky, ref)
    run.stage("sql", stage_sql, sky, ref, args.rows)
    run.stage("crossmatch", stage_crossmatch, targets, sky, w / "matches", ref, n_targets)
    if not args.keep:
        shutil.rmtree(w / "matches", ignore_errors=True)
    run.stage("tap", stage_tap, root, ref)
    run.data["finished_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    run._save()
    md = markdown(run.data)
    (args.markdown or w / "bench-scale.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
