"""Compile every kernel once so numba's on-disk cache is warm (run at install: ``make``)."""

from __future__ import annotations

import numpy as np


def warm() -> None:
    """Call each kernel on tiny inputs, filling numba's cache for this machine."""
    from proxcompute import kernels
    from proxcompute.kernels import crossmatch, healpix_nested

    ra = np.array([0.0, 10.0])
    dec = np.array([0.0, 1.0])
    kernels.cone_mask(ra, dec, 0.0, 0.0, 1.0)
    kernels.separation_arcsec(ra, dec, ra, dec)
    kernels.polygon_mask(ra, dec, np.array([[0.0, 0.0, 1.0]]))
    kernels.box_mask(ra, dec, 350.0, 10.0, -1.0, 1.0)
    kernels.radec_to_xyz(ra, dec)
    healpix_nested.radec_to_nested(29, ra, dec)
    healpix_nested.nested_to_radec(5, np.array([0, 1]))
    healpix_nested.neighbours_nested(5, np.array([0, 1]))
    healpix_nested.boundaries_xyz(5, 1, 4)
    index = healpix_nested.radec_to_nested(29, ra, dec)
    order = np.argsort(index)
    # Arrays from Arrow are read-only, which numba compiles separately: warm both kinds, and
    # a crossmatch's left and right sides in either (a right side sorted once is writable).
    kinds = ((index[order], ra[order], dec[order]), _readonly(index[order], ra[order], dec[order]))
    for idx, r, d in kinds:
        healpix_nested.radec_to_nested(29, r, d)
        kernels.cone_mask(r, d, 0.0, 0.0, 1.0)
        for ridx, rr, rd in kinds:
            right = crossmatch.RightBuckets(ridx, rr, rd, 8)
            crossmatch.nearest_k(idx, r, d, right, 1 / 3600, 2)
            crossmatch.all_pairs(idx, r, d, right, 1 / 3600)
    _warm_margin()


def _readonly(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    out = []
    for a in arrays:
        b = a.copy()
        b.setflags(write=False)
        out.append(b)
    return tuple(out)


def _warm_margin() -> None:
    from proxcompute.kernels import margin

    ring = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.0, 0.8]])
    starts, lengths = np.array([0, 2]), np.array([2, 2])
    centers, radii = margin.block_caps(ring, starts, lengths)
    one = np.array([0], dtype=np.int64)
    margin.within_distance_mask(ring[:1], one, np.array([0, 2]), np.array([0, 1]), starts, lengths, centers, radii, ring, 1.0)
    margin.ring_sag_arcsec(ring)
    margin.polyline_distance_arcsec(ring[:1], ring)


if __name__ == "__main__":
    warm()
