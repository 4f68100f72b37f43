"""The coverage thumbnail of the HTML repr: the partitions drawn at a fixed resolution.

The image has a fixed number of pixels whatever the number of partitions: each image pixel
of a Mollweide map (RA growing to the left) is mapped back to the sky and looked up among
the partitions' order-29 ranges (a binary search), and coloured by the order of the
partition holding it. Its size and the time to draw it therefore stay bounded (a few KB, a
few ms) from one partition to millions, where drawing one polygon per partition grew to
megabytes at a thousand partitions.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np

from proxcompute.sky.healpix import INDEX_ORDER, radec_to_healpix29
from proxcompute.storage import PartitionPixel

__all__ = ["THUMBNAIL_WIDTH_PX", "coverage_image", "coverage_thumbnail", "order_colors"]

THUMBNAIL_WIDTH_PX = 320
"""Width of the coverage thumbnail; its height is half of it (the Mollweide ellipse)."""

_SKY_GREY = (232, 232, 232, 255)
"""Sky no partition covers."""


def order_colors(orders: Sequence[int], cmap: str = "viridis") -> dict[int, tuple[int, int, int, int]]:
    """RGBA (0-255) per partition order, spread over ``cmap`` as :func:`plot_coverage` does."""
    import matplotlib

    colormap = matplotlib.colormaps[cmap]
    orders = sorted(set(orders))
    out = {}
    for i, o in enumerate(orders):
        r, g, b, _ = colormap(i / max(1, len(orders) - 1))
        out[o] = (round(r * 255), round(g * 255), round(b * 255), 255)
    return out


def _mollweide_inverse(width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ra, dec, inside) in degrees for every pixel centre of a ``width`` x ``width/2`` map."""
    height = width // 2
    x = (np.arange(width) + 0.5) / width * 4 * np.sqrt(2) - 2 * np.sqrt(2)
    y = np.sqrt(2) - (np.arange(height) + 0.5) / height * 2 * np.sqrt(2)
    xx, yy = np.meshgrid(x, y)
    inside = (xx / (2 * np.sqrt(2))) ** 2 + (yy / np.sqrt(2)) ** 2 < 1.0
    theta = np.arcsin(np.clip(yy / np.sqrt(2), -1.0, 1.0))
    dec = np.degrees(np.arcsin(np.clip((2 * theta + np.sin(2 * theta)) / np.pi, -1.0, 1.0)))
    lon = np.degrees(np.pi * xx / (2 * np.sqrt(2) * np.maximum(np.cos(theta), 1e-12)))
    ra = (-lon) % 360.0  # RA grows to the left, as on the sky
    return ra, dec, inside


def coverage_image(pixels: Sequence[PartitionPixel], width: int = THUMBNAIL_WIDTH_PX) -> np.ndarray:
    """An RGBA ``(width // 2, width)`` uint8 Mollweide map of ``pixels``, coloured by order.

    Outside the ellipse is transparent; sky no partition covers is light grey.
    """
    ra, dec, inside = _mollweide_inverse(width)
    img = np.zeros((*ra.shape, 4), dtype=np.uint8)
    img[inside] = _SKY_GREY
    if not pixels:
        return img
    orders = np.fromiter((p.order for p in pixels), dtype=np.int64, count=len(pixels))
    npix = np.fromiter((p.pixel for p in pixels), dtype=np.int64, count=len(pixels))
    shift = 2 * (INDEX_ORDER - orders)
    starts, ends = npix << shift, (npix + 1) << shift
    sort = np.argsort(starts, kind="stable")
    starts, ends, orders = starts[sort], ends[sort], orders[sort]
    idx = radec_to_healpix29(ra[inside], dec[inside])
    k = np.searchsorted(starts, idx, side="right") - 1
    hit = (k >= 0) & (idx < ends[np.maximum(k, 0)])
    colors = order_colors(np.unique(orders).tolist())
    palette = np.array([colors[o] for o in sorted(colors)], dtype=np.uint8)
    slot = np.searchsorted(np.array(sorted(colors)), orders)
    inner = img[inside]
    inner[hit] = palette[slot[k[hit]]]
    img[inside] = inner
    return img


def coverage_thumbnail(pixels: Sequence[PartitionPixel], width: int = THUMBNAIL_WIDTH_PX) -> str:
    """An inline PNG ``<img>`` of :func:`coverage_image` with a legend of the orders drawn.

    Empty when matplotlib cannot encode the image: a repr must never fail.
    """
    try:
        from matplotlib.image import imsave

        img = coverage_image(pixels, width)
        buf = io.BytesIO()
        imsave(buf, img, format="png")
    except Exception:
        return ""
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    legend = " ".join(
        f"<span style='color:rgb({r},{g},{b})'>&#9632;</span>&nbsp;order&nbsp;{o}"
        for o, (r, g, b, _) in order_colors({p.order for p in pixels}).items()
    )
    return (
        f"<img alt='partition coverage (Mollweide, RA to the left)' width='{width}' height='{width // 2}' "
        f"src='data:image/png;base64,{data}'><br><small>{legend}</small>"
    )
