"""Foundation benchmark: proxcompute against LSDB / hats-import on the same data, in one run.

    .venv/bin/python benchmarks/bench_foundation.py [--rows 10000000] [--workdir bench-data]
                                                    [--repeat 5] [--ingest-repeat 1]
                                                    [--fresh-repeat 3] [--markdown PATH]

Steps (all on the same seeded, non-uniform catalog from ``proxcompute.synthetic``):

1. generate the input as a few Parquet files (cached in the workdir; reruns skip it);
2. ingest it with ``proxcompute.ingest`` and with hats-import (a Dask client of 2 worker
   processes), both with ``max_rows`` = 1M per partition, with and without a 10" margin;
   each ingest runs in its own process, sampled for the RSS of its whole process tree;
3. in one warm process per tool and catalog (both tools on both catalogs): open the
   catalog, 1' cones at dense and sparse positions and on a partition corner (each timed
   after one warm-up call; median of ``--repeat``), ``count(mag < 20)``;
4. the same cone in fresh processes (interpreter start + import + open + query);
5. ``count(mag < 20)`` with raw pyarrow (``pq.read_table(dataset, columns=["mag"])``).

Every answer is checked: both catalogs hold exactly the input ids; every cone returns the
same ids in both tools and as brute force over the input; every count equals numpy's; our
margin is exact (no row inside its partition or farther than 10" from it, none of the rows
hats-import's wider margin holds within 10" missing). A mismatch is reported as a failure
(exit status 1): a fast wrong answer is not a result.

Timings: the margin row is the margin stage of the run with a margin (hats-import's phase
is timed by wrapping its ``generate_margin_cache``); ``--ingest-repeat N`` runs every ingest
N times, interleaving the tools, and reports medians. The machine is shared: the load
average at start and end is printed and saved with the raw results.

Prints a table ``work | proxcompute | LSDB/hats-import | ratio | target`` (the project's
performance targets; ratio = peer time / proxcompute time, > 1 means proxcompute is faster) and
writes it as Markdown to ``--markdown``; raw timings go to ``<workdir>/results-<rows>.json``.
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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
RESULT_TAG = "@@BENCH-RESULT "
MAX_ROWS = 1_000_000
MARGIN_ARCSEC = 10.0
CONE_ARCSEC = 60.0
NAME = "synth"
# pyarrow, numpy, numba and dask threads: the machine has 2 cores, and so does the benchmark
N_WORKERS = 2


# --------------------------------------------------------------------------------------
# worker side: each function runs in a fresh subprocess and returns a JSON-able dict
# --------------------------------------------------------------------------------------


def _quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def w_ingest_proxcompute(inputs: list[str], out: str, margin: float) -> dict:
    import proxcompute

    t0 = time.perf_counter()
    res = proxcompute.ingest(
        inputs,
        out,
        name=NAME,
        max_rows=MAX_ROWS,
        margin_arcsec=margin,
        workers=N_WORKERS,
        overwrite=True,
        show_progress=False,
    )
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "rows": res.rows,
        "partitions": res.partitions,
        "orders": {str(k): v for k, v in sorted(res.orders.items())},
        "margin_rows": res.margin_rows,
        "stages": dict(res.timings),
    }


def w_ingest_hats_import(inputs: list[str], out: str, margin: float) -> dict:
    _quiet()
    from dask.distributed import Client
    from hats_import import CollectionArguments
    from hats_import.pipeline import pipeline_with_client

    out_p = Path(out)
    if out_p.exists():
        shutil.rmtree(out_p)
    t0 = time.perf_counter()
    args = CollectionArguments(
        output_artifact_name=out_p.name,
        output_path=out_p.parent,
        tmp_dir=out_p.parent / f"{out_p.name}.tmp-hats-import",
        progress_bar=False,
        resume=False,
    ).catalog(
        input_file_list=inputs,
        file_reader="parquet",
        ra_column="ra",
        dec_column="dec",
        pixel_threshold=MAX_ROWS,
        output_artifact_name=NAME,
    )
    if margin > 0:
        args = args.add_margin(margin_threshold=margin, is_default=True)
    stages = _time_hats_import_phases()
    with Client(n_workers=N_WORKERS, threads_per_worker=1, dashboard_address=None) as client:
        pipeline_with_client(args, client)
    seconds = time.perf_counter() - t0
    shutil.rmtree(out_p.parent / f"{out_p.name}.tmp-hats-import", ignore_errors=True)  # hats-import leaves it
    stages["other (client, collection)"] = seconds - sum(stages.values())
    import hats

    col = hats.read_hats(out_p)
    cat = col.main_catalog
    orders: dict[str, int] = {}
    for p in cat.get_healpix_pixels():
        orders[str(p.order)] = orders.get(str(p.order), 0) + 1
    margin_rows = 0
    if margin > 0:
        margin_rows = int(hats.read_hats(col.default_margin_catalog_dir).catalog_info.total_rows)
    return {
        "seconds": seconds,
        "rows": int(cat.catalog_info.total_rows),
        "partitions": len(cat.get_healpix_pixels()),
        "orders": dict(sorted(orders.items(), key=lambda kv: int(kv[0]))),
        "margin_rows": margin_rows,
        "stages": stages,
    }


def _time_hats_import_phases() -> dict[str, float]:
    """Time the catalog and margin phases of a hats-import collection run, in the same run.

    ``hats_import.collection.run_import.run`` calls ``catalog_runner.run`` and
    ``margin_runner.generate_margin_cache`` through their modules, so wrapping the module
    attributes times each phase without changing what runs.
    """
    import hats_import.catalog.run_import as catalog_runner
    import hats_import.margin_cache.margin_cache as margin_runner

    stages: dict[str, float] = {}

    def timed(module, attr: str, key: str) -> None:
        inner = getattr(module, attr)

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                stages[key] = stages.get(key, 0.0) + time.perf_counter() - t0

        setattr(module, attr, wrapper)

    timed(catalog_runner, "run", "catalog")
    timed(margin_runner, "generate_margin_cache", "margin")
    return stages


def _time_calls(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Warm up once, then time ``repeat`` calls; return the times and the last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def _ids(frame) -> list[int]:
    return sorted(int(x) for x in np.asarray(frame["id"].to_numpy()))


def w_session(tool: str, catalog: str, cones: list[list], repeat: int) -> dict:
    """A warm process: open, cones, count — all timed after one warm-up call each."""
    _quiet()
    out: dict[str, Any] = {}
    if tool == "proxcompute":
        import proxcompute

        def do_open():
            return proxcompute.open_catalog(catalog)

        out["open"], cat = _time_calls(do_open, repeat)

        def do_cone(ra, dec, r):
            return cat.cone_search(ra, dec, r).compute()

        def do_count():
            return int(cat.where("mag < 20").count())

    elif tool == "lsdb":
        import lsdb

        def do_open():
            return lsdb.open_catalog(catalog)

        out["open"], cat = _time_calls(do_open, repeat)
        # LSDB's cheapest way to count: only read `mag`, filter, count the rows
        mag_cat = lsdb.open_catalog(catalog, columns=["mag"], margin_cache=None)

        def do_cone(ra, dec, r):
            return cat.cone_search(ra, dec, r).compute(progress_bar=False)

        def do_count():
            return len(mag_cat.query("mag < 20").compute(progress_bar=False))

    elif tool == "pyarrow":
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        dataset = str(Path(catalog) / NAME / "dataset")

        def do_count():
            t = pq.read_table(dataset, columns=["mag"])
            return int(pc.sum(pc.less(t["mag"], 20.0)).as_py())

        out["count"], out["count_value"] = _time_calls(do_count, repeat)
        return out
    else:
        raise ValueError(tool)

    out["cones"] = []
    for label, ra, dec, r in cones:
        times, frame = _time_calls(lambda ra=ra, dec=dec, r=r: do_cone(ra, dec, r), repeat)
        out["cones"].append({"label": label, "times": times, "ids": _ids(frame)})
    out["count"], out["count_value"] = _time_calls(do_count, repeat)
    return out


FRESH_SNIPPETS = {
    "proxcompute": (
        "import proxcompute\n"
        "cat = proxcompute.open_catalog({catalog!r})\n"
        "frame = cat.cone_search({ra!r}, {dec!r}, {r!r}).compute()\n"
    ),
    "lsdb": (
        "import lsdb\n"
        "cat = lsdb.open_catalog({catalog!r})\n"
        "frame = cat.cone_search({ra!r}, {dec!r}, {r!r}).compute(progress_bar=False)\n"
    ),
}


def fresh_cone(tool: str, catalog: str, ra: float, dec: float, r: float) -> dict:
    """Interpreter start + import + open + one cone, timed from outside the process."""
    code = (
        "import time, json\n"
        "t0 = time.perf_counter()\n"
        + FRESH_SNIPPETS[tool].format(catalog=catalog, ra=ra, dec=dec, r=r)
        + "inner = time.perf_counter() - t0\n"
        "ids = sorted(int(x) for x in frame['id'].to_numpy())\n"
        f"print({RESULT_TAG!r} + json.dumps({{'inner': inner, 'ids': ids}}))\n"
    )
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"fresh {tool} cone failed:\n{proc.stderr[-3000:]}")
    res = _parse_result(proc.stdout, proc.stderr)
    res["wall"] = wall
    return res


# --------------------------------------------------------------------------------------
# parent side
# --------------------------------------------------------------------------------------


def _parse_result(stdout: str, stderr: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    raise RuntimeError(f"no result from worker; stderr tail:\n{stderr[-3000:]}")


class TreeSampler:
    """Samples the summed RSS of a process and all its descendants (dask workers too)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        import psutil

        self._psutil = psutil
        self._root = psutil.Process(pid)
        self._interval = interval
        self.peak_bytes = 0
        self.peak_single_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        ps = self._psutil
        while not self._stop.is_set():
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except ps.Error:
                break
            total = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                except ps.Error:
                    continue
                total += rss
                self.peak_single_bytes = max(self.peak_single_bytes, rss)
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_worker(func: str, **kwargs) -> dict:
    """Run ``func(**kwargs)`` in a fresh Python process, sampling its process-tree RSS."""
    cmd = [sys.executable, str(HERE), "--worker", func, json.dumps(kwargs)]
    env = dict(os.environ, PYTHONWARNINGS="ignore", PROXCOMPUTE_PROGRESS="0")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with TreeSampler(proc.pid) as sampler:
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"worker {func} failed (exit {proc.returncode}):\n{stderr[-4000:]}")
    res = _parse_result(stdout, stderr)
    res["wall"] = wall
    res["peak_tree_rss"] = sampler.peak_bytes
    res["peak_process_rss"] = sampler.peak_single_bytes
    return res


def median_run(rs: list[dict]) -> dict:
    """One summary of repeated runs: the median of every timing and of the peak memory."""
    out = dict(rs[len(rs) // 2])
    for k in ("seconds", "wall", "peak_tree_rss", "peak_process_rss"):
        out[k] = statistics.median(r[k] for r in rs)
    stages = list(dict.fromkeys(k for r in rs for k in r.get("stages", {})))
    out["stages"] = {k: statistics.median(r.get("stages", {}).get(k, 0.0) for r in rs) for k in stages}
    out["runs"] = len(rs)
    return out


def _fmt_stages(stages: dict | None) -> str:
    if not stages:
        return "-"
    return ", ".join(f"{k} {v:.1f}" for k, v in stages.items() if v >= 0.05)


def worker_main(func: str, kwargs_json: str) -> None:
    res = globals()[func](**json.loads(kwargs_json))
    sys.stdout.write(RESULT_TAG + json.dumps(res) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------
# input data and references
# --------------------------------------------------------------------------------------


def ensure_input(workdir: Path, rows: int, seed: int, n_files: int) -> list[str]:
    """The seeded input as ``n_files`` Parquet files; generated once, then reused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = workdir / f"input-{rows}-seed{seed}"
    files = [d / f"part-{i:02d}.parquet" for i in range(n_files)]
    done = d / "_DONE"
    if done.exists() and all(f.exists() for f in files):
        print(f"input: reusing {d}")
        return [str(f) for f in files]
    from proxcompute.synthetic import generate_catalog

    print(f"input: generating {rows:,} rows (seed {seed}) into {d} ...", flush=True)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    t0 = time.perf_counter()
    table = pa.Table.from_pandas(generate_catalog(rows, seed=seed), preserve_index=False)
    bounds = np.linspace(0, rows, n_files + 1).astype(int)
    for f, a, b in zip(files, bounds[:-1], bounds[1:], strict=True):
        pq.write_table(table.slice(int(a), int(b - a)), f)
    done.write_text(f"{rows} {seed}\n")
    print(f"input: {time.perf_counter() - t0:.1f} s", flush=True)
    return [str(f) for f in files]


@dataclass
class Reference:
    """The input, loaded once, for brute-force answers."""

    ids: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    xyz: np.ndarray = field(repr=False)

    @classmethod
    def load(cls, files: list[str]) -> Reference:
        import pyarrow.parquet as pq

        t = pq.read_table(files, columns=["id", "ra", "dec", "mag"])
        ra = t["ra"].to_numpy()
        dec = t["dec"].to_numpy()
        return cls(
            ids=t["id"].to_numpy(),
            ra=ra,
            dec=dec,
            mag=t["mag"].to_numpy(),
            xyz=_xyz(ra, dec),
        )

    def cone(self, ra: float, dec: float, radius_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
        """Ids inside the cone, and ids within 1e-6" of its edge (either answer is right)."""
        c = _xyz(np.array([ra]), np.array([dec]))[0]
        # chord-length prefilter, then an exact (Vincenty) separation on the few candidates
        chord = 2.0 * np.sin(np.radians(radius_arcsec / 3600.0 + 1e-6) / 2.0)
        d2 = ((self.xyz - c) ** 2).sum(axis=1)
        cand = np.nonzero(d2 <= chord * chord * 1.0001)[0]
        sep = _sep_arcsec(ra, dec, self.ra[cand], self.dec[cand])
        inside = self.ids[cand[sep <= radius_arcsec]]
        edge = self.ids[cand[np.abs(sep - radius_arcsec) <= 1e-6]]
        return np.sort(inside), edge


def _xyz(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=1)


def _sep_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (ra1, dec1, ra2, dec2))
    dra = ra2 - ra1
    s1, c1, s2, c2 = np.sin(dec1), np.cos(dec1), np.sin(dec2), np.cos(dec2)
    num = np.hypot(c2 * np.sin(dra), c1 * s2 - s1 * c2 * np.cos(dra))
    return np.degrees(np.arctan2(num, s1 * s2 + c1 * c2 * np.cos(dra))) * 3600.0


def read_margin(margin_dir: Path) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{(order, pixel): (ids, ra, dec)}`` of a margin catalog (files are named after the
    object partition whose margin they hold)."""
    import re

    import pyarrow.parquet as pq

    out = {}
    for f in (margin_dir / "dataset").rglob("Npix=*.parquet"):
        order = int(re.search(r"Norder=(\d+)", str(f)).group(1))
        pixel = int(re.search(r"Npix=(\d+)", f.name).group(1))
        t = pq.read_table(f, columns=["id", "ra", "dec"])
        out[(order, pixel)] = (t["id"].to_numpy(), t["ra"].to_numpy(), t["dec"].to_numpy())
    return out


def disc_touches(order: int, pixel: int, ra, dec, radius_arcsec: float, sure: bool) -> np.ndarray:
    """Whether the disc of ``radius_arcsec`` around each point reaches HEALPix ``(order, pixel)``.

    Decided on order-18 pixels (0.8"), then order-22 (0.05") for the undecided points:
    ``sure=True`` answers "certainly" (a sub-pixel centre of the pixel lies in the disc),
    ``sure=False`` answers "possibly" (a sub-pixel overlapping the disc lies in the pixel).
    """
    import healpy as hp

    ra = np.atleast_1d(np.asarray(ra, dtype=np.float64))
    dec = np.atleast_1d(np.asarray(dec, dtype=np.float64))
    r = np.radians(radius_arcsec / 3600.0)
    vecs = np.atleast_2d(hp.ang2vec(ra, dec, lonlat=True))

    def test(fine: int, inclusive: bool, idx: np.ndarray) -> np.ndarray:
        shift = 2 * (fine - order)
        return np.array(
            [
                np.any(
                    (hp.query_disc(1 << fine, vecs[i], r, inclusive=inclusive, nest=True) >> shift) == pixel
                )
                for i in idx
            ],
            dtype=bool,
        )

    idx = np.arange(len(ra))
    lo = test(18, False, idx)
    hi = test(18, True, idx)
    undecided = idx[lo != hi]
    answer = lo if sure else hi
    if undecided.size:
        answer[undecided] = test(22, not sure, undecided)
    return answer


def check_margins(ours_dir: Path, peer_dir: Path, radius_arcsec: float) -> dict[str, int]:
    """Our margin is exact: every row is outside its partition and within ``radius`` of it,
    and every row hats-import's (pixel-based, wider) margin holds within ``radius`` of a
    partition is in ours. Rows within ~0.1" of the threshold are not judged."""
    import healpy as hp

    ours = read_margin(ours_dir)
    peer = read_margin(peer_dir)
    res = {"rows": 0, "peer_rows": 0, "inside_partition": 0, "too_far": 0, "missing": 0, "not_in_peer": 0}
    for (order, pixel), (ids, ra, dec) in ours.items():
        res["rows"] += len(ids)
        own = hp.ang2pix(1 << order, ra, dec, nest=True, lonlat=True)
        res["inside_partition"] += int((own == pixel).sum())
        res["too_far"] += int((~disc_touches(order, pixel, ra, dec, radius_arcsec, sure=False)).sum())
    for (order, pixel), (ids, ra, dec) in peer.items():
        res["peer_rows"] += len(ids)
        mine = ours.get((order, pixel), (np.empty(0, dtype=np.int64),))[0]
        res["not_in_peer"] += int(np.setdiff1d(mine, ids).size)
        within = disc_touches(order, pixel, ra, dec, radius_arcsec, sure=True)
        res["missing"] += int((within & ~np.isin(ids, mine)).sum())
    return res


def read_all_ids(collection: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    t = pq.read_table(str(collection / NAME / "dataset"), columns=["id"])
    return np.sort(t["id"].to_numpy())


def cone_positions(collection: Path) -> list[list]:
    """(label, ra, dec, radius) of the 1' cones: dense (cluster cores, hundreds of rows),
    sparse (empty-ish sky, one next to the pole) and a partition corner (3-4 partitions
    meet there; the one nearest the centre line of the dense band)."""
    import healpy as hp

    dense = [
        ["dense: cluster (45, 30)", 45.1, 30.05],
        ["dense: cluster (210, -40)", 210.02, -40.03],
        ["dense: cluster (120, -5)", 120.01, -5.01],
    ]
    sparse = [
        ["sparse: (270, 30)", 270.0, 30.0],
        ["sparse: (90, -30)", 90.0, -30.0],
        ["sparse: (180, -60)", 180.0, -60.0],
        ["sparse: near the north pole", 10.0, 89.99],
    ]
    # normal of the synthetic "galactic plane": z tilted by 60 deg about x
    normal = np.array([0.0, -np.sin(np.radians(60.0)), np.cos(np.radians(60.0))])
    best = None
    for line in (collection / NAME / "partition_info.csv").read_text().splitlines()[1:]:
        if not line.strip():
            continue
        order, pixel = (int(x) for x in line.split(",")[:2])
        xyz = hp.boundaries(1 << order, pixel, step=1, nest=True).T
        for v in xyz:
            d = abs(float(v @ normal))
            if best is None or d < best[0]:
                best = (d, order, pixel, v)
    corner = []
    if best is not None:
        _, order, pixel, v = best
        ra, dec = hp.vec2ang(v, lonlat=True)
        corner = [[f"corner: of partition {order}/{pixel}", float(ra[0]), float(dec[0])]]
    return [[label, ra, dec, CONE_ARCSEC] for label, ra, dec in dense + sparse + corner]


# --------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "—"
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 0.01:
        return f"{s * 1e3:.0f} ms"
    if s >= 0.001:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e3:.2f} ms"


def fmt_bytes(b: float | None) -> str:
    return "—" if b is None else f"{b / 2**30:.2f} GiB"


@dataclass
class Row:
    work: str
    ours: float | None
    peer: float | None
    target: str = "—"
    limit: float | None = None  # our value must be below this to meet the target
    unit: str = "s"

    def cells(self) -> list[str]:
        f = fmt_bytes if self.unit == "B" else fmt_seconds
        ratio = "—"
        if self.ours and self.peer:
            ratio = f"{self.peer / self.ours:.1f}x"
        target = self.target
        if self.limit is not None and self.ours is not None:
            target += " ✔" if self.ours < self.limit else " ✘"
        return [self.work, f(self.ours), f(self.peer), ratio, target]


def render(rows: list[Row], markdown: bool) -> str:
    header = ["work", "proxcompute", "LSDB / hats-import", "ratio", "target"]
    body = [r.cells() for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    sep = "-+-".join("-" * w for w in widths)
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), sep]
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def med(xs: list[float] | None) -> float | None:
    return statistics.median(xs) if xs else None


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


class Checks:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def equal(self, what: str, a: Any, b: Any) -> bool:
        ok = bool(np.array_equal(np.asarray(a), np.asarray(b)))
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print(f"  CHECK FAILED: {what}", flush=True)
        return ok

    def cone(self, what: str, got_ids: list[int], truth: tuple[np.ndarray, np.ndarray]) -> bool:
        """Same ids as brute force; points within 1e-6" of the edge may go either way."""
        inside, edge = truth
        got = np.asarray(got_ids, dtype=np.int64)
        diff = np.setxor1d(got, inside)
        ok = len(np.unique(got)) == len(got) and bool(np.isin(diff, edge).all())
        return self.equal(f"{what} == brute force", ok, True)


def step(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--files", type=int, default=4, help="input Parquet files")
    ap.add_argument("--workdir", type=Path, default=Path("bench-data"))
    ap.add_argument("--repeat", type=int, default=5, help="timed repeats of each warm operation")
    ap.add_argument("--ingest-repeat", type=int, default=1, help="runs of each ingest (median reported)")
    ap.add_argument("--fresh-repeat", type=int, default=3, help="fresh processes per tool and catalog")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    ap.add_argument(
        "--skip-ingest", action="store_true", help="reuse catalogs from an earlier run (no ingest timings)"
    )
    ap.add_argument("--render", type=Path, metavar="JSON", help="only print the report of a saved run")
    ap.add_argument("--worker", nargs=2, metavar=("FUNC", "JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(*args.worker)
        return 0
    if args.render:
        report(json.loads(args.render.read_text()), args.markdown)
        return 0

    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    rows_n = args.rows
    checks = Checks()
    raw: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "versions": versions()}
    raw["load_average_start"] = os.getloadavg()
    print(f"load average at start: {raw['load_average_start']}")
    inputs = ensure_input(workdir, rows_n, args.seed, args.files)

    pc_col = workdir / f"pc-{rows_n}"
    hi_col = workdir / f"hi-{rows_n}"
    pc_nomargin = workdir / f"pc-{rows_n}-nomargin"
    hi_nomargin = workdir / f"hi-{rows_n}-nomargin"

    # ---- ingest ---------------------------------------------------------------------
    ingest: dict[str, dict] = {}
    runs: dict[str, list[dict]] = {}
    if not args.skip_ingest:
        plan = [
            ("pc_nomargin", "w_ingest_proxcompute", pc_nomargin, 0.0),
            ("hi_nomargin", "w_ingest_hats_import", hi_nomargin, 0.0),
            ("pc_margin", "w_ingest_proxcompute", pc_col, MARGIN_ARCSEC),
            ("hi_margin", "w_ingest_hats_import", hi_col, MARGIN_ARCSEC),
        ]
        for rep in range(args.ingest_repeat):
            for key, func, out, margin in plan:  # interleaved: noise hits both tools alike
                step(f"ingest {key} -> {out} (run {rep + 1} of {args.ingest_repeat})")
                try:
                    r = run_worker(func, inputs=inputs, out=str(out), margin=margin)
                except RuntimeError as exc:
                    print(f"  FAILED: {exc}", flush=True)
                    ingest.setdefault(key, {"error": str(exc)})
                    continue
                print(
                    f"  {r['seconds']:.1f} s (process {r['wall']:.1f} s), {r['partitions']} partitions "
                    f"{r['orders']}, margin rows {r['margin_rows']:,}, "
                    f"peak tree RSS {fmt_bytes(r['peak_tree_rss'])}, stages {_fmt_stages(r.get('stages'))}",
                    flush=True,
                )
                checks.equal(f"{key}: rows == input", r["rows"], rows_n)
                runs.setdefault(key, []).append(r)
        for key, rs in runs.items():
            ingest[key] = median_run(rs)
        for key in ("pc_nomargin", "hi_nomargin"):
            if "error" in ingest[key]:
                continue
            out = pc_nomargin if key.startswith("pc") else hi_nomargin
            checks.equal(f"{key}: every input id exactly once", read_all_ids(out), np.arange(rows_n))
            shutil.rmtree(out, ignore_errors=True)  # only its timing was needed
        raw["ingest"] = ingest
        raw["ingest_runs"] = runs

    have_pc = (pc_col / "collection.properties").exists()
    have_hi = (hi_col / "collection.properties").exists()
    for col, ok in ((pc_col, have_pc), (hi_col, have_hi)):
        if ok:
            checks.equal(f"{col.name}: every input id exactly once", read_all_ids(col), np.arange(rows_n))
        else:
            print(f"  missing catalog {col}: its queries are skipped", flush=True)

    if have_pc and have_hi:
        step("checking the margins")
        m = check_margins(pc_col / f"{NAME}_10arcs", hi_col / f"{NAME}_10arcs", MARGIN_ARCSEC)
        raw["margin_check"] = m
        print(f"  {m}", flush=True)
        checks.equal("our margin: no row inside its own partition", m["inside_partition"], 0)
        checks.equal('our margin: no row farther than 10" from its partition', m["too_far"], 0)
        checks.equal("our margin: no row of hats-import's margin within 10\" missing", m["missing"], 0)
        checks.equal("our margin is a subset of hats-import's (same partitions)", m["not_in_peer"], 0)

    # ---- reference ------------------------------------------------------------------
    step("loading the input for brute-force answers")
    ref = Reference.load(inputs)
    cones = cone_positions(pc_col if have_pc else hi_col)
    truth = {c[0]: ref.cone(*c[1:]) for c in cones}
    count_truth = int((ref.mag < 20.0).sum())
    for label, _, _, _ in cones:
        print(f"  {label}: {truth[label][0].size} rows in the cone", flush=True)

    # ---- warm sessions ----------------------------------------------------------------
    sessions: dict[tuple[str, str], dict] = {}
    cats = [("pc", pc_col)] if have_pc else []
    cats += [("hi", hi_col)] if have_hi else []
    for cat_key, col in cats:
        for tool in ("proxcompute", "lsdb", "pyarrow"):
            step(f"warm session: {tool} on {col.name}")
            try:
                res = run_worker("w_session", tool=tool, catalog=str(col), cones=cones, repeat=args.repeat)
            except RuntimeError as exc:
                print(f"  FAILED: {exc}", flush=True)
                sessions[(tool, cat_key)] = {"error": str(exc)}
                continue
            sessions[(tool, cat_key)] = res
            checks.equal(f"{tool} on {col.name}: count(mag < 20)", res["count_value"], count_truth)
            for c in res.get("cones", []):
                checks.cone(f"{tool} on {col.name}: cone {c['label']}", c["ids"], truth[c["label"]])
        ours, peer = sessions.get(("proxcompute", cat_key), {}), sessions.get(("lsdb", cat_key), {})
        for a, b in zip(ours.get("cones", []), peer.get("cones", []), strict=False):
            checks.equal(f"proxcompute == LSDB on {col.name}: cone {a['label']}", a["ids"], b["ids"])
    raw["sessions"] = {f"{t}@{c}": v for (t, c), v in sessions.items()}

    # ---- fresh processes ----------------------------------------------------------------
    fresh: dict[tuple[str, str], list[dict]] = {}
    fresh_cones = [c for c in cones if c[0].startswith("dense")][:1] + [
        c for c in cones if c[0].startswith("sparse")
    ][:1]
    for cat_key, col in cats:
        for i in range(args.fresh_repeat):
            for tool in ("proxcompute", "lsdb"):  # interleaved: noise hits both alike
                label, ra, dec, r = fresh_cones[i % len(fresh_cones)]
                step(f"fresh process: {tool} on {col.name}, {label}")
                try:
                    res = fresh_cone(tool, str(col), ra, dec, r)
                except RuntimeError as exc:
                    print(f"  FAILED: {exc}", flush=True)
                    continue
                print(f"  {res['wall']:.2f} s (inside: {res['inner']:.2f} s)", flush=True)
                checks.cone(f"fresh {tool} on {col.name}: cone {label}", res["ids"], truth[label])
                fresh.setdefault((tool, cat_key), []).append(res)
    raw["fresh"] = {f"{t}@{c}": v for (t, c), v in fresh.items()}

    # ---- the report ---------------------------------------------------------------------
    raw["cats"] = [k for k, _ in cats]
    raw["checks"] = {"passed": checks.passed, "failed": checks.failures}
    raw["load_average_end"] = os.getloadavg()
    (workdir / f"results-{rows_n}.json").write_text(json.dumps(raw, indent=1, default=str))
    report(raw, args.markdown)
    return 1 if checks.failures else 0


def report(raw: dict[str, Any], markdown: Path | None) -> None:
    """Print the table (and write it as Markdown) from the raw results of a run."""

    def by_key(d: dict[str, Any]) -> dict[tuple[str, str], Any]:
        return {tuple(k.split("@")): v for k, v in d.items()}

    ingest = raw.get("ingest", {})
    sessions, fresh = by_key(raw.get("sessions", {})), by_key(raw.get("fresh", {}))
    cats = raw.get("cats") or [c for c in ("pc", "hi") if any(k[1] == c for k in sessions)]
    table = build_table(ingest, sessions, fresh, cats, raw.get("margin_check"))
    a = raw["args"]
    print()
    print(
        f"{int(a['rows']):,} rows, max_rows {MAX_ROWS:,}, margin {MARGIN_ARCSEC:g}\", 1' cones, "
        f"repeat {a['repeat']}, proxcompute at {raw['versions'].get('git', '?')}"
    )
    print(render(table, markdown=False))
    print("ratio = LSDB or hats-import time / proxcompute time (> 1: proxcompute faster)")
    print(
        f"load average (1, 5, 15 min): {_loads(raw.get('load_average_start'))} at start, "
        f"{_loads(raw.get('load_average_end'))} at the end"
    )
    checks = raw.get("checks", {"passed": 0, "failed": []})
    print(f"checks: {checks['passed']} passed, {len(checks['failed'])} failed")
    for f in checks["failed"]:
        print(f"  FAILED: {f}")
    details = ingest_details(ingest)
    if raw.get("margin_check"):
        m = raw["margin_check"]
        details.append(
            f"margin check: proxcompute's {m['rows']:,} margin rows: {m['inside_partition']} inside their own "
            f"partition, {m['too_far']} farther than 10\" from it; of hats-import's {m['peer_rows']:,} margin rows "
            f'(whole neighbour pixels), {m["missing"]} within 10" are missing from ours; '
            f"{m['not_in_peer']} of ours are not in hats-import's (decided on 0.05\" HEALPix sub-pixels)"
        )
    details.append(f"checks: {checks['passed']} passed, {len(checks['failed'])} failed")
    print()
    print("\n".join(details))
    if markdown:
        md = render(table, markdown=True) + "\n\n" + "\n".join(f"- {d}" for d in details)
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(md + "\n")
        print(f"markdown table written to {markdown}")


def _loads(x) -> str:
    return "?" if not x else " / ".join(f"{v:.1f}" for v in x)


def build_table(ingest, sessions, fresh, cats, margin_check=None) -> list[Row]:
    rows: list[Row] = []

    def ing(key: str, what: str = "seconds") -> float | None:
        r = ingest.get(key)
        return None if (r is None or "error" in r) else r[what]

    def stage(key: str, name: str) -> float | None:
        r = ingest.get(key)
        return None if (r is None or "error" in r) else r.get("stages", {}).get(name)

    if ingest:
        rows += [
            Row("ingest, no margin", ing("pc_nomargin"), ing("hi_nomargin"), "< 10 s", 10.0),
            Row(
                '10" margin (its stage in the run with margin)',
                stage("pc_margin", "margin"),
                stage("hi_margin", "margin"),
                "< 3 s, exact" + _exactness(margin_check),
                3.0 if _exactness(margin_check) == "" else -1.0,
            ),
            Row('ingest + 10" margin', ing("pc_margin"), ing("hi_margin")),
            Row(
                "ingest + margin: peak RSS, whole process tree",
                ing("pc_margin", "peak_tree_rss"),
                ing("hi_margin", "peak_tree_rss"),
                unit="B",
            ),
            Row(
                "ingest + margin: peak RSS, largest process",
                ing("pc_margin", "peak_process_rss"),
                ing("hi_margin", "peak_process_rss"),
                unit="B",
            ),
        ]
    names = {"pc": "proxcompute-written", "hi": "hats-import-written"}

    def sess(tool: str, cat: str) -> dict:
        r = sessions.get((tool, cat), {})
        return {} if "error" in r else r

    for cat_key in cats:
        cname = names[cat_key]
        ours, peer, raw_pa = sess("proxcompute", cat_key), sess("lsdb", cat_key), sess("pyarrow", cat_key)
        rows.append(
            Row(f"open a catalog ({cname})", med(ours.get("open")), med(peer.get("open")), "< 50 ms", 0.05)
        )
        for kind, what in (("dense", "dense"), ("sparse", "sparse"), ("corner", "on a partition corner")):
            o = _cone_median(ours, kind)
            p = _cone_median(peer, kind)
            if o is not None or p is not None:
                rows.append(Row(f"1' cone, warm, {what} ({cname})", o, p, "< 5 ms", 0.005))
        fo = [r["wall"] for r in fresh.get(("proxcompute", cat_key), [])]
        fp = [r["wall"] for r in fresh.get(("lsdb", cat_key), [])]
        rows.append(Row(f"1' cone, fresh process ({cname})", med(fo), med(fp), "< 1 s", 1.0))
        pa_t = med(raw_pa.get("count"))
        rows.append(
            Row(
                f"count(mag < 20) ({cname})",
                med(ours.get("count")),
                med(peer.get("count")),
                f"< 2x raw pyarrow = {fmt_seconds(2 * pa_t)}" if pa_t else "within 2x raw pyarrow",
                2 * pa_t if pa_t else None,
            )
        )
        rows.append(Row(f"reference: raw pyarrow read(mag) + count ({cname})", pa_t, None))
    return rows


def _exactness(m: dict | None) -> str:
    if not m:
        return " (not checked)"
    wrong = m["inside_partition"] + m["too_far"] + m["missing"]
    return "" if wrong == 0 else f" (NOT exact: {wrong} wrong rows)"


def ingest_details(ingest: dict[str, dict]) -> list[str]:
    """Partitions, orders, margin rows and (for proxcompute) seconds per stage."""
    names = {
        "pc_nomargin": "proxcompute, no margin",
        "pc_margin": 'proxcompute, 10" margin',
        "hi_nomargin": "hats-import, no margin",
        "hi_margin": 'hats-import, 10" margin',
    }
    out = []
    for key, label in names.items():
        r = ingest.get(key)
        if r is None:
            continue
        if "error" in r:
            out.append(f"{label}: FAILED ({r['error'].strip().splitlines()[-1][:200]})")
            continue
        orders = ", ".join(f"{n} at order {o}" for o, n in r["orders"].items())
        runs = f" (median of {r['runs']} runs)" if r.get("runs", 1) > 1 else ""
        line = (
            f"{label}{runs}: {r['seconds']:.1f} s in the call ({r['wall']:.1f} s with interpreter start), "
            f"{r['partitions']} partitions ({orders}), {r['margin_rows']:,} margin rows, "
            f"peak RSS {fmt_bytes(r['peak_tree_rss'])} (process tree) / "
            f"{fmt_bytes(r['peak_process_rss'])} (largest process)"
        )
        if r.get("stages"):
            line += "; stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["stages"].items() if v >= 0.05)
        out.append(line)
    return out


def _cone_median(session: dict, kind: str) -> float | None:
    """Median over positions of each position's median time."""
    per_pos = [statistics.median(c["times"]) for c in session.get("cones", []) if c["label"].startswith(kind)]
    return statistics.median(per_pos) if per_pos else None


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}

    def git(*a: str) -> str:
        return subprocess.run(
            ["git", "-C", str(HERE.parent), *a], capture_output=True, text=True
        ).stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--", "src")
        out["git"] = git("rev-parse", "--short", "HEAD") + (" + uncommitted changes in src/" if dirty else "")
    except OSError:
        out["git"] = "?"

    for pkg in (
        "proxcompute",
        "lsdb",
        "hats",
        "hats-import",
        "pyarrow",
        "dask",
        "distributed",
        "pandas",
        "numpy",
        "numba",
    ):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "?"
    return out


if __name__ == "__main__":
    sys.exit(main())
