"""Decide from column statistics (min, max, nulls) whether a predicate can hold for any row.

Used to skip Parquet row groups. The answer is conservative: ``False`` only when no row in
the group can satisfy the predicate. Logic is three-valued: every boolean expression gets
the set of outcomes it can take over the rows, a subset of ``{True, False, None}``.
Float statistics exclude NaN, so float columns are assumed to hold NaN (which compares
false, and true for ``!=``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxcompute.ops.expr import And, Arith, Column, Compare, Expr, Func, IsIn, IsNull, Literal, Neg, Not, Or

__all__ = ["ColumnStats", "may_match"]

T, F, N = True, False, None
_ALL = frozenset((T, F, N))


@dataclass(frozen=True)
class ColumnStats:
    """Statistics of one column in one row group.

    ``min``/``max`` are None when unknown; ``null_count`` None when unknown.
    """

    min: Any
    max: Any
    null_count: int | None
    num_rows: int
    is_float: bool = False


@dataclass(frozen=True)
class _Range:
    lo: Any
    hi: Any
    may_null: bool
    may_nan: bool


def may_match(predicate: Expr, stats: Mapping[str, ColumnStats]) -> bool:
    """Whether some row described by ``stats`` may satisfy ``predicate`` (conservative).

    Examples
    --------
    >>> from proxcompute.ops.expr import Column, Compare, Literal
    >>> pred = Compare("<", Column("mag", "number"), Literal(20))
    >>> may_match(pred, {"mag": ColumnStats(21.0, 25.0, 0, 100, True)})
    False
    >>> may_match(pred, {"mag": ColumnStats(19.0, 25.0, 0, 100, True)})
    True
    """
    try:
        return T in _outcomes(predicate, stats)
    except (TypeError, ValueError, ArithmeticError):
        return True


def _range(e: Expr, stats: Mapping[str, ColumnStats]) -> _Range | None:
    if isinstance(e, Column):
        s = stats.get(e.name)
        if s is None or s.min is None or s.max is None:
            return None
        may_null = s.null_count is None or s.null_count > 0
        return _Range(s.min, s.max, may_null, s.is_float)
    if isinstance(e, Literal):
        v = e.value
        if v is None:
            return None
        nan = isinstance(v, float) and math.isnan(v)
        return _Range(v, v, False, nan)
    if isinstance(e, Neg):
        r = _range(e.operand, stats)
        return None if r is None else _Range(-r.hi, -r.lo, r.may_null, r.may_nan)
    if isinstance(e, Func) and e.name == "abs":
        r = _range(e.arg, stats)
        if r is None:
            return None
        if r.lo >= 0:
            return r
        if r.hi <= 0:
            return _Range(-r.hi, -r.lo, r.may_null, r.may_nan)
        return _Range(0, max(-r.lo, r.hi), r.may_null, r.may_nan)
    if isinstance(e, Arith) and e.op in ("+", "-", "*"):
        a, b = _range(e.left, stats), _range(e.right, stats)
        if a is None or b is None:
            return None
        flags = (a.may_null or b.may_null, True)  # inf - inf etc.: allow NaN
        if e.op == "+":
            return _Range(a.lo + b.lo, a.hi + b.hi, *flags)
        if e.op == "-":
            return _Range(a.lo - b.hi, a.hi - b.lo, *flags)
        prods = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        return _Range(min(prods), max(prods), *flags)
    return None


def _compare(op: str, a: _Range, b: _Range) -> set[Any]:
    if op == "<":
        can_t, can_f = a.lo < b.hi, a.hi >= b.lo
    elif op == "<=":
        can_t, can_f = a.lo <= b.hi, a.hi > b.lo
    elif op == ">":
        can_t, can_f = a.hi > b.lo, a.lo <= b.hi
    elif op == ">=":
        can_t, can_f = a.hi >= b.lo, a.lo < b.hi
    else:
        overlap = a.lo <= b.hi and b.lo <= a.hi
        point = a.lo == a.hi == b.lo == b.hi
        can_t, can_f = (overlap, not point) if op == "==" else (not point, overlap)
    out = set()
    if can_t:
        out.add(T)
    if can_f:
        out.add(F)
    if a.may_nan or b.may_nan:
        out.add(T if op == "!=" else F)
    if a.may_null or b.may_null:
        out.add(N)
    return out


def _kleene(x: frozenset, y: frozenset, dominant: bool) -> frozenset:
    """Outcomes of a three-valued AND (``dominant=False``) or OR (``dominant=True``)."""
    out = set()
    for a in x:
        for b in y:
            if a is dominant or b is dominant:
                out.add(dominant)
            elif a is N or b is N:
                out.add(N)
            else:
                out.add(not dominant)
    return frozenset(out)


def _and(x: frozenset, y: frozenset) -> frozenset:
    return _kleene(x, y, F)


def _or(x: frozenset, y: frozenset) -> frozenset:
    return _kleene(x, y, T)


def _outcomes(e: Expr, stats: Mapping[str, ColumnStats]) -> frozenset:
    if isinstance(e, Compare):
        a, b = _range(e.left, stats), _range(e.right, stats)
        if a is None or b is None:
            return _ALL
        return frozenset(_compare(e.op, a, b))
    if isinstance(e, And):
        out = _outcomes(e.terms[0], stats)
        for t in e.terms[1:]:
            out = _and(out, _outcomes(t, stats))
        return out
    if isinstance(e, Or):
        out = _outcomes(e.terms[0], stats)
        for t in e.terms[1:]:
            out = _or(out, _outcomes(t, stats))
        return out
    if isinstance(e, Not):
        return frozenset({T: F, F: T, N: N}[v] for v in _outcomes(e.operand, stats))
    if isinstance(e, Literal) and isinstance(e.value, bool):
        return frozenset((e.value,))
    if isinstance(e, Column):
        r = _range(e, stats)
        if r is None:
            return _ALL
        out = {v for v in (T, F) if r.lo <= v <= r.hi}
        return frozenset(out | ({N} if r.may_null else set()))
    if isinstance(e, IsIn):
        return _isin(e, stats)
    if isinstance(e, IsNull):
        return _isnull(e, stats)
    return _ALL


def _isin(e: IsIn, stats: Mapping[str, ColumnStats]) -> frozenset:
    r = _range(e.operand, stats)
    if r is None:
        return _ALL
    hit = any(r.lo <= v <= r.hi for v in e.values)
    certain = r.lo == r.hi and r.lo in e.values and not (r.may_null or r.may_nan)
    out = set()
    if hit:
        out.add(T)
    if not certain:
        out.add(F)
    if e.negated:
        out = {not v for v in out}
    return frozenset(out)


def _isnull(e: IsNull, stats: Mapping[str, ColumnStats]) -> frozenset:
    if not isinstance(e.operand, Column) or e.operand.name not in stats:
        return _ALL
    s = stats[e.operand.name]
    can_null = s.null_count is None or s.null_count > 0 or s.is_float
    can_value = s.null_count is None or s.null_count < s.num_rows
    out = set()
    if can_null:
        out.add(T)
    if can_value:
        out.add(F)
    if e.negated:
        out = {not v for v in out}
    return frozenset(out)
