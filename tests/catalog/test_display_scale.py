"""Summaries stay small at any partition count: HTML repr, text repr, explain, info, TAP /tables.

Catalogs of ~10^4 partitions are built cheaply: a stored one from a synthetic
``partition_info.csv`` (no partition files: nothing here reads rows), an in-memory one with
empty partitions. Sizes are behaviour (bounds that do not grow with the partitions), not timing.
"""

from __future__ import annotations

import base64
import io
import json
import re

import healpy
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from proxcompute.catalog import Catalog, open_catalog
from proxcompute.catalog._coverage import coverage_image, order_colors
from proxcompute.plan.nodes import Scan
from proxcompute.plan.source import MemorySource
from proxcompute.storage import PartitionPixel
from proxcompute.storage.layout import write_partition_info
from proxcompute.storage.properties import write_properties

HTML_MAX_BYTES = 100_000

SCHEMA = pa.schema(
    [("_healpix_29", pa.int64()), ("id", pa.int64()), ("ra", pa.float64()), ("dec", pa.float64()),
     ("mag", pa.float32()), ("flag", pa.int16())]
)  # fmt: skip


def many_pixels(deep: int) -> list[PartitionPixel]:
    """The whole sky: the first ``deep`` order-3 pixels split to order 6, the rest at order 3."""
    out = []
    for p in range(768):
        if p < deep:
            out += [PartitionPixel(6, p * 64 + k) for k in range(64)]
        else:
            out.append(PartitionPixel(3, p))
    return out


def stored_without_rows(root, pixels) -> Catalog:
    root.mkdir(parents=True)
    write_properties(root, {"obs_collection": "big", "dataproduct_type": "object", "hats_nrows": 10**9,
                            "hats_col_ra": "ra", "hats_col_dec": "dec", "hats_max_rows": 1_000_000,
                            "hats_order": 6})  # fmt: skip
    write_partition_info(root, pixels)
    (root / "dataset").mkdir()
    pq.write_metadata(SCHEMA, root / "dataset" / "_common_metadata")
    return open_catalog(root)


@pytest.fixture(scope="module", params=[150, 9])
def big(request, tmp_path_factory):
    """~10^4 partitions (150 deep pixels: 10,218) and, for comparison, ~10^3 (9: 1,335)."""
    return stored_without_rows(tmp_path_factory.mktemp("big") / "big", many_pixels(request.param))


def test_html_repr_is_bounded_and_useful(big):
    html = big._repr_html_()
    assert len(html.encode()) < HTML_MAX_BYTES
    n = len(big.partitions)
    assert f"{n:,} (order 3: " in html and "order 6: " in html
    assert "1,000,000,000" in html
    assert "data:image/png;base64," in html and "order&nbsp;6" in html
    assert "<code>mag</code>&nbsp;<small>float</small>" in html


def test_html_repr_size_does_not_grow_with_partitions(tmp_path):
    small = stored_without_rows(tmp_path / "small", many_pixels(0))  # 768 partitions
    large = stored_without_rows(tmp_path / "large", many_pixels(200))  # 13,368 partitions
    a, b = len(small._repr_html_()), len(large._repr_html_())
    assert b < HTML_MAX_BYTES and b < 2 * a


def test_text_repr_and_info_are_bounded(big):
    from proxcompute.cli import catalog_summary

    assert len(repr(big)) < 2_000
    info = json.dumps(catalog_summary(big))
    assert len(info) < 5_000 and f'"partitions": {len(big.partitions)}' in info


def test_explain_is_bounded_at_many_partitions():
    pixels = tuple(many_pixels(150))
    src = MemorySource(SCHEMA.empty_table(), pixels, np.zeros(len(pixels) + 1, dtype=np.int64),
                       name="big", ra_column="ra", dec_column="dec", max_rows=None)  # fmt: skip
    cat = Catalog(Scan(src))
    text = cat.where("mag < 20").explain()
    assert len(text) < 10_000
    assert f"reads {len(pixels):,} of {len(pixels):,} partitions" in text
    assert f"... and {len(pixels) - 40:,} more partitions" in text
    assert len(cat._repr_html_()) < HTML_MAX_BYTES


def test_tap_tables_document_is_bounded(big):
    from starlette.testclient import TestClient

    from proxcompute.service import ServiceConfig, create_app

    root = big.path.parent
    with TestClient(create_app(ServiceConfig(root))) as client:
        r = client.get("/tap/tables")
    assert r.status_code == 200
    assert len(r.content) < 20_000
    assert "<name>big</name>" in r.text


def test_coverage_image_matches_matplotlib_and_healpy():
    """Each image pixel shows the sky position matplotlib's Mollweide projection puts there, and
    the colour of the order of the partition holding it by healpy's ang2pix (grey: none)."""
    from matplotlib.projections.geo import MollweideAxes

    from proxcompute.catalog._coverage import _mollweide_inverse

    pixels = [PartitionPixel(2, p) for p in range(0, 40)] + [PartitionPixel(5, p) for p in range(48 * 64, 60 * 64)]
    pixels += [PartitionPixel(4, p) for p in range(2900, 3072)]  # in the south polar cap
    pixels += [PartitionPixel(3, p) for p in range(4 * 16 * 4, 4 * 16 * 4 + 30)]  # along RA = 0
    width = 200
    img = coverage_image(pixels, width)
    h = width // 2
    assert img.shape == (h, width, 4) and img.dtype == np.uint8
    ra, dec, inside = _mollweide_inverse(width)
    rows, cols = np.nonzero(inside)
    x = (cols + 0.5) / width * 4 * np.sqrt(2) - 2 * np.sqrt(2)
    y = np.sqrt(2) - (rows + 0.5) / h * 2 * np.sqrt(2)
    lon = -(((ra[inside] + 180.0) % 360.0) - 180.0)  # RA grows to the left
    xy = MollweideAxes.MollweideTransform(1).transform(np.radians(np.column_stack([lon, dec[inside]])))
    # matplotlib's Newton iteration stops at a step of 1e-3 rad: agree to a tenth of an image pixel
    tenth_pixel = 4 * np.sqrt(2) / width / 10
    assert np.abs(xy - np.column_stack([x, y])).max() < tenth_pixel
    colors = order_colors([p.order for p in pixels])
    want = np.tile(np.array([232, 232, 232, 255], dtype=np.uint8), (len(rows), 1))
    for o in sorted(colors):
        members = np.array(sorted(p.pixel for p in pixels if p.order == o))
        pix = healpy.ang2pix(2**o, ra[inside], dec[inside], nest=True, lonlat=True)
        want[np.isin(pix, members)] = colors[o]
    got = img[rows, cols]
    assert (got == want).all(axis=1).mean() > 0.999  # a centre exactly on an edge may go either way
    assert len({tuple(c) for c in got}) == len(colors) + 1  # every order drawn, and the grey sky
    assert (img[~inside][:, 3] == 0).all()  # outside the ellipse: transparent


def test_html_thumbnail_is_the_image(big):
    from matplotlib.image import imread

    html = big._repr_html_()
    data = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html).group(1)
    png = imread(io.BytesIO(base64.b64decode(data)), format="png")
    assert (np.round(png * 255).astype(np.uint8) == coverage_image(big.partitions)).all()
