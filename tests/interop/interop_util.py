"""Helpers shared by the interop tests: brute-force references and result comparison."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pandas as pd
import pytest

PEER_WARNINGS = [
    # hats-import, LSDB and nested-pandas under pandas 3: their warnings, not ours
    pytest.mark.filterwarnings("ignore:Computing partitions from catalog parquet files:UserWarning"),
    pytest.mark.filterwarnings("ignore:The inplace keyword:Warning"),
    pytest.mark.filterwarnings("ignore:The 'mode.chained_assignment' option:Warning"),
]
"""``pytestmark = [pytest.mark.interop, *PEER_WARNINGS]`` in every interop test module."""

N_ROWS = 100_000
"""Rows of the synthetic sky in the shared input (plus ``2 * N_POLAR`` rows near the poles)."""
N_POLAR = 1_500
MAX_ROWS = 5_000
"""Small partitions, so that ~100k rows give several HEALPix orders."""
MARGIN_ARCSEC = 10.0
SEED = 20240601

# A point closer than this to the cone's edge may land on either side depending on the
# separation formula (haversine in hats, dot products or Vincenty elsewhere): not a bug.
EDGE_TOLERANCE_ARCSEC = 1e-6

# (label, ra, dec, radius_arcsec); partition-edge positions are added from the catalog itself.
FIXED_CONES = [
    ("dense cluster", 45.2, 29.8, 1200.0),
    ("band across ra=0", 359.95, 0.1, 1800.0),
    ("north pole", 17.0, 89.7, 3600.0),
    ("exactly the north pole", 0.0, 90.0, 1200.0),
    ("south pole", 250.0, -89.2, 3600.0),
    ("sparse sky", 270.0, 30.0, 3600.0),
    ("nothing there", 90.0, -30.0, 1.0),
]


def partition_edge_cones(pixels: list[tuple[int, int]]) -> list[tuple[str, float, float, float]]:
    """Cones centred on a partition corner and on a point of a partition edge, both chosen as
    close as possible to a dense cluster of the synthetic sky, so that they return rows from
    several partitions."""
    from proxcompute.synthetic import DEFAULT_CLUSTERS

    centres = np.array([(c[0], c[1]) for c in DEFAULT_CLUSTERS])
    best: dict[int, tuple[float, str, float, float]] = {}
    for order, pixel in pixels:
        xyz = hp.boundaries(1 << order, pixel, step=8, nest=True)  # a corner every 8 points
        ra, dec = hp.vec2ang(xyz.T, lonlat=True)
        for k in range(len(ra)):
            d = angular_separation_arcsec(centres[:, 0], centres[:, 1], ra[k], dec[k]).min()
            kind = int(k % 8 != 0)
            if kind not in best or d < best[kind][0]:
                what = "corner" if kind == 0 else "edge"
                best[kind] = (d, f"{what} of partition {order}/{pixel}", float(ra[k]), float(dec[k]))
    return [(label, ra, dec, 1800.0) for _, label, ra, dec in (best[0], best[1])]


def angular_separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Vincenty great-circle separation in arcsec (accurate at all angles)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (ra1, dec1, ra2, dec2))
    dra = ra2 - ra1
    s1, c1 = np.sin(dec1), np.cos(dec1)
    s2, c2 = np.sin(dec2), np.cos(dec2)
    num = np.hypot(c2 * np.sin(dra), c1 * s2 - s1 * c2 * np.cos(dra))
    den = s1 * s2 + c1 * c2 * np.cos(dra)
    return np.degrees(np.arctan2(num, den)) * 3600.0


def brute_force_cone(df: pd.DataFrame, ra: float, dec: float, radius_arcsec: float) -> pd.DataFrame:
    """Rows of ``df`` within ``radius_arcsec`` of ``(ra, dec)``, with a ``_sep`` column."""
    sep = angular_separation_arcsec(ra, dec, df["ra"].to_numpy(), df["dec"].to_numpy())
    out = df[sep <= radius_arcsec].copy()
    out["_sep"] = sep[sep <= radius_arcsec]
    return out


def frame_ids(frame) -> np.ndarray:
    """Sorted ``id`` values of a pandas/NestedFrame/Arrow result."""
    if hasattr(frame, "column") and hasattr(frame, "num_rows"):  # pyarrow.Table
        ids = frame.column("id").to_numpy()
    else:
        ids = np.asarray(frame["id"].to_numpy())
    return np.sort(ids.astype(np.int64))


def to_pandas(frame) -> pd.DataFrame:
    if hasattr(frame, "to_pandas") and hasattr(frame, "num_rows"):
        return frame.to_pandas()
    return pd.DataFrame({c: np.asarray(frame[c].to_numpy()) for c in frame.columns})


def assert_same_cone(
    got_ids: np.ndarray,
    truth_df: pd.DataFrame,
    ra: float,
    dec: float,
    radius_arcsec: float,
    label: str,
) -> None:
    """``got_ids`` equals the brute-force answer except for points on the edge itself."""
    want = brute_force_cone(truth_df, ra, dec, radius_arcsec)
    want_ids = np.sort(want["id"].to_numpy())
    got_ids = np.sort(np.asarray(got_ids, dtype=np.int64))
    assert len(np.unique(got_ids)) == len(got_ids), f"{label}: duplicate rows in the result"
    missing = np.setdiff1d(want_ids, got_ids)
    extra = np.setdiff1d(got_ids, want_ids)
    if missing.size == 0 and extra.size == 0:
        return
    by_id = truth_df.set_index("id")
    odd = np.concatenate([missing, extra])
    odd_in_truth = odd[np.isin(odd, by_id.index.to_numpy())]
    if odd_in_truth.size != odd.size:
        raise AssertionError(f"{label}: ids {np.setdiff1d(odd, odd_in_truth)[:10]} are not in the input")
    sep = angular_separation_arcsec(
        ra, dec, by_id.loc[odd, "ra"].to_numpy(), by_id.loc[odd, "dec"].to_numpy()
    )
    off_edge = np.abs(sep - radius_arcsec) > EDGE_TOLERANCE_ARCSEC
    assert not off_edge.any(), (
        f'{label} at ({ra}, {dec}, r={radius_arcsec}"): {missing.size} rows missing '
        f"(e.g. {missing[:5]}), {extra.size} extra rows (e.g. {extra[:5]}); "
        f"separations of the wrong rows: {np.sort(sep[off_edge])[:5]}"
    )


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame, label: str, columns=("ra", "dec")) -> None:
    """Same ids, and bit-identical ``columns`` per id."""
    g = got.sort_values("id").reset_index(drop=True)
    w = want.sort_values("id").reset_index(drop=True)
    assert len(g) == len(w), f"{label}: {len(g)} rows, expected {len(w)}"
    np.testing.assert_array_equal(g["id"].to_numpy(), w["id"].to_numpy(), err_msg=f"{label}: ids differ")
    for c in columns:
        np.testing.assert_array_equal(
            np.asarray(g[c].to_numpy(), dtype=np.float64),
            np.asarray(w[c].to_numpy(), dtype=np.float64),
            err_msg=f"{label}: column {c} differs",
        )


def read_margin(margin_dir) -> dict[tuple[int, int], pd.DataFrame]:
    """``{(order, pixel): rows}`` of a margin catalog; each file is named after the object
    partition whose margin it holds."""
    import re
    from pathlib import Path

    import pyarrow.parquet as pq

    out = {}
    for f in (Path(margin_dir) / "dataset").rglob("Npix=*.parquet"):
        order = int(re.search(r"Norder=(\d+)", str(f)).group(1))
        pixel = int(re.search(r"Npix=(\d+)", f.name).group(1))
        out[(order, pixel)] = pq.read_table(f, columns=["id", "ra", "dec"]).to_pandas()
    return out


def disc_touches(order: int, pixel: int, ra, dec, radius_arcsec: float, sure: bool) -> np.ndarray:
    """Whether the disc of ``radius_arcsec`` around each point reaches HEALPix ``(order, pixel)``.

    Decided on order-18 sub-pixels (0.8"), then order 22 (0.05") for undecided points:
    ``sure=True`` answers "certainly", ``sure=False`` answers "possibly".
    """
    ra = np.atleast_1d(np.asarray(ra, dtype=np.float64))
    dec = np.atleast_1d(np.asarray(dec, dtype=np.float64))
    r = np.radians(radius_arcsec / 3600.0)
    vecs = np.atleast_2d(hp.ang2vec(ra, dec, lonlat=True))

    def test(fine: int, inclusive: bool, idx: np.ndarray) -> np.ndarray:
        shift = 2 * (fine - order)
        hits = [hp.query_disc(1 << fine, vecs[i], r, inclusive=inclusive, nest=True) >> shift for i in idx]
        return np.array([np.any(h == pixel) for h in hits], dtype=bool)

    idx = np.arange(len(ra))
    lo, hi = test(18, False, idx), test(18, True, idx)
    undecided = idx[lo != hi]
    answer = lo if sure else hi
    if undecided.size:
        answer[undecided] = test(22, not sure, undecided)
    return answer
