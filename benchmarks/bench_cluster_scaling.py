"""Cluster scaling: the same ingest and crossmatch on 1 and on 2 SLURM workers, against the 10^11 model.

    .venv/bin/python benchmarks/bench_cluster_scaling.py [--rows 10000000] [--workers 1 2]
        [--workdir /tmp/faults-scale] [--out benchmarks/results/cluster-scaling.json]

Checks the scaling model of ``docs/scale.md`` ("10^11 rows on paper"), which extrapolates
from per-core rates measured on one machine: ingest + 10" margin at 0.79M rows per
core-second, crossmatch at 0.47M left rows per core-second. With N single-threaded workers
the model predicts wall = work / (rate x N), so 2 workers should take half the time of 1.

1. ``clusters/slurm/setup_slurm.sh`` starts a one-node SLURM (root; ``--no-setup`` uses a
   running one); ``stop_slurm.sh`` stops it (and munged) at the end (``--keep-slurm`` keeps it).
2. ``bench_scale.generate`` writes the seeded sky (``--rows``; uniform background, a dense
   band, clusters; 1M-row input files so the ingest has more tasks than workers) and
   ``rows/10`` targets (80% within 0.9" of a survey row), with the brute-force nearest
   neighbours of three check regions (a cluster core, the RA wrap, near the north pole).
   The targets are ingested once, in this process, before any timing.
3. For each worker count N: a SLURM cluster of N batch jobs, one single-threaded worker
   each (``proxcompute.cluster`` with a generated profile, interface ``lo``), then
   **ingest** (``ingest(..., margin_arcsec=10)`` on the cluster) and **crossmatch** (targets x
   sky within 1", nearest, ``to_catalog``). Per stage: wall seconds, CPU seconds of the
   workers (psutil in each worker, before and after) and of this process (scheduler and
   client), the workers' busy fraction (CPU / (wall x N)), the ingest's own stage timings and
   the load average. ``--repeat`` runs (1, 2, then 2, 1 ...); the table shows medians. Every run is checked: the ingest's row count, and in the
   check regions the crossmatch's pairs equal the brute force's, pair for pair; the pair
   totals of the N runs are equal.

The result goes to ``--out`` (JSON) and a Markdown table to stdout. Run it under
``flock /tmp/bench.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SLURM_DIR = ROOT / "clusters" / "slurm"
sys.path.insert(0, str(HERE))

import bench_scale  # noqa: E402  (the generator and its references, shared with the scale benchmark)

INGEST_ROWS_PER_CORE_S = 0.79e6
"""docs/scale.md, 10^11 model: ingest + 10" margin, rows per core-second (measured at 10^9 rows)."""
CROSSMATCH_LEFT_ROWS_PER_CORE_S = 0.47e6
"""docs/scale.md, 10^11 model: crossmatch, left rows per core-second (measured at 10^8 x 10^9)."""
INPUT_FILE_ROWS = 1_000_000
PROFILE = """
proxcompute:
  cluster:
    bench-slurm:
      backend: slurm
      description: one single-threaded worker per SLURM job, on this node
      workers: 1
      cores: 1
      processes: 1
      memory: {memory}
      walltime: "00:30:00"
      partition: short
      limits:
        partitions:
          short: {{max_memory: 8GiB, max_walltime: "00:30:00", max_cores: 2}}
      jobqueue:
        interface: lo
        log_directory: {logs}
"""


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _worker_cpu_task() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def _workers_cpu(client) -> dict[str, float]:
    return client.run(_worker_cpu_task)


def _timed_stage(client, fn) -> dict:
    """Wall and CPU seconds of ``fn()`` (workers and this process) and the load around it."""
    before_w, before_s, load0 = _workers_cpu(client), _self_cpu(), _load()
    t0 = time.perf_counter()
    detail = fn()
    wall = time.perf_counter() - t0
    after_w, after_s = _workers_cpu(client), _self_cpu()
    lost = sorted(set(before_w) - set(after_w))
    if lost:
        raise RuntimeError(f"workers {lost} left during the stage: its CPU time is incomplete")
    per_worker = {a: round(after_w[a] - before_w[a], 2) for a in before_w}
    return {
        "wall_s": round(wall, 2),
        "workers_cpu_s": round(sum(per_worker.values()), 2),
        "per_worker_cpu_s": sorted(per_worker.values()),
        "client_cpu_s": round(after_s - before_s, 2),
        "workers_busy": round(sum(per_worker.values()) / (wall * len(per_worker)), 2),
        "load_start": load0,
        "load_end": _load(),
        **detail,
    }


def _ingest(src: Path, out: Path, rows: int, client) -> dict:
    import proxcompute as pc

    res = pc.ingest(src, out, name="sky", margin_arcsec=bench_scale.MARGIN_ARCSEC, overwrite=True, client=client,
                    show_progress=False)  # fmt: skip
    if res.rows != rows:
        raise AssertionError(f"ingest wrote {res.rows} rows, {rows} were generated")
    return {"rows": res.rows, "partitions": res.partitions, "margin_rows": res.margin_rows,
            "ingest_timings": res.timings, "ok": True}  # fmt: skip


def _crossmatch(targets: Path, sky: Path, out: Path, ref: dict, client) -> dict:
    import proxcompute as pc

    left, right = pc.open_catalog(targets), pc.open_catalog(sky)
    written = left.crossmatch(right, radius_arcsec=bench_scale.XMATCH_ARCSEC).to_catalog(out, overwrite=True)
    ok, checked = True, 0
    for (ra0, dec0, r), want in zip(bench_scale.REGIONS, ref["expected_pairs"], strict=True):
        got_df = written.cone_search(ra0, dec0, r * 3600).compute()
        got = {str(int(a)): int(b) for a, b in zip(got_df["id_targets"], got_df["id_sky"], strict=True)}
        ok &= got == want
        checked += len(want)
    if not (ok and checked):
        raise AssertionError("the crossmatch's pairs in the check regions differ from the brute force")
    return {"left_rows": len(left), "pairs": len(written), "pairs_checked": checked, "ok": True}


def run_workers(n: int, workdir: Path, rows: int, ref: dict, memory: str) -> dict:
    import proxcompute as pc

    logs = workdir / "slurm-logs"
    logs.mkdir(exist_ok=True)
    profile = workdir / "bench-slurm.yaml"
    profile.write_text(PROFILE.format(memory=memory, logs=logs))
    os.environ["PROXCOMPUTE_CLUSTERS"] = str(profile)
    out = workdir / f"workers-{n}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    t0 = time.perf_counter()
    with pc.cluster("bench-slurm", workers=n) as client:
        client.wait_for_workers(n, timeout=300)
        startup = time.perf_counter() - t0
        print(f"{n} worker(s): SLURM jobs up in {startup:.1f} s ({_uptime()})", flush=True)
        ingest = _timed_stage(client, lambda: _ingest(workdir / "input", out / "sky", rows, client))
        print(f"  ingest {ingest['wall_s']} s wall, workers {ingest['workers_cpu_s']} CPU s", flush=True)
        xm = _timed_stage(
            client, lambda: _crossmatch(workdir / "targets-catalog", out / "sky", out / "matched", ref, client)
        )
        print(f"  crossmatch {xm['wall_s']} s wall, workers {xm['workers_cpu_s']} CPU s", flush=True)
        threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    shutil.rmtree(out, ignore_errors=True)
    return {"workers": n, "threads": threads, "startup_s": round(startup, 1), "ingest": ingest, "crossmatch": xm}


def model(rows: int, left_rows: int, n: int) -> dict:
    """docs/scale.md's prediction: work / (per-core rate x N single-threaded workers)."""
    return {
        "ingest_wall_s": round(rows / (INGEST_ROWS_PER_CORE_S * n), 2),
        "crossmatch_wall_s": round(left_rows / (CROSSMATCH_LEFT_ROWS_PER_CORE_S * n), 2),
        "ingest_cpu_s": round(rows / INGEST_ROWS_PER_CORE_S, 2),
        "crossmatch_cpu_s": round(left_rows / CROSSMATCH_LEFT_ROWS_PER_CORE_S, 2),
    }


def _median_run(runs: list[dict], n: int) -> dict:
    """The medians over the repeats with ``n`` workers, per stage and number."""
    mine = [r for r in runs if r["workers"] == n]
    out: dict = {"workers": n, "repeats": len(mine)}
    for stage in ("ingest", "crossmatch"):
        out[stage] = {
            k: round(statistics.median(r[stage][k] for r in mine), 2)
            for k in ("wall_s", "workers_cpu_s", "client_cpu_s", "workers_busy", "load_start", "load_end")
        }
    out["crossmatch"]["left_rows"] = mine[0]["crossmatch"]["left_rows"]
    return out


def summarize(runs: list[dict], rows: int, workers: list[int]) -> list[dict]:
    """Per worker count: medians, the model's prediction, speed-up against the first count."""
    med = [_median_run(runs, n) for n in workers]
    base = med[0]
    for m in med:
        n = m["workers"]
        m["model"] = model(rows, m["crossmatch"]["left_rows"], n)
        for stage in ("ingest", "crossmatch"):
            s = m[stage]
            s["speedup"] = round(base[stage]["wall_s"] / s["wall_s"], 2)
            s["model_speedup"] = round(n / base["workers"], 2)
            s["wall_vs_model"] = round(s["wall_s"] / m["model"][f"{stage}_wall_s"], 2)
            s["cpu_vs_model"] = round((s["workers_cpu_s"] + s["client_cpu_s"]) / m["model"][f"{stage}_cpu_s"], 2)
    return med


def markdown(data: dict) -> str:
    lines = [
        "| stage | workers | wall | model wall | speed-up (model) | workers' CPU (busy) | client CPU | load (start/end) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stage in ("ingest", "crossmatch"):
        for m in data["summary"]:
            s, n = m[stage], m["workers"]
            lines.append(
                f"| {stage} | {n} | {s['wall_s']:.1f} s | {m['model'][f'{stage}_wall_s']:.1f} s | "
                f"{s['speedup']:.2f}x ({s['model_speedup']:.0f}x) | {s['workers_cpu_s']:.1f} s "
                f"({s['workers_busy']:.0%}) | {s['client_cpu_s']:.1f} s | {s['load_start']} / {s['load_end']} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/faults-scale"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "cluster-scaling.json")
    ap.add_argument("--memory", default="6GiB", help="per worker job")
    ap.add_argument("--repeat", type=int, default=2, help="runs per worker count (alternating order); medians")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-setup", action="store_true", help="use a SLURM that is already running")
    ap.add_argument("--keep-slurm", action="store_true", help="leave SLURM running at the end")
    ap.add_argument("--markdown-from", type=Path, help="print the table of a result file and exit")
    args = ap.parse_args()
    if args.markdown_from:
        print(markdown(json.loads(args.markdown_from.read_text())))
        return
    os.environ.setdefault("PROXCOMPUTE_PROGRESS", "0")
    args.workdir.mkdir(parents=True, exist_ok=True)
    if not args.no_setup:
        subprocess.run(["bash", str(SLURM_DIR / "setup_slurm.sh")], check=True, timeout=900)
    try:
        bench_scale.CHUNK_ROWS = INPUT_FILE_ROWS  # more input files than workers: the ingest's scan and split spread
        print(f"generate {args.rows:,} rows ({_uptime()})", flush=True)
        gen = bench_scale.generate(args.rows, args.workdir, args.seed, workers=2)
        ref = gen.pop("_ref")
        import proxcompute as pc

        pc.ingest(args.workdir / "targets", args.workdir / "targets-catalog", name="targets", margin_arcsec=0,
                  overwrite=True, show_progress=False)  # fmt: skip
        runs = []
        for k in range(args.repeat):  # 1, 2, then 2, 1: drift in the machine's load hits both
            for n in args.workers if k % 2 == 0 else args.workers[::-1]:
                runs.append(run_workers(n, args.workdir, args.rows, ref, args.memory))
    finally:
        if not args.keep_slurm:
            subprocess.run(["bash", str(SLURM_DIR / "stop_slurm.sh")], timeout=300)
    pairs = {r["crossmatch"]["pairs"] for r in runs}
    if len(pairs) != 1:
        raise AssertionError(f"the runs found different numbers of pairs: {sorted(pairs)}")
    data = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "rows": args.rows,
        "input_files": len(list((args.workdir / "input").glob("*.parquet"))),
        "model_rates": {"ingest_rows_per_core_s": INGEST_ROWS_PER_CORE_S,
                        "crossmatch_left_rows_per_core_s": CROSSMATCH_LEFT_ROWS_PER_CORE_S},
        "runs": runs,
        "summary": summarize(runs, args.rows, args.workers),
        "uptime_end": _uptime(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(markdown(data))


if __name__ == "__main__":
    main()
