"""The lazy :class:`Catalog`: a thin facade where each method adds one plan node."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from proxcompute import execute
from proxcompute.catalog._display import html_summary, plot_coverage, plot_hist, plot_points, text_summary
from proxcompute.catalog._ids import IdsMixin
from proxcompute.catalog._tables import memory_source
from proxcompute.catalog._units import _value
from proxcompute.catalog._user_code import UserCodeMixin
from proxcompute.errors import InvalidRegionError, PlanError, StorageError
from proxcompute.ops.crossmatch import CrossmatchArgs
from proxcompute.ops.proper_motion import ProperMotion
from proxcompute.plan import (
    Explanation,
    Filter,
    PlanNode,
    Project,
    RegionFilter,
    Scan,
    Source,
    StoredSource,
    find_scan,
    is_filtered,
    optimize,
    output_schema,
    parse_predicate,
    render_explain,
    replace_source,
)
from proxcompute.plan.crossmatch import crossmatch_source
from proxcompute.sky import Box, Cone, Polygon, Region
from proxcompute.storage import PartitionPixel, read_catalog_meta
from proxcompute.storage.location import is_url

if TYPE_CHECKING:
    from upath import UPath

__all__ = ["Catalog"]

MarginLoader = Callable[[], Source | None]


def _proper_motion(pm: Any) -> ProperMotion | None:
    if pm is None or isinstance(pm, ProperMotion):
        return pm
    raise PlanError(f"proper_motion must be a proxcompute.ProperMotion, got {type(pm).__name__}")


class Catalog(UserCodeMixin, IdsMixin):
    """A lazy view of a HEALPix-partitioned sky catalog.

    Build one with :func:`open_catalog` or :func:`from_dataframe`. Searches, ``where`` and
    column selection return new lazy catalogs; nothing is read until :meth:`compute`,
    :meth:`count`, :meth:`head`, :meth:`to_catalog` or a Dask computation of
    :meth:`to_dask`. :meth:`explain` shows what a computation will read.

    Examples
    --------
    >>> from proxcompute.catalog import from_dataframe
    >>> from proxcompute.synthetic import generate_catalog
    >>> cat = from_dataframe(generate_catalog(20_000, seed=1), max_rows=2_000)
    >>> bright = cat.cone_search(45.0, 30.0, 3600.0).where("mag < 18")[["id", "ra", "dec", "mag"]]
    >>> df = bright.compute()
    >>> list(df.columns), bool((df["mag"] < 18).all())
    (['id', 'ra', 'dec', 'mag'], True)
    """

    def __init__(self, plan: PlanNode, *, margin: MarginLoader | None = None) -> None:
        self._plan = plan
        self._margin = margin

    def _derive(self, plan: PlanNode) -> Catalog:
        return Catalog(plan, margin=self._margin)

    # -- metadata ------------------------------------------------------------------------

    @property
    def plan(self) -> PlanNode:
        """The logical plan this catalog stands for."""
        return self._plan

    @property
    def name(self) -> str:
        """The catalog's name (``obs_collection``)."""
        return self._plan.source.name

    @property
    def path(self) -> Path | UPath | None:
        """Directory of a stored catalog (a :class:`upath.UPath` when remote); None for an in-memory one."""
        src = self._plan.source
        return src.root if isinstance(src, StoredSource) else None

    @property
    def margin_threshold_arcsec(self) -> float | None:
        """For a margin catalog, how far outside its partitions it reaches; else None."""
        return self._plan.source.margin_threshold_arcsec

    @property
    def ra_column(self) -> str:
        """Name of the right ascension column (degrees)."""
        return self._plan.source.ra_column

    @property
    def dec_column(self) -> str:
        """Name of the declination column (degrees)."""
        return self._plan.source.dec_column

    @property
    def columns(self) -> list[str]:
        """Names of the result's columns."""
        return self._plan.output_columns()

    @property
    def schema(self) -> pa.Schema:
        """Arrow schema of the result."""
        return output_schema(self._plan)

    @property
    def partitions(self) -> list[PartitionPixel]:
        """Partitions a computation reads (all of them unless a region prunes some)."""
        if isinstance(self._plan, Scan) and self._plan.pixels is None:
            return list(self._plan.source.pixels)
        return list(find_scan(optimize(self._plan)).partitions)

    @property
    def margin(self) -> Catalog | None:
        """The margin catalog (rows just outside each partition) with the same operations, or None."""
        if self._margin is None:
            return None
        source = self._margin()
        if source is None:
            return None
        return Catalog(replace_source(self._plan, source))

    __iter__ = None  # rows come from compute() or head(), not iteration
    """Catalogs are not iterable: use :meth:`compute`, :meth:`head` or :meth:`to_dask`."""

    def __bool__(self) -> bool:
        """Always true: truth does not depend on (possibly unknown) row counts."""
        return True

    def __len__(self) -> int:
        if is_filtered(self._plan):
            raise TypeError("len() of a filtered catalog is unknown until it is computed; use .count()")
        n = execute.stored_count(self._plan)  # hats_nrows, else the Parquet footers
        if n is None:
            raise TypeError("the row count of this catalog is unknown until it is computed; use .count()")
        return n

    # -- lazy operations -----------------------------------------------------------------

    def search(self, region: Region) -> Catalog:
        """Rows inside ``region`` (a :class:`~proxcompute.Cone`, :class:`~proxcompute.Box` or
        :class:`~proxcompute.Polygon`); several searches intersect.

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.sky import Box, Cone
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(5_000, seed=2))
        >>> cat.search(Cone(45.0, 30.0, 600.0)).count()
        14
        >>> cat.search(Cone(45.0, 30.0, 3600.0)).search(Box(44.0, 46.0, 29.0, 31.0)).count() > 0
        True
        """
        if not isinstance(region, Region):
            raise InvalidRegionError(f"search() takes a Cone, Box or Polygon, got {type(region).__name__}")
        self._check_user_columns((self.ra_column, self.dec_column), "a sky search")
        return self._derive(RegionFilter(self._plan, region))

    def cone_search(self, ra: float, dec: float, radius_arcsec: float) -> Catalog:
        """Rows within ``radius_arcsec`` of ``(ra, dec)`` (degrees; Quantities are converted).

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(5_000, seed=2))
        >>> cat.cone_search(45.0, 30.0, 600.0).count()
        14
        """
        cone = Cone(_value(ra, "deg"), _value(dec, "deg"), _value(radius_arcsec, "arcsec"))
        return self.search(cone)

    def box_search(self, ra: tuple[float, float], dec: tuple[float, float]) -> Catalog:
        """Rows with ``ra[0] <= ra <= ra[1]`` and ``dec[0] <= dec <= dec[1]`` (degrees).

        ``ra[0] > ra[1]`` selects a box that wraps through RA = 0, e.g. ``ra=(350, 10)``.

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(5_000, seed=2))
        >>> df = cat.box_search(ra=(350.0, 10.0), dec=(-5.0, 5.0)).compute()
        >>> bool(((df["ra"] >= 350) | (df["ra"] <= 10)).all())
        True
        """
        try:
            (ra0, ra1), (dec0, dec1) = ra, dec
        except (TypeError, ValueError):
            raise InvalidRegionError("box_search takes ra=(min, max) and dec=(min, max)") from None
        box = Box(_value(ra0, "deg"), _value(ra1, "deg"), _value(dec0, "deg"), _value(dec1, "deg"))
        return self.search(box)

    def polygon_search(self, vertices: Sequence[tuple[float, float]]) -> Catalog:
        """Rows inside a convex spherical polygon of ``(ra, dec)`` vertices (degrees).

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(5_000, seed=2))
        >>> cat.polygon_search([(40, 25), (50, 25), (50, 35), (40, 35)]).count() > 0
        True
        """
        return self.search(Polygon(tuple(vertices)))

    def crossmatch(
        self,
        right: Any,
        radius_arcsec: float = 1.0,
        *,
        n_neighbors: int = 1,
        how: str = "nearest",
        min_radius_arcsec: float = 0.0,
        suffixes: tuple[str, str] | None = None,
        ensure_margin: bool = False,
        right_ra_column: str | None = None,
        right_dec_column: str | None = None,
        proper_motion: ProperMotion | None = None,
    ) -> Catalog:
        """Crossmatch with ``right`` (a Catalog, DataFrame or astropy Table), lazily.

        Parameters
        ----------
        right
            The catalog to match against; an in-memory table is partitioned on the fly.
        radius_arcsec
            Largest separation of a match, inclusive (float or astropy Quantity).
        n_neighbors
            Nearest right rows kept per left row (``how="nearest"`` or ``"left"``).
        how
            ``"nearest"`` (k nearest within the radius), ``"all"`` (every pair within it)
            or ``"left"`` (nearest, keeping unmatched left rows with nulls).
        min_radius_arcsec
            Smallest separation of a match, inclusive.
        suffixes
            Column suffixes; default ``(self.name, right.name)`` as in LSDB
            (``("left", "right")`` when the names are equal).
        ensure_margin
            If the right margin is missing or narrower than the radius, read neighbouring
            partitions on the fly instead of refusing.
        right_ra_column, right_dec_column
            Coordinate columns of an in-memory ``right`` (default ``ra``/``dec``).
        proper_motion
            A :class:`~proxcompute.ProperMotion`: move this catalog's positions from its
            epoch to ``right``'s before matching. Separations are measured from the moved
            positions; rows with a NaN motion are matched at their catalogue position.
            Partitions whose rows move further than the right margin reaches read the
            neighbouring right partitions, so no pair is lost.

        Returns
        -------
        Catalog
            Partitioned like this catalog: ``_healpix_29`` (the left row's), left columns
            suffixed, (with ``proper_motion``: ``ra_epoch``, ``dec_epoch``, the moved
            positions in degrees), right columns suffixed, and ``_dist_arcsec``. Chainable
            with ``cone_search``/``where``/columns and writable with :meth:`to_catalog`.

        Examples
        --------
        >>> import numpy as np
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> survey = from_dataframe(generate_catalog(20_000, seed=1), name="survey")
        >>> targets = generate_catalog(20_000, seed=1).sample(100, random_state=0)
        >>> targets["ra"] += 0.5 / 3600  # each target 0.5" from its survey star
        >>> matches = from_dataframe(targets, name="targets").crossmatch(survey, radius_arcsec=1.0)
        >>> m = matches.compute()
        >>> len(m), bool((m["id_targets"] == m["id_survey"]).all()), bool(np.all(m["_dist_arcsec"] < 0.5))
        (100, True, True)
        """
        if isinstance(right, Catalog):
            right_plan, right_margin = right._plan, (right._margin() if right._margin else None)
        else:
            src = memory_source(
                right, name="right", ra_column=right_ra_column or "ra", dec_column=right_dec_column or "dec"
            )
            right_plan, right_margin = Scan(src), None
        right_name = right_plan.source.name
        if suffixes is None:
            suffixes = (self.name, right_name) if self.name != right_name else ("left", "right")
        args = CrossmatchArgs(
            radius_arcsec=_value(radius_arcsec, "arcsec"),
            n_neighbors=n_neighbors,
            how=how,
            min_radius_arcsec=_value(min_radius_arcsec, "arcsec"),
            left_suffix=suffixes[0],
            right_suffix=suffixes[1],
            left_ra=self.ra_column,
            left_dec=self.dec_column,
            right_ra=right_plan.source.ra_column,
            right_dec=right_plan.source.dec_column,
            proper_motion=_proper_motion(proper_motion),
        )
        source = crossmatch_source(self._plan, right_plan, args, right_margin=right_margin, ensure_margin=ensure_margin)
        return Catalog(Scan(source))

    def where(self, expr: str) -> Catalog:
        """Rows where ``expr`` holds, e.g. ``"mag < 20 and flag in [0, 1]"``.

        The syntax is that of ``pandas.DataFrame.query``: comparisons (chained too),
        ``and``/``or``/``not`` (or ``&``, ``|``, ``~``), ``in``/``not in`` lists, arithmetic,
        ``isnull(col)``/``notnull(col)``, ``abs``, ``sqrt``, ``log10`` ... Column names that
        are not identifiers go in backticks. The predicate is pushed down to the Parquet scan.

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(5_000, seed=2))
        >>> cat.where("mag < 18 and flag == 1").count()
        118
        """
        return self._derive(Filter(self._plan, parse_predicate(expr, self.schema)))

    def __getitem__(self, key: str | Sequence[str]) -> Catalog:
        """Select columns: ``cat[["ra", "dec"]]``; ``cat["mag"]`` is a one-column Catalog."""
        if isinstance(key, str):
            cols: tuple[str, ...] = (key,)
        else:
            try:
                cols = tuple(key)
            except TypeError:
                cols = ()
            if not cols or not all(isinstance(k, str) for k in cols):
                raise TypeError(f"select columns with a name or a list of names, got {key!r}")
        return self._derive(Project(self._plan, cols))

    # -- execution -----------------------------------------------------------------------

    def compute(self, client: Any = None) -> pd.DataFrame:
        """Run the plan and return every result row.

        Parameters
        ----------
        client
            A ``distributed.Client`` to run on. By default, queries touching at most
            four partitions run in-process; bigger ones run on the current distributed
            client if there is one, else on a local thread pool (one thread per core).

        Returns
        -------
        pandas.DataFrame
            Rows in storage order (partitions along the ``_healpix_29`` curve, rows sorted
            within each), with a fresh ``RangeIndex``.

        Raises
        ------
        CorruptPartitionError
            A partition file cannot be read (the message names it).

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(5_000, seed=2))
        >>> df = cat.cone_search(45.0, 30.0, 600.0)[["id", "mag"]].compute()
        >>> df.shape
        (14, 2)
        """
        return execute.compute_table(self._plan, client=client).to_pandas()

    def count(self, client: Any = None) -> int:
        """Number of result rows, reading only the columns the filters need.

        An unfiltered catalog answers from its metadata (``hats_nrows``).

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(5_000, seed=2))
        >>> cat.count(), cat.where("mag < 20").count()
        (5000, 2488)
        """
        return execute.count(self._plan, client=client)

    def head(self, n: int = 5) -> pd.DataFrame:
        """The first ``n`` result rows in storage order.

        Partitions are read one row group at a time, in storage order, until ``n`` rows
        are found, so ``head`` of a huge catalog reads very little.

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(5_000, seed=2))
        >>> len(cat.where("dec > 60").head(3))
        3
        """
        return execute.head(self._plan, n).to_pandas()

    def to_dask(self) -> Any:
        """A lazy ``dask.dataframe.DataFrame`` with one partition per partition read.

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(5_000, seed=2), max_rows=1_000)
        >>> ddf = cat.where("mag < 20").to_dask()
        >>> ddf.npartitions == len(cat.partitions), len(ddf.compute())
        (True, 2488)
        """
        return execute.to_dask(self._plan)

    def to_catalog(
        self,
        path: str | os.PathLike,
        *,
        name: str | None = None,
        overwrite: bool = False,
        client: Any = None,
        resume_dir: str | os.PathLike | None = None,
    ) -> Catalog:
        """Write the result as a new catalog with the same partitioning, and open it.

        Parameters
        ----------
        path
            The new catalog's directory.
        name
            Its name (``obs_collection``); by default this catalog's name.
        overwrite
            Replace an existing catalog at ``path`` (else :class:`CatalogExistsError`).
        client
            A ``distributed.Client`` to write from (see :meth:`compute`).
        resume_dir
            Keep partial progress there: a write killed or failed midway, called again with
            the same ``resume_dir``, skips the partitions already written.

        Returns
        -------
        Catalog
            The written catalog. ``_healpix_29`` and the coordinate columns are always
            written; empty partitions are omitted. The write is atomic: a failed write
            leaves nothing at ``path``.

        Examples
        --------
        >>> import os, tempfile
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(5_000, seed=2), max_rows=1_000)
        >>> out = cat.where("mag < 20")[["id"]].to_catalog(os.path.join(tempfile.mkdtemp(), "bright"))
        >>> len(out), out.columns
        (2488, ['_healpix_29', 'ra', 'dec', 'id'])
        """
        if is_url(path):
            raise StorageError(
                f"to_catalog writes a local directory, not a URL ({path}): write it locally, then upload it"
            )
        dest = execute.to_catalog(
            self._plan, path, name=name, overwrite=overwrite, client=client, resume_dir=resume_dir
        )
        return Catalog(Scan(StoredSource(read_catalog_meta(dest))))

    def explain(self) -> Explanation:
        """The plan as written, as optimized, what it will read, and its estimated run time.

        Only the footers of the partitions the plan touches are opened. The last line is the
        cost model's estimate (:func:`proxcompute.estimate_cost`, with the default rates).

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(5_000, seed=2))
        >>> print(cat.cone_search(45.0, 30.0, 600.0).explain().splitlines()[-3])
        reads 1 of 12 partitions, 1 of 12 row groups
        >>> cat.cone_search(45.0, 30.0, 600.0).explain().splitlines()[-1].startswith("estimated ")
        True
        """
        optimized = optimize(self._plan)
        estimate = execute.estimate_cost(self._plan).summary()
        return render_explain(self._plan, optimized, execute.describe_reads(optimized), estimate)

    # -- notebook ------------------------------------------------------------------------

    def __repr__(self) -> str:
        return text_summary(self)

    def _repr_html_(self) -> str:
        return html_summary(self)

    def plot_coverage(self, ax: Any = None, **kwargs: Any) -> Any:
        """Draw the partitions on a Mollweide sky map, coloured by order; returns the Axes.

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> ax = from_dataframe(generate_catalog(5_000, seed=2), max_rows=500).plot_coverage()
        >>> ax.get_title()
        'dataframe: 18 partitions'
        """
        return plot_coverage(self.partitions, ax=ax, title=self.name, **kwargs)

    def plot_points(self, ax: Any = None, *, max_rows: int = 5_000_000, **kwargs: Any) -> Any:
        """Density map of the rows on the sky (computes the coordinates only); returns the Axes.

        A result spanning under 30 deg is drawn as an RA/Dec field, a larger one on a
        Mollweide map. ``max_rows`` guards against pulling a whole survey's coordinates.

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(20_000, seed=2))
        >>> ax = cat.cone_search(45.0, 30.0, 3 * 3600).plot_points(bins=40)
        >>> ax.get_xlabel()
        'RA (deg)'
        """
        coords = self[[self.ra_column, self.dec_column]]
        n = coords.count()
        if n > max_rows:
            raise ValueError(f"{n:,} rows to plot (max_rows={max_rows:,}): narrow the catalog or raise max_rows")
        table = execute.compute_table(coords.plan)
        ra = table.column(self.ra_column).to_numpy()
        dec = table.column(self.dec_column).to_numpy()
        kwargs.setdefault("title", self.name)
        return plot_points(ra, dec, ax=ax, **kwargs)

    def plot_hist(self, column: str, ax: Any = None, *, bins: int = 50, **kwargs: Any) -> Any:
        """Histogram of one column (reads only that column); returns the Axes.

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> ax = from_dataframe(generate_catalog(5_000, seed=2)).plot_hist("mag", bins=20)
        >>> ax.get_xlabel()
        'mag'
        """
        values = execute.compute_table(self[[column]].plan).column(column).to_numpy(zero_copy_only=False)
        return plot_hist(values, ax=ax, column=column, bins=bins, **kwargs)

    def to_arrow(self, client: Any = None) -> pa.Table:
        """Run the plan; every result row as an Arrow table (see :meth:`compute`).

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> from_dataframe(generate_catalog(5_000, seed=2)).cone_search(45, 30, 600)[["id"]].to_arrow().num_rows
        14
        """
        return execute.compute_table(self._plan, client=client)

    def to_astropy(self, client: Any = None) -> Any:
        """Run the plan; every result row as an astropy Table (``ra``/``dec`` in degrees).

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> t = from_dataframe(generate_catalog(5_000, seed=2)).cone_search(45, 30, 600).to_astropy()
        >>> len(t), str(t["ra"].unit)
        (14, 'deg')
        """
        from proxcompute.formats import arrow_to_astropy

        return arrow_to_astropy(self.to_arrow(client), units={self.ra_column: "deg", self.dec_column: "deg"})
