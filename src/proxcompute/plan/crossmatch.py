"""A crossmatch as a plan source: the rows of ``left x right`` partitioned like the left.

The result of a crossmatch has the left's partitions and the left's ``_healpix_29``, so
everything that works on a catalog (cone searches, ``where``, column selection, explain,
``to_catalog``) works on it unchanged: a :class:`CrossmatchSource` is read partition by
partition by the executor, which matches each left partition against its aligned right
partitions (see :func:`proxcompute.ops.crossmatch.align_pixel`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from proxcompute.errors import ColumnNotFoundError, PlanError
from proxcompute.ops.crossmatch import CrossmatchArgs, output_schema
from proxcompute.plan.nodes import PlanNode, find_scan, render_tree, replace_source, with_extra_columns
from proxcompute.plan.nodes import output_schema as plan_schema
from proxcompute.plan.optimizer import optimize
from proxcompute.plan.source import MemorySource, Source
from proxcompute.sky import INDEX_COLUMN
from proxcompute.storage import PartitionPixel
from proxcompute.storage.layout import partition_starts

__all__ = ["CrossmatchSource", "crossmatch_source"]


@dataclass(frozen=True)
class RightSide:
    """The right input: its optimized plan, its partitions and (optionally) its margin plan."""

    plan: PlanNode
    pixels: tuple[PartitionPixel, ...]
    starts: np.ndarray
    ends: np.ndarray
    margin_plan: PlanNode | None
    margin_pixels: frozenset[PartitionPixel]
    margin_deg: float = 0.0
    """How far the margin reaches outside each partition (0 without a usable margin)."""


class CrossmatchSource(Source):
    """Rows of a crossmatch, one partition per (pruned) left partition.

    Parameters
    ----------
    left, right
        Plans of the two inputs (optimized here).
    args
        The crossmatch arguments (radius, how, suffixes, coordinate columns).
    right_margin
        The right catalog's margin source, or None.
    ensure_margin
        When the margin is missing or narrower than the radius, read neighbouring right
        partitions on the fly instead of refusing.
    """

    catalog_type = "object"

    def __init__(
        self,
        left: PlanNode,
        right: PlanNode,
        args: CrossmatchArgs,
        *,
        right_margin: Source | None = None,
        ensure_margin: bool = False,
    ) -> None:
        # the kernels need each side's _healpix_29 (to align and bucket) whatever the user projected
        left = with_extra_columns(left, [INDEX_COLUMN])
        right = with_extra_columns(right, [INDEX_COLUMN])
        self.left = optimize(left)
        right_opt = optimize(right)
        self.args = args
        left_src, right_src = left.source, right.source
        self.name = f"{left_src.name}_x_{right_src.name}"
        self.ra_column = args.left_name(args.left_ra)
        self.dec_column = args.left_name(args.left_dec)
        self.schema = output_schema(plan_schema(self.left), plan_schema(right_opt), args)
        self.pixels = tuple(find_scan(self.left).partitions)
        self.total_rows = -1
        self.max_rows = left_src.max_rows
        threshold = right_margin.margin_threshold_arcsec if right_margin is not None else None
        margin_ok = right_margin is not None and threshold is not None and threshold >= float(args.radius_arcsec)
        if not margin_ok and not ensure_margin and not isinstance(right_src, MemorySource):
            have = "no margin catalog" if right_margin is None else f'a margin of {threshold:g}"'
            raise PlanError(
                f"right catalog {right_src.name!r} has {have}, narrower than the crossmatch radius "
                f'({float(args.radius_arcsec):g}"): matches across partition edges would be lost. '
                f"Re-ingest it with --margin-arcsec {float(args.radius_arcsec):g} (or more), or pass "
                "ensure_margin=True (CLI: --ensure-margin) to read neighbouring partitions on the fly."
            )
        margin_plan = None
        margin_pixels: frozenset[PartitionPixel] = frozenset()
        if margin_ok:
            margin_plan = optimize(replace_source(right, right_margin))
            margin_pixels = frozenset(find_scan(margin_plan).partitions)
        right_pixels = list(find_scan(right_opt).partitions)
        starts, ends = partition_starts(right_pixels)
        margin_deg = float(threshold) / 3600.0 if margin_ok and threshold is not None else 0.0
        self.right = RightSide(right_opt, tuple(right_pixels), starts, ends, margin_plan, margin_pixels, margin_deg)
        self.on_the_fly = not margin_ok

    @property
    def left_schema(self) -> pa.Schema:
        return plan_schema(self.left)

    def explain_inputs(self) -> list[str]:
        """The optimized left and right plans, for ``explain()``."""
        lines = ["left:"]
        lines += ["  " + line for line in render_tree(self.left).splitlines()]
        lines.append("right:")
        lines += ["  " + line for line in render_tree(self.right.plan).splitlines()]
        if self.right.margin_plan is not None:
            lines.append(f"right margin: {len(self.right.margin_pixels)} partitions")
        return lines

    def describe(self) -> str:
        a = self.args
        how = a.how if a.how == "all" else f"{a.how}, k={a.n_neighbors}"
        margin = "neighbours read on the fly" if self.on_the_fly else "right margin"
        right = find_scan(self.right.plan).source.name
        pm = f"; {a.proper_motion}" if a.proper_motion is not None else ""
        return (
            f"crossmatch of {find_scan(self.left).source.name!r} with {right!r} within "
            f'{float(a.radius_arcsec):g}" ({how}; {margin}{pm})'
        )


def crossmatch_source(
    left: PlanNode,
    right: PlanNode,
    args: CrossmatchArgs,
    *,
    right_margin: Source | None = None,
    ensure_margin: bool = False,
) -> CrossmatchSource:
    """Build a :class:`CrossmatchSource`, checking the coordinate columns exist."""
    pm = args.proper_motion
    left_needs = (args.left_ra, args.left_dec) + ((pm.pmra, pm.pmdec) if pm is not None else ())
    for plan, needs, side in ((left, left_needs, "left"), (right, (args.right_ra, args.right_dec), "right")):
        cols = plan.output_columns()
        for c in needs:
            if c not in cols:
                raise ColumnNotFoundError(c, cols, what=f"{side} catalog {plan.source.name!r}")
    if pm is not None:
        schema = plan_schema(left)
        for c in (pm.pmra, pm.pmdec):
            t = schema.field(c).type
            if not (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t)):
                raise PlanError(f"proper-motion column {c!r} must be numeric (mas/yr), not {t}")
    return CrossmatchSource(left, right, args, right_margin=right_margin, ensure_margin=ensure_margin)
