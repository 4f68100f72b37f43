"""ADQL text -> a sqlglot AST that is a single, read-only query built from known parts.

Three checks, each raising :class:`~proxcompute.errors.SqlError` with the phase and the
line/column of the offending token:

1. syntax (sqlglot's parser, in the :class:`~proxcompute.sql.dialect.ADQL` dialect);
2. the root is one query (``SELECT``, ``WITH``, set operations), never a write, a command
   or a bare expression (``DUFF QUERY`` parses as an alias in lenient SQL: refused here);
3. every node is of an allowed kind and every function is a known one, so file-reading
   table functions (``read_csv``), ``COPY``, ``ATTACH`` and friends cannot get through.
"""

from __future__ import annotations

import difflib
import functools

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from proxcompute.errors import SqlError
from proxcompute.sql.dialect import ADQL

__all__ = ["ADQL_FUNCTIONS", "MAX_NESTING", "known_functions", "parse_query", "position"]

MAX_NESTING = 32
"""Deepest parenthesis / unary-operator nesting accepted (deeper: a ``limit`` error with the
position, before the recursive parser and compiler could run out of stack)."""

ADQL_FUNCTIONS = frozenset(
    {
        "POINT",
        "CIRCLE",
        "BOX",
        "POLYGON",
        "DISTANCE",
        "COORD1",
        "COORD2",
        "COORDSYS",
        "INTERSECTS",
        "IVO_HEALPIX_INDEX",
    }
)
"""ADQL functions sqlglot does not know (``CONTAINS`` it parses as :class:`exp.Contains`)."""

_ALLOWED_FUNCS = (
    exp.Abs, exp.Ceil, exp.Floor, exp.Round, exp.Trunc, exp.Sqrt, exp.Exp, exp.Ln, exp.Log, exp.Pow,
    exp.Mod, exp.Sin, exp.Cos, exp.Tan, exp.Cot, exp.Asin, exp.Acos, exp.Atan, exp.Atan2,
    exp.Degrees, exp.Radians, exp.Pi, exp.Rand, exp.Sign, exp.Lower, exp.Upper, exp.Length,
    exp.Trim, exp.Substring, exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least, exp.Cast,
    exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.Stddev, exp.Variance, exp.Contains,
    exp.If, exp.Concat,
)  # fmt: skip

_ALLOWED_NODES = (
    exp.Select, exp.Union, exp.Intersect, exp.Except, exp.From, exp.Join, exp.Where, exp.Group,
    exp.Having, exp.Order, exp.Ordered, exp.Limit, exp.Offset, exp.Distinct, exp.Alias,
    exp.TableAlias, exp.Table, exp.Subquery, exp.With, exp.CTE, exp.Column, exp.Identifier,
    exp.Star, exp.Literal, exp.Null, exp.Boolean, exp.Paren, exp.Add, exp.Sub, exp.Mul, exp.Div,
    exp.DPipe, exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.And, exp.Or, exp.Not,
    exp.Is, exp.In, exp.Between, exp.Like, exp.ILike, exp.Neg, exp.Case, exp.DataType,
    exp.Tuple, exp.Anonymous, exp.Var, exp.Dot, exp.Exists,
)  # fmt: skip

_WRITES = {
    exp.Insert: "INSERT",
    exp.Update: "UPDATE",
    exp.Delete: "DELETE",
    exp.Drop: "DROP",
    exp.Create: "CREATE",
    exp.Copy: "COPY",
    exp.Alter: "ALTER",
    exp.Merge: "MERGE",
    exp.Command: "command",
    exp.Set: "SET",
    exp.Use: "USE",
    exp.Pragma: "PRAGMA",
    exp.Transaction: "transaction",
}


def position(node: exp.Expression | None) -> tuple[int | None, int | None]:
    """1-based ``(line, column)`` where ``node`` starts in the query text, if known.

    The earliest token of the subtree that sqlglot located, so ``survey.gaai`` points at
    ``survey`` and ``g.magg`` at ``g``.
    """
    if node is None:
        return None, None
    best = None
    for n in node.walk():
        meta = getattr(n, "meta", None)
        if meta and "line" in meta and "start" in meta:
            width = meta.get("end", meta["start"]) - meta["start"] + 1
            key = (meta["start"], meta["line"], max(1, meta["col"] - width + 1))
            if best is None or key < best:
                best = key
    return (best[1], best[2]) if best else (None, None)


def _error(phase: str, message: str, node: exp.Expression | None = None) -> SqlError:
    line, col = position(node)
    return SqlError(phase, message, line, col)


_FORBIDDEN_WORDS = {
    "DROP", "INSERT", "UPDATE", "DELETE", "CREATE", "COPY", "ALTER", "ATTACH", "DETACH", "SET",
    "RESET", "PRAGMA", "INSTALL", "LOAD", "CALL", "EXPORT", "IMPORT", "USE", "BEGIN", "COMMIT",
    "ROLLBACK", "VACUUM", "CHECKPOINT", "GRANT", "REVOKE", "TRUNCATE", "MERGE", "REPLACE", "UPSERT",
    "EXECUTE", "PREPARE", "DEALLOCATE", "SUMMARIZE", "DESCRIBE", "SHOW", "EXPLAIN", "ANALYZE",
}  # fmt: skip


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based ``(line, column)`` of a character offset in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _unterminated_string(text: str) -> int | None:
    """Offset of the opening quote of an unterminated '...' literal, if there is one."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "-" and text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if ch in "'\"":
            j = i + 1
            while True:
                j = text.find(ch, j)
                if j < 0:
                    return i if ch == "'" else None
                if text.startswith(ch * 2, j):
                    j += 2
                    continue
                break
            i = j + 1
            continue
        i += 1
    return None


def _prescan(text: str) -> None:
    """Token-level checks that give clearer errors than the parser (or catch what it accepts)."""
    from sqlglot.tokens import TokenType

    try:
        tokens = ADQL().tokenize(text)
    except TokenError:
        offset = _unterminated_string(text)
        if offset is not None:
            raise SqlError(
                "syntax", "unterminated string literal (a ' without its closing ')", *line_col(text, offset)
            ) from None
        raise SqlError("syntax", "the query cannot be split into words (unbalanced quotes?)") from None
    if not tokens:
        raise SqlError("syntax", "the query is empty")
    _check_nesting(text, tokens)
    first = tokens[0]
    word = first.text.upper()
    if word in _FORBIDDEN_WORDS:
        raise SqlError(
            "forbidden", f"only read queries (SELECT) can run; {word} statements are refused",
            *line_col(text, first.start),
        )  # fmt: skip
    if first.token_type not in (TokenType.SELECT, TokenType.WITH, TokenType.L_PAREN):
        close = difflib.get_close_matches(word, ["SELECT", "WITH"], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise SqlError(
            "syntax",
            f"a query must begin with SELECT or WITH, not {first.text!r}{hint}",
            *line_col(text, first.start),
        )
    for k, tok in enumerate(tokens):
        nxt = tokens[k + 1] if k + 1 < len(tokens) else None
        if (
            tok.token_type == TokenType.SEMICOLON
            and nxt is not None
            and nxt.token_type != TokenType.SEMICOLON
        ):
            raise SqlError(
                "syntax", "one query expected, but another statement follows ';'", *line_col(text, nxt.start)
            )
        if tok.token_type == TokenType.COMMA and nxt is not None and nxt.token_type == TokenType.FROM:
            raise SqlError(
                "syntax", "a comma before FROM: the select list ends with ','", *line_col(text, tok.start)
            )
        if tok.token_type in (TokenType.ORDER_BY, TokenType.GROUP_BY):
            continue
        if tok.text.upper() in ("ORDER", "GROUP") and (nxt is None or nxt.text.upper() != "BY"):
            raise SqlError("syntax", f"{tok.text.upper()} must be followed by BY", *line_col(text, tok.start))
        if tok.token_type in (TokenType.FROM, TokenType.JOIN) and nxt is not None and k + 2 < len(tokens):
            after = tokens[k + 2]
            if after.token_type == TokenType.L_PAREN and nxt.token_type not in (
                TokenType.L_PAREN,
                TokenType.SELECT,
            ):
                raise SqlError(
                    "forbidden", f"only catalog names may appear in FROM, not functions or files ({nxt.text}(...))",
                    *line_col(text, nxt.start),
                )  # fmt: skip


def _check_nesting(text: str, tokens: list) -> None:
    """Refuse parentheses nested deeper than :data:`MAX_NESTING`, and as long chains of NOT/-."""
    from sqlglot.tokens import TokenType

    depth = chain = 0
    for tok in tokens:
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
            if depth > MAX_NESTING:
                raise SqlError("limit", f"parentheses are nested more than {MAX_NESTING} deep; flatten the query",
                               *line_col(text, tok.start))  # fmt: skip
        elif tok.token_type == TokenType.R_PAREN:
            depth = max(0, depth - 1)
        if tok.token_type in (TokenType.NOT, TokenType.DASH, TokenType.PLUS, TokenType.TILDE):
            chain += 1
            if chain > MAX_NESTING:
                raise SqlError("limit", f"more than {MAX_NESTING} NOT or sign operators in a row",
                               *line_col(text, tok.start))  # fmt: skip
        else:
            chain = 0


@functools.lru_cache(maxsize=512)
def _parse_cached(text: str) -> exp.Expression:
    _prescan(text)
    try:
        statements = [s for s in sqlglot.parse(text, dialect=ADQL) if s is not None]
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        highlight = err.get("highlight") or ""
        line, col = err.get("line"), err.get("col")
        if col is not None and highlight and "\n" not in highlight:
            col = max(1, col - len(highlight) + 1)
        desc = err.get("description") or str(exc)
        if desc.startswith("Invalid expression / Unexpected token"):
            desc = f"unexpected {highlight!r}" if highlight else "unexpected end of query"
        elif desc.startswith("Required keyword"):
            desc = f"incomplete expression near {highlight!r}"
        elif highlight:
            desc = f"{desc} (near {highlight!r})"
        raise SqlError("syntax", desc, line, col) from None
    except TokenError as exc:
        message = str(exc)
        if "'" in text and text.count("'") % 2:
            message = "unterminated string literal (a ' without its closing ')"
        raise SqlError("syntax", message) from None
    if not statements:
        raise SqlError("syntax", "the query is empty")
    if len(statements) > 1:
        raise _error("syntax", f"one query expected, found {len(statements)} statements", statements[1])
    root = statements[0]
    for kind, word in _WRITES.items():
        if isinstance(root, kind):
            raise SqlError(
                "forbidden",
                f"only read queries (SELECT) can run; {word} statements are refused",
                *_first_token(text),
            )
    if not isinstance(root, exp.Query):
        first = text.strip().split()[0] if text.strip() else ""
        raise SqlError(
            "syntax", f"a query must begin with SELECT or WITH, not {first!r}", *_first_token(text)
        )
    _check_nodes(root)
    return root


def _first_token(text: str) -> tuple[int, int]:
    for i, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if stripped:
            return i, len(line) - len(stripped) + 1
    return 1, 1


def known_functions() -> list[str]:
    """Every function name a query may call (ADQL's geometry, and the SQL math and string ones), sorted.

    What an unknown function's "did you mean" hint and the portal editor's completion offer.
    """
    return sorted(
        {c.__name__.upper() for c in _ALLOWED_FUNCS} | ADQL_FUNCTIONS | {"CONTAINS", "LOG10", "TRUNCATE", "POWER"}
    )


def _check_nodes(root: exp.Expression) -> None:
    known = known_functions()
    for node in root.walk():
        if isinstance(node, exp.Anonymous):
            name = str(node.name).upper()
            if name not in ADQL_FUNCTIONS:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f". Did you mean {close[0]}()?" if close else ""
                raise _error("unknown function", f"unknown function {node.name}(){hint}", node)
        elif isinstance(node, exp.Table):
            if not isinstance(node.this, exp.Identifier):
                raise _error(
                    "forbidden", "only catalog names may appear in FROM, not functions or files", node
                )
            if any(ch in node.name for ch in "/\\") or node.name.startswith("."):
                raise _error("unknown table", f"{node.name!r} is not a table name", node)
        elif isinstance(node, exp.Window):
            raise _error("unsupported", "window functions (OVER ...) are not supported", node)
        elif isinstance(node, _ALLOWED_NODES) or isinstance(node, _ALLOWED_FUNCS):
            continue
        elif isinstance(node, exp.Func):
            name = node.sql_name() if hasattr(node, "sql_name") else type(node).__name__
            raise _error("unknown function", f"function {name}() is not available in queries", node)
        else:
            word = node.key.upper()
            raise _error(
                "unsupported", f"{word} is not supported in queries ({node.sql(dialect=ADQL)[:60]})", node
            )


def parse_query(text: str) -> exp.Query:
    """Parse and check one ADQL query; returns a fresh copy of its AST.

    Raises
    ------
    SqlError
        With ``phase`` ``syntax``, ``forbidden``, ``unknown function`` or ``unsupported``.

    Examples
    --------
    >>> parse_query("SELECT TOP 3 ra FROM gaia").args["limit"].expression.name
    '3'
    >>> parse_query("DUFF QUERY")
    Traceback (most recent call last):
    ...
    proxcompute.errors.SqlError: SQL syntax error at line 1, column 1: a query must begin with SELECT or WITH, not 'DUFF'
    """
    if not isinstance(text, str) or not text.strip():
        raise SqlError("syntax", "the query is empty")
    try:
        return _parse_cached(text).copy()
    except RecursionError:
        raise SqlError("limit", "the query is nested too deeply to analyse; flatten it") from None
