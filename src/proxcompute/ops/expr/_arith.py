"""Expression IR, part 3: arithmetic and scalar functions (numeric results)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from proxcompute.ops.expr._base import FLOAT, Expr, as_float, wrap

__all__ = ["FUNCTIONS", "Arith", "Func", "Neg"]

FUNCTIONS = {
    "abs": pc.abs,
    "sqrt": pc.sqrt,
    "exp": pc.exp,
    "log": pc.ln,
    "log10": pc.log10,
    "floor": pc.floor,
    "ceil": pc.ceil,
    "sin": pc.sin,
    "cos": pc.cos,
    "tan": pc.tan,
    "arcsin": pc.asin,
    "arccos": pc.acos,
    "arctan": pc.atan,
}
"""Scalar functions allowed in expressions (numpy names; angles in radians)."""


@dataclass(frozen=True)
class Arith(Expr):
    """``left op right`` with ``op`` one of ``+ - * / // % **``.

    ``/``, ``//``, ``%`` and ``**`` compute in float64 (as numpy does for ``/``); ``%`` takes
    the sign of the divisor, as in Python.
    """

    op: str
    left: Expr
    right: Expr

    @property
    def kind(self) -> str:
        return "number"

    def columns(self) -> frozenset[str]:
        return self.left.columns() | self.right.columns()

    def evaluate(self, table: pa.Table) -> Any:
        return _arith(self.op, self.left.evaluate(table), self.right.evaluate(table))

    def to_arrow(self) -> pc.Expression:
        return _arith(self.op, self.left.to_arrow(), self.right.to_arrow())

    def __str__(self) -> str:
        return f"{wrap(self.left)} {self.op} {wrap(self.right)}"


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+":
        return pc.add(a, b)
    if op == "-":
        return pc.subtract(a, b)
    if op == "*":
        return pc.multiply(a, b)
    fa = a.cast(FLOAT) if isinstance(a, pc.Expression) else as_float(a)
    fb = b.cast(FLOAT) if isinstance(b, pc.Expression) else as_float(b)
    if op == "/":
        return pc.divide(fa, fb)
    if op == "//":
        return pc.floor(pc.divide(fa, fb))
    if op == "%":
        return pc.subtract(fa, pc.multiply(pc.floor(pc.divide(fa, fb)), fb))
    if op == "**":
        return pc.power(fa, fb)
    raise ValueError(f"unknown arithmetic operator {op!r}")


@dataclass(frozen=True)
class Neg(Expr):
    """Arithmetic negation."""

    operand: Expr

    @property
    def kind(self) -> str:
        return "number"

    def columns(self) -> frozenset[str]:
        return self.operand.columns()

    def evaluate(self, table: pa.Table) -> Any:
        return pc.negate(self.operand.evaluate(table))

    def to_arrow(self) -> pc.Expression:
        return pc.negate(self.operand.to_arrow())

    def __str__(self) -> str:
        return f"-{wrap(self.operand)}"


@dataclass(frozen=True)
class Func(Expr):
    """A scalar function of :data:`FUNCTIONS` applied to one argument."""

    name: str
    arg: Expr
    atomic: ClassVar[bool] = True

    @property
    def kind(self) -> str:
        return "number"

    def columns(self) -> frozenset[str]:
        return self.arg.columns()

    def evaluate(self, table: pa.Table) -> Any:
        x = self.arg.evaluate(table)
        if self.name != "abs":
            x = as_float(x)
        return FUNCTIONS[self.name](x)

    def to_arrow(self) -> pc.Expression:
        x = self.arg.to_arrow()
        if self.name != "abs":
            x = x.cast(FLOAT)
        return FUNCTIONS[self.name](x)

    def __str__(self) -> str:
        return f"{self.name}({self.arg})"
