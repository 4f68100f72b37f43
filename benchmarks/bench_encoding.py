"""Partition-file encodings compared on one generated catalog: size on disk, ingest, reads.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_encoding.py --rows 10000000 --workdir /tmp/enc

The input is bench_scale's (``proxcompute.synthetic``'s sky, ``mag``/``color`` float32,
generated once with its brute-force references). Each encoding
(codec and level, and which columns get BYTE_STREAM_SPLIT or DELTA_BINARY_PACKED: the
writer's ``COMPRESSION`` and ``column_encodings`` set in the ingesting process) ingests it in a fresh process with a
10" margin, like the scale run: catalog bytes (the catalog and its margin), ingest wall and
CPU seconds. Then, in one fresh process per encoding and round (rounds interleave the
encodings so a change of load hits them alike), the reads of bench_foundation and
bench_scale: ``count(mag < 20)`` (a full scan of one column), a 1' cone in a cluster and a
1 deg cone, each warm (one warm-up, then the median of ``--repeat``), every answer checked
against the brute-force reference. The catalogs sit in the page cache (the machine has far
more memory than they take), so the reads measure decoding, which is what differs.
Prints a Markdown table; raw numbers go to ``WORKDIR/bench-encoding.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_scale  # noqa: E402  (the scale run's generator and references)

ENCODINGS = {
    "snappy": {"compression": "snappy"},
    "zstd-1": {"compression": "zstd", "level": 1},
    "zstd-3": {"compression": "zstd", "level": 3},
    "zstd-1 + BSS": {"compression": "zstd", "level": 1, "bss": True},
    "zstd-3 + BSS": {"compression": "zstd", "level": 3, "bss": True},
    "snappy + BSS + delta index": {"compression": "snappy", "bss": True, "delta": "index"},
    "snappy + BSS + delta ints": {"compression": "snappy", "bss": True, "delta": "ints"},
    "zstd-3 + BSS + delta index": {"compression": "zstd", "level": 3, "bss": True, "delta": "index"},
}
"""Codec, level, BYTE_STREAM_SPLIT for floats, DELTA_BINARY_PACKED for the index or all
integers. ``snappy + BSS + delta ints`` is what ``storage.writer`` writes."""
READ_CONES = ("1' cluster", "1 deg background")
RESULT = "@@RESULT "

INGEST = """
import json, sys, time
import pyarrow.parquet as pq
import proxcompute as pc
from proxcompute.sky import INDEX_COLUMN
from proxcompute.storage import writer
spec = json.loads(sys.argv[3])
writer.COMPRESSION = spec["compression"]
if spec.get("level") is not None:  # the writer passes no level: add it (this process only)
    plain_write = pq.write_table
    pq.write_table = lambda *a, **k: plain_write(*a, compression_level=spec["level"], **k)
default_encodings = writer.column_encodings
def encodings(schema):
    out = {}
    for name, enc in default_encodings(schema).items():
        if enc == "BYTE_STREAM_SPLIT" and spec.get("bss"):
            out[name] = enc
        elif enc == "DELTA_BINARY_PACKED" and (spec.get("delta") == "ints"
                                               or (spec.get("delta") == "index" and name == INDEX_COLUMN)):
            out[name] = enc
    return out
writer.column_encodings = encodings
t0, c0 = time.perf_counter(), time.process_time()
res = pc.ingest(sys.argv[1], sys.argv[2], margin_arcsec=10.0, overwrite=True, show_progress=False)
print("@@RESULT " + json.dumps({"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                                 "rows": res.rows, "partitions": res.partitions}))
"""

READS = """
import json, statistics, sys, time
import proxcompute as pc
path, repeat, cones = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
cat = pc.open_catalog(path)
out = {}
def timed(name, fn):
    value = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    cpu = []
    for _ in range(repeat):
        c = time.process_time()
        fn()
        cpu.append(time.process_time() - c)
    out[name] = {"ms": statistics.median(times) * 1e3, "cpu_ms": statistics.median(cpu) * 1e3, "value": value}
timed("count(mag<20)", lambda: int(cat.where("mag < 20").count()))
for label, ra, dec, r in cones:
    timed(label, lambda ra=ra, dec=dec, r=r: sorted(cat.cone_search(ra, dec, r).compute()["id"].tolist()))
print("@@RESULT " + json.dumps(out))
"""


def _run(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    raise RuntimeError(f"no result; stderr:\n{proc.stderr[-3000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="encodings to run (default: all)")
    ap.add_argument("--reuse", action="store_true", help="reuse the catalogs (and ingest numbers) of a previous run")
    args = ap.parse_args()
    w = args.workdir.absolute()
    w.mkdir(parents=True, exist_ok=True)
    ref_path = w / "reference.json"
    if ref_path.exists() and json.loads(ref_path.read_text()).get("rows") == args.rows:
        ref = json.loads(ref_path.read_text())
    else:
        ref = bench_scale.generate(args.rows, w, args.seed, workers=2)["_ref"]
    shutil.rmtree(w / "targets", ignore_errors=True)
    names = args.only or list(ENCODINGS)
    cones = [c for c in bench_scale.CONES if c[0] in READ_CONES]
    cone_refs = {c[0]: r for c, r in zip(bench_scale.CONES, ref["cones"], strict=True)}
    results: dict = {
        "rows": args.rows,
        "uptime_start": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "encodings": {},
    }
    previous = {}
    if args.reuse and (w / "bench-encoding.json").exists():
        previous = json.loads((w / "bench-encoding.json").read_text())["encodings"]
    for name in names:
        out = w / "cat" / name.replace(" ", "").replace("+", "-")
        if name in previous and (out / "collection.properties").exists():
            results["encodings"][name] = {**previous[name], "reads": [], "cpu_reads": []}
            results["encodings"][name]["dataset_bytes"] = sum(bench_scale._disk_bytes(d) for d in out.glob("*/dataset"))
            continue
        print(f"ingest {name} (load {os.getloadavg()[0]:.2f})", flush=True)
        rec = _run(INGEST, str(w / "input"), str(out), json.dumps(ENCODINGS[name]))
        if rec["rows"] != args.rows:
            raise AssertionError(f"{name}: ingest wrote {rec['rows']} rows of {args.rows}")
        rec["catalog_bytes"] = bench_scale._disk_bytes(out)
        # the partition files alone: the point maps (2 x 82 MB at order 10) do not grow with the rows
        rec["dataset_bytes"] = sum(bench_scale._disk_bytes(d) for d in out.glob("*/dataset"))
        rec["path"] = str(out)
        rec["reads"], rec["cpu_reads"] = [], []
        results["encodings"][name] = rec
    for k in range(args.rounds):
        for name in names:
            rec = results["encodings"][name]
            print(f"reads {name}, round {k + 1} (load {os.getloadavg()[0]:.2f})", flush=True)
            reads = _run(READS, rec["path"], str(args.repeat), json.dumps(cones))
            ok = reads["count(mag<20)"]["value"] == ref["count_mag_lt_20"]
            for label, *_ in cones:
                ok &= bench_scale._check_cone(reads[label]["value"], cone_refs[label])
                reads[label]["rows"] = len(reads[label].pop("value"))
            if not ok:
                raise AssertionError(f"{name}: a read disagrees with the brute force")
            rec["reads"].append({key: v["ms"] for key, v in reads.items()})
            rec["cpu_reads"].append({key: v["cpu_ms"] for key, v in reads.items()})
    results["uptime_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    (w / "bench-encoding.json").write_text(json.dumps(results, indent=1))
    base = results["encodings"].get("snappy")
    lines = [
        "| encoding | partition files | bytes/row | ingest wall | ingest CPU | count(mag<20) wall / CPU "
        "| 1' cone wall / CPU | 1 deg cone wall / CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        rec = results["encodings"][name]
        med = {key: statistics.median(r[key] for r in rec["reads"]) for key in rec["reads"][0]}
        cpu = {key: statistics.median(r[key] for r in rec["cpu_reads"]) for key in rec["cpu_reads"][0]}
        rel = f" ({rec['dataset_bytes'] / base['dataset_bytes']:.0%})" if base else ""
        lines.append(
            f"| {name} | {rec['dataset_bytes'] / 1e9:.3f} GB{rel} | {rec['dataset_bytes'] / args.rows:.1f} | "
            f"{rec['seconds']:.1f} s | {rec['cpu_s']:.1f} s | "
            + " | ".join(f"{med[k]:.1f} / {cpu[k]:.1f} ms" for k in ("count(mag<20)", *READ_CONES))
            + " |"
        )
    lines.append(f"\nuptime at start: {results['uptime_start']}\nuptime at end: {results['uptime_end']}")
    print("\n".join(lines))
    (w / "bench-encoding.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f} s")
