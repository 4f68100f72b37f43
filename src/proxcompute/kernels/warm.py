"""Compile every kernel once so numba's on-disk cache is warm (run at install: ``make``)."""

from __future__ import annotations

import numpy as np


def warm() -> None:
    """Call each kernel on tiny inputs, filling numba's cache for this machine."""
    from proxcompute import kernels
    from proxcompute.kernels import healpix_nested

    ra = np.array([0.0, 10.0])
    dec = np.array([0.0, 1.0])
    kernels.cone_mask(ra, dec, 0.0, 0.0, 1.0)
    kernels.separation_arcsec(ra, dec, ra, dec)
    kernels.polygon_mask(ra, dec, np.array([[0.0, 0.0, 1.0]]))
    kernels.box_mask(ra, dec, 350.0, 10.0, -1.0, 1.0)
    kernels.radec_to_xyz(ra, dec)
    healpix_nested.radec_to_nested(29, ra, dec)
    healpix_nested.nested_to_radec(5, np.array([0, 1]))


if __name__ == "__main__":
    warm()
