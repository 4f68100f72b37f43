"""How a Catalog shows itself: text and HTML summaries, and a coverage map (matplotlib)."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from proxcompute.catalog._coverage import coverage_thumbnail
from proxcompute.plan import Filter, PlanNode, Project, RegionFilter, is_filtered
from proxcompute.plan.map_partitions import MapPartitions, function_name
from proxcompute.sky.healpix import pixel_boundaries_xyz, pixel_center
from proxcompute.storage import PartitionPixel
from proxcompute.storage.nested import nested_fields

__all__ = ["collection_lines", "html_summary", "plot_coverage", "text_summary"]


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
        elif isinstance(node, MapPartitions):
            ops.append(f"map_partitions {function_name(node.fn)}")
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


def collection_lines(cat: Catalog) -> list[str]:
    """The margins and index catalogs of the collection ``cat`` was opened from (if any)."""
    meta = getattr(cat.plan.source, "meta", None)
    info = getattr(meta, "collection", None)
    return info.describe() if info is not None else []


def _nested(cat: Catalog) -> list[str]:
    return [f"{path} ({typ})" for path, typ in nested_fields(cat.schema)]


def text_summary(cat: Catalog) -> str:
    """Multi-line ``repr``: name, rows (or "lazy"), partitions by order, columns, nested
    fields, and a collection's margins and indexes."""
    lines = [f"<Catalog {cat.name!r}", f"  rows:       {_rows(cat)}", f"  partitions: {_partitions(cat)}"]
    ops = _operations(cat.plan)
    if ops:
        lines.append(f"  operations: {' -> '.join(ops)}")
    coll = collection_lines(cat)
    if coll:
        lines.append(f"  collection: {'; '.join(coll)}")
    nested = _nested(cat)
    if nested:
        lines.append(f"  nested:     {', '.join(nested)}")
    lines.append(f"  columns:    {', '.join(cat.columns)}>")
    return "\n".join(lines)


HTML_MAX_COLUMNS = 200
"""Columns (and nested fields) listed in the HTML repr; more are counted, not listed."""


def html_summary(cat: Catalog) -> str:
    """A small HTML table for notebooks: name, rows, partitions by order, typed columns, and a
    coverage thumbnail; its size does not grow with the number of partitions."""
    esc = html.escape
    cols = "".join(
        f"<code>{esc(f.name)}</code>&nbsp;<small>{esc(str(f.type))}</small><br>"
        for f in list(cat.schema)[:HTML_MAX_COLUMNS]
    )
    if len(cat.schema) > HTML_MAX_COLUMNS:
        cols += f"<small>... and {len(cat.schema) - HTML_MAX_COLUMNS:,} more (<code>.columns</code>)</small>"
    rows = [
        ("name", f"<b>{esc(cat.name)}</b>"),
        ("rows", esc(_rows(cat))),
        ("partitions", esc(_partitions(cat))),
    ]
    ops = _operations(cat.plan)
    if ops:
        rows.append(("operations", esc(" → ".join(ops))))
    coll = collection_lines(cat)
    if coll:
        rows.append(("collection", "<br>".join(esc(c) for c in coll)))
    rows.append(("columns", cols))
    nested = nested_fields(cat.schema)
    if nested:
        shown = "".join(
            f"<code>{esc(p)}</code>&nbsp;<small>{esc(t)}</small><br>" for p, t in nested[:HTML_MAX_COLUMNS]
        )
        if len(nested) > HTML_MAX_COLUMNS:
            shown += f"<small>... and {len(nested) - HTML_MAX_COLUMNS:,} more</small>"
        rows.append(("nested fields", shown))
    thumb = coverage_thumbnail(cat.partitions)  # a fixed-size image at any partition count
    if thumb:
        rows.append(("coverage", thumb))
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
    pixels: Sequence[PartitionPixel],
    ax: Any = None,
    title: str | None = None,
    cmap: str = "viridis",
    legend: bool = True,
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
    if orders and legend:
        ax.legend(
            handles=[Patch(color=color_of[o], label=f"order {o}") for o in orders],
            loc="lower right",
            fontsize="small",
            bbox_to_anchor=(1.12, -0.05),
        )
    if title:
        ax.set_title(f"{title}: {len(pixels)} partitions")
    return ax


def plot_points(
    ra: np.ndarray,
    dec: np.ndarray,
    ax: Any = None,
    *,
    title: str | None = None,
    bins: int = 200,
    projection: str | None = None,
    cmap: str = "magma",
) -> Any:
    """A density map of positions: a 2-D histogram, on the whole sky (Mollweide) or a small field.

    A field smaller than 30 deg is drawn in RA/Dec with RA increasing to the left (RA wrapped
    around the field's centre); a larger one on a Mollweide map.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    if len(ra) == 0:
        raise ValueError("no rows to plot")
    centre = float(np.degrees(np.arctan2(np.mean(np.sin(np.radians(ra))), np.mean(np.cos(np.radians(ra))))))
    x = centre + _wrap180(ra - centre)
    span = max(np.ptp(x), np.ptp(dec))
    if projection is None:
        projection = "mollweide" if span > 30 else "rectilinear"
    if ax is None:
        fig = plt.figure(figsize=(9, 5) if projection == "mollweide" else (6, 5))
        ax = fig.add_subplot(projection=None if projection == "rectilinear" else projection)
    if projection == "mollweide":
        lon = np.radians(-_wrap180(ra))
        h, xe, ye = np.histogram2d(lon, np.radians(dec), bins=(bins, bins // 2),
                                   range=[[-np.pi, np.pi], [-np.pi / 2, np.pi / 2]])  # fmt: skip
        mesh = ax.pcolormesh(xe, ye, np.ma.masked_equal(h.T, 0), cmap=cmap, norm=LogNorm())
        ticks = np.radians(np.arange(-150, 181, 30))
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{round(-np.degrees(t)) % 360}°" for t in ticks])
        ax.grid(True, alpha=0.3)
    else:
        h, xe, ye = np.histogram2d(x, dec, bins=bins)
        mesh = ax.pcolormesh(xe, ye, np.ma.masked_equal(h.T, 0), cmap=cmap, norm=LogNorm())
        ax.set_xlim(xe[-1], xe[0])  # RA increases to the left
        ax.set_xlabel("RA (deg)")
        ax.set_ylabel("Dec (deg)")
        ax.set_aspect(1.0 / max(np.cos(np.radians(np.clip(np.median(dec), -89, 89))), 1e-3))
    ax.figure.colorbar(mesh, ax=ax, label="rows per bin", shrink=0.7)
    if title:
        ax.set_title(f"{title}: {len(ra):,} rows")
    return ax


def plot_hist(values: Any, ax: Any = None, *, column: str = "", bins: int = 50, **kwargs: Any) -> Any:
    """A histogram of one column (nulls and NaN left out)."""
    import matplotlib.pyplot as plt

    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if ax is None:
        ax = plt.figure(figsize=(6, 4)).add_subplot()
    ax.hist(arr, bins=bins, **kwargs)
    ax.set_xlabel(column)
    ax.set_ylabel("rows")
    ax.set_title(f"{column}: {len(arr):,} values")
    return ax
