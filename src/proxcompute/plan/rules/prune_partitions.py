"""Rule: from the Scan's regions, keep only partitions that may hold matching rows.

Each region gives conservative ``_healpix_29`` ranges (``Region.healpix29_ranges``); their
intersection is stored on the Scan (for row-group pruning and row slicing) and a partition
is kept when its own range meets it. A margin partition holds rows *outside* its pixel,
so it is kept when the pixel or one of its neighbours meets the ranges (valid while the
margin is narrower than a neighbour pixel; otherwise nothing is pruned). Margin rows carry
their own ``_healpix_29``, so the ranges still prune their row groups and rows.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from proxcompute.ops.ranges import intersect_ranges, overlaps
from proxcompute.plan.nodes import PlanNode, Scan, transform_up
from proxcompute.sky import Region
from proxcompute.sky.healpix import neighbours, order_to_healpix29_range, pixel_resolution_deg
from proxcompute.storage import PartitionPixel

__all__ = ["prune_partitions", "region_ranges"]


@functools.lru_cache(maxsize=256)
def region_ranges(region: Region) -> np.ndarray:
    """Cached conservative ``_healpix_29`` ranges of a region (read-only array)."""
    r = region.healpix29_ranges()
    r.setflags(write=False)
    return r


def _ranges(regions: tuple[Region, ...]) -> np.ndarray:
    out = region_ranges(regions[0])
    for r in regions[1:]:
        out = intersect_ranges(out, region_ranges(r))
    return out


def _margin_keep(pixels: tuple[PartitionPixel, ...], ranges: np.ndarray, threshold_arcsec: float | None):
    keep = []
    for p in pixels:
        if threshold_arcsec is None or threshold_arcsec / 3600.0 > 0.5 * pixel_resolution_deg(p.order):
            keep.append(p)
            continue
        cand = [int(p.pixel), *(int(n) for n in neighbours(p.order, np.array([p.pixel]))[0] if n >= 0)]
        rng = np.array([order_to_healpix29_range(p.order, c) for c in cand], dtype=np.int64)
        if overlaps(rng[:, 0], rng[:, 1], ranges).any():
            keep.append(p)
    return tuple(keep)


def _prune(node: PlanNode) -> PlanNode:
    if not isinstance(node, Scan) or not node.regions:
        return node
    ranges = _ranges(node.regions)
    candidates = node.partitions
    if node.source.is_margin:
        pixels = _margin_keep(candidates, ranges, node.source.margin_threshold_arcsec)
    else:
        bounds = np.array([p.healpix29_range for p in candidates], dtype=np.int64).reshape(-1, 2)
        mask = overlaps(bounds[:, 0], bounds[:, 1], ranges)
        pixels = tuple(p for p, k in zip(candidates, mask, strict=True) if k)
    return replace(node, pixels=pixels, ranges=ranges)


def prune_partitions(plan: PlanNode) -> PlanNode:
    """``plan`` with its Scan's partitions and ``_healpix_29`` ranges pruned by its regions."""
    return transform_up(plan, _prune)
