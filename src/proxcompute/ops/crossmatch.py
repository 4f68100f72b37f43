"""Crossmatch of one aligned pair of partitions, on Arrow tables (no Dask).

:class:`CrossmatchArgs` is the one argument object of a crossmatch; :func:`match_tables`
matches a left table against a right table (a right partition plus its margin, or a
neighbourhood read) and builds the output rows; :func:`align_pixel` splits a left partition
into the pieces that each face exactly one right partition (or a gap in the right catalog).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from proxcompute.errors import PlanError
from proxcompute.kernels import crossmatch as xm
from proxcompute.ops.proper_motion import (
    EPOCH_COLUMNS,
    ProperMotion,
    apply_space_motion,
    displacement_deg,
)
from proxcompute.sky import INDEX_COLUMN, radec_to_healpix29
from proxcompute.sky.healpix import PartitionPixel

__all__ = [
    "DIST_COLUMN",
    "HOW",
    "CrossmatchArgs",
    "RowFetcher",
    "align_pixel",
    "concat_right",
    "left_displacement_deg",
    "left_displacements_deg",
    "match_tables",
    "moved_positions",
    "output_schema",
    "pixel_area_deg2",
]

DIST_COLUMN = "_dist_arcsec"

RowFetcher = Callable[[list[str], np.ndarray], pa.Table]
"""``fetch(columns, rows)``: right ``columns`` at positions ``rows`` of the right table."""
HOW = ("nearest", "all", "left")


@dataclass(frozen=True)
class CrossmatchArgs:
    """Everything a crossmatch needs besides its two inputs."""

    radius_arcsec: float
    """Largest separation of a match (inclusive)."""
    n_neighbors: int = 1
    """How many nearest right rows per left row (``how="nearest"`` and ``"left"``)."""
    how: str = "nearest"
    """``"nearest"``: the k nearest within the radius; ``"all"``: every pair within it;
    ``"left"``: like nearest, keeping unmatched left rows with nulls."""
    min_radius_arcsec: float = 0.0
    """Smallest separation of a match (inclusive)."""
    left_suffix: str = "left"
    right_suffix: str = "right"
    left_ra: str = "ra"
    left_dec: str = "dec"
    right_ra: str = "ra"
    right_dec: str = "dec"
    proper_motion: ProperMotion | None = None
    """Move the left positions to the right's epoch before matching (adds ``ra_epoch``,
    ``dec_epoch``)."""

    def __post_init__(self) -> None:
        try:
            r = float(self.radius_arcsec)
        except (TypeError, ValueError):
            raise PlanError(f"radius_arcsec must be a number, got {self.radius_arcsec!r}") from None
        if not math.isfinite(r) or r <= 0:
            raise PlanError(f"radius_arcsec must be > 0, got {self.radius_arcsec!r}")
        if r > 3600.0 * 10:
            raise PlanError(f"radius_arcsec must be <= 36000 (10 deg), got {self.radius_arcsec!r}")
        if not (0.0 <= float(self.min_radius_arcsec) < r):
            raise PlanError(
                f"min_radius_arcsec must be >= 0 and < radius_arcsec, got {self.min_radius_arcsec!r}"
            )
        if isinstance(self.n_neighbors, bool) or int(self.n_neighbors) != self.n_neighbors or self.n_neighbors < 1:
            raise PlanError(f"n_neighbors must be an integer >= 1, got {self.n_neighbors!r}")
        if self.how not in HOW:
            raise PlanError(f"how must be one of {', '.join(map(repr, HOW))}; got {self.how!r}")
        if self.left_suffix == self.right_suffix:
            raise PlanError(f"left and right suffixes must differ (both are {self.left_suffix!r})")

    @property
    def radius_deg(self) -> float:
        return float(self.radius_arcsec) / 3600.0

    def left_name(self, column: str) -> str:
        return column if column == INDEX_COLUMN else f"{column}_{self.left_suffix}"

    def right_name(self, column: str) -> str:
        return f"{column}_{self.right_suffix}"


def output_schema(left: pa.Schema, right: pa.Schema, args: CrossmatchArgs) -> pa.Schema:
    """``_healpix_29`` (the left's), left columns suffixed, [``ra_epoch``, ``dec_epoch``],
    right columns suffixed, distance."""
    fields = [pa.field(INDEX_COLUMN, pa.int64())]
    fields += [pa.field(args.left_name(f.name), f.type) for f in left if f.name != INDEX_COLUMN]
    if args.proper_motion is not None:
        fields += [pa.field(name, pa.float64()) for name in EPOCH_COLUMNS]
    fields += [pa.field(args.right_name(f.name), f.type) for f in right if f.name != INDEX_COLUMN]
    fields.append(pa.field(DIST_COLUMN, pa.float64()))
    return pa.schema(fields)


def concat_right(tables: list[pa.Table]) -> pa.Table | None:
    """The right rows of one piece: a partition plus its margin, or a neighbourhood read.

    Not re-sorted here: :func:`match_tables` orders only the three key columns it needs and
    maps matches back, instead of permuting every column of every right row.
    """
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return None
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")


def pixel_area_deg2(pixel: PartitionPixel) -> float:
    """Area of a HEALPix pixel in square degrees."""
    return 41252.96124941928 / (12 * 4**pixel.order)


def match_tables(
    left: pa.Table,
    right: pa.Table | None,
    args: CrossmatchArgs,
    schema: pa.Schema,
    right_area_deg2: float,
    *,
    return_left_index: bool = False,
    moved: tuple[np.ndarray, np.ndarray] | None = None,
    fetch: RowFetcher | None = None,
) -> pa.Table | tuple[pa.Table, np.ndarray]:
    """Match ``left`` (sorted by ``_healpix_29``) against ``right`` (sorted too).

    ``right_area_deg2`` is the sky area the right rows come from (their partition's pixel):
    with the row count it sets the density, hence the bucket order. Output rows are in left
    order, then by separation; their columns follow ``schema`` (:func:`output_schema`).
    With ``return_left_index``, also the left row of each output row. ``moved``: the left
    rows' positions moved by their proper motion, when the caller has them already.
    ``fetch``: when ``right`` holds only some of the right's output columns (the kernel's),
    ``fetch(columns, rows)`` returns the others for the matched rows.
    """
    n_left = left.num_rows
    if args.proper_motion is None or n_left == 0:
        moved = None
    elif moved is None:
        moved = moved_positions(left, args)
    if right is None or right.num_rows == 0 or n_left == 0:
        left_idx = np.arange(n_left) if args.how == "left" else np.empty(0, np.int64)
        right_idx = np.full(left_idx.shape[0], -1, dtype=np.int64)
        sep = np.full(left_idx.shape[0], np.nan)
        out = _assemble(left, right, left_idx, right_idx, sep, args, schema, moved, fetch)
        return (out, left_idx) if return_left_index else out
    r_index = right.column(INDEX_COLUMN).to_numpy()
    r_ra = right.column(args.right_ra).to_numpy()
    r_dec = right.column(args.right_dec).to_numpy()
    perm = None
    if r_index.size > 1 and np.any(r_index[1:] < r_index[:-1]):  # several sorted runs
        perm = np.argsort(r_index, kind="stable")
        r_index, r_ra, r_dec = r_index[perm], r_ra[perm], r_dec[perm]
    order = xm.bucket_order_for(args.radius_deg, right.num_rows, right_area_deg2)
    buckets = xm.RightBuckets(r_index, r_ra, r_dec, order)
    l_index = left.column(INDEX_COLUMN).to_numpy()
    l_ra = left.column(args.left_ra).to_numpy()
    l_dec = left.column(args.left_dec).to_numpy()
    l_perm = None
    if moved is not None:
        l_ra, l_dec = moved
        l_index = radec_to_healpix29(l_ra, l_dec)
        l_perm = np.argsort(l_index, kind="stable")  # the kernel walks the left in index order
        l_index, l_ra, l_dec = l_index[l_perm], l_ra[l_perm], l_dec[l_perm]
    min_deg = float(args.min_radius_arcsec) / 3600.0
    if args.how == "all":
        left_idx, right_idx, sep = xm.all_pairs(l_index, l_ra, l_dec, buckets, args.radius_deg, min_deg)
    else:
        k = int(args.n_neighbors)
        idx, seps = xm.nearest_k(l_index, l_ra, l_dec, buckets, args.radius_deg, k, min_deg)
        matched = idx >= 0
        if args.how == "left":
            matched[:, 0] |= ~matched.any(axis=1)  # one null row per unmatched left row
        rows, cols = np.nonzero(matched)
        left_idx = rows
        right_idx = idx[rows, cols]
        sep = seps[rows, cols]
    if perm is not None:
        right_idx = np.where(right_idx >= 0, perm[np.maximum(right_idx, 0)], -1)
    if l_perm is not None:  # back to the left's storage order, keeping each row's match order
        left_idx = l_perm[left_idx]
        back = np.argsort(left_idx, kind="stable")
        left_idx, right_idx, sep = left_idx[back], right_idx[back], sep[back]
    out = _assemble(left, right, left_idx, right_idx, sep, args, schema, moved, fetch)
    return (out, left_idx) if return_left_index else out


def moved_positions(left: pa.Table, args: CrossmatchArgs) -> tuple[np.ndarray, np.ndarray]:
    """The left rows' (ra, dec) moved by their proper motion to ``to_epoch``, degrees."""
    pm = args.proper_motion
    assert pm is not None
    return apply_space_motion(
        left.column(args.left_ra).to_numpy(),
        left.column(args.left_dec).to_numpy(),
        left.column(pm.pmra),
        left.column(pm.pmdec),
        pm.dt_years,
    )


def left_displacements_deg(left: pa.Table, args: CrossmatchArgs) -> np.ndarray:
    """How far the proper motion moves each row of ``left``, degrees (zeros without one)."""
    pm = args.proper_motion
    if pm is None or left.num_rows == 0:
        return np.zeros(left.num_rows)
    return displacement_deg(left.column(pm.pmra), left.column(pm.pmdec), pm.dt_years)


def left_displacement_deg(left: pa.Table, args: CrossmatchArgs) -> float:
    """How far the proper motion moves any row of ``left`` (0 without proper motion)."""
    moved = left_displacements_deg(left, args)
    return float(moved.max()) if moved.size else 0.0


def _assemble(left, right, left_idx, right_idx, sep, args, schema, moved=None, fetch=None) -> pa.Table:
    left_take = pa.array(left_idx, type=pa.int64())
    columns = [left.column(INDEX_COLUMN).take(left_take)]
    for name in left.column_names:
        if name != INDEX_COLUMN:
            columns.append(left.column(name).take(left_take))
    n_epoch = 0
    if args.proper_motion is not None:
        ra_moved, dec_moved = moved if moved is not None else (np.empty(0), np.empty(0))
        columns += [pa.array(ra_moved[left_idx]), pa.array(dec_moved[left_idx])]
        n_epoch = len(EPOCH_COLUMNS)
    missing = right_idx < 0
    mask = missing if missing.any() else None
    take = pa.array(np.where(missing, 0, right_idx), type=pa.int64(), mask=mask)
    n_left_columns = left.num_columns - 1  # without _healpix_29
    right_fields = list(schema)[1 + n_left_columns + n_epoch : -1]
    names = [field.name[: -(len(args.right_suffix) + 1)] for field in right_fields]
    fetched = None
    if right is not None and right.num_rows:
        later = [n for n in names if n not in right.column_names]
        if later:
            assert fetch is not None, f"right columns {later} were not read and there is no fetch"
            # the matched rows only, then spread over the output rows (nulls where unmatched)
            got = fetch(later, right_idx[~missing])
            at = pa.array(np.cumsum(~missing) - 1, type=pa.int64(), mask=mask)
            fetched = got.take(at) if mask is not None else got
    for field, source_name in zip(right_fields, names, strict=True):
        if right is None or right.num_rows == 0:
            columns.append(pa.nulls(len(left_idx), type=field.type))
        elif source_name in right.column_names:
            columns.append(right.column(source_name).take(take))
        else:
            columns.append(fetched.column(source_name))
    columns.append(pa.array(sep, type=pa.float64(), from_pandas=True))
    return pa.Table.from_arrays([c.cast(f.type) for c, f in zip(columns, schema, strict=True)], schema=schema)


def align_pixel(
    left: PartitionPixel, right_pixels: list[PartitionPixel], right_starts: np.ndarray, right_ends: np.ndarray
) -> list[tuple[PartitionPixel, PartitionPixel | None]]:
    """Split ``left`` into pieces that each face one right partition or a right gap.

    Returns ``(piece, right)`` pairs: ``piece`` is ``left`` itself when one right partition
    contains it, else the right partitions inside ``left`` plus the gap pixels between them
    (``right`` None). ``right_pixels`` are in storage order with their order-29 ranges.
    """
    lo, hi = left.healpix29_range
    i = int(np.searchsorted(right_ends, lo, side="right"))
    inside = []
    while i < len(right_pixels) and right_starts[i] < hi:
        inside.append(right_pixels[i])
        i += 1
    if not inside:
        return [(left, None)]
    if len(inside) == 1 and inside[0].order <= left.order:
        return [(left, inside[0])]
    out: list[tuple[PartitionPixel, PartitionPixel | None]] = []

    def split(node: PartitionPixel, members: list[PartitionPixel]) -> None:
        if not members:
            out.append((node, None))
            return
        if len(members) == 1 and members[0] == node:
            out.append((node, node))
            return
        for c in range(4):
            child = PartitionPixel(node.order + 1, node.pixel * 4 + c)
            clo, chi = child.healpix29_range
            split(child, [m for m in members if clo <= m.healpix29_range[0] < chi])

    split(left, inside)
    return out
