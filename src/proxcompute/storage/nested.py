"""Nested columns: the struct-of-lists layout nested-pandas and LSDB write, checked on read.

A nested column (nested-pandas' ``NestedDtype``) is a struct whose fields are lists of the
same length in each row (one light curve: ``mjd``, ``flux``, ``band``...). A file whose lists
disagree in length is corrupt: read as a table it would misalign the observations.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from proxcompute.arrow_types import is_list_like as _list_like
from proxcompute.arrow_types import is_nested_type
from proxcompute.errors import CorruptPartitionError

__all__ = ["check_nested_lengths", "is_nested_type", "nested_fields"]


def nested_fields(schema: pa.Schema) -> list[tuple[str, str]]:
    """``(dotted path, type)`` of the sub-fields of nested columns, for display.

    A struct's fields are ``col.field``; a list of structs' (or a struct of lists') fields are
    ``col.field`` with the per-row list type.
    """
    out: list[tuple[str, str]] = []

    def walk(prefix: str, t: pa.DataType) -> None:
        if _list_like(t) and pa.types.is_struct(t.value_type):
            for f in t.value_type:
                out.append((f"{prefix}.{f.name}", f"list<{f.type}>"))
        elif pa.types.is_struct(t):
            for f in t:
                out.append((f"{prefix}.{f.name}", str(f.type)))
                if pa.types.is_struct(f.type):
                    walk(f"{prefix}.{f.name}", f.type)

    for f in schema:
        walk(f.name, f.type)
    return out


def _lengths(arr: pa.Array) -> np.ndarray:
    n = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    return np.nan_to_num(np.asarray(n, dtype=np.float64), nan=-1.0)  # a null list is length -1


def check_nested_lengths(table: pa.Table, path: str | os.PathLike) -> None:
    """Every struct-of-lists column has lists of equal length in each row.

    Raises
    ------
    CorruptPartitionError
        Naming ``path``, the column, the two fields and the first row where they differ.
    """
    for name in table.column_names:
        t = table.schema.field(name).type
        if not pa.types.is_struct(t):
            continue
        lists = [f.name for f in t if _list_like(f.type)]
        if len(lists) < 2:
            continue
        col = table.column(name)
        for chunk in col.chunks:
            ref = _lengths(chunk.field(lists[0]))
            for other in lists[1:]:
                bad = np.flatnonzero(_lengths(chunk.field(other)) != ref)
                if bad.size:
                    raise CorruptPartitionError(
                        str(path),
                        f"nested column {name!r}: lists {lists[0]!r} and {other!r} differ in length "
                        f"(first in row {int(bad[0])} of a row group): its rows cannot be read as one "
                        "table of observations",
                    )
