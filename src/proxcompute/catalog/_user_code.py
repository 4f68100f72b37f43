"""User code next to the data on a :class:`~proxcompute.catalog.Catalog`: ``map_partitions`` and sky maps.

A mixin of the Catalog (kept apart so the Catalog stays a thin facade): each method adds one plan
node (``MapPartitions``, ``Aggregate``) and the executor runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from proxcompute import execute
from proxcompute.catalog._skymap import SkyMap
from proxcompute.catalog._units import _value
from proxcompute.errors import PlanError
from proxcompute.plan import PlanNode, Project, replace_source

if TYPE_CHECKING:  # pragma: no cover
    from proxcompute.catalog._catalog import Catalog

__all__ = ["UserCodeMixin"]


class UserCodeMixin:
    """``map_partitions`` and ``skymap`` (mixed into :class:`~proxcompute.catalog.Catalog`)."""

    def map_partitions(
        self,
        fn: Callable[..., pd.DataFrame],
        *,
        meta: pd.DataFrame | dict[str, Any] | pa.Schema | None = None,
        include_pixel: bool = False,
        include_margin: bool | float = False,
    ) -> Catalog:
        """Run ``fn`` on each partition's rows, next to the data; lazily.

        Parameters
        ----------
        fn
            ``fn(df) -> DataFrame`` (``fn(df, pixel)`` with ``include_pixel``). ``df`` holds
            the partition's rows with ``_healpix_29``. The result must keep ``_healpix_29``
            (rows returned out of its order are re-sorted; values outside the partition are
            an error). On a cluster, ``fn`` must pickle (a top-level function).
        meta
            The output's columns: a DataFrame (its dtypes), a dict of dtypes or an Arrow
            schema; ``_healpix_29`` is added when missing. Without it, one partition is
            computed now to learn the schema.
        include_pixel
            Pass the partition's pixel (``pixel.order``, ``pixel.pixel``) as second argument.
        include_margin
            ``True``: also pass the rows of the catalog's margin catalog, with a boolean
            ``_margin`` column (False for the partition's own rows); a number: read rows
            within that many arcsec outside the partition from neighbouring partitions (a
            superset), for catalogs without a margin. ``fn`` must keep ``_margin``; only
            rows with ``_margin == False`` are kept.

        Returns
        -------
        Catalog
            Partitioned like this one: chain ``where``, ``[cols]``, ``cone_search`` (while
            ``ra``/``dec`` are kept), ``crossmatch``, ``skymap``, ``to_catalog``, ``compute``.

        Raises
        ------
        UserFunctionError
            When computed: ``fn`` raised (the message names ``Norder``/``Npix`` and ends with
            your traceback), returned something else than a DataFrame, returned columns or
            values that contradict ``meta``, dropped ``_healpix_29`` or changed it; or it does
            not pickle while a distributed cluster is active.

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(20_000, seed=1), max_rows=2_000)
        >>> def colours(df):
        ...     return df.assign(g_r=df["color"], r=df["mag"] - df["color"])
        >>> red = cat.map_partitions(colours).where("g_r > 1.0")
        >>> df = red.compute()
        >>> bool((df["g_r"] > 1.0).all()), "r" in df.columns
        (True, True)
        """
        from proxcompute.plan.map_partitions import MapPartitions, schema_from_meta
        from proxcompute.sky import INDEX_COLUMN

        child = self._plan
        if INDEX_COLUMN not in child.output_columns():
            child = Project(child, (INDEX_COLUMN, *child.output_columns()))
        margin_plan, margin_arcsec = None, None
        if include_margin is True:
            source = self._margin() if self._margin is not None else None
            if source is None:
                raise PlanError(
                    f"catalog {self.name!r} has no margin catalog: ingest it with a margin (margin_arcsec=...), "
                    "or pass include_margin=<arcsec> to read neighbouring partitions on the fly"
                )
            margin_plan = replace_source(child, source)
        elif include_margin is not False:
            margin_arcsec = float(_value(include_margin, "arcsec"))
            if not margin_arcsec > 0:
                raise PlanError(
                    f"include_margin must be True or a distance > 0 arcsec, got {include_margin!r}"
                )
            margin_plan = child
        schema = (
            schema_from_meta(meta) if meta is not None else pa.schema([pa.field(INDEX_COLUMN, pa.int64())])
        )
        node = MapPartitions(child, fn, schema, bool(include_pixel), margin_plan, margin_arcsec)
        if meta is None:
            node = MapPartitions(
                child, fn, execute.learn_schema(node), bool(include_pixel), margin_plan, margin_arcsec
            )
        return self._derive(node)

    def skymap(
        self,
        order: int,
        aggregates: dict[str, str | tuple[str, str]] | None = None,
        *,
        client: Any = None,
    ) -> SkyMap:
        """Aggregate the rows per HEALPix pixel (NESTED) at ``order``; exact across partitions.

        Parameters
        ----------
        order
            HEALPix order 0..29 (the map has ``12 * 4**order`` pixels).
        aggregates
            ``{name: "count"}`` or ``{name: (column, func)}`` with ``func`` one of ``count``,
            ``sum``, ``mean``, ``min``, ``max``, ``std`` (ddof=1). Default ``{"n": "count"}``.
            Nulls and NaN are ignored.
        client
            A ``distributed.Client`` to run on (see :meth:`compute`).

        Returns
        -------
        SkyMap
            ``to_numpy(name)``, ``to_pandas()``, ``to_fits(path)``, ``plot(name)``.

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> cat = from_dataframe(generate_catalog(20_000, seed=1))
        >>> sm = cat.where("mag < 20").skymap(4, {"n": "count", "faintest": ("mag", "max")})
        >>> int(sm.to_numpy("n").sum()) == cat.where("mag < 20").count(), float(sm.to_pandas()["faintest"].max()) < 20
        (True, True)
        """
        node = self._aggregate_node(order, aggregates)
        return SkyMap(execute.aggregate(node, client=client), name=self.name)

    def _check_user_columns(self, needed: Sequence[str], what: str) -> None:
        """After a user function, the columns a search reads must be in the result."""
        from proxcompute.plan.map_partitions import MapPartitions

        node: PlanNode = self._plan
        while node.children and not isinstance(node, MapPartitions):
            node = node.children[0]
        if not isinstance(node, MapPartitions):
            return  # searches on stored columns read what they need
        missing = [c for c in needed if c not in self.columns]
        if missing:
            raise PlanError(
                f"{what} after map_partitions needs the columns {', '.join(needed)} in the result; "
                f"missing {', '.join(missing)}: keep them in the function's output (and the column selection)"
            )

    def _aggregate_node(self, order: int, aggregates: dict[str, Any] | None) -> PlanNode:
        from proxcompute.plan import with_extra_columns
        from proxcompute.plan.aggregate import Aggregate, AggSpec, HealpixKey
        from proxcompute.sky import INDEX_COLUMN

        specs = []
        for name, how in (aggregates or {"n": "count"}).items():
            if isinstance(how, AggSpec):
                specs.append(how)
            elif isinstance(how, str):
                if how != "count":
                    raise PlanError(
                        f"aggregate {name!r}: {how!r} needs a column, e.g. {{{name!r}: ('mag', {how!r})}}"
                    )
                specs.append(AggSpec(name, "count"))
            elif isinstance(how, tuple | list) and len(how) == 2:
                specs.append(AggSpec(name, str(how[1]), str(how[0])))
            else:
                raise PlanError(f"aggregate {name!r}: use 'count' or (column, func), got {how!r}")
        plan = self._plan
        if INDEX_COLUMN not in plan.output_columns():  # cat[["mag"]].skymap(...): the key still needs it
            plan = with_extra_columns(plan, [INDEX_COLUMN])
        return Aggregate(plan, (HealpixKey(order),), tuple(specs))
