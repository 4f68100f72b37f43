"""proxcompute: data-proximate compute for very large sky catalogs."""

from proxcompute.errors import ProxError
from proxcompute.sky import INDEX_COLUMN, Box, Cone, Polygon

__all__ = [
    "INDEX_COLUMN",
    "Box",
    "Cone",
    "Polygon",
    "ProxError",
]

__version__ = "0.1.0"
