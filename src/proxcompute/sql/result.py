"""The lazy result of an SQL query: nothing runs until ``compute``/``to_arrow``/``to_catalog``."""

from __future__ import annotations

import html
import os
import warnings
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa

from proxcompute import execute
from proxcompute.catalog import Catalog, from_dataframe
from proxcompute.errors import ResultTruncatedWarning, SqlError
from proxcompute.execute.partition import PartitionJob, run_partition
from proxcompute.plan import PlanNode, find_scan, optimize
from proxcompute.sql.compile import PART, PARTIALS, SqlPlan, locate_error
from proxcompute.sql.engine import _FileSetError, run_sql, run_sql_on_file
from proxcompute.storage import PartitionPixel

__all__ = ["SqlResult", "SqlTruncatedWarning"]

STREAM_CHUNK_PARTITIONS = 8
"""Partitions computed together when streaming results in storage order."""


SqlTruncatedWarning = ResultTruncatedWarning
"""A result was cut at ``maxrec`` rows: :class:`proxcompute.errors.ResultTruncatedWarning`, the one truncation warning."""


def sql_partition(plan: PlanNode, pixel: PartitionPixel, sql: str, pieces: tuple = ()) -> pa.Table:
    """Run ``sql`` over the rows of ``plan`` in one partition (one Dask task).

    An error that depends on the data (``CAST('x' AS DOUBLE)``) is located by running each
    piece of the query on the same rows.
    """
    table = run_partition(plan, pixel)
    try:
        return run_sql(sql, {PART: table})
    except SqlError as exc:
        raise locate_error(exc, list(pieces), {PART: table}) from None


def sql_file_partition(plan: PlanNode, pixel: PartitionPixel, sql: str, pieces: tuple = ()) -> pa.Table:
    """Run ``sql`` with DuckDB reading the partition's Parquet file itself (one Dask task)."""
    src = plan.source
    path = os.path.realpath(src.partition_path(pixel))
    try:
        return run_sql_on_file(sql, path, os.path.realpath(src.root))
    except SqlError as exc:
        if exc.line is not None or not pieces:
            raise
        raise locate_error(exc, list(pieces), {PART: run_partition(plan, pixel)}) from None


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

    def __init__(self, plan: SqlPlan, *, maxrec: int | None = None) -> None:
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
    def partitions(self) -> list[PartitionPixel]:
        """Partitions the query reads (for distributed modes)."""
        if self._plan.catalog is None:
            return []
        return list(find_scan(optimize(self._plan.catalog.plan)).partitions)

    @property
    def inputs(self) -> dict[str, Any]:
        """Inputs gathered whole (catalogs or Arrow tables by name) when there is no single catalog."""
        return dict(self._plan.gather)

    # -- running ---------------------------------------------------------------------------

    def _want(self) -> int | None:
        """Rows to produce (after OFFSET): TOP/LIMIT, or maxrec + 1 to detect overflow."""
        p = self._plan
        cap = None if self.maxrec is None else self.maxrec + 1
        if p.limit is None:
            return cap
        return p.limit if cap is None else min(p.limit, cap)

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
        from astropy.table import Table

        return Table(self.to_arrow(client).to_pandas().to_dict("list"))

    def iter_batches(self, client: Any = None) -> Iterator[pa.RecordBatch]:
        """The result as Arrow record batches, in order, with :attr:`overflow` set at the end.

        Row-by-row queries (``catalog`` mode, and ``rows`` mode without ORDER BY or DISTINCT)
        stream: a few partitions at a time are computed and handed out, and the stream stops
        once TOP/LIMIT or ``maxrec`` rows are out, so a large result never sits in memory.
        Other queries are computed, then handed out. At least one (possibly empty) batch is
        always yielded, so the schema is known.

        Examples
        --------
        >>> from proxcompute.sql import sql
        >>> from proxcompute.synthetic import generate_catalog
        >>> res = sql("SELECT id, mag FROM s WHERE mag < 15", {"s": generate_catalog(5_000, seed=1)})
        >>> sum(batch.num_rows for batch in res.iter_batches()) == len(res.compute())
        True
        """
        p = self._plan
        if not (p.mode == "catalog" or (p.mode == "rows" and p.final_sql is None)):
            table = self.to_arrow(client)
            yield from table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
            return
        if p.mode == "catalog":
            optimized = optimize(p.catalog.plan)
            pixels = list(find_scan(optimized).partitions)
            job = PartitionJob(run_partition, optimized)
            empty = self._named(p.catalog.schema.empty_table())
        else:
            job, pixels = self._job()
            empty = self._named(p.partial_schema.empty_table())
        want, skip, cap = self._want(), p.offset, self.maxrec
        seen = sent = 0
        self.overflow = None
        for start in range(0, len(pixels), STREAM_CHUNK_PARTITIONS):
            chunk = pixels[start : start + STREAM_CHUNK_PARTITIONS]
            for table in execute.map_partitions(job, chunk, client=client, label="sql"):
                table = _plain_integers(self._named(table))
                if skip:
                    drop = min(skip, table.num_rows)
                    table, skip = table.slice(drop), skip - drop
                if want is not None:
                    table = table.slice(0, max(0, want - seen))
                seen += table.num_rows
                if cap is not None:
                    table = table.slice(0, max(0, cap - sent))
                if table.num_rows:
                    sent += table.num_rows
                    yield from table.to_batches()
                if want is not None and seen >= want:
                    break
            if want is not None and seen >= want:
                break
        self.overflow = cap is not None and seen > cap
        if self.overflow:
            warnings.warn(f"the result was truncated at maxrec={cap} rows", SqlTruncatedWarning, stacklevel=2)
        if not sent:
            yield pa.RecordBatch.from_pylist([], schema=_plain_integers(empty).schema)

    def _run(self, client: Any) -> pa.Table:
        p = self._plan
        if p.mode == "gather":
            tables = {
                k: c if isinstance(c, pa.Table) else execute.compute_table(c.plan, client=client)
                for k, c in p.gather.items()
            }
            return run_sql(p.final_sql, tables)
        if p.mode == "catalog":
            want = self._want()
            if want is not None:
                table = execute.head(p.catalog.plan, want + p.offset).slice(p.offset)
            else:
                table = execute.compute_table(p.catalog.plan, client=client).slice(p.offset)
            return self._named(table)
        if p.count_only:
            n = p.catalog.count(client=client)
            return pa.table({p.output_names[0]: pa.array([n], type=pa.int64())})
        job, pixels = self._job()
        if p.direct_sql is not None and self._single_scan_ok(client):
            partials = self._single_scan(pixels)
            if partials is not None:
                if p.mode == "rows" and p.final_sql is None:
                    want = self._want()
                    return self._named(partials.slice(p.offset, want) if want is not None else partials)
                return self._named(run_sql(p.final_sql, {PARTIALS: partials}) if p.final_sql else partials)
        if p.mode == "rows" and p.final_sql is None and self._want() is not None:
            need = self._want() + p.offset
            pieces, found = [], 0
            for start in range(0, len(pixels), STREAM_CHUNK_PARTITIONS):
                chunk = pixels[start : start + STREAM_CHUNK_PARTITIONS]
                for t in execute.map_partitions(job, chunk, client=client, label="sql"):
                    pieces.append(t)
                    found += t.num_rows
                if found >= need:
                    break
            table = self._concat(pieces).slice(p.offset, self._want())
            return self._named(table)
        partials = self._concat(execute.map_partitions(job, pixels, client=client, label="sql"))
        if p.final_sql is None:
            return self._named(partials)
        return self._named(run_sql(p.final_sql, {PARTIALS: partials}))

    def _single_scan_ok(self, client: Any) -> bool:
        """One multi-threaded DuckDB scan of all the files: no cluster, and not observed by a job."""
        from proxcompute.execute.run import _observer
        from proxcompute.execute.scheduler import current_client

        return client is None and current_client() is None and _observer.get() is None

    def _single_scan(self, pixels: list[PartitionPixel]) -> pa.Table | None:
        p = self._plan
        src = optimize(p.catalog.plan).source
        paths = [os.path.realpath(src.partition_path(px)) for px in pixels]
        if not paths:
            return None
        try:
            return run_sql_on_file(p.direct_sql, paths, os.path.realpath(src.root), threads=os.cpu_count() or 1)
        except _FileSetError:
            return None  # the per-partition path names the corrupt file

    def _job(self) -> tuple[PartitionJob, list[PartitionPixel]]:
        p = self._plan
        optimized = optimize(p.catalog.plan)
        pixels = list(find_scan(optimized).partitions)
        pieces = tuple(p.pieces)
        if p.direct_sql is not None:
            return PartitionJob(sql_file_partition, optimized, (p.direct_sql, pieces)), pixels
        return PartitionJob(sql_partition, optimized, (p.partition_sql, pieces)), pixels

    def _concat(self, tables: list[pa.Table]) -> pa.Table:
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return self._plan.partial_schema.empty_table()
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")

    def _named(self, table: pa.Table) -> pa.Table:
        p = self._plan
        if p.mode == "catalog" and p.rename:
            return table.rename_columns([p.rename.get(c, c) for c in table.column_names])
        if p.mode == "rows" and p.final_sql is None and table.num_columns > len(p.output_names):
            table = table.select(list(range(len(p.output_names))))
        return table

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
        if p.mode == "catalog" and not p.rename and p.limit is None and self.maxrec is None and not p.offset:
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

    def explain(self) -> str:
        """How the query runs: the input catalog's plan, the per-partition SQL and the merge.

        Examples
        --------
        >>> from proxcompute.sql import sql
        >>> from proxcompute.synthetic import generate_catalog
        >>> res = sql("SELECT id, mag FROM s WHERE mag < 15", {"s": generate_catalog(5_000, seed=1)})
        >>> print(res.explain().splitlines()[1])
        mode: catalog (the input catalog's rows are the answer)
        """
        p = self._plan
        lines = [f"query: {' '.join(p.text.split())}", f"mode: {p.mode} ({_MODES[p.mode]})"]
        lines += [f"pushed: {n}" for n in p.notes]
        if p.catalog is not None:
            lines.append("input:")
            lines += ["  " + line for line in str(p.catalog.explain()).splitlines()]
        if p.count_only:
            lines.append("count: from the input catalog (no rows are materialized)")
        elif p.direct_sql is not None:
            lines.append(f"per partition (DuckDB reading the partition file): {p.direct_sql}")
        elif p.partition_sql is not None:
            lines.append(f"per partition (DuckDB over Arrow): {p.partition_sql}")
        for key, cat in p.gather.items():
            if isinstance(cat, pa.Table):
                lines.append(f"gathered as {key}: a table of {cat.num_rows:,} rows [{', '.join(cat.column_names)}]")
            else:
                lines.append(f"gathered as {key}: {cat.name} [{', '.join(cat.columns)}]")
        if p.final_sql is not None:
            lines.append(f"final (DuckDB): {p.final_sql}")
        if p.mode == "catalog" and p.limit is not None:
            lines.append(f"limit: first {p.limit} rows in storage order (offset {p.offset})")
        if self.maxrec is not None:
            lines.append(f"maxrec: {self.maxrec}")
        return "\n".join(lines)

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


_MODES = {
    "catalog": "the input catalog's rows are the answer",
    "rows": "per-partition SQL, merged in storage order or by a final ORDER BY/DISTINCT",
    "aggregate": "partial aggregates per partition, final aggregate on the driver",
    "two-level": "per-partition filter and projection, then the query on their union",
    "gather": "the named catalogs in one DuckDB (not distributed)",
}
