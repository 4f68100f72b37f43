"""Read one partition of a crossmatch: left rows x aligned right rows (+ margin).

For each piece of the left partition (:func:`proxcompute.ops.crossmatch.align_pixel`):

* facing a right partition ``R`` whose margin is wide enough: right rows are ``R``'s rows
  plus ``R``'s margin rows (disjoint sets, merged in ``_healpix_29`` order);
* facing a gap of the right catalog, or when the margin is missing or too narrow and
  ``ensure_margin`` was given, or when proper motion moves the piece's rows further than
  the margin reaches (radius plus the piece's largest displacement): right rows are read from every right partition that meets a
  cone around the piece (its pixel's circumscribed circle widened by the radius), with
  row-group pruning, so edge matches are never lost.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from proxcompute.execute.partition import run_partition
from proxcompute.execute.reader import register_derived_source
from proxcompute.ops.crossmatch import (
    align_pixel,
    concat_right,
    left_displacement_deg,
    match_tables,
    pixel_area_deg2,
)
from proxcompute.ops.filters import filter_by_ranges
from proxcompute.plan.crossmatch import CrossmatchSource
from proxcompute.plan.nodes import PlanNode, RegionFilter, find_scan
from proxcompute.plan.optimizer import optimize
from proxcompute.sky import INDEX_COLUMN, Cone
from proxcompute.sky.healpix import max_pixel_radius_deg, pixel_center
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


def _right_rows(
    source: CrossmatchSource, piece: PartitionPixel, right_pixel: PartitionPixel | None, moved_deg: float = 0.0
):
    side = source.right
    reach_deg = source.args.radius_deg + moved_deg
    if right_pixel is None or side.margin_plan is None or reach_deg > side.margin_deg:
        return neighbourhood_rows(side.plan, piece, reach_deg)
    tables = [run_partition(side.plan, right_pixel)]
    if right_pixel in side.margin_pixels:
        tables.append(run_partition(side.margin_plan, right_pixel))
    return concat_right(tables)


def crossmatch_partition(source: CrossmatchSource, pixel: PartitionPixel, ranges: np.ndarray | None = None) -> pa.Table:
    """The crossmatch output rows of left partition ``pixel`` (left order, then separation)."""
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
        # proper motion moves left rows up to moved_deg out of the piece: reach that much further
        moved_deg = left_displacement_deg(left_piece, source.args)
        if moved_deg > 0:
            moved_deg = moved_deg * 1.001 + 1e-9
        right = _right_rows(source, piece, right_pixel, moved_deg)
        area = pixel_area_deg2(right_pixel if right_pixel is not None else piece)
        out.append(match_tables(left_piece, right, source.args, source.schema, area))
    if not out:
        return source.schema.empty_table()
    return pa.concat_tables(out) if len(out) > 1 else out[0]


register_derived_source(CrossmatchSource, crossmatch_partition)

