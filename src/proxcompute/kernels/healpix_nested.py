"""HEALPix NESTED pixel arithmetic in numba (position <-> pixel, pixel centres, cone covers).

The algorithms follow the reference HEALPix C++ library (``healpix_base.cc``: ``loc2pix``,
``pix2loc``, ``max_pixrad``). They exist so that the query path (open a catalog, run a cone)
does not import healpy, whose import pulls in matplotlib and astropy and costs ~2 s in a
fresh process. Tests check them against healpy pixel for pixel.
"""

from __future__ import annotations

import math

import numpy as np

from proxcompute.kernels._jit import jit

__all__ = [
    "cone_cover_nested",
    "max_pixel_radius_rad",
    "nested_to_radec",
    "radec_to_nested",
]

_JRLL = np.array([2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4], dtype=np.int64)
_JPLL = np.array([1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7], dtype=np.int64)
_HALFPI = 0.5 * math.pi
_TWOTHIRD = 2.0 / 3.0


@jit
def _spread_bits(v):
    # interleave zeros between the low 32 bits of v
    v = v & 0xFFFFFFFF
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    v = (v | (v << 1)) & 0x5555555555555555
    return v


@jit
def _compress_bits(v):
    v = v & 0x5555555555555555
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    v = (v | (v >> 16)) & 0x00000000FFFFFFFF
    return v


@jit
def _loc2pix(order, z, phi):
    nside = np.int64(1) << order
    za = abs(z)
    tt = phi / (0.5 * math.pi)
    tt = tt - 4.0 * math.floor(tt / 4.0)
    if tt >= 4.0:
        tt = 0.0
    if za <= 2.0 / 3.0:
        temp1 = nside * (0.5 + tt)
        temp2 = nside * (z * 0.75)
        jp = np.int64(temp1 - temp2)
        jm = np.int64(temp1 + temp2)
        ifp = jp >> order
        ifm = jm >> order
        if ifp == ifm:
            face = ifp | 4
        elif ifp < ifm:
            face = ifp
        else:
            face = ifm + 8
        ix = jm & (nside - 1)
        iy = nside - (jp & (nside - 1)) - 1
    else:
        return _loc2pix_polar(order, z, 1.0 - za, phi)
    return (face << (2 * order)) + _spread_bits(ix) + (_spread_bits(iy) << 1)


@jit
def _radec_to_nested(order, ra, dec, out):
    for i in range(ra.shape[0]):
        d = dec[i] * (math.pi / 180.0)
        sd = math.sin(d)
        if abs(sd) > 0.99:
            # near the poles, 1 - |z| from cos(dec) keeps full precision
            cd = math.cos(d)
            za1 = cd * cd / (1.0 + abs(sd))
            z = math.copysign(1.0 - za1, sd)
            out[i] = _loc2pix_polar(order, z, za1, ra[i] * (math.pi / 180.0))
        else:
            out[i] = _loc2pix(order, sd, ra[i] * (math.pi / 180.0))
    return out


@jit
def _loc2pix_polar(order, z, one_minus_za, phi):
    nside = np.int64(1) << order
    tt = phi / (0.5 * math.pi)
    tt = tt - 4.0 * math.floor(tt / 4.0)
    if tt >= 4.0:
        tt = 0.0
    ntt = min(3, np.int64(tt))
    tp = tt - ntt
    tmp = nside * math.sqrt(3.0 * one_minus_za)
    jp = np.int64(tp * tmp)
    jm = np.int64((1.0 - tp) * tmp)
    jp = min(jp, nside - 1)
    jm = min(jm, nside - 1)
    if z >= 0:
        face = ntt
        ix = nside - jm - 1
        iy = nside - jp - 1
    else:
        face = ntt + 8
        ix = jp
        iy = jm
    return (face << (2 * order)) + _spread_bits(ix) + (_spread_bits(iy) << 1)


def radec_to_nested(order: int, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """NESTED pixel index at ``order`` (0..29) of positions in degrees, as int64."""
    ra = np.ascontiguousarray(ra_deg, dtype=np.float64)
    dec = np.ascontiguousarray(dec_deg, dtype=np.float64)
    return _radec_to_nested(int(order), ra, dec, np.empty(ra.shape[0], dtype=np.int64))


@jit
def _pix2loc(order, pix, jrll, jpll):
    nside = np.int64(1) << order
    npface = nside * nside
    face = pix >> (2 * order)
    ipf = pix & (npface - 1)
    ix = _compress_bits(ipf)
    iy = _compress_bits(ipf >> 1)
    jr = (jrll[face] << order) - ix - iy - 1
    fact2 = 1.0 / (3.0 * nside * nside)
    if jr < nside:
        nr = jr
        z = 1.0 - nr * nr * fact2
    elif jr > 3 * nside:
        nr = 4 * nside - jr
        z = nr * nr * fact2 - 1.0
    else:
        nr = nside
        z = (2 * nside - jr) * (2.0 / (3.0 * nside))
    tmp = jpll[face] * nr + ix - iy
    if tmp < 0:
        tmp += 8 * nr
    elif tmp >= 8 * nr:
        tmp -= 8 * nr
    if nr == nside:
        phi = 0.25 * math.pi * tmp / nside
    else:
        phi = 0.25 * math.pi * tmp / nr
    return z, phi


@jit
def _nested_to_xyz(order, pix, jrll, jpll, out):
    for i in range(pix.shape[0]):
        z, phi = _pix2loc(order, pix[i], jrll, jpll)
        s = math.sqrt(max(0.0, (1.0 - z) * (1.0 + z)))
        out[i, 0] = s * math.cos(phi)
        out[i, 1] = s * math.sin(phi)
        out[i, 2] = z
    return out


def nested_to_xyz(order: int, pixels: np.ndarray) -> np.ndarray:
    """Unit vectors ``(n, 3)`` of NESTED pixel centres."""
    pix = np.ascontiguousarray(pixels, dtype=np.int64)
    return _nested_to_xyz(int(order), pix, _JRLL, _JPLL, np.empty((pix.shape[0], 3)))


def nested_to_radec(order: int, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) in degrees of NESTED pixel centres."""
    xyz = nested_to_xyz(order, pixels)
    ra = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1.0, 1.0)))
    return ra, dec


def max_pixel_radius_rad(order: int) -> float:
    """Largest angular distance from a pixel centre to its corners at ``order`` (healpy ``max_pixrad``)."""
    nside = 1 << int(order)
    z_a, phi_a = 2.0 / 3.0, math.pi / (4 * nside)
    t1 = (1.0 - 1.0 / nside) ** 2
    z_b, phi_b = 1.0 - t1 / 3.0, 0.0

    def vec(z: float, phi: float) -> np.ndarray:
        s = math.sqrt(max(0.0, 1.0 - z * z))
        return np.array([s * math.cos(phi), s * math.sin(phi), z])

    va, vb = vec(z_a, phi_a), vec(z_b, phi_b)
    return float(math.atan2(np.linalg.norm(np.cross(va, vb)), float(va @ vb)))


_MAX_PIXRAD = np.array([max_pixel_radius_rad(o) for o in range(30)])


def _compress_bits_np(v: np.ndarray) -> np.ndarray:
    v = v & 0x5555555555555555
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    v = (v | (v >> 16)) & 0x00000000FFFFFFFF
    return v


def nested_to_xyz_numpy(order: int, pix: np.ndarray) -> np.ndarray:
    """numpy twin of :func:`nested_to_xyz` (no numba start-up; for small arrays)."""
    order = int(order)
    pix = np.asarray(pix, dtype=np.int64)
    nside = 1 << order
    face = pix >> (2 * order)
    ipf = pix & (nside * nside - 1)
    ix = _compress_bits_np(ipf)
    iy = _compress_bits_np(ipf >> 1)
    jr = (_JRLL[face] << order) - ix - iy - 1
    north = jr < nside
    south = jr > 3 * nside
    nr = np.where(north, jr, np.where(south, 4 * nside - jr, nside))
    fact2 = 1.0 / (3.0 * nside * nside)
    z = np.where(
        north,
        1.0 - nr.astype(np.float64) ** 2 * fact2,
        np.where(south, nr.astype(np.float64) ** 2 * fact2 - 1.0, (2 * nside - jr) * (2.0 / (3.0 * nside))),
    )
    tmp = _JPLL[face] * nr + ix - iy
    tmp = np.where(tmp < 0, tmp + 8 * nr, np.where(tmp >= 8 * nr, tmp - 8 * nr, tmp))
    phi = 0.25 * math.pi * tmp / nr
    s = np.sqrt(np.maximum(0.0, (1.0 - z) * (1.0 + z)))
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


def cone_cover_nested(order: int, ra_deg: float, dec_deg: float, radius_deg: float) -> np.ndarray:
    """Pixels at ``order`` that may intersect a cone (conservative; sorted).

    Descends the NESTED tree from the 12 base pixels (in numpy: covers are small), keeping a pixel when its centre lies
    within ``radius + max_pixel_radius(order) * 1.01`` of the cone centre. Every pixel that
    holds a point of the cone is kept (the farthest point of a pixel from its centre is a
    corner, at most ``max_pixel_radius`` away).
    """
    d = math.radians(dec_deg)
    a = math.radians(ra_deg)
    cx, cy, cz = math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)
    r = math.radians(radius_deg)
    centre = np.array([cx, cy, cz])
    pix = np.arange(12, dtype=np.int64)
    o = 0
    pix = pix[nested_to_xyz_numpy(0, pix) @ centre >= math.cos(min(r + _MAX_PIXRAD[0] * 1.01, math.pi))]
    target = int(order)
    while o < target:
        # descend up to 3 orders at a time (64 children): fewer numpy round trips
        step = min(3, target - o)
        o += step
        kids = np.arange(4**step, dtype=np.int64)
        pix = ((pix[:, None] << (2 * step)) + kids).ravel()
        limit = min(r + _MAX_PIXRAD[o] * 1.01, math.pi)
        pix = pix[nested_to_xyz_numpy(o, pix) @ centre >= math.cos(limit)]
    return np.sort(pix)


# Neighbour tables of healpix_base.cc (T_Healpix_Base::neighbors), rows indexed by `nbnum`.
_NB_XOFFSET = np.array([-1, -1, 0, 1, 1, 1, 0, -1], dtype=np.int64)
_NB_YOFFSET = np.array([0, 1, 1, 1, 0, -1, -1, -1], dtype=np.int64)
_NB_FACEARRAY = np.array(
    [
        [8, 9, 10, 11, -1, -1, -1, -1, 10, 11, 8, 9],  # S
        [5, 6, 7, 4, 8, 9, 10, 11, 9, 10, 11, 8],  # SE
        [-1, -1, -1, -1, 5, 6, 7, 4, -1, -1, -1, -1],  # E
        [4, 5, 6, 7, 11, 8, 9, 10, 11, 8, 9, 10],  # SW
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],  # centre
        [1, 2, 3, 0, 0, 1, 2, 3, 5, 6, 7, 4],  # NE
        [-1, -1, -1, -1, 7, 4, 5, 6, -1, -1, -1, -1],  # W
        [3, 0, 1, 2, 3, 0, 1, 2, 4, 5, 6, 7],  # NW
        [2, 3, 0, 1, -1, -1, -1, -1, 0, 1, 2, 3],  # N
    ],
    dtype=np.int64,
)
_NB_SWAPARRAY = np.array(
    [[0, 0, 3], [0, 0, 6], [0, 0, 0], [0, 0, 5], [0, 0, 0], [5, 0, 0], [0, 0, 0], [6, 0, 0], [3, 0, 0]],
    dtype=np.int64,
)


@jit
def _neighbours_of(order, pix, xoff, yoff, facearray, swaparray, out):
    # the 8 neighbours of one pixel into out[0:8]; -1 where none (3 at some base-pixel corners)
    nside = np.int64(1) << order
    face = pix >> (2 * order)
    ipf = pix & (nside * nside - 1)
    ix = _compress_bits(ipf)
    iy = _compress_bits(ipf >> 1)
    for i in range(8):
        x = ix + xoff[i]
        y = iy + yoff[i]
        nbnum = 4
        if x < 0:
            x += nside
            nbnum -= 1
        elif x >= nside:
            x -= nside
            nbnum += 1
        if y < 0:
            y += nside
            nbnum -= 3
        elif y >= nside:
            y -= nside
            nbnum += 3
        f = facearray[nbnum, face]
        if f < 0:
            out[i] = -1
            continue
        bits = swaparray[nbnum, face >> 2]
        if bits & 1:
            x = nside - x - 1
        if bits & 2:
            y = nside - y - 1
        if bits & 4:
            t = x
            x = y
            y = t
        out[i] = (f << (2 * order)) + _spread_bits(x) + (_spread_bits(y) << 1)


@jit
def _neighbours(order, pixels, xoff, yoff, facearray, swaparray, out):
    for i in range(pixels.shape[0]):
        _neighbours_of(order, pixels[i], xoff, yoff, facearray, swaparray, out[i])
    return out


def neighbours_nested(order: int, pixels: np.ndarray) -> np.ndarray:
    """The 8 neighbours of each NESTED pixel, shape ``(n, 8)``; -1 where a neighbour does not exist."""
    pix = np.ascontiguousarray(pixels, dtype=np.int64)
    out = np.empty((pix.shape[0], 8), dtype=np.int64)
    return _neighbours(int(order), pix, _NB_XOFFSET, _NB_YOFFSET, _NB_FACEARRAY, _NB_SWAPARRAY, out)


@jit
def _xyf_to_xyz(x, y, face, jrll, jpll, out, k):
    # healpix_base.cc xyf2loc: face coordinates (x, y in [0, 1]) to a unit vector
    jr = jrll[face] - x - y
    if jr < 1.0:
        nr = jr
        z = 1.0 - nr * nr / 3.0
        s = math.sqrt(max(0.0, nr * nr / 3.0 * (2.0 - nr * nr / 3.0)))
    elif jr > 3.0:
        nr = 4.0 - jr
        z = nr * nr / 3.0 - 1.0
        s = math.sqrt(max(0.0, nr * nr / 3.0 * (2.0 - nr * nr / 3.0)))
    else:
        nr = 1.0
        z = (2.0 - jr) * 2.0 / 3.0
        s = math.sqrt(max(0.0, (1.0 - z) * (1.0 + z)))
    tmp = jpll[face] * nr + x - y
    if tmp < 0.0:
        tmp += 8.0
    if tmp >= 8.0:
        tmp -= 8.0
    phi = 0.0 if nr < 1e-15 else (0.25 * math.pi * tmp) / nr
    out[k, 0] = s * math.cos(phi)
    out[k, 1] = s * math.sin(phi)
    out[k, 2] = z


@jit
def _boundaries(order, pix, step, jrll, jpll, out):
    nside = np.int64(1) << order
    face = pix >> (2 * order)
    ipf = pix & (nside * nside - 1)
    ix = _compress_bits(ipf)
    iy = _compress_bits(ipf >> 1)
    dc = 0.5 / nside
    xc = (ix + 0.5) / nside
    yc = (iy + 0.5) / nside
    d = 1.0 / (step * nside)
    for i in range(step):
        _xyf_to_xyz(xc + dc - i * d, yc + dc, face, jrll, jpll, out, i)
        _xyf_to_xyz(xc - dc, yc + dc - i * d, face, jrll, jpll, out, i + step)
        _xyf_to_xyz(xc - dc + i * d, yc - dc, face, jrll, jpll, out, i + 2 * step)
        _xyf_to_xyz(xc + dc, yc - dc + i * d, face, jrll, jpll, out, i + 3 * step)
    return out


def boundaries_xyz(order: int, pixel: int, step: int) -> np.ndarray:
    """Unit vectors ``(4 * step, 3)`` around one NESTED pixel, in healpy's ``boundaries`` order."""
    out = np.empty((4 * int(step), 3))
    return _boundaries(int(order), np.int64(pixel), int(step), _JRLL_F, _JPLL_F, out)


_JRLL_F = _JRLL.astype(np.float64)
_JPLL_F = _JPLL.astype(np.float64)
