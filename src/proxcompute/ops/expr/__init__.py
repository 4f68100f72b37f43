"""Row predicates and scalar expressions: a small typed IR shared by ``where()`` and SQL.

Each node can

1. list the columns it reads (:meth:`Expr.columns`),
2. evaluate itself eagerly on an Arrow table (:meth:`Expr.evaluate`, plain
   ``pyarrow.compute`` calls, no query engine, so tiny tables stay cheap),
3. convert itself to a :class:`pyarrow.compute.Expression` (:meth:`Expr.to_arrow`) for
   pyarrow.dataset and other Arrow consumers,
4. print itself as text that :func:`proxcompute.plan.parse_predicate` parses back.

Null semantics are Arrow's (Kleene logic; comparisons with null are null and null rows are
dropped by a filter); ``NaN`` compares false, as in pandas.
"""

from proxcompute.ops.expr._arith import FUNCTIONS, Arith, Func, Neg
from proxcompute.ops.expr._base import Column, Expr, Literal, kind_of
from proxcompute.ops.expr._logic import COMPARISONS, And, Compare, IsIn, IsNull, Not, Or

__all__ = [
    "COMPARISONS",
    "FUNCTIONS",
    "And",
    "Arith",
    "Column",
    "Compare",
    "Expr",
    "Func",
    "IsIn",
    "IsNull",
    "Literal",
    "Neg",
    "Not",
    "Or",
    "kind_of",
]
