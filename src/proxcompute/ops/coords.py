"""Validating and normalising coordinate columns of user input."""

from __future__ import annotations

import numpy as np
import pandas as pd

from proxcompute.errors import ColumnNotFoundError, InvalidCoordinatesError

__all__ = ["validated_coordinates"]

_EXAMPLES = 5


def _numeric(df: pd.DataFrame, column: str) -> np.ndarray:
    if column not in df.columns:
        raise ColumnNotFoundError(column, [str(c) for c in df.columns], what="input table")
    s = df[column]
    if not (pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)):
        raise InvalidCoordinatesError(
            f"coordinate column {column!r} must be numeric (degrees), got dtype {s.dtype}"
        )
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def validated_coordinates(df: pd.DataFrame, ra_column: str, dec_column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ra, dec)`` as float64 degrees, RA wrapped into ``[0, 360)``.

    Raises
    ------
    ColumnNotFoundError
        A coordinate column is missing (the message lists the available ones).
    InvalidCoordinatesError
        A column is not numeric, or rows have NaN/infinite coordinates or ``|dec| > 90``;
        the message gives the count and the first few offending rows.

    Examples
    --------
    >>> ra, dec = validated_coordinates(pd.DataFrame({"ra": [-10.0, 370.0], "dec": [0.0, 1.0]}), "ra", "dec")
    >>> ra.tolist()
    [350.0, 10.0]
    """
    ra = _numeric(df, ra_column)
    dec = _numeric(df, dec_column)
    bad = ~np.isfinite(ra) | ~np.isfinite(dec)
    with np.errstate(invalid="ignore"):
        bad |= np.abs(dec) > 90.0
    n_bad = int(bad.sum())
    if n_bad:
        rows = np.flatnonzero(bad)[:_EXAMPLES]
        labels = df.index[rows]
        examples = ", ".join(
            f"row {lab!r}: ({ra_column}={ra[i]!r}, {dec_column}={dec[i]!r})"
            for lab, i in zip(labels, rows, strict=True)
        )
        raise InvalidCoordinatesError(
            f"{n_bad} of {len(ra)} rows have invalid coordinates (NaN, infinite, or |{dec_column}| > 90): "
            f"{examples}{' ...' if n_bad > _EXAMPLES else ''}"
        )
    if ra.size and (ra.min() < 0.0 or ra.max() >= 360.0):
        ra = np.mod(ra, 360.0)
        ra[ra >= 360.0] = 0.0  # np.mod(-1e-17, 360) rounds to 360
    return ra, dec
