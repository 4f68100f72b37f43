"""The lazy result of an SQL query: nothing runs until ``compute``/``to_arrow``/``to_catalog``."""

from __future__ import annotations

import html
import os
import textwrap
import warnings
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa

from proxcompute import execute
from proxcompute.catalog import Catalog, from_dataframe
from proxcompute.errors import ResultTruncatedWarning, SqlError
from proxcompute.execute import STREAM_CHUNK_PARTITIONS
from proxcompute.plan import Explanation, PlanNode, find_scan, optimize, render_explain
from proxcompute.plan.relational import Limit, catalog_plan, has_operators, render_operators
from proxcompute.sql.gather import CompiledQuery
from proxcompute.storage import PartitionPixel

__all__ = ["STREAM_CHUNK_PARTITIONS", "SqlResult", "SqlTruncatedWarning"]


SqlTruncatedWarning = ResultTruncatedWarning
"""A result was cut at ``maxrec`` rows: :class:`proxcompute.errors.ResultTruncatedWarning`, the one truncation warning."""


class SqlResult:
    """A compiled query, ready to run.

    Returned by :func:`proxcompute.sql`. ``compute()`` gives pandas, ``to_arrow()`` Arrow,
    ``iter_batches()`` streams, ``to_catalog(path)`` writes a catalog and ``explain()``
    shows the plan. After a run, :attr:`overflow` says whether ``maxrec`` cut the result.

    Examples
    --------
    >>> from proxcompute.sql import sql
    >>> from proxcompute.synthetic import generate_catalog
    >>> res = sql("SELECT id FROM s", {"s": generate_catalog(1_000, seed=1)}, maxrec=10)
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     len(res.compute()), res.overflow
    (10, True)
    """

    def __init__(self, plan: CompiledQuery, *, maxrec: int | None = None) -> None:
        if maxrec is not None and (isinstance(maxrec, bool) or int(maxrec) != maxrec or maxrec < 0):
            raise SqlError("limit", f"maxrec must be a whole number >= 0, got {maxrec!r}")
        self._plan = plan
        self.maxrec = None if maxrec is None else int(maxrec)
        self.overflow: bool | None = None
        """After a run: whether ``maxrec`` cut the result (None before any run)."""

    # -- metadata --------------------------------------------------------------------------

    @property
    def query(self) -> str:
        """The query text."""
        return self._plan.text

    @property
    def mode(self) -> str:
        """How the query runs: ``catalog``, ``rows``, ``aggregate``, ``two-level`` or ``gather``."""
        return self._plan.mode

    @property
    def catalog(self) -> Catalog | None:
        """The lazy input catalog (regions, predicates and projection pushed down), if any."""
        return self._plan.catalog

    @property
    def plan(self) -> PlanNode:
        """The plan run by :mod:`proxcompute.execute`: the input catalog's plan with SQL's
        relational nodes on top (for ``gather``, a ``Scan`` of the one DuckDB query)."""
        return self._plan.plan

    @property
    def partitions(self) -> list[PartitionPixel]:
        """Partitions the query reads (for distributed modes)."""
        if self._plan.mode == "gather":
            return []
        return list(find_scan(optimize(self._plan.plan)).partitions)

    @property
    def inputs(self) -> dict[str, Any]:
        """Inputs gathered whole (catalogs or Arrow tables by name) when there is no single catalog."""
        return dict(self._plan.gather)

    # -- running ---------------------------------------------------------------------------

    def _capped_plan(self) -> PlanNode:
        """The plan, with a ``Limit`` of ``maxrec + 1`` rows on top to detect overflow."""
        plan = self._plan.plan
        return plan if self.maxrec is None else Limit(plan, self.maxrec + 1)

    @property
    def run_plan(self) -> PlanNode:
        """The plan as it runs: :attr:`plan` with ``maxrec``'s limit (what
        :func:`~proxcompute.execute.estimate_cost` estimates)."""
        return self._capped_plan()

    def to_arrow(self, client: Any = None) -> pa.Table:
        """Run the query; the whole result as one Arrow table.

        Examples
        --------
        >>> from proxcompute.sql import sql
        >>> from proxcompute.synthetic import generate_catalog
        >>> res = sql("SELECT id, mag FROM s WHERE mag < 15", {"s": generate_catalog(5_000, seed=1)})
        >>> res.to_arrow().column_names
        ['id', 'mag']
        """
        table = self._run(client)
        return self._cap(table)

    def compute(self, client: Any = None) -> pd.DataFrame:
        """Run the query; the result as a pandas DataFrame.

        Parameters
        ----------
        client
            A ``distributed.Client`` to run on; by default small queries run in-process and
            bigger ones on the current client or local threads.

        Examples
        --------
        >>> from proxcompute.sql import sql
        >>> from proxcompute.synthetic import generate_catalog
        >>> res = sql("SELECT id, mag FROM s WHERE mag < 15", {"s": generate_catalog(5_000, seed=1)})
        >>> df = res.compute()
        >>> bool((df["mag"] < 15).all())
        True
        """
        return self.to_arrow(client).to_pandas()

    to_pandas = compute

    def to_astropy(self, client: Any = None) -> Any:
        """Run the query; the result as an astropy Table.

        Examples
        --------
        >>> from proxcompute.sql import sql
        >>> from proxcompute.synthetic import generate_catalog
        >>> t = sql("SELECT TOP 3 id, ra FROM s ORDER BY id", {"s": generate_catalog(1_000, seed=1)}).to_astropy()
        >>> t.colnames, len(t)
        (['id', 'ra'], 3)
        """
        from proxcompute.formats import arrow_to_astropy

        return arrow_to_astropy(self.to_arrow(client))

    def iter_batches(self, client: Any = None) -> Iterator[pa.RecordBatch]:
        """The result as Arrow record batches, in order, with :attr:`overflow` set at the end.

        Row-by-row queries (``catalog`` mode, and ``rows`` mode without ORDER BY or DISTINCT)
        stream (:func:`proxcompute.execute.iter_tables`): a few partitions at a time are
        computed and handed out, and the stream stops once TOP/LIMIT or ``maxrec`` rows are
        out, so a large result never sits in memory. Other queries are computed, then handed
        out. At least one (possibly empty) batch is always yielded, so the schema is known.

        Examples
        --------
        >>> from proxcompute.sql import sql
        >>> from proxcompute.synthetic import generate_catalog
        >>> res = sql("SELECT id, mag FROM s WHERE mag < 15", {"s": generate_catalog(5_000, seed=1)})
        >>> sum(batch.num_rows for batch in res.iter_batches()) == len(res.compute())
        True
        """
        cap, sent, seen, schema = self.maxrec, 0, 0, None
        self.overflow = None
        for table in execute.iter_tables(self._capped_plan(), client=client):
            table = _plain_integers(table)
            schema = schema or table.schema
            seen += table.num_rows
            if cap is not None:
                table = table.slice(0, max(0, cap - sent))
            if table.num_rows:
                sent += table.num_rows
                yield from table.to_batches()
        self.overflow = cap is not None and seen > cap
        if self.overflow:
            warnings.warn(f"the result was truncated at maxrec={cap} rows", SqlTruncatedWarning, stacklevel=2)
        if not sent:
            yield pa.RecordBatch.from_pylist([], schema=schema)

    def _run(self, client: Any) -> pa.Table:
        return execute.compute_query(self._capped_plan(), client=client)

    def _cap(self, table: pa.Table) -> pa.Table:
        table = _plain_integers(table)
        if self.maxrec is None:
            self.overflow = False
            return table
        self.overflow = table.num_rows > self.maxrec
        if self.overflow:
            warnings.warn(
                f"the result was truncated at maxrec={self.maxrec} rows", SqlTruncatedWarning, stacklevel=3
            )
            return table.slice(0, self.maxrec)
        return table

    def to_catalog(
        self,
        path: str | os.PathLike,
        *,
        name: str | None = None,
        overwrite: bool = False,
        client: Any = None,
        resume_dir: str | os.PathLike | None = None,
    ) -> Catalog:
        """Write the result as a new HEALPix-partitioned catalog (atomically) and open it.

        A query answered by its input catalog (columns of one catalog, with regions and
        simple predicates) is written partition by partition without collecting it. Other
        results are collected, then partitioned; they need ``ra`` and ``dec`` columns (or the
        input's coordinate column names).

        Examples
        --------
        >>> import os, tempfile
        >>> from proxcompute.sql import sql
        >>> from proxcompute.synthetic import generate_catalog
        >>> res = sql("SELECT id, ra, dec FROM s WHERE mag < 18", {"s": generate_catalog(5_000, seed=1)})
        >>> cat = res.to_catalog(os.path.join(tempfile.mkdtemp(), "bright"), name="bright")
        >>> cat.name, len(cat) == len(res.compute())
        ('bright', True)
        """
        p = self._plan
        if p.mode == "catalog" and not has_operators(p.plan) and self.maxrec is None:
            return p.catalog.to_catalog(path, name=name, overwrite=overwrite, client=client, resume_dir=resume_dir)
        table = self.to_arrow(client)
        cols = table.column_names
        ra, dec = "ra", "dec"
        if p.catalog is not None and p.catalog.ra_column in cols and p.catalog.dec_column in cols:
            ra, dec = p.catalog.ra_column, p.catalog.dec_column
        if ra not in cols or dec not in cols:
            raise SqlError(
                "unsupported",
                f"a result written as a catalog needs coordinate columns {ra!r} and {dec!r}; "
                f"the result has {', '.join(cols)}",
            )
        df = table.drop_columns([c for c in cols if c == "_healpix_29"]).to_pandas()
        cat = from_dataframe(df, name=name or "result", ra_column=ra, dec_column=dec)
        return cat.to_catalog(path, name=name or "result", overwrite=overwrite, client=client)

    # -- explaining --------------------------------------------------------------------------

    def explain(self) -> Explanation:
        """The query, then its plan explained as :meth:`Catalog.explain` explains one.

        For a query the Python method chain can express (regions, filters, projection,
        positional join), the text after the header is exactly that chain's ``explain()``.

        Examples
        --------
        >>> from proxcompute.sql import sql
        >>> from proxcompute.synthetic import generate_catalog
        >>> res = sql("SELECT id, mag FROM s WHERE mag < 15", {"s": generate_catalog(5_000, seed=1)})
        >>> print(res.explain().splitlines()[1])
        mode: catalog (the input catalog's rows are the answer)
        """
        p = self._plan
        lines = [f"SQL: {' '.join(p.text.split())}", f"mode: {p.mode} ({_MODES[p.mode]})"]
        lines += [f"pushed: {n}" for n in p.notes]
        if self.maxrec is not None:
            lines.append(f"maxrec: {self.maxrec} (a Limit of maxrec + 1 rows on top, to detect overflow)")
        if p.plan is not None:
            optimized = optimize(p.plan)
            if has_operators(p.plan):
                lines.append("SQL nodes above the input plan:")
                lines.append(textwrap.indent(render_operators(p.plan), "  "))
                lines.append("SQL nodes, optimized:")
                lines.append(textwrap.indent(render_operators(optimized), "  "))
            lines.append(f"runs as: {execute.strategy(optimized)} ({_STRATEGIES[execute.strategy(optimized)]})")
            lines.append(f"the query: {execute.estimate_cost(self).summary()}")
            lines.append("input (the plan the Python method chain builds, as Catalog.explain() shows it):")
            base, base_optimized = catalog_plan(p.plan), catalog_plan(optimized)
            estimate = execute.estimate_cost(base).summary()
            lines.append(render_explain(base, base_optimized, execute.describe_reads(base_optimized), estimate))
        return Explanation("\n".join(lines))

    def __repr__(self) -> str:
        return f"<SqlResult mode={self.mode} partitions={len(self.partitions)}>\n{self.explain()}"

    def _repr_html_(self) -> str:
        return (
            f"<div><b>SQL query</b> <code>{html.escape(' '.join(self.query.split()))}</code>"
            f"<pre>{html.escape(self.explain())}</pre></div>"
        )


def _plain_integers(table: pa.Table) -> pa.Table:
    """DuckDB sums integers as HUGEINT (Arrow decimal128(38, 0)); give int64 back when it fits."""
    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type) and f.type.scale == 0:
            try:
                table = table.set_column(i, f.name, table.column(i).cast(pa.int64()))
            except pa.ArrowInvalid:  # larger than int64: keep the exact decimal
                pass
    return table


_STRATEGIES = {
    "partitions": "one task per partition, then the merge",
    "stream": "partitions in storage order, a few at a time, until the limit is reached",
    "single-scan": "the reader reads every partition with a thread per core, then one DuckDB pass",
    "top-n-statistics": "row groups read best-first by their statistics until none can contribute",
    "count": "the input's row count, without materializing rows",
    "aggregate": "partial aggregation states per partition, merged exactly as they finish",
}

_MODES = {
    "catalog": "the input catalog's rows are the answer",
    "rows": "per-partition SQL, in storage order or merged by a sort/top-n/distinct",
    "aggregate": "partial aggregates per partition, final aggregate on the driver",
    "two-level": "per-partition filter and projection, then the query on their union",
    "gather": "the named inputs read whole, then one DuckDB query over them (not distributed)",
}
