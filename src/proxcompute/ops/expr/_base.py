"""Expression IR, part 1: the base class, column references and literals."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["FLOAT", "Column", "Expr", "Literal", "as_float", "kind_of", "wrap"]

FLOAT = pa.float64()


def kind_of(dtype: pa.DataType) -> str:
    """Coarse kind of an Arrow type: ``number``, ``string``, ``bool``, ``temporal`` or ``other``."""
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "number"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return "string"
    if pa.types.is_temporal(dtype):
        return "temporal"
    return "other"


def wrap(e: Expr) -> str:
    """``e`` printed, in parentheses unless it is atomic."""
    return str(e) if e.atomic else f"({e})"


def as_float(x: Any) -> Any:
    """``x`` (a Python number or an Arrow array) as float64."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    return pc.cast(x, FLOAT)


class Expr(ABC):
    """Base class of expression nodes (frozen dataclasses)."""

    atomic: ClassVar[bool] = False
    """Printed without parentheses inside a larger expression."""

    @property
    @abstractmethod
    def kind(self) -> str:
        """Result kind: ``bool``, ``number``, ``string``, ``temporal`` or ``other``."""

    @abstractmethod
    def columns(self) -> frozenset[str]:
        """Names of the columns this expression reads."""

    @abstractmethod
    def evaluate(self, table: pa.Table) -> Any:
        """Evaluate on ``table``: an Arrow array, chunked array or scalar."""

    @abstractmethod
    def to_arrow(self) -> pc.Expression:
        """The equivalent :class:`pyarrow.compute.Expression`."""

    def mask(self, table: pa.Table) -> pa.ChunkedArray | pa.Array:
        """Evaluate a boolean expression to one value per row (scalars are broadcast)."""
        out = self.evaluate(table)
        if isinstance(out, (pa.Array, pa.ChunkedArray)):
            return out
        value = out.as_py() if isinstance(out, pa.Scalar) else out
        return pa.array([value] * table.num_rows, type=pa.bool_())


@dataclass(frozen=True)
class Column(Expr):
    """A column reference; ``dtype_kind`` is the column's :func:`kind_of`."""

    name: str
    dtype_kind: str = "other"
    atomic: ClassVar[bool] = True

    @property
    def kind(self) -> str:
        return self.dtype_kind

    def columns(self) -> frozenset[str]:
        return frozenset((self.name,))

    def evaluate(self, table: pa.Table) -> Any:
        return table.column(self.name)

    def to_arrow(self) -> pc.Expression:
        return pc.field(self.name)

    def __str__(self) -> str:
        return self.name if self.name.isidentifier() else f"`{self.name}`"


@dataclass(frozen=True)
class Literal(Expr):
    """A constant: int, float, str or bool."""

    value: Any
    atomic: ClassVar[bool] = True

    @property
    def kind(self) -> str:
        if isinstance(self.value, bool):
            return "bool"
        if isinstance(self.value, (int, float)):
            return "number"
        if isinstance(self.value, str):
            return "string"
        return "other"

    def columns(self) -> frozenset[str]:
        return frozenset()

    def evaluate(self, table: pa.Table) -> Any:
        return self.value

    def to_arrow(self) -> pc.Expression:
        return pc.scalar(self.value)

    def __str__(self) -> str:
        if isinstance(self.value, float) and not math.isfinite(self.value):
            return f"float({str(self.value)!r})"
        return repr(self.value)
