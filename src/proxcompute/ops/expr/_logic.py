"""Expression IR, part 2: comparisons, boolean logic, membership and null tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from proxcompute.ops.expr._base import FLOAT, Expr, wrap

__all__ = ["COMPARISONS", "And", "Compare", "IsIn", "IsNull", "Not", "Or"]

COMPARISONS = {
    "==": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}


@dataclass(frozen=True)
class Compare(Expr):
    """``left op right`` with ``op`` one of ``== != < <= > >=``."""

    op: str
    left: Expr
    right: Expr

    @property
    def kind(self) -> str:
        return "bool"

    def columns(self) -> frozenset[str]:
        return self.left.columns() | self.right.columns()

    def evaluate(self, table: pa.Table) -> Any:
        return COMPARISONS[self.op](self.left.evaluate(table), self.right.evaluate(table))

    def to_arrow(self) -> pc.Expression:
        return COMPARISONS[self.op](self.left.to_arrow(), self.right.to_arrow())

    def __str__(self) -> str:
        return f"{wrap(self.left)} {self.op} {wrap(self.right)}"


@dataclass(frozen=True)
class _Junction(Expr):
    """Two or more boolean terms combined by one Kleene function (subclasses name it)."""

    terms: tuple[Expr, ...]
    _function: ClassVar[str]
    _word: ClassVar[str]

    @property
    def kind(self) -> str:
        return "bool"

    def columns(self) -> frozenset[str]:
        return frozenset().union(*(t.columns() for t in self.terms))

    def evaluate(self, table: pa.Table) -> Any:
        combine = getattr(pc, self._function)
        out = self.terms[0].evaluate(table)
        for t in self.terms[1:]:
            out = combine(out, t.evaluate(table))
        return out

    def to_arrow(self) -> pc.Expression:
        combine = getattr(pc, self._function)
        out = self.terms[0].to_arrow()
        for t in self.terms[1:]:
            out = combine(out, t.to_arrow())
        return out

    def __str__(self) -> str:
        return f" {self._word} ".join(wrap(t) for t in self.terms)


@dataclass(frozen=True)
class And(_Junction):
    """Conjunction of two or more boolean terms (Kleene logic)."""

    _function: ClassVar[str] = "and_kleene"
    _word: ClassVar[str] = "and"


@dataclass(frozen=True)
class Or(_Junction):
    """Disjunction of two or more boolean terms (Kleene logic)."""

    _function: ClassVar[str] = "or_kleene"
    _word: ClassVar[str] = "or"


@dataclass(frozen=True)
class Not(Expr):
    """Boolean negation."""

    operand: Expr

    @property
    def kind(self) -> str:
        return "bool"

    def columns(self) -> frozenset[str]:
        return self.operand.columns()

    def evaluate(self, table: pa.Table) -> Any:
        return pc.invert(self.operand.evaluate(table))

    def to_arrow(self) -> pc.Expression:
        return ~self.operand.to_arrow()

    def __str__(self) -> str:
        return f"not {wrap(self.operand)}"


@dataclass(frozen=True)
class IsIn(Expr):
    """``operand in (v1, v2, ...)`` (or ``not in`` when ``negated``); null is never in."""

    operand: Expr
    values: tuple[Any, ...]
    negated: bool = False

    @property
    def kind(self) -> str:
        return "bool"

    def columns(self) -> frozenset[str]:
        return self.operand.columns()

    def _value_set(self, dtype: pa.DataType | None) -> pa.Array:
        vals = list(self.values)
        if dtype is not None and pa.types.is_integer(dtype) and all(isinstance(v, int) for v in vals):
            info_ok = [v for v in vals if _fits(v, dtype)]
            return pa.array(info_ok, type=dtype)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            return pa.array([float(v) for v in vals], type=FLOAT)
        return pa.array(vals)

    def evaluate(self, table: pa.Table) -> Any:
        x = self.operand.evaluate(table)
        dtype = x.type if isinstance(x, (pa.Array, pa.ChunkedArray)) else None
        vs = self._value_set(dtype)
        if dtype is not None and pa.types.is_integer(dtype) and pa.types.is_floating(vs.type):
            x = pc.cast(x, FLOAT)
        out = pc.is_in(x, value_set=vs)
        return pc.invert(out) if self.negated else out

    def to_arrow(self) -> pc.Expression:
        out = self.operand.to_arrow().isin(pa.array(list(self.values)))
        return ~out if self.negated else out

    def __str__(self) -> str:
        op = "not in" if self.negated else "in"
        return f"{wrap(self.operand)} {op} [{', '.join(repr(v) for v in self.values)}]"


def _fits(v: int, dtype: pa.DataType) -> bool:
    bits = dtype.bit_width
    if pa.types.is_signed_integer(dtype):
        return -(1 << (bits - 1)) <= v < (1 << (bits - 1))
    return 0 <= v < (1 << bits)


@dataclass(frozen=True)
class IsNull(Expr):
    """``isnull(x)`` (null or NaN, as in pandas), or ``notnull(x)`` when ``negated``."""

    operand: Expr
    negated: bool = False
    atomic: ClassVar[bool] = True

    @property
    def kind(self) -> str:
        return "bool"

    def columns(self) -> frozenset[str]:
        return self.operand.columns()

    def evaluate(self, table: pa.Table) -> Any:
        out = pc.is_null(self.operand.evaluate(table), nan_is_null=True)
        return pc.invert(out) if self.negated else out

    def to_arrow(self) -> pc.Expression:
        out = self.operand.to_arrow().is_null(nan_is_null=True)
        return ~out if self.negated else out

    def __str__(self) -> str:
        return f"{'notnull' if self.negated else 'isnull'}({self.operand})"
