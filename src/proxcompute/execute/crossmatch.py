"""Read one partition of a crossmatch: left rows x aligned right rows (+ margin).

For each piece of the left partition (:func:`proxcompute.ops.crossmatch.align_pixel`):

* facing a right partition ``R`` whose margin is wide enough: right rows are ``R``'s rows
  plus ``R``'s margin rows (disjoint sets, merged in ``_healpix_29`` order);
* facing a gap of the right catalog, or when the margin is missing or too narrow and
  ``ensure_margin`` was given: right rows are read from every right partition that meets a
  cone around the piece (its pixel's circumscribed circle widened by the radius), with
  row-group pruning, so edge matches are never lost;
* with proper motion, the rows whose moved position is still inside the right partition, or
  that move less than the margin's slack (radius plus displacement within the margin), are
  matched against the partition plus its margin as above; the few that leave it against the
  right rows around their moved positions only (their discs of the radius, as order-29
  ranges: only the right partitions and row groups holding those cells are read).
"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa

from proxcompute.execute.partition import run_partition
from proxcompute.execute.reader import footer, register_derived_source
from proxcompute.execute.split_read import SplitRead, read_split, splittable
from proxcompute.kernels._jit import numba_loaded
from proxcompute.kernels.crossmatch import load as load_kernels
from proxcompute.ops.crossmatch import (
    align_pixel,
    concat_right,
    left_displacements_deg,
    match_tables,
    moved_positions,
    pixel_area_deg2,
)
from proxcompute.ops.filters import filter_by_ranges
from proxcompute.plan.crossmatch import CrossmatchSource
from proxcompute.plan.ids import coarsen_ranges, restrict_to_ranges
from proxcompute.plan.nodes import PlanNode, RegionFilter, Scan, find_scan
from proxcompute.plan.optimizer import optimize
from proxcompute.plan.source import StoredSource
from proxcompute.sky import INDEX_COLUMN, Cone, radec_to_healpix29
from proxcompute.sky.healpix import discs_cover_ranges, max_pixel_radius_deg, pixel_center
from proxcompute.storage import PartitionPixel

__all__ = ["crossmatch_partition", "neighbourhood_rows"]


def _slice(table: pa.Table, piece: PartitionPixel) -> pa.Table:
    idx = table.column(INDEX_COLUMN).to_numpy()
    lo, hi = piece.healpix29_range
    a, b = np.searchsorted(idx, [lo, hi], side="left")
    return table.slice(int(a), int(b - a))


def neighbourhood_rows(right: PlanNode, piece: PartitionPixel, radius_deg: float) -> pa.Table | None:
    """All right rows that can lie within ``radius_deg`` of pixel ``piece`` (a superset)."""
    ra, dec = pixel_center(piece.order, np.array([piece.pixel]))
    reach_arcsec = (max_pixel_radius_deg(piece.order) * 1.01 + radius_deg) * 3600.0
    cone = Cone(float(ra[0]), float(dec[0]), min(reach_arcsec, 180.0 * 3600.0))
    plan = optimize(RegionFilter(right, cone))
    return concat_right([run_partition(plan, p) for p in find_scan(plan).partitions])


SPARSE_LEFT = 1.0
"""A piece is *sparse* when it has fewer left rows than this many per right row group: then
only the right row groups near its rows are read, and only the kernel's columns of them,
the other columns for the matched rows' row groups (denser pieces read every row group of
the partition anyway, so they read all columns in one pass)."""


def _right_rows(
    source: CrossmatchSource,
    piece: PartitionPixel,
    right_pixel: PartitionPixel | None,
    left: pa.Table,
    moved_deg: float = 0.0,
) -> tuple[pa.Table | None, RowFetch | None]:
    """The right rows ``left`` (the rows of ``piece``) is matched against, and how to fetch
    the columns not read yet (None when every column was read)."""
    side = source.right
    reach_deg = source.args.radius_deg + moved_deg
    if right_pixel is None or side.margin_plan is None or reach_deg > side.margin_deg:
        return neighbourhood_rows(side.plan, piece, reach_deg), None
    plans = [side.plan] + ([side.margin_plan] if right_pixel in side.margin_pixels else [])
    first = list(dict.fromkeys([INDEX_COLUMN, source.args.right_ra, source.args.right_dec]))
    if not all(splittable(plan) for plan in plans) or not _sparse(side.plan, right_pixel, left.num_rows):
        return concat_right([run_partition(plan, right_pixel) for plan in plans]), None
    args = source.args
    ra, dec = left.column(args.left_ra).to_numpy(), left.column(args.left_dec).to_numpy()
    ranges = coarsen_ranges(discs_cover_ranges(ra, dec, reach_deg))
    parts = [split for plan in plans if (split := read_split(plan, right_pixel, first, ranges)) is not None]
    if not parts:
        return None, None
    return concat_right([p.table for p in parts]), RowFetch(parts)


def _sparse(plan: PlanNode, pixel: PartitionPixel, left_rows: int) -> bool:
    assert isinstance(plan, Scan) and isinstance(plan.source, StoredSource)
    groups = sum(footer(path).num_row_groups for path in plan.source.meta.partition_files(pixel))
    return left_rows < SPARSE_LEFT * groups


class RowFetch:
    """The columns not read yet of rows of a right table made of split reads (a partition,
    then its margin): ``fetch(columns, rows)``, rows as positions in the concatenated parts.
    """

    def __init__(self, parts: list[SplitRead]) -> None:
        self.parts = parts
        self.starts = np.concatenate([[0], np.cumsum([p.table.num_rows for p in parts])]).astype(np.int64)

    def __call__(self, columns: list[str], rows: np.ndarray) -> pa.Table:
        rows = np.asarray(rows, dtype=np.int64)
        part = np.searchsorted(self.starts, rows, side="right") - 1
        order = np.argsort(part, kind="stable")
        pieces = [p.fetch(columns, rows[part == k] - self.starts[k]) for k, p in enumerate(self.parts)]
        table = pa.concat_tables(pieces, promote_options="default") if len(pieces) > 1 else pieces[0]
        back = np.empty_like(order)
        back[order] = np.arange(order.size)
        return table.take(pa.array(back, type=pa.int64()))


_loading = threading.Lock()
_load_started = False


def _load_kernels_meanwhile() -> None:
    """Once per process, load the numba kernels in a thread while the partitions are read."""
    global _load_started
    with _loading:
        if _load_started or numba_loaded():
            return
        _load_started = True
    threading.Thread(target=load_kernels, name="proxcompute-load-kernels", daemon=True).start()


def crossmatch_partition(source: CrossmatchSource, pixel: PartitionPixel, ranges: np.ndarray | None = None) -> pa.Table:
    """The crossmatch output rows of left partition ``pixel`` (left order, then separation)."""
    _load_kernels_meanwhile()
    left = run_partition(source.left, pixel)
    if ranges is not None and left.num_rows:
        left = filter_by_ranges(left, ranges)
    if left.num_rows == 0:
        return source.schema.empty_table()
    side = source.right
    out = []
    for piece, right_pixel in align_pixel(pixel, list(side.pixels), side.starts, side.ends):
        left_piece = left if piece == pixel else _slice(left, piece)
        if left_piece.num_rows == 0:
            continue
        area = pixel_area_deg2(right_pixel if right_pixel is not None else piece)
        if source.args.proper_motion is not None:
            out.append(_match_moving(source, left_piece, piece, right_pixel, area))
            continue
        right, fetch = _right_rows(source, piece, right_pixel, left_piece)
        out.append(match_tables(left_piece, right, source.args, source.schema, area, fetch=fetch))
    if not out:
        return source.schema.empty_table()
    return pa.concat_tables(out) if len(out) > 1 else out[0]


def _match_moving(
    source: CrossmatchSource, left: pa.Table, piece: PartitionPixel, right_pixel: PartitionPixel | None, area: float
) -> pa.Table:
    """Match a piece whose rows move: slow rows through the margin, fast ones around where they moved."""
    args, side = source.args, source.right
    # proper motion moves a row up to moved[i] out of the piece: reach that much further
    moved = left_displacements_deg(left, args) * 1.001 + 1e-9
    if right_pixel is None or side.margin_plan is None or args.radius_deg > side.margin_deg:
        right, fetch = _right_rows(source, piece, right_pixel, left, float(moved.max()))
        return match_tables(left, right, args, source.schema, area, fetch=fetch)
    # a row whose moved position is still inside the right partition has every match within the
    # radius in the partition or its margin; so has one that moves less than the margin's slack
    ra, dec = moved_positions(left, args)
    index29 = radec_to_healpix29(ra, dec)
    lo, hi = right_pixel.healpix29_range
    slow = ((index29 >= lo) & (index29 < hi)) | (args.radius_deg + moved <= side.margin_deg)
    if slow.all():
        right, fetch = _right_rows(source, piece, right_pixel, left)
        return match_tables(left, right, args, source.schema, area, moved=(ra, dec), fetch=fetch)
    tables, rows = [], []
    slow_rows = np.flatnonzero(slow)
    if slow_rows.size:
        right, fetch = _right_rows(source, piece, right_pixel, left.take(slow_rows))
        out, idx = match_tables(left.take(slow_rows), right, args, source.schema, area, return_left_index=True,
                                moved=(ra[slow_rows], dec[slow_rows]), fetch=fetch)  # fmt: skip
        tables.append(out)
        rows.append(slow_rows[idx])
    fast_rows = np.flatnonzero(~slow)
    out, idx = _match_around(source, left.take(fast_rows), (ra[fast_rows], dec[fast_rows]))
    tables.append(out)
    rows.append(fast_rows[idx])
    order = np.argsort(np.concatenate(rows), kind="stable")  # back to left order
    return pa.concat_tables(tables).take(pa.array(order, type=pa.int64()))


def _match_around(
    source: CrossmatchSource, left: pa.Table, moved: tuple[np.ndarray, np.ndarray]
) -> tuple[pa.Table, np.ndarray]:
    """Match ``left`` against the right rows within the radius of its ``moved`` positions.

    The discs around the moved positions become order-29 ranges, so only the right partitions
    and row groups holding them are read (the same restriction an id search uses).
    """
    args = source.args
    ra, dec = moved
    cover = discs_cover_ranges(ra, dec, args.radius_deg)
    plan = optimize(restrict_to_ranges(source.right.plan, coarsen_ranges(cover)))
    right = concat_right([run_partition(plan, p) for p in find_scan(plan).partitions])
    area = float((cover[:, 1] - cover[:, 0]).sum()) * pixel_area_deg2(PartitionPixel(29, 0))
    return match_tables(left, right, args, source.schema, max(area, 1e-12), return_left_index=True, moved=moved)


register_derived_source(CrossmatchSource, crossmatch_partition)
