"""Parse a ``where()`` string (pandas ``query``-like syntax) into a typed :mod:`proxcompute.ops.expr`.

The text goes through Python's ``ast`` with a whitelist: comparisons (chained too),
``and``/``or``/``not`` (and ``&``, ``|``, ``~`` with the precedence of ``and``/``or``/``not``,
as in pandas), ``in``/``not in`` a list of literals, arithmetic, unary minus, number, string
and boolean literals, ``isnull(x)``/``notnull(x)`` and the functions of
:data:`proxcompute.ops.expr.FUNCTIONS`. Column names that are not identifiers are written
in backticks. Nothing is ever evaluated by Python.
"""

from __future__ import annotations

import ast
import difflib
import io
import re
import tokenize

import pyarrow as pa

from proxcompute.errors import ColumnNotFoundError, PlanError
from proxcompute.ops.expr import (
    FUNCTIONS,
    And,
    Arith,
    Column,
    Compare,
    Expr,
    Func,
    IsIn,
    IsNull,
    Literal,
    Neg,
    Not,
    Or,
    kind_of,
)
from proxcompute.storage.nested import is_nested_type

__all__ = ["parse_predicate"]

_CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ARITH = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}
_BOOL_TOKENS = {"&": "and", "|": "or", "~": "not"}
_NULL_FUNCS = ("isnull", "notnull")
_BACKTICK = re.compile(r"`([^`]*)`")


class _Source:
    """The text actually parsed, with a map back to positions in the user's text."""

    def __init__(self, original: str) -> None:
        self.original = original
        self.backticked: dict[str, str] = {}
        text = original.replace("\n", " ").replace("\r", " ").replace("\t", " ")
        self.origin = list(range(len(text) + 1))  # origin[i]: position in the original
        text = self._replace_backticks(text)
        self.text = self._replace_bool_tokens(text)

    def _edit(self, text: str, edits: list[tuple[int, int, str]]) -> str:
        """Apply sorted ``(start, end, replacement)`` edits, keeping ``origin`` in step."""
        out: list[str] = []
        origin: list[int] = []
        pos = 0
        for start, end, new in edits:
            out.append(text[pos:start])
            origin.extend(self.origin[pos:start])
            out.append(new)
            origin.extend([self.origin[start]] * len(new))
            pos = end
        out.append(text[pos:])
        origin.extend(self.origin[pos:])
        self.origin = origin
        return "".join(out)

    def _replace_backticks(self, text: str) -> str:
        edits = []
        for i, m in enumerate(_BACKTICK.finditer(text)):
            name = f"__col{i}__"
            self.backticked[name] = m.group(1)
            edits.append((m.start(), m.end(), name))
        return self._edit(text, edits) if edits else text

    def _replace_bool_tokens(self, text: str) -> str:
        edits = []
        try:
            for tok in tokenize.generate_tokens(io.StringIO(text).readline):
                if tok.type == tokenize.OP and tok.string in _BOOL_TOKENS:
                    word = _BOOL_TOKENS[tok.string]
                    edits.append((tok.start[1], tok.end[1], f" {word} "))
        except (tokenize.TokenError, SyntaxError):
            return text  # ast.parse reports the error with its position
        return self._edit(text, edits) if edits else text

    def to_original(self, pos: int) -> int:
        return self.origin[max(0, min(pos, len(self.origin) - 1))]

    def error(self, message: str, pos: int | None) -> PlanError:
        return PlanError(self.annotate(message, pos))

    def annotate(self, message: str, pos: int | None) -> str:
        shown = self.original.replace("\n", " ")
        if pos is None:
            return f"{message}\n  {shown}"
        col = max(0, min(self.to_original(pos), len(shown)))
        return f"{message} (at column {col + 1})\n  {shown}\n  {' ' * col}^"

    def node_pos(self, node: ast.AST) -> int:
        """Character offset of ``node`` in ``self.text`` (ast gives UTF-8 byte offsets)."""
        byte_off = getattr(node, "col_offset", 0)
        return len(self.text.encode()[:byte_off].decode(errors="ignore"))


def parse_predicate(text: str, schema: pa.Schema) -> Expr:
    """Parse ``text`` into a boolean expression over the columns of ``schema``.

    Raises
    ------
    ColumnNotFoundError
        A name is not a column (with a "did you mean" suggestion and a caret line).
    PlanError
        Syntax errors and unsupported constructs, pointing at the offending column.

    Examples
    --------
    >>> schema = pa.schema([("mag", pa.float64()), ("flag", pa.int16())])
    >>> str(parse_predicate("10 < mag < 20 and flag in [1, 2]", schema))
    '(10 < mag) and (mag < 20) and (flag in [1, 2])'
    >>> str(parse_predicate("(mag > 19) & ~(flag == 0)", schema))
    '(mag > 19) and (not (flag == 0))'
    """
    if not isinstance(text, str):
        raise PlanError(f"where() takes an expression string, got {type(text).__name__}")
    src = _Source(text)
    if not src.text.strip():
        raise PlanError("where() expression is empty")
    stripped = src.text.lstrip()
    lead = len(src.text) - len(stripped)
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        pos = None if exc.offset is None else lead + max(0, exc.offset - 1)
        msg = exc.msg
        if re.search(r"(?<![=!<>])=(?!=)", src.text):
            msg += " (use == to compare)"
        raise src.error(f"invalid where() expression: {msg}", pos) from None
    conv = _Converter(src, schema, lead)
    expr = conv.convert(tree.body)
    if expr.kind != "bool":
        raise src.error("where() needs a condition (a comparison such as 'mag < 20'), not a value", lead)
    return expr


class _Converter:
    def __init__(self, src: _Source, schema: pa.Schema, lead: int) -> None:
        self.src = src
        self.schema = schema
        self.lead = lead

    def fail(self, message: str, node: ast.AST) -> PlanError:
        return self.src.error(message, self.lead + self.src.node_pos(node))

    def convert(self, node: ast.AST) -> Expr:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            what = type(node).__name__
            raise self.fail(f"unsupported syntax in where() expression: {what}", node)
        return method(node)

    def nested_error(self, column: str, sub: str | None, node: ast.AST) -> PlanError:
        t = self.schema.field(column).type
        what = f"{column}.{sub}" if sub else column
        return self.fail(
            f"where() cannot filter on {what!r}: {column!r} is a nested column ({t}). where() keeps or "
            "drops whole rows by flat columns; filtering the values inside a nested column (as "
            "nested-pandas' query does) is not supported. Filter on flat columns, then the nested "
            "values in pandas (compute())",
            node,
        )

    def _is_nested(self, name: str) -> bool:
        return name in self.schema.names and is_nested_type(self.schema.field(name).type)

    def _Attribute(self, node: ast.Attribute) -> Expr:
        if isinstance(node.value, ast.Name):
            base = self.src.backticked.get(node.value.id, node.value.id)
            if self._is_nested(base):
                raise self.nested_error(base, node.attr, node)
        raise self.fail("unsupported syntax in where() expression: Attribute", node)

    def _Name(self, node: ast.Name) -> Expr:
        name = self.src.backticked.get(node.id, node.id)
        if self._is_nested(name):
            raise self.nested_error(name, None, node)
        head, dot, rest = name.partition(".")
        if name not in self.schema.names and dot and self._is_nested(head):
            raise self.nested_error(head, rest, node)
        if name not in self.schema.names:
            err = ColumnNotFoundError(name, self.schema.names)
            pos = self.lead + self.src.node_pos(node)
            err.args = (self.src.annotate(err.args[0], pos),)
            raise err
        return Column(name, kind_of(self.schema.field(name).type))

    def _Constant(self, node: ast.Constant) -> Expr:
        if isinstance(node.value, (bool, int, float, str)):
            return Literal(node.value)
        raise self.fail(f"unsupported literal {node.value!r}", node)

    def _BoolOp(self, node: ast.BoolOp) -> Expr:
        terms = tuple(self.boolean(v) for v in node.values)
        flat: list[Expr] = []
        cls = And if isinstance(node.op, ast.And) else Or
        for t in terms:
            flat.extend(t.terms if isinstance(t, cls) else (t,))
        return cls(tuple(flat))

    def _UnaryOp(self, node: ast.UnaryOp) -> Expr:
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return Not(self.boolean(node.operand))
        operand = self.number(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(operand, Literal):
            return Literal(-operand.value)
        return Neg(operand)

    def _BinOp(self, node: ast.BinOp) -> Expr:
        op = _ARITH.get(type(node.op))
        if op is None:
            raise self.fail(f"unsupported operator {type(node.op).__name__}", node)
        return Arith(op, self.number(node.left), self.number(node.right))

    def _Compare(self, node: ast.Compare) -> Expr:
        terms: list[Expr] = []
        left = self.convert(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                values = self.literal_list(right_node)
                self.check_list(left, values, node)
                terms.append(IsIn(left, values, negated=isinstance(op, ast.NotIn)))
                left = None  # type: ignore[assignment]
                continue
            if isinstance(op, (ast.Is, ast.IsNot)):
                raise self.fail("'is' is not supported; use isnull(column) or notnull(column)", node)
            right = self.convert(right_node)
            self.check_comparable(left, right, right_node)
            terms.append(Compare(_CMP[type(op)], left, right))
            left = right
        return terms[0] if len(terms) == 1 else And(tuple(terms))

    def _Call(self, node: ast.Call) -> Expr:
        if not isinstance(node.func, ast.Name):
            raise self.fail("only plain function calls are allowed, e.g. abs(x)", node)
        name = node.func.id
        known = [*FUNCTIONS, *_NULL_FUNCS]
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise self.fail(f"unknown function {name!r}.{hint} Known: {', '.join(known)}", node)
        if len(node.args) != 1 or node.keywords:
            raise self.fail(f"{name}() takes exactly one argument", node)
        if name in _NULL_FUNCS:
            return IsNull(self.convert(node.args[0]), negated=name == "notnull")
        return Func(name, self.number(node.args[0]))

    # -- helpers -------------------------------------------------------------------------

    def boolean(self, node: ast.AST) -> Expr:
        e = self.convert(node)
        if e.kind != "bool":
            raise self.fail(
                f"{ast.unparse(node)!r} is not a condition; combine comparisons, e.g. "
                "(mag < 20) and (flag == 1)",
                node,
            )
        return e

    def number(self, node: ast.AST) -> Expr:
        e = self.convert(node)
        if e.kind not in ("number", "other"):
            raise self.fail(f"{ast.unparse(node)!r} is not numeric (it is {e.kind})", node)
        return e

    def literal_list(self, node: ast.AST) -> tuple:
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            raise self.fail("'in' needs a list of literals, e.g. flag in [1, 2]", node)
        values = []
        for elt in node.elts:
            e = self.convert(elt)
            if not isinstance(e, Literal):
                raise self.fail("'in' lists may hold only literals", elt)
            values.append(e.value)
        return tuple(values)

    def check_list(self, left: Expr | None, values: tuple, node: ast.AST) -> None:
        if left is None:
            raise self.fail("'in' cannot be chained", node)
        for v in values:
            self.check_comparable(left, Literal(v), node)

    def check_comparable(self, a: Expr | None, b: Expr, node: ast.AST) -> None:
        if a is None:
            raise self.fail("'in' cannot be chained", node)
        kinds = {a.kind, b.kind} - {"other"}
        if len(kinds) > 1 and kinds != {"bool", "number"}:
            raise self.fail(f"cannot compare {a} ({a.kind}) with {b} ({b.kind})", node)
