"""A fresh process: ``import proxcompute``, ``open_catalog``, one 1' cone, against the floor.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_startup.py CATALOG [--repeat 5]

Runs, interleaved ``--repeat`` times, three fresh interpreters and reports the median wall
time and CPU seconds (user + system, from ``wait4``: on a loaded machine the steadier
measure) of each:

- ``interpreter``: ``python -c pass``;
- ``floor``: importing what any answer as a DataFrame needs (numpy, pandas, pyarrow.parquet,
  pyarrow.compute) and nothing of ours;
- ``open + cone``: ``import proxcompute; proxcompute.open_catalog(CATALOG).cone_search(45, 30,
  60).compute()``, with its own split (import, open, cone).

Then the modules of ours that take the most import time (``-X importtime``, self time) in
one more run. Prints Markdown; the load average is printed with it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

CONE = """
import json, time
t0 = time.perf_counter()
import proxcompute
t1 = time.perf_counter()
cat = proxcompute.open_catalog({path!r})
t2 = time.perf_counter()
df = cat.cone_search(45.0, 30.0, 60.0).compute()
t3 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "open_s": t2 - t1, "cone_s": t3 - t2, "rows": len(df)}}))
"""
FLOOR = "import numpy, pandas, pyarrow.parquet, pyarrow.compute"


def _timed(code: str, *flags: str) -> tuple[float, float, str, str]:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout, proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("catalog")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cases = {"interpreter": "pass", "floor (numpy, pandas, pyarrow)": FLOOR, "open + cone": CONE.format(path=args.catalog)}
    walls: dict[str, list[float]] = {k: [] for k in cases}
    cpus: dict[str, list[float]] = {k: [] for k in cases}
    split: list[dict] = []
    load0 = os.getloadavg()
    for _ in range(args.repeat):
        for name, code in cases.items():
            wall, cpu, out, _ = _timed(code)
            walls[name].append(wall)
            cpus[name].append(cpu)
            if name == "open + cone":
                split.append(json.loads(out.strip().splitlines()[-1]))
    load1 = os.getloadavg()
    print(f"load average at start {load0[0]:.2f}, at end {load1[0]:.2f} ({os.cpu_count()} CPUs)\n")
    print("| process | wall (median) | CPU s (median) |")
    print("|---|---:|---:|")
    for name in cases:
        print(f"| {name} | {statistics.median(walls[name]):.2f} s | {statistics.median(cpus[name]):.2f} s |")
    med = {k: statistics.median(s[k] for s in split) for k in ("import_s", "open_s", "cone_s")}
    print(f"\nopen + cone, inside the process (medians): import proxcompute {med['import_s'] * 1e3:.0f} ms, "
          f"open_catalog {med['open_s'] * 1e3:.0f} ms (imports the engine), cone {med['cone_s'] * 1e3:.0f} ms")  # fmt: skip
    _, _, _, err = _timed(CONE.format(path=args.catalog), "-X", "importtime")
    ours: dict[str, int] = {}
    total = 0
    for line in err.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            total += int(m[1])
            if m[2].startswith("proxcompute"):
                ours[m[2]] = int(m[1])
    print(f"\n-X importtime: proxcompute's own modules {sum(ours.values()) / 1e3:.0f} ms of {total / 1e3:.0f} ms "
          "(self times); the largest:")  # fmt: skip
    for name, us in sorted(ours.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {us / 1e3:7.1f} ms  {name}")


if __name__ == "__main__":
    main()
