"""What a plan will read: the row groups of each touched partition (footers only)."""

from __future__ import annotations

from proxcompute.errors import CorruptPartitionError
from proxcompute.execute.reader import footer, selected_row_groups
from proxcompute.plan.crossmatch import CrossmatchSource
from proxcompute.plan.explain import PartitionRead, ReadSummary
from proxcompute.plan.join import JoinSource
from proxcompute.plan.nodes import PlanNode, find_scan
from proxcompute.plan.source import MemorySource, StoredSource
from proxcompute.storage.layout import dataset_dir

__all__ = ["describe_reads"]

_MAX_SUMMARY_BYTES = 16 * 1024 * 1024


def describe_reads(optimized: PlanNode) -> ReadSummary:
    """Row groups each touched partition will read; opens only those partitions' footers."""
    scan = find_scan(optimized)
    src = scan.source
    if isinstance(src, (CrossmatchSource, JoinSource)):  # the left side's reads, for the kept partitions
        keep = set(scan.partitions)
        left = describe_reads(src.left)
        return ReadSummary(tuple(r for r in left.partitions if r.pixel in keep), len(src.pixels), None)
    if not isinstance(src, (StoredSource, MemorySource)):  # a gathered query: its inputs explain their reads
        return ReadSummary((), len(src.pixels), None)
    reads = []
    for pixel in scan.partitions:
        if isinstance(src, StoredSource):
            path = src.partition_path(pixel)
            n = groups = rows = 0
            for f in src.meta.partition_files(pixel):  # several for a directory partition
                md = footer(f)
                n += len(selected_row_groups(md, scan.ranges, scan.predicate, src.meta))
                groups += md.num_row_groups
                rows += md.num_rows
            loc = str(path.relative_to(src.root)) if path.is_relative_to(src.root) else str(path)
            reads.append(PartitionRead(pixel, n, groups, rows, loc))
        elif isinstance(src, MemorySource):
            rows = src.partition_rows(pixel)
            reads.append(PartitionRead(pixel, int(rows > 0), 1, rows, "in memory"))
    return ReadSummary(tuple(reads), len(src.pixels), _catalog_row_groups(src))


def _catalog_row_groups(src) -> int | None:
    if isinstance(src, MemorySource):
        return len(src.pixels)
    if src.meta.is_remote:  # _metadata holds every footer: not worth fetching for a total
        return None
    summary = dataset_dir(src.root) / "_metadata"
    try:
        if summary.stat().st_size > _MAX_SUMMARY_BYTES:
            return None
        return footer(summary).num_row_groups
    except (OSError, CorruptPartitionError):
        return None
