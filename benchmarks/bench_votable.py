"""VOTable writer benchmark: proxcompute.formats against astropy on the same table, in one run.

    .venv/bin/python benchmarks/bench_votable.py [--rows 1000000] [--repeat 3] [--strings]

The table is ``--rows`` seeded rows of 5 columns: ``source_id`` (int64), ``ra`` and ``dec``
(float64), ``mag`` (float32, 5% null) and ``flag`` (int16, 5% null); ``--strings`` adds a sixth
column ``name`` (ASCII strings of 10 to 20 characters, 1% null, 1% non-ASCII). Each writer
writes BINARY2 and TABLEDATA into memory; the table prints the median of ``--repeat`` runs and
the document sizes. astropy is timed from an ``astropy.table.Table`` built beforehand (its
conversion is not counted). Every document is read back with astropy and checked against the
input (values and masks), so a fast wrong answer is a failure (exit status 1).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import warnings

import numpy as np
import pyarrow as pa


def make_table(rows: int, strings: bool, seed: int = 42) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols = {
        "source_id": pa.array(rng.integers(0, 2**62, rows)),
        "ra": pa.array(rng.uniform(0, 360, rows)),
        "dec": pa.array(np.degrees(np.arcsin(rng.uniform(-1, 1, rows)))),
        "mag": pa.array(rng.normal(20, 2, rows).astype(np.float32), mask=rng.random(rows) < 0.05),
        "flag": pa.array(rng.integers(0, 1000, rows).astype(np.int16), mask=rng.random(rows) < 0.05),
    }
    if strings:
        lengths = rng.integers(10, 21, rows)
        alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
        data = alphabet[rng.integers(0, alphabet.size, int(lengths.sum()))]
        offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
        names = pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))
        names = names.to_pylist()
        for i in np.flatnonzero(rng.random(rows) < 0.01):
            names[i] = "é" + names[i]
        cols["name"] = pa.array(names, mask=rng.random(rows) < 0.01)
    return pa.table(cols)


def astropy_votable(table: pa.Table):
    from astropy.io.votable import from_table
    from astropy.table import MaskedColumn, Table

    at = Table()
    for name in table.column_names:
        col = table[name].combine_chunks()
        mask = col.is_null().to_numpy(zero_copy_only=False)
        if pa.types.is_string(col.type):
            values = np.array(col.fill_null("").to_pylist(), dtype=object)
        else:
            values = col.fill_null(0).to_numpy(zero_copy_only=False)
        at[name] = MaskedColumn(values, mask=mask) if mask.any() else values
    return from_table(at)


def time_ours(table: pa.Table, fmt: str) -> tuple[float, bytes]:
    from proxcompute.formats import write_table

    out = io.BytesIO()
    t0 = time.perf_counter()
    write_table(table.to_batches(max_chunksize=100_000), table.schema, out, fmt)
    return time.perf_counter() - t0, out.getvalue()


def time_astropy(votable, serialization: str) -> tuple[float, bytes]:
    out = io.BytesIO()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        votable.to_xml(out, tabledata_format=serialization.lower())
    return time.perf_counter() - t0, out.getvalue()


def check(table: pa.Table, data: bytes) -> str | None:
    """Read a document back with astropy; a description of the first mismatch, or None."""
    from astropy.io.votable import parse

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = parse(io.BytesIO(data)).get_first_table().array
    if len(rec) != table.num_rows:
        return f"{len(rec)} rows read back, {table.num_rows} written"
    for name in table.column_names:
        col = table[name].combine_chunks()
        null = col.is_null().to_numpy(zero_copy_only=False)
        got = rec[name]
        if pa.types.is_string(col.type):
            want = col.fill_null("").to_pylist()
            if [str(v) for v in np.ma.getdata(got).tolist()] != want:
                return f"column {name}: strings differ"
            continue
        want = col.fill_null(0).to_numpy(zero_copy_only=False)
        if not np.array_equal(np.ma.getmaskarray(got), null):
            return f"column {name}: masks differ"
        if not np.array_equal(np.ma.getdata(got)[~null], want[~null]):
            return f"column {name}: values differ"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--strings", action="store_true", help="add a string column")
    args = parser.parse_args(argv)

    table = make_table(args.rows, args.strings)
    votable = astropy_votable(table)
    print(f"{args.rows:,} rows x {table.num_columns} columns ({', '.join(map(str, table.schema.types))})")
    print(f"{'serialization':<14}{'writer':<14}{'median s':>10}{'min s':>9}{'MB':>9}{'speed-up':>10}  check")
    failed = False
    for serialization, fmt in (("BINARY2", "votable/b2"), ("TABLEDATA", "votable/td")):
        results = {}
        for writer in ("proxcompute", "astropy"):
            times, data = [], b""
            for _ in range(args.repeat):
                if writer == "proxcompute":
                    seconds, data = time_ours(table, fmt)
                else:
                    seconds, data = time_astropy(votable, serialization)
                times.append(seconds)
            problem = check(table, data)
            failed |= problem is not None
            results[writer] = (statistics.median(times), min(times), len(data), problem)
        base = results["astropy"][0]
        for writer, (median, best, size, problem) in results.items():
            speedup = f"{base / median:.1f}x" if writer == "proxcompute" else ""
            print(
                f"{serialization:<14}{writer:<14}{median:>10.3f}{best:>9.3f}{size / 1e6:>9.1f}{speedup:>10}"
                f"  {problem or 'ok'}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
