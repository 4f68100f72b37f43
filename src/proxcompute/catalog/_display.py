"""How a Catalog shows itself: text and HTML summaries, and a coverage map (matplotlib)."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from proxcompute.plan import Filter, PlanNode, Project, RegionFilter, is_filtered
from proxcompute.sky.healpix import pixel_boundaries_xyz, pixel_center
from proxcompute.storage import PartitionPixel

__all__ = ["html_summary", "plot_coverage", "text_summary"]


class Catalog(Protocol):
    """What the summaries need of a catalog."""

    name: str
    plan: PlanNode
    partitions: list[PartitionPixel]
    columns: list[str]
    schema: pa.Schema


def _operations(plan: PlanNode) -> list[str]:
    ops = []
    node: PlanNode | None = plan
    while node is not None and node.children:
        if isinstance(node, RegionFilter):
            ops.append(str(node.region))
        elif isinstance(node, Filter):
            ops.append(f"where {node.predicate}")
        elif isinstance(node, Project):
            ops.append(f"select [{', '.join(node.columns)}]")
        node = node.children[0]
    return list(reversed(ops))


def _orders(pixels: Sequence[PartitionPixel]) -> str:
    counts = Counter(p.order for p in pixels)
    return ", ".join(f"order {o}: {n}" for o, n in sorted(counts.items()))


def _rows(cat: Catalog) -> str:
    if is_filtered(cat.plan):
        return "lazy (use .count())"
    n = cat.plan.source.total_rows
    return f"{n:,}" if n >= 0 else "unknown"


def _partitions(cat: Catalog) -> str:
    pixels = cat.partitions
    total = len(cat.plan.source.pixels)
    head = f"{len(pixels):,}" if len(pixels) == total else f"{len(pixels):,} of {total:,}"
    return f"{head} ({_orders(pixels)})" if pixels else head


def text_summary(cat: Catalog) -> str:
    """Multi-line ``repr``: name, rows (or "lazy"), partitions by order, columns."""
    lines = [f"<Catalog {cat.name!r}", f"  rows:       {_rows(cat)}", f"  partitions: {_partitions(cat)}"]
    ops = _operations(cat.plan)
    if ops:
        lines.append(f"  operations: {' -> '.join(ops)}")
    lines.append(f"  columns:    {', '.join(cat.columns)}>")
    return "\n".join(lines)


def html_summary(cat: Catalog) -> str:
    """A small HTML table for notebooks: name, rows, partitions by order, typed columns."""
    esc = html.escape
    cols = "".join(
        f"<code>{esc(f.name)}</code>&nbsp;<small>{esc(str(f.type))}</small><br>" for f in cat.schema
    )
    rows = [
        ("name", f"<b>{esc(cat.name)}</b>"),
        ("rows", esc(_rows(cat))),
        ("partitions", esc(_partitions(cat))),
    ]
    ops = _operations(cat.plan)
    if ops:
        rows.append(("operations", esc(" → ".join(ops))))
    rows.append(("columns", cols))
    body = "".join(
        f"<tr><th style='text-align:left;vertical-align:top'>{k}</th><td style='text-align:left'>{v}</td></tr>"
        for k, v in rows
    )
    return f"<table class='proxcompute-catalog'>{body}</table>"


def _wrap180(lon: np.ndarray | float) -> Any:
    return (np.asarray(lon) + 180.0) % 360.0 - 180.0


def pixel_outline(pixel: PartitionPixel) -> np.ndarray:
    """Boundary of a pixel as ``(n, 2)`` (lon, lat) degrees, lon unwrapped around its centre."""
    step = max(2, 16 >> pixel.order)
    xyz = pixel_boundaries_xyz(pixel.order, pixel.pixel, step)
    lon = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))
    lat = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1.0, 1.0)))
    clon, _ = pixel_center(pixel.order, np.array([pixel.pixel]))
    lon = float(clon[0]) + _wrap180(lon - float(clon[0]))
    pts: list[tuple[float, float]] = []
    n = len(lon)
    for i in range(n):
        if abs(lat[i]) > 90.0 - 1e-9:  # a pole is a vertex: open it along the neighbours' meridians
            pts.append((lon[i - 1], lat[i]))
            pts.append((lon[(i + 1) % n], lat[i]))
        else:
            pts.append((lon[i], lat[i]))
    return np.array(pts)


def plot_coverage(
    pixels: Sequence[PartitionPixel], ax: Any = None, title: str | None = None, cmap: str = "viridis"
) -> Any:
    """Fill each partition pixel on a Mollweide map (RA increasing to the left), coloured by order."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    if ax is None:
        fig = plt.figure(figsize=(9, 5))
        ax = fig.add_subplot(projection="mollweide")
    orders = sorted({p.order for p in pixels})
    colormap = plt.get_cmap(cmap)
    color_of = {o: colormap(i / max(1, len(orders) - 1)) for i, o in enumerate(orders)}
    polys, colors = [], []
    for p in pixels:
        outline = pixel_outline(p)
        x = -outline[:, 0]  # RA grows to the left, as on the sky
        x = x - 360.0 * np.round(np.mean(x) / 360.0)
        for shift in (0.0, -360.0, 360.0):
            xs = x + shift
            if xs.max() < -180.0 or xs.min() > 180.0:
                continue
            polys.append(np.radians(np.column_stack([xs, outline[:, 1]])))
            colors.append(color_of[p.order])
    ax.add_collection(
        PolyCollection(polys, facecolors=colors, edgecolors="k", linewidths=0.2, alpha=0.85), autolim=False
    )
    ticks = np.radians(np.arange(-150, 181, 30))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{round(-np.degrees(t)) % 360}°" for t in ticks])
    ax.grid(True, alpha=0.3)
    if orders:
        ax.legend(
            handles=[Patch(color=color_of[o], label=f"order {o}") for o in orders],
            loc="lower right",
            fontsize="small",
            bbox_to_anchor=(1.12, -0.05),
        )
    if title:
        ax.set_title(f"{title}: {len(pixels)} partitions")
    return ax
