"""Predicates on Arrow types shared by storage (reading) and formats (writing).

A bottom-layer module (it imports nothing of ours) so that the sibling layers ``storage`` and
``formats`` can both ask whether a column is nested without importing each other.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["is_list_like", "is_nested_type"]


def is_list_like(t: pa.DataType) -> bool:
    """A variable-length list (``list`` or ``large_list``)."""
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def is_nested_type(t: pa.DataType) -> bool:
    """Struct, list or map: a column that is not one flat value per row."""
    return pa.types.is_struct(t) or pa.types.is_map(t) or is_list_like(t) or pa.types.is_fixed_size_list(t)
