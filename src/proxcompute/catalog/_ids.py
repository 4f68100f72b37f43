"""Search by id and join on columns on a :class:`~proxcompute.catalog.Catalog`.

A mixin of the Catalog (kept apart so the Catalog stays a thin facade): ``id_search`` builds the
index-restricted scan of :mod:`proxcompute.plan.ids`, ``join`` the join source of
:mod:`proxcompute.plan.join`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from proxcompute.catalog._tables import memory_source
from proxcompute.plan import Scan, find_scan

if TYPE_CHECKING:  # pragma: no cover
    from proxcompute.catalog._catalog import Catalog

__all__ = ["IdsMixin"]


class IdsMixin:
    """``id_search`` and ``join`` (mixed into :class:`~proxcompute.catalog.Catalog`)."""

    def id_search(
        self,
        values: dict[str, Any],
        *,
        scan: bool = False,
        index_catalogs: dict[str, str | os.PathLike] | None = None,
    ) -> Catalog:
        """Rows whose columns hold ``values``, read through the catalog's index catalogs.

        Parameters
        ----------
        values
            ``{"column": value}`` or ``{"column": [v1, v2, ...]}``; with several columns a
            row must match each of them.
        scan
            Without an index, read every partition instead of refusing (row groups are
            still skipped by the column's statistics).
        index_catalogs
            ``{"column": path}`` of index catalogs to use; by default the collection's
            ``all_indexes`` or the ``<catalog>_<column>_index`` directory next to the catalog
            (what ``proxcompute index`` and ``ingest(index_columns=...)`` build).

        Returns
        -------
        Catalog
            Lazy. Only the partitions the index names are read, and in them only the row
            groups whose ``_healpix_29`` statistics hold the ids' cells. The result has no
            margin.

        Raises
        ------
        ColumnNotFoundError
            A column of ``values`` is not in the catalog.
        PlanError
            No index for a column (the message says how to build one) and ``scan`` is False.

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(5_000, seed=2))
        >>> sorted(cat.id_search({"id": [3, 5, 8]}, scan=True).compute()["id"])
        [3, 5, 8]
        """
        from proxcompute.plan.ids import id_search_plan

        return type(self)(id_search_plan(self._plan, values, scan=scan, index_catalogs=index_catalogs))

    def join(
        self,
        other: Any,
        left_on: str,
        right_on: str | None = None,
        *,
        how: str = "inner",
        suffixes: tuple[str, str] | None = None,
        index_catalog: str | os.PathLike | None = None,
    ) -> Catalog:
        """Join with ``other`` (a Catalog, DataFrame or astropy Table) on ``left_on == right_on``.

        Rows are matched by value across all partitions (not only aligned sky pixels): each
        left partition reads only the right partitions and row groups holding its keys,
        located through the right's index catalog of ``right_on`` when it has one, else
        through an in-memory map of the right's ``right_on`` and ``_healpix_29`` columns, read
        once per process (~16 bytes per right row: index big right sides with
        ``proxcompute index``).

        Parameters
        ----------
        other
            The right side; an in-memory table needs ``ra``/``dec`` columns.
        left_on, right_on
            Join columns (``right_on`` defaults to ``left_on``). Null keys never match.
        how
            ``"inner"`` or ``"left"`` (unmatched left rows kept with nulls).
        suffixes
            Column suffixes; default ``(self.name, other.name)`` (``("left", "right")`` when
            the names are equal).
        index_catalog
            An index catalog of ``right_on`` to use instead of the one found next to ``other``.

        Returns
        -------
        Catalog
            Lazy, partitioned like this catalog: ``_healpix_29`` (the left row's), left
            columns suffixed, right columns suffixed; left order, then right order.
            Chainable and writable with :meth:`to_catalog`.

        Examples
        --------
        >>> import pandas as pd
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> sky = from_dataframe(generate_catalog(5_000, seed=2), name="sky")
        >>> labels = generate_catalog(5_000, seed=2).iloc[[4, 9]].assign(label=["a", "b"])
        >>> out = sky.join(from_dataframe(labels, name="labels"), "id").compute()
        >>> sorted(zip(out["id_sky"], out["label_labels"]))
        [(4, 'a'), (9, 'b')]
        """
        from proxcompute.ops.join import JoinArgs
        from proxcompute.plan.ids import index_path
        from proxcompute.plan.join import join_source

        if isinstance(other, IdsMixin):
            right_plan = other._plan
        else:
            right_plan = Scan(memory_source(other, name="right"))
        right_on = left_on if right_on is None else right_on
        right_name = right_plan.source.name
        if suffixes is None:
            suffixes = (self.name, right_name) if self.name != right_name else ("left", "right")
        args = JoinArgs(left_on, right_on, how, suffixes[0], suffixes[1])
        index = index_path(find_scan(right_plan).source, right_on, {right_on: index_catalog} if index_catalog else None)
        return type(self)(Scan(join_source(self._plan, right_plan, args, index=index)))
