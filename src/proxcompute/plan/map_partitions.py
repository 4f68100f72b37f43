"""The ``MapPartitions`` plan node: a user function over each partition's rows.

The node is a barrier for the optimizer: filters, projections and regions written above it
are never moved below it (the function may use any column, and may change the rows), and
the plan below it is optimized on its own. The executor (:mod:`proxcompute.execute`) runs
the function next to the data, partition by partition, and checks what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from proxcompute.errors import PlanError
from proxcompute.plan.nodes import PlanNode, _Unary
from proxcompute.sky import INDEX_COLUMN

__all__ = ["MARGIN_COLUMN", "MapPartitions", "function_name", "schema_from_meta"]

MARGIN_COLUMN = "_margin"
"""With ``include_margin``, the boolean column marking rows from the partition's margin."""


def function_name(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a function, for explain and error messages."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    module = getattr(fn, "__module__", None)
    return f"{module}:{name}" if module and module not in ("__main__", "builtins") else str(name)


def _field_type(dtype: Any) -> pa.DataType:
    dtype = pd.api.types.pandas_dtype(dtype) if not isinstance(dtype, pa.DataType) else dtype
    if isinstance(dtype, pa.DataType):
        return dtype
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return pa.string()
    return (
        pa.from_numpy_dtype(dtype)
        if not isinstance(dtype, pd.api.extensions.ExtensionDtype)
        else (
            pa.Schema.from_pandas(pd.DataFrame({"x": pd.Series([], dtype=dtype)}), preserve_index=False)
            .field("x")
            .type
        )
    )


def schema_from_meta(meta: pd.DataFrame | Mapping[str, Any] | pa.Schema) -> pa.Schema:
    """Arrow schema from ``meta``: a DataFrame (its columns and dtypes), a dict of dtypes or an Arrow schema.

    Object and string dtypes mean strings. ``_healpix_29`` (int64) is put first when missing;
    ``_margin`` is dropped (margin rows never reach the result).

    Examples
    --------
    >>> schema_from_meta({"ra": "f8", "dec": "f8", "g_r": float}).names
    ['_healpix_29', 'ra', 'dec', 'g_r']
    """
    try:
        if isinstance(meta, pa.Schema):
            fields = list(meta)
        elif isinstance(meta, pd.DataFrame):
            fields = [pa.field(str(c), _field_type(meta[c].dtype)) for c in meta.columns]
        elif isinstance(meta, Mapping):
            fields = [pa.field(str(c), _field_type(t)) for c, t in meta.items()]
        else:
            raise TypeError(
                f"meta is a DataFrame, a dict of dtypes or an Arrow schema, not {type(meta).__name__}"
            )
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise PlanError(f"cannot read meta: {exc}") from None
    fields = [f for f in fields if f.name != MARGIN_COLUMN]
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise PlanError(f"meta names a column twice: {names}")
    if INDEX_COLUMN not in names:
        fields.insert(0, pa.field(INDEX_COLUMN, pa.int64()))
    elif not pa.types.is_int64(fields[names.index(INDEX_COLUMN)].type):
        raise PlanError(
            f"meta declares {INDEX_COLUMN} as {fields[names.index(INDEX_COLUMN)].type}; it is int64"
        )
    return pa.schema(fields)


@dataclass(frozen=True, eq=False)
class MapPartitions(_Unary):
    """Rows of ``fn(df)`` (or ``fn(df, pixel)``) for each partition of ``child``.

    Attributes
    ----------
    fn
        The user's function: a pandas DataFrame in, a pandas DataFrame out.
    schema
        The output schema (from ``meta``, or learned from one partition); holds ``_healpix_29``.
    include_pixel
        Call ``fn(df, pixel)``; ``pixel`` has ``order`` and ``pixel``.
    margin_plan
        With ``include_margin``: the plan whose rows are the margin. Over a margin catalog
        (``margin_arcsec`` None: its rows of the same pixel), or over the catalog itself
        (``margin_arcsec`` set: rows within that distance outside the partition, read from
        neighbouring partitions).
    """

    child: PlanNode
    fn: Callable[..., Any]
    schema: pa.Schema
    include_pixel: bool = False
    margin_plan: PlanNode | None = None
    margin_arcsec: float | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise PlanError(f"map_partitions needs a callable, got {type(self.fn).__name__}")
        if INDEX_COLUMN not in self.schema.names:
            raise PlanError(f"the output schema of a user function must hold {INDEX_COLUMN}")

    @property
    def include_margin(self) -> bool:
        return self.margin_plan is not None

    def output_columns(self) -> list[str]:
        return list(self.schema.names)

    def output_arrow_schema(self) -> pa.Schema:
        return self.schema

    def label(self) -> str:
        args = "df, pixel" if self.include_pixel else "df"
        margin = ""
        if self.margin_plan is not None:
            margin = (
                " with margin catalog"
                if self.margin_arcsec is None
                else f' with {self.margin_arcsec:g}" margin read from neighbours'
            )
        return f"MapPartitions {function_name(self.fn)}({args}){margin} -> [{', '.join(self.schema.names)}]"
