"""The cost model against the clock: every query of the scale run, estimated and measured.

Runs :mod:`bench_scale` (generate, ingest, then the timed queries: 1' and 1 deg cones, count(*),
count(mag < 20), GROUP BY, the N/10 x N crossmatch, TAP jobs) at each ``--rows``; bench_scale
records, next to each measured time, :func:`proxcompute.estimate_cost`'s estimate with the
rates file given here (``--rates``, passed as ``$PROXCOMPUTE_COST_RATES``; the TAP server
reads it too, and its UWS quote is compared with the job's run time). This script collects
those pairs, checks the target (every estimate within 2x of its measured time) and writes
one JSON per size plus a markdown table::

    PYTHONPATH=src .venv/bin/proxcompute calibrate --out /tmp/cost-rates.json
    PYTHONPATH=src flock /tmp/bench.lock .venv/bin/python benchmarks/bench_cost.py \\
        --rates /tmp/cost-rates.json --rows 10000000 --workdir /tmp/cost-1e7 \\
        --out benchmarks/results/cost-1e7.json

``--from-scale benchmarks/results/scale-1e9.json`` instead applies the model to a recorded
scale run's stages, when they hold enough plan statistics (see :func:`from_scale`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 2.0
_DATA_STAGES = ("generate", "ingest", "ingest-targets")


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run_scale(rows: int, workdir: Path, rates: Path | None) -> dict:
    """bench_scale at ``rows`` in ``workdir`` (its data is reused when already there)."""
    env = dict(os.environ)
    if rates is not None:
        env["PROXCOMPUTE_COST_RATES"] = str(rates.resolve())
    json_path = workdir / "bench-scale.json"
    if json_path.exists():  # a fresh set of query stages (the generated data is kept)
        old = json.loads(json_path.read_text())
        old["stages"] = [s for s in old.get("stages", []) if s["stage"] in _DATA_STAGES]
        json_path.write_text(json.dumps(old))
    cmd = [sys.executable, str(HERE / "bench_scale.py"), "--rows", str(rows), "--workdir", str(workdir)]
    subprocess.run(cmd, env=env, check=True)
    return json.loads(json_path.read_text())


def summarize(scale: dict, rates_file: Path | None, uptime_start: str) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_scale import estimate_pairs
    from proxcompute.execute import load_rates

    pairs = estimate_pairs(scale)
    worst = max((max(p["ratio"], 1 / max(p["ratio"], 1e-9)) for p in pairs.values()), default=float("nan"))
    return {
        "rows": scale["rows"],
        "machine": scale["machine"],
        "uptime_start": uptime_start,
        "uptime_end": _uptime(),
        "max_load1": max((s.get("max_load1", 0) for s in scale["stages"] if s["stage"] not in _DATA_STAGES), default=0),
        "rates": json.loads(load_rates(rates_file).to_json()),
        "queries": pairs,
        "worst_factor": round(worst, 2),
        "target": f"every estimate within {TARGET_RATIO:g}x of its measured time",
        "within_target": all(1 / TARGET_RATIO <= p["ratio"] <= TARGET_RATIO for p in pairs.values()),
    }


def markdown(summary: dict) -> str:
    lines = [
        f"{summary['rows']:,} rows; {summary['target']}: "
        f"{'yes' if summary['within_target'] else 'NO'} (worst factor {summary['worst_factor']}); "
        f"highest load average during the queries {summary['max_load1']} on {summary['machine']['cpus']} cores "
        f"(uptime at the start: {summary['uptime_start'].split('load average:')[-1].strip()})",
        "",
        "| query | estimated | measured (wall) | estimated / measured | CPU seconds of the run |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, p in summary["queries"].items():
        cpu = _secs(p["cpu_s"]) if "cpu_s" in p else "n/a (in the server)"
        lines.append(
            f"| {name} | {_secs(p['estimated_s'])} | {_secs(p['measured_s'])} | {p['ratio']:.2f} | {cpu} |"
        )
    return "\n".join(lines) + "\n"


def _secs(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def from_scale(path: Path) -> str:
    """Whether a recorded scale run holds enough to apply the model to, and why not.

    The model needs each query's plan statistics (partitions touched, row groups, rows and
    columns read, the crossmatch's left and right rows, worker threads); a scale JSON written
    before the model records only per-stage totals (partitions of the catalog, rows, seconds),
    which cannot tell the partitions a cone touched or the rows a crossmatch read on the right.
    """
    data = json.loads(path.read_text())
    pairs = []
    for s in data["stages"]:
        pairs += [k for k in ("estimates", "estimate") if k in s]
        pairs += [k for v in s.get("cones", {}).values() for k in ("estimate",) if k in v]
    if pairs:
        return markdown(summarize(data, None, "(recorded run)"))
    return (f"{path}: no plan statistics recorded (stages {', '.join(s['stage'] for s in data['stages'])}); "
            "the model is not applied to it\n")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--rates", type=Path, help="rates file from `proxcompute calibrate` (default: the user's)")
    ap.add_argument("--out", type=Path, help="JSON summary (default: WORKDIR/bench-cost.json)")
    ap.add_argument("--from-scale", type=Path, help="only apply the model to a recorded scale JSON, and exit")
    ap.add_argument("--markdown-from", type=Path, help="only render a summary JSON as markdown, and exit")
    args = ap.parse_args()
    if args.markdown_from:
        sys.stdout.write(markdown(json.loads(args.markdown_from.read_text())))
        return
    if args.from_scale:
        sys.stdout.write(from_scale(args.from_scale))
        return
    if args.workdir is None:
        ap.error("--workdir is required")
    args.workdir.mkdir(parents=True, exist_ok=True)
    start = _uptime()
    t0 = time.perf_counter()
    scale = run_scale(args.rows, args.workdir, args.rates)
    summary = summarize(scale, args.rates, start)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    out = args.out or args.workdir / "bench-cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    sys.stdout.write(markdown(summary))


if __name__ == "__main__":
    main()
