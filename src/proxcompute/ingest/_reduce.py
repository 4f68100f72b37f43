"""The reduce stage of an ingest: one task per file group of the split, run on Dask workers.

The plan cuts the partitions (in sky order) into *bins* of at most ``BIN_ROWS`` rows (or one
partition, when a single one is bigger) and the bins into about ``FILE_GROUPS`` *groups*.
The split writes each group's rows of an input chunk to its own (compressed) file, so a
group task reads only its group's files: bin after bin it gathers the bin's rows, sorts them
by ``_healpix_29`` once, and hands each partition its slice
(:func:`proxcompute.ingest._tasks.reduce_task` writes the file and the partition's marker).
When every partition of the group is written, the group's files are deleted: the staging
shrinks while the catalog grows, so the ingest's peak disk is about input + catalog rather
than input + staging + catalog.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from proxcompute.errors import IngestError
from proxcompute.ingest import _tasks
from proxcompute.ingest._staging import read_json, task_marker
from proxcompute.ingest._tasks import ReduceItem, deserialize_schema
from proxcompute.sky.healpix import INDEX_ORDER
from proxcompute.storage.layout import PartitionPixel

__all__ = [
    "BIN_ROWS",
    "FILE_GROUPS",
    "ReduceBin",
    "ReduceGroup",
    "plan_bins",
    "reduce_group_task",
    "reduce_groups",
]

BIN_ROWS = 2_000_000
"""Most rows a reduce task holds at once (unless one partition is bigger)."""
FILE_GROUPS = 64
"""About how many groups (files per input chunk, reduce tasks) the partitions are cut into."""


@dataclass(frozen=True)
class ReduceBin:
    """Consecutive partitions whose rows are gathered and sorted together."""

    items: tuple[ReduceItem, ...]
    pieces: tuple[tuple[str, tuple[int, ...]], ...]
    """``(split file, batch numbers)`` pairs holding the bin's rows."""


@dataclass(frozen=True)
class ReduceGroup:
    """One reduce task: some bins, and the split files that only they read."""

    id: str
    bins: tuple[ReduceBin, ...]
    files: tuple[str, ...]


def plan_bins(rows: list[int], bin_rows: int | None = None, groups: int | None = None) -> tuple[list, list]:
    """``(bins, groups)``: ``[first, end)`` ranges of partitions and of bins (both consecutive);
    ``bin_rows`` and ``groups`` default to ``BIN_ROWS`` and ``FILE_GROUPS``."""
    bin_rows = BIN_ROWS if bin_rows is None else bin_rows
    groups = FILE_GROUPS if groups is None else groups
    bins: list[list[int]] = []
    start, total = 0, 0
    for k, n in enumerate(rows):
        if k > start and total + n > bin_rows:
            bins.append([start, k])
            start, total = k, 0
        total += n
    if rows:
        bins.append([start, len(rows)])
    bin_totals = [sum(rows[a:b]) for a, b in bins]
    per_group = max(sum(bin_totals) / max(groups, 1), 1)
    out: list[list[int]] = []
    start, total = 0, 0
    for k, n in enumerate(bin_totals):
        if k > start and total + n > per_group:
            out.append([start, k])
            start, total = k, 0
        total += n
    if bins:
        out.append([start, len(bins)])
    return bins, out


def reduce_groups(
    plan: dict[str, Any], partitions: list[PartitionPixel], splits: list[dict[str, Any]]
) -> list[ReduceGroup]:
    """The reduce tasks of a plan, from the split tasks' results."""
    pieces: list[list[tuple[str, tuple[int, ...]]]] = [[] for _ in plan["bins"]]
    files: list[list[str]] = [[] for _ in plan["groups"]]
    group_of_bin = {}
    for g, (b0, b1) in enumerate(plan["groups"]):
        for b in range(b0, b1):
            group_of_bin[b] = g
    for s in splits:
        for key, batches in s["pieces"].items():
            b = int(key)
            pieces[b].append((s["files"][str(group_of_bin[b])], tuple(int(x) for x in batches)))
        for g, path in s["files"].items():
            files[int(g)].append(path)
    expected = [int(n) for *_, n in plan["partitions"]]
    items = [
        ReduceItem(id=f"p{k:06d}", order=p.order, pixel=p.pixel, expected_rows=n)
        for k, (p, n) in enumerate(zip(partitions, expected, strict=True))
    ]
    bins = [ReduceBin(tuple(items[a:b]), tuple(pieces[k])) for k, (a, b) in enumerate(plan["bins"])]
    return [
        ReduceGroup(id=f"g{g:04d}", bins=tuple(bins[b0:b1]), files=tuple(files[g]))
        for g, (b0, b1) in enumerate(plan["groups"])
    ]


def reduce_group_task(group: ReduceGroup, *, work: str, catalog_dir: str, schema: str) -> dict[str, Any]:
    """Write every partition of ``group`` (skipping those an earlier run wrote), then delete
    the group's split files. Returns the rows per partition, in plan order."""
    out_schema = deserialize_schema(schema)
    work_dir = Path(work)
    readers: dict[str, Any] = {}
    rows: list[int] = []
    for b in group.bins:
        done = [read_json(task_marker(work_dir, "reduce", item.id)) for item in b.items]
        if all(d is not None for d in done):
            rows.extend(int(d["rows"]) for d in done)
            continue
        batches = []
        for path, numbers in b.pieces:
            if path not in readers:
                readers[path] = pa.ipc.open_file(pa.memory_map(path))
            batches.extend(readers[path].get_batch(i) for i in numbers)
        table = pa.Table.from_batches(batches, schema=out_schema).combine_chunks()
        del batches
        idx = table.column(0).to_numpy()
        order = np.argsort(idx)
        table = table.take(order)
        idx = idx[order]
        del order
        starts = np.array([it.pixel << (2 * (INDEX_ORDER - it.order)) for it in b.items], dtype=np.int64)
        ends = np.array([(it.pixel + 1) << (2 * (INDEX_ORDER - it.order)) for it in b.items], dtype=np.int64)
        lo, hi = np.searchsorted(idx, starts, side="left"), np.searchsorted(idx, ends, side="left")
        if int((hi - lo).sum()) != table.num_rows:
            raise IngestError(
                f"partitions {PartitionPixel(b.items[0].order, b.items[0].pixel)} to "
                f"{PartitionPixel(b.items[-1].order, b.items[-1].pixel)} hold rows outside their "
                "pixels: an input file changed during the ingest"
            )
        for item, d, a, z in zip(b.items, done, lo, hi, strict=True):
            if d is None:  # looked up at call time: tests wrap the per-partition task
                d = _tasks.reduce_task(item, work=work, catalog_dir=catalog_dir, schema=schema,
                                       table=table.slice(int(a), int(z - a)))  # fmt: skip
            rows.append(int(d["rows"]))
        del table
    readers.clear()
    for path in group.files:  # every partition reading them is written: release the space
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return _tasks._finish(work_dir, "group", group.id, {"id": group.id, "rows": rows})
