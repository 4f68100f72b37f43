"""In-memory tables (pandas DataFrame, astropy Table) as partitioned plan sources."""

from __future__ import annotations

from typing import Any

import pandas as pd

from proxcompute.plan import MemorySource
from proxcompute.storage.partitioning import DEFAULT_MAX_ROWS

__all__ = ["memory_source"]


def memory_source(
    df: Any,
    *,
    name: str,
    ra_column: str = "ra",
    dec_column: str = "dec",
    max_rows: int = DEFAULT_MAX_ROWS,
) -> MemorySource:
    """Validate, index and partition a DataFrame or astropy Table in memory."""
    if not isinstance(df, pd.DataFrame):
        to_pandas = getattr(df, "to_pandas", None)
        if to_pandas is None:
            raise TypeError(f"expected a pandas DataFrame or an astropy Table, got {type(df).__name__}")
        df = to_pandas()
    return MemorySource.from_pandas(df, name=name, ra_column=ra_column, dec_column=dec_column, max_rows=max_rows)
