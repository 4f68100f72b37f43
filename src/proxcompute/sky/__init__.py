"""Sky geometry: the HEALPix shim (the only module that imports healpy) and region types."""

from proxcompute.sky.healpix import (
    INDEX_COLUMN,
    INDEX_ORDER,
    healpix29_to_order,
    order_to_healpix29_range,
    radec_to_healpix29,
)
from proxcompute.sky.regions import Box, Cone, Polygon, Region

__all__ = [
    "INDEX_COLUMN",
    "INDEX_ORDER",
    "Box",
    "Cone",
    "Polygon",
    "Region",
    "healpix29_to_order",
    "order_to_healpix29_range",
    "radec_to_healpix29",
]
