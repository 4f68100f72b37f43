"""SQL/ADQL over catalogs, compiled to the same plans as the Python API.

:func:`sql` parses and checks a query (:mod:`~proxcompute.sql.parse`), resolves its names
against the catalogs it may use (:mod:`~proxcompute.sql.registry`), turns spatial predicates
into region filters and positional joins into crossmatches (:mod:`~proxcompute.sql.geometry`,
:mod:`~proxcompute.sql.compile`), and returns a lazy :class:`SqlResult`.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Mapping
from typing import Any

from proxcompute.sql.compile import CompiledQuery, compile_query
from proxcompute.sql.registry import CatalogRegistry
from proxcompute.sql.result import SqlResult, SqlTruncatedWarning

__all__ = ["CatalogRegistry", "CompiledQuery", "SqlResult", "SqlTruncatedWarning", "sql"]


def sql(
    query: str,
    catalogs: Mapping[str, Any] | CatalogRegistry | None = None,
    *,
    catalog_root: str | os.PathLike | None = None,
    maxrec: int | None = None,
) -> SqlResult:
    """Compile an ADQL/SQL query over catalogs into a lazy result.

    Parameters
    ----------
    query
        ADQL 2.0/2.1 (``TOP``, ``CONTAINS``, ``DISTANCE`` ...) or plain SQL (``LIMIT``).
    catalogs
        ``{name: catalog}``: a :class:`~proxcompute.Catalog`, a path to a catalog or
        collection, or a pandas DataFrame / astropy Table; names may carry a schema
        (``"survey.gaia"``). Or a ready :class:`CatalogRegistry`.
    catalog_root
        Every catalog under this directory is available by name (``ROOT/survey/gaia`` is
        ``survey.gaia`` or ``gaia``).
    maxrec
        Return at most this many rows; a longer result is cut, warns with
        :class:`SqlTruncatedWarning` and sets ``result.overflow``.

    Returns
    -------
    SqlResult
        Lazy: ``.compute()`` (pandas), ``.to_arrow()``, ``.iter_batches()``,
        ``.to_catalog(path)``, ``.explain()``.

    Raises
    ------
    SqlError
        Syntax errors, unknown tables/columns/functions, type errors, writes and file access,
        with the phase and the line and column.

    Examples
    --------
    >>> from proxcompute.synthetic import generate_catalog
    >>> df = generate_catalog(20_000, seed=1)
    >>> res = sql("SELECT TOP 3 id, mag FROM stars WHERE mag < 15 ORDER BY mag", {"stars": df})
    >>> out = res.compute()
    >>> list(out.columns), len(out), bool(out["mag"].is_monotonic_increasing)
    (['id', 'mag'], 3, True)
    """
    if isinstance(catalogs, CatalogRegistry):
        if catalog_root is not None:
            raise TypeError("pass catalog_root when building the CatalogRegistry, not with one")
        registry = catalogs
    else:
        registry = CatalogRegistry(catalogs, catalog_root=catalog_root)
    try:
        plan = registry.cached_plan(query, compile_query)
    except RecursionError:  # a shape the nesting checks of parse_query do not count (e.g. long AND chains)
        from proxcompute.errors import SqlError

        raise SqlError("limit", "the query is nested too deeply to analyse; flatten it") from None
    return SqlResult(plan, maxrec=maxrec)


class _CallableModule(types.ModuleType):
    """``proxcompute.sql`` is both this package and the :func:`sql` function.

    Importing a subpackage sets it as an attribute of its parent, so ``proxcompute.sql``
    may be this module rather than the function; calling it calls :func:`sql` either way.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> SqlResult:
        return sql(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
