"""Id search and proper-motion crossmatch benchmark: proxcompute vs LSDB on the same catalog.

    .venv/bin/python benchmarks/bench_ids.py [--rows 10000000] [--workdir bench-data]
        [--repeat 5] [--left-rows 1000000] [--markdown PATH] [--no-lsdb]

1. A seeded non-uniform survey of ``--rows`` rows (``proxcompute.synthetic``, ids 0..N-1) is
   ingested once with a 10" margin and an index catalog of ``id`` (cached in the workdir);
   the index build time is timed on its own too (``proxcompute index``).
2. ``id_search`` of 1, 1,000 and 10,000 random ids: the first call in the process ("cold":
   footers not yet cached) and the median of ``--repeat`` warm calls, for proxcompute and
   for LSDB 0.11's ``id_search`` on the same collection and the same index catalog, in this
   one process. Both answers are checked against the ids asked for. The same ids as SQL
   (``SELECT * FROM ids WHERE id IN (...)``, compiled afresh each time) is timed too.
3. Proper-motion crossmatch: ``--left-rows`` survey rows moved back to epoch 1991.25 with
   random proper motions (sigma 200 mas/yr, 1% at 2"/yr), matched within 1" to the survey
   at 2016 with ``proper_motion=``; the plain crossmatch of the same rows at 2016 is the
   baseline. Throughput in left rows per second (medians of ``--repeat``).

Prints a Markdown table (and writes it to ``--markdown``) with the machine load (uptime).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

CHUNK = 2_000_000


def _survey(workdir: Path, rows: int) -> Path:
    import proxcompute as pc

    coll = workdir / f"ids_{rows}"
    if (coll / "collection.properties").exists() and (coll / f"ids_{rows}_id_index").exists():
        return coll
    raw = workdir / f"ids_raw_{rows}"
    raw.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, rows, CHUNK)):
        f = raw / f"part{k:04d}.parquet"
        if not f.exists():
            n = min(CHUNK, rows - start)
            pc.generate_catalog(n, seed=1000 + k, id_offset=start).to_parquet(f, index=False)
    t = time.perf_counter()
    pc.ingest(
        raw, coll, name=coll.name, max_rows=1_000_000, margin_arcsec=10, overwrite=True, show_progress=False
    )
    print(f"ingest {rows:,} rows: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    from proxcompute.ingest.index import build_index

    res = build_index(coll, "id", show_progress=False)
    print(f"index build: {res}", file=sys.stderr)
    return coll


def _median_ms(fn, repeat: int) -> tuple[float, float, object]:
    t = time.perf_counter()
    out = fn()
    cold = (time.perf_counter() - t) * 1e3
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1e3)
    return cold, statistics.median(times), out


def bench_id_search(coll: Path, rows: int, repeat: int, lsdb_too: bool = True) -> list[tuple]:
    import proxcompute as pc

    rng = np.random.default_rng(7)
    ours = pc.open_catalog(coll)
    if lsdb_too:
        import lsdb

        theirs = lsdb.open_catalog(coll)
    out = []
    for n in (1, 1_000, 10_000):
        ids = [int(v) for v in rng.choice(rows, n, replace=False)]
        c1, w1, got = _median_ms(lambda ids=ids: ours.id_search({"id": ids}).compute(), repeat)
        assert sorted(got["id"]) == sorted(ids), "proxcompute id_search answer differs"
        c2 = w2 = float("nan")
        if lsdb_too:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c2, w2, theirs_got = _median_ms(
                    lambda ids=ids: _quiet(lambda: theirs.id_search(values={"id": ids}).compute()), repeat
                )
            assert sorted(theirs_got["id"]) == sorted(ids), "LSDB id_search answer differs"
        query = f"SELECT * FROM ids WHERE id IN ({', '.join(map(str, ids))})"
        _c3, w3, sql_got = _median_ms(lambda query=query: pc.sql(query, {"ids": ours}).compute(), repeat)
        assert sorted(sql_got["id"]) == sorted(ids), "SQL WHERE id IN answer differs"
        parts = len(ours.id_search({"id": ids}).partitions)
        out.append((n, parts, len(ours.partitions), c1, w1, c2, w2, w3))
    return out


def _quiet(fn):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # LSDB prints "Searching for id=[...]"
        return fn()


def bench_proper_motion(coll: Path, left_rows: int, repeat: int) -> tuple:
    import proxcompute as pc
    from proxcompute.ops.proper_motion import apply_space_motion

    survey = pc.open_catalog(coll)
    rng = np.random.default_rng(3)
    sample = (
        survey.where(f"id % {max(1, len(survey) // left_rows)} == 0")[["id", "ra", "dec"]]
        .compute()
        .head(left_rows)
    )
    n = len(sample)
    pmra, pmdec = rng.normal(0, 200, n), rng.normal(0, 200, n)
    fast = rng.random(n) < 0.01
    pmra[fast] = 2000.0
    ra0, dec0 = apply_space_motion(sample.ra.to_numpy(), sample.dec.to_numpy(), pmra, pmdec, 1991.25 - 2016.0)
    old = sample.assign(ra=ra0, dec=dec0, pmra=pmra, pmdec=pmdec)
    now = sample
    pm = pc.ProperMotion(from_epoch=1991.25, to_epoch=2016.0)
    left_old = pc.from_dataframe(old, name="old")
    left_now = pc.from_dataframe(now, name="now")
    _c, plain_ms, plain = _median_ms(lambda: left_now.crossmatch(survey, radius_arcsec=1.0).count(), repeat)
    _c, pm_ms, moved = _median_ms(
        lambda: left_old.crossmatch(survey, radius_arcsec=1.0, proper_motion=pm).count(), repeat
    )
    return n, plain, moved, plain_ms, pm_ms


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--workdir", type=Path, default=Path("bench-data"))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--left-rows", type=int, default=1_000_000)
    p.add_argument("--markdown", type=Path)
    p.add_argument("--no-lsdb", action="store_true", help="time proxcompute only (LSDB's columns show nan)")
    a = p.parse_args(argv)
    os.environ.setdefault("PROXCOMPUTE_PROGRESS", "0")
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    coll = _survey(a.workdir, a.rows)
    ids = bench_id_search(coll, a.rows, a.repeat, lsdb_too=not a.no_lsdb)
    n, plain, moved, plain_ms, pm_ms = bench_proper_motion(coll, a.left_rows, a.repeat)
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"`id_search` on {a.rows:,} rows ({ids[0][2]} partitions), index catalog of `id`; ms, warm = median of {a.repeat}",
        "",
        "| ids | partitions read | proxcompute cold | proxcompute warm | SQL `WHERE id IN` warm | LSDB cold "
        "| LSDB warm | LSDB / ours (warm) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n_ids, parts, _total, c1, w1, c2, w2, w3 in ids:
        lines.append(
            f"| {n_ids:,} | {parts} | {c1:,.0f} | {w1:,.0f} | {w3:,.0f} | {c2:,.0f} | {w2:,.0f} | {w2 / w1:.1f}x |"
        )
    lines += [
        "",
        f'Crossmatch of {n:,} left rows within 1" against the {a.rows:,}-row survey (median of {a.repeat})',
        "",
        "| crossmatch | matches | seconds | left rows/s |",
        "|---|---:|---:|---:|",
        f"| plain (left at 2016) | {plain:,} | {plain_ms / 1e3:.2f} | {n / (plain_ms / 1e3):,.0f} |",
        f"| proper motion (left at 1991.25 moved to 2016) | {moved:,} | {pm_ms / 1e3:.2f} | {n / (pm_ms / 1e3):,.0f} |",
        "",
        f"Load before: `{load_before}`; after: `{load_after}`",
    ]
    text = "\n".join(lines)
    print(text)
    if a.markdown:
        a.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
