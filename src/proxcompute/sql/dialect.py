"""ADQL as a sqlglot dialect: ANSI SQL plus ``TOP n``, natural ``LOG`` and NULLS LAST ordering.

Geometry functions (``POINT``, ``CIRCLE``, ``CONTAINS``, ``DISTANCE`` ...) parse as ordinary
function calls; :mod:`proxcompute.sql.geometry` gives them meaning.
"""

from __future__ import annotations

from sqlglot import parser, tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

__all__ = ["ADQL"]


class ADQL(Dialect):
    """ADQL 2.0/2.1 (and the plain SQL our users also type, e.g. ``LIMIT``)."""

    NULL_ORDERING = "nulls_are_large"  # as PostgreSQL: NULLs last in ascending order

    class Tokenizer(tokens.Tokenizer):
        KEYWORDS = {**tokens.Tokenizer.KEYWORDS, "TOP": TokenType.TOP}  # noqa: RUF012 (sqlglot API)

    class Parser(parser.Parser):
        LOG_DEFAULTS_TO_LN = True  # ADQL's LOG is the natural logarithm
