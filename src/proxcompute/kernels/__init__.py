"""Numba kernels on plain numpy arrays; imports nothing else of proxcompute."""

from proxcompute.kernels.spherical import (
    box_mask,
    chord2_threshold,
    cone_mask,
    polygon_mask,
    radec_to_xyz,
    separation_arcsec,
)

__all__ = [
    "box_mask",
    "chord2_threshold",
    "cone_mask",
    "polygon_mask",
    "radec_to_xyz",
    "separation_arcsec",
]
