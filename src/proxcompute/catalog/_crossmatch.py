"""``crossmatch(left, right, ...)``: catalogs, DataFrames or astropy Tables on either side."""

from __future__ import annotations

from typing import Any

from proxcompute.catalog._catalog import Catalog
from proxcompute.catalog._open import from_dataframe
from proxcompute.ops.proper_motion import ProperMotion

__all__ = ["crossmatch"]


def crossmatch(
    left: Any,
    right: Any,
    *,
    radius_arcsec: float = 1.0,
    n_neighbors: int = 1,
    how: str = "nearest",
    min_radius_arcsec: float = 0.0,
    suffixes: tuple[str, str] | None = None,
    ensure_margin: bool = False,
    left_ra_column: str | None = None,
    left_dec_column: str | None = None,
    right_ra_column: str | None = None,
    right_dec_column: str | None = None,
    proper_motion: ProperMotion | None = None,
) -> Catalog:
    """Crossmatch two catalogs (or a DataFrame / astropy Table and a catalog), lazily.

    Parameters
    ----------
    left, right
        :class:`Catalog`, pandas DataFrame or astropy Table (in-memory tables are
        partitioned on the fly; a user's target list needs no ingest).
    radius_arcsec
        Largest separation of a match, inclusive (float or astropy Quantity).
    n_neighbors
        Nearest right rows kept per left row (``how="nearest"`` or ``"left"``).
    how
        ``"nearest"`` (k nearest within the radius), ``"all"`` (every pair within it) or
        ``"left"`` (nearest, keeping unmatched left rows with nulls).
    min_radius_arcsec
        Smallest separation of a match, inclusive.
    suffixes
        Suffixes for left and right columns; default ``(left.name, right.name)`` as in
        LSDB (``("left", "right")`` when the names are equal).
    ensure_margin
        If the right catalog's margin is missing or narrower than the radius, read
        neighbouring partitions on the fly instead of refusing.
    left_ra_column, left_dec_column, right_ra_column, right_dec_column
        Coordinate columns (default: each catalog's own).
    proper_motion
        A :class:`~proxcompute.ProperMotion`: move the left positions to the right's epoch
        before matching (see :meth:`Catalog.crossmatch`); adds ``ra_epoch``, ``dec_epoch``.

    Returns
    -------
    Catalog
        Lazy, partitioned like the left: columns ``_healpix_29`` (the left row's), the left
        columns suffixed, the right columns suffixed, and ``_dist_arcsec``.

    Examples
    --------
    >>> import pandas as pd
    >>> from proxcompute.catalog import from_dataframe
    >>> survey = from_dataframe(pd.DataFrame({"id": [1, 2], "ra": [10.0, 20.0], "dec": [0.0, 5.0]}), name="survey")
    >>> targets = pd.DataFrame({"name": ["a", "b"], "ra": [10.0001, 50.0], "dec": [0.0, 0.0]})
    >>> crossmatch(targets, survey, radius_arcsec=2.0).compute()[["name_targets", "id_survey"]].values.tolist()
    [['a', 1]]
    """
    if not isinstance(left, Catalog):
        left = from_dataframe(left, name="targets", ra_column=left_ra_column or "ra", dec_column=left_dec_column or "dec")
    if not isinstance(right, Catalog):
        right = from_dataframe(
            right,
            name="right" if left.name != "right" else "right2",
            ra_column=right_ra_column or "ra",
            dec_column=right_dec_column or "dec",
        )
    return left.crossmatch(
        right,
        radius_arcsec,
        n_neighbors=n_neighbors,
        how=how,
        min_radius_arcsec=min_radius_arcsec,
        suffixes=suffixes,
        ensure_margin=ensure_margin,
        proper_motion=proper_motion,
    )
