"""Margin kernels against numpy brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from margin_reference import ARCSEC, angle_arcsec, unit

from proxcompute.kernels import margin as mk


def _random_ring(rng, center, n, size_deg):
    """A closed ring of ``n`` points around ``center`` (a star-shaped wiggly polygon)."""
    c = center / np.linalg.norm(center)
    t = np.cross(c, [0.0, 0.0, 1.0] if abs(c[2]) < 0.9 else [1.0, 0.0, 0.0])
    t /= np.linalg.norm(t)
    u = np.cross(c, t)
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = np.radians(size_deg) * rng.uniform(0.5, 1.0, n)
    pts = np.cos(rad)[:, None] * c + np.sin(rad)[:, None] * (
        np.cos(ang)[:, None] * t + np.sin(ang)[:, None] * u
    )
    return pts / np.linalg.norm(pts, axis=1, keepdims=True)


def _dense_distance(xyz, ring, per_segment=4000):
    """Distance to the ring by sampling every great-circle arc densely (slerp)."""
    a = ring
    b = np.roll(ring, -1, axis=0)
    omega = np.arccos(np.clip((a * b).sum(1), -1, 1))
    t = np.linspace(0, 1, per_segment)
    so = np.sin(omega)[:, None, None]
    pts = (
        np.sin((1 - t)[None, :, None] * omega[:, None, None]) * a[:, None, :]
        + np.sin(t[None, :, None] * omega[:, None, None]) * b[:, None, :]
    ) / so
    pts = pts.reshape(-1, 3)
    out = np.empty(len(xyz))
    for i, x in enumerate(xyz):
        out[i] = angle_arcsec(pts, x[None, :]).min()
    return out, float(np.max(omega)) / (per_segment - 1) / ARCSEC


@pytest.mark.parametrize("where", [(30.0, 20.0), (0.0, 89.999), (359.99, -45.0)])
def test_polyline_distance_matches_dense_sampling(where):
    rng = np.random.default_rng(3)
    center = unit(*where)
    ring = _random_ring(rng, center, 12, 0.01)
    pts = _random_ring(rng, center, 300, 0.02)  # points inside, outside and across the ring
    pts = np.concatenate([pts, ring, 0.5 * (ring + np.roll(ring, -1, axis=0))])
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    got = mk.polyline_distance_arcsec(pts, ring)
    want, spacing = _dense_distance(pts, ring)
    # dense sampling overestimates: want <= sqrt(d^2 + (spacing / 2)^2)
    assert np.all(got <= want + 1e-6)
    assert np.all(got >= np.sqrt(np.maximum(want**2 - (spacing / 2) ** 2, 0.0)) - 1e-6)


def test_within_distance_mask_equals_threshold_on_brute_force_distance():
    rng = np.random.default_rng(5)
    center = unit(120.0, -30.0)
    ring = _random_ring(rng, center, 40, 0.05)
    pts = _random_ring(rng, center, 2000, 0.08)
    dist = mk.polyline_distance_arcsec(pts, ring)
    nseg = ring.shape[0]
    starts = np.arange(0, nseg, 7)
    lengths = np.minimum(7, nseg - starts)
    centers, radii = mk.block_caps(ring, starts, lengths)
    for thr in (0.5, 10.0, 60.0, 200.0):
        mask = mk.within_distance_mask(
            pts,
            np.zeros(len(pts), dtype=np.int64),
            np.array([0, starts.size]),
            np.arange(starts.size),
            starts,
            lengths,
            centers,
            radii,
            ring,
            thr,
        )
        sure = np.abs(dist - thr) > 1e-6
        assert np.array_equal(mask[sure], (dist <= thr)[sure]), thr


def test_within_distance_mask_only_visits_listed_blocks():
    ring = np.array(unit(np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0, 1.0])))
    x = unit(np.array([0.5, 0.5]), np.array([-1.0 / 3600, 1.0 + 1.0 / 3600]))  # 1" below / above
    starts, lengths = np.arange(4), np.ones(4, dtype=np.int64)
    centers, radii = mk.block_caps(ring, starts, lengths)
    args = (starts, lengths, centers, radii, ring, 2.0)
    # group 0 may see only the bottom edge (segment 0), group 1 only the top edge (segment 2)
    gptr, gblocks = np.array([0, 1, 2]), np.array([0, 2])
    assert mk.within_distance_mask(x, np.array([0, 1]), gptr, gblocks, *args).tolist() == [True, True]
    assert mk.within_distance_mask(x, np.array([1, 0]), gptr, gblocks, *args).tolist() == [False, False]
    assert mk.within_distance_mask(np.empty((0, 3)), np.empty(0, np.int64), gptr, gblocks, *args).size == 0


def test_block_caps_contain_their_segments():
    rng = np.random.default_rng(9)
    ring = _random_ring(rng, unit(200.0, 60.0), 50, 1.0)
    starts = np.array([0, 10, 45])
    lengths = np.array([10, 5, 10])  # the last block wraps around
    centers, radii = mk.block_caps(ring, starts, lengths)
    for c, r, s, n in zip(centers, radii, starts, lengths, strict=True):
        idx = (s + np.arange(n + 1)) % len(ring)
        ang = np.arccos(np.clip(ring[idx] @ c, -1, 1))
        assert np.all(ang <= r + 1e-12)
        assert math.isclose(np.linalg.norm(c), 1.0)


def test_ring_sag_matches_numpy():
    rng = np.random.default_rng(1)
    fine = _random_ring(rng, unit(10.0, 10.0), 200, 0.5)
    a, m, b = fine[0::2], fine[1::2], np.roll(fine[0::2], -1, axis=0)
    n = np.cross(a, b)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    want = np.degrees(np.arcsin(np.abs((m * n).sum(1)).max())) * 3600
    assert math.isclose(mk.ring_sag_arcsec(fine), want, rel_tol=1e-9)
