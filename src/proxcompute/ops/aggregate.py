"""Grouped aggregation in three steps: a partial state per partition, an exact merge, finalize.

Partial states (numpy, one entry per group of the partition):

* ``rows``: rows in the group (``count(*)``);
* per aggregate: ``n`` (values counted) and, depending on the function, ``sum``, ``mean``
  and ``m2`` (sum of squared deviations from the mean), ``min`` or ``max``.

Merging is exact: counts, integer sums, minima and maxima add or compare; means and ``m2``
merge with Chan et al.'s pairwise formula, so ``std`` over a billion rows is as precise as a
two-pass computation over one partition. Nulls and NaN values are ignored (as SQL ignores
nulls): they do not count in ``count(column)``, ``sum``, ``mean``, ``min``, ``max`` or ``std``;
a group still exists (``count(*)`` counts the row) when all its values are null.

Finalized values of a group with no values: null for ``sum``, ``mean``, ``min``, ``max``; null
for ``std`` with fewer than two values (ddof=1, like SQL ``STDDEV_SAMP`` and pandas).

The merged state is dense (one slot per pixel, no hashing) when the only key is a
HEALPix pixel at order <= :data:`DENSE_MAX_ORDER`, else a hash table keyed by the group
values (a pandas index).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from proxcompute.errors import InvalidOrderError, PlanError
from proxcompute.sky import INDEX_COLUMN
from proxcompute.sky.healpix import MAX_ORDER, healpix29_to_order

__all__ = [
    "AGG_FUNCS",
    "DENSE_MAX_ORDER",
    "AggSpec",
    "Aggregation",
    "HealpixKey",
    "MergedState",
    "Partial",
    "aggregate_schema",
    "check_order",
    "is_numeric",
    "key_name",
    "partial_aggregate",
    "result_type",
]

DENSE_MAX_ORDER = 10
"""Sky maps up to this order merge into dense arrays (12 * 4**10 = 12.6 M slots, 100 MB each)."""

AGG_FUNCS = ("count", "sum", "mean", "min", "max", "std")
"""Aggregate functions. ``std`` is the sample standard deviation (ddof=1), like SQL
``STDDEV``/``STDDEV_SAMP`` and pandas; nulls and NaN are ignored, as SQL ignores nulls."""


def check_order(order: object) -> int:
    """``order`` as an int in 0..29, else :class:`~proxcompute.errors.InvalidOrderError`."""
    if isinstance(order, bool) or not isinstance(order, numbers.Integral):
        raise InvalidOrderError(f"a HEALPix order is an integer in 0..{MAX_ORDER}, got {order!r}")
    value = int(order)
    if not 0 <= value <= MAX_ORDER:
        raise InvalidOrderError(f"HEALPix order {value} is outside 0..{MAX_ORDER}")
    return value


@dataclass(frozen=True)
class HealpixKey:
    """Group key: the NESTED HEALPix pixel at ``order`` of each row.

    Computed from ``_healpix_29`` by a right shift (no trigonometry per row).

    Examples
    --------
    >>> HealpixKey(10).label()
    'healpix(10) AS pixel'
    >>> HealpixKey(30)
    Traceback (most recent call last):
    ...
    proxcompute.errors.InvalidOrderError: HEALPix order 30 is outside 0..29
    """

    order: int
    name: str = "pixel"

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", check_order(self.order))
        if not isinstance(self.name, str) or not self.name:
            raise PlanError(f"a HealpixKey needs a column name, got {self.name!r}")

    @property
    def npix(self) -> int:
        """Number of pixels at this order (``12 * 4**order``)."""
        return 12 * 4**self.order

    def label(self) -> str:
        return f"healpix({self.order}) AS {self.name}"


@dataclass(frozen=True)
class AggSpec:
    """One output column: ``func`` of ``column`` named ``name``.

    ``column=None`` is allowed for ``count`` only (the number of rows, ``COUNT(*)``);
    ``count`` of a column counts its non-null, non-NaN values.

    Examples
    --------
    >>> AggSpec("mean_mag", "mean", "mag").label()
    'mean(mag) AS mean_mag'
    >>> AggSpec("n", "count").label()
    'count(*) AS n'
    """

    name: str
    func: str
    column: str | None = None

    def __post_init__(self) -> None:
        if self.func not in AGG_FUNCS:
            raise PlanError(f"unknown aggregate {self.func!r}; use one of {', '.join(AGG_FUNCS)}")
        if self.column is None and self.func != "count":
            raise PlanError(f"aggregate {self.func!r} ({self.name!r}) needs a column")
        if not isinstance(self.name, str) or not self.name:
            raise PlanError(f"an aggregate needs an output name, got {self.name!r}")

    def label(self) -> str:
        return f"{self.func}({self.column or '*'}) AS {self.name}"


def is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def key_name(key: str | HealpixKey) -> str:
    """Output column name of a group key."""
    return key.name if isinstance(key, HealpixKey) else key


def result_type(func: str, column_type: pa.DataType) -> pa.DataType:
    """Arrow type of ``func`` over a column of ``column_type``."""
    if func == "count":
        return pa.int64()
    if func in ("mean", "std"):
        return pa.float64()
    if func == "sum":
        return pa.float64() if pa.types.is_floating(column_type) else pa.int64()
    return pa.int64() if pa.types.is_boolean(column_type) else column_type  # min, max


def aggregate_schema(
    keys: tuple[str | HealpixKey, ...], aggregates: tuple[AggSpec, ...], input_schema: pa.Schema
) -> pa.Schema:
    """Arrow schema of an aggregation's result: keys, then aggregates."""
    fields = []
    for key in keys:
        if isinstance(key, HealpixKey):
            fields.append(pa.field(key.name, pa.int64()))
        else:
            fields.append(input_schema.field(key))
    for spec in aggregates:
        t = input_schema.field(spec.column).type if spec.column is not None else pa.int64()
        fields.append(pa.field(spec.name, result_type(spec.func, t)))
    return pa.schema(fields)


@dataclass(frozen=True)
class Aggregation:
    """What to compute: group ``keys``, ``aggregates``, over rows of ``input_schema``."""

    keys: tuple[str | HealpixKey, ...]
    aggregates: tuple[AggSpec, ...]
    input_schema: pa.Schema

    @property
    def healpix_key(self) -> HealpixKey | None:
        """The key when the only key is a :class:`HealpixKey` (a sky map), else None."""
        if len(self.keys) == 1 and isinstance(self.keys[0], HealpixKey):
            return self.keys[0]
        return None

    def output_arrow_schema(self) -> pa.Schema:
        return aggregate_schema(self.keys, self.aggregates, self.input_schema)


_STATES = {
    "count": ("n",),
    "sum": ("n", "sum"),
    "mean": ("n", "mean", "m2"),
    "std": ("n", "mean", "m2"),
    "min": ("n", "min"),
    "max": ("n", "max"),
}


@dataclass
class Partial:
    """Partial aggregation state of some rows: one entry per group.

    ``keys`` holds one array of group values per key; ``rows`` the rows per group; ``states``
    one dict of arrays per aggregate (see the module docstring).
    """

    keys: list[np.ndarray]
    rows: np.ndarray
    states: list[dict[str, np.ndarray]]

    @property
    def groups(self) -> int:
        return len(self.rows)


def _column_values(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(values, valid)``: numbers with nulls filled, and which are neither null nor NaN."""
    arr = (
        table.column(column).combine_chunks()
        if table.num_rows
        else pa.array([], table.schema.field(column).type)
    )
    if pa.types.is_boolean(arr.type):
        arr = arr.cast(pa.int64())
    valid = (
        np.ones(len(arr), dtype=bool)
        if arr.null_count == 0
        else arr.is_valid().to_numpy(zero_copy_only=False)
    )
    if arr.null_count:
        arr = arr.fill_null(0)
    values = arr.to_numpy(zero_copy_only=False)
    if values.dtype.kind == "f":
        valid &= ~np.isnan(values)
    return values, valid


def _group_ids(
    table: pa.Table, keys: tuple[str | HealpixKey, ...]
) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Group id of each row (0..G-1, ascending along the rows when they are sorted by key)."""
    n = table.num_rows
    if not keys:
        return np.zeros(n, dtype=np.int64), [], 1
    if len(keys) == 1 and isinstance(keys[0], HealpixKey):
        pix = healpix29_to_order(table.column(INDEX_COLUMN).to_numpy(), keys[0].order)
        if n and not np.all(pix[1:] >= pix[:-1]):
            uniq, gid = np.unique(pix, return_inverse=True)
            return gid.astype(np.int64), [uniq], len(uniq)
        change = np.empty(n, dtype=bool)
        if n:
            change[0] = True
            np.not_equal(pix[1:], pix[:-1], out=change[1:])
        gid = np.cumsum(change, dtype=np.int64) - 1
        uniq = pix[change]
        return gid, [uniq], len(uniq)
    cols = {}
    for k in keys:
        if isinstance(k, HealpixKey):
            cols[k.name] = healpix29_to_order(table.column(INDEX_COLUMN).to_numpy(), k.order)
        else:
            cols[k] = table.column(k).to_pandas()
    df = pd.DataFrame(cols)
    names = list(cols)
    gid = df.groupby(names, dropna=False, sort=False).ngroup().to_numpy(dtype=np.int64)
    _, first = np.unique(gid, return_index=True)
    return gid, [df[c].to_numpy()[first] for c in names], len(first)


def _reduce(values: np.ndarray, gid: np.ndarray, groups: int, func: str) -> dict[str, np.ndarray]:
    """States of one aggregate; ``values``/``gid`` hold only the valid values, sorted by ``gid``."""
    n = np.bincount(gid, minlength=groups).astype(np.int64)
    out = {"n": n}
    if func == "count":
        return out
    starts = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1]]) if gid.size else np.empty(0, dtype=np.int64)
    present = gid[starts]
    if func == "sum":
        dtype = np.float64 if values.dtype.kind == "f" else np.int64
        s = np.zeros(groups, dtype=dtype)
        if starts.size:
            s[present] = np.add.reduceat(values.astype(dtype, copy=False), starts)
        out["sum"] = s
    elif func in ("mean", "std"):
        x = values.astype(np.float64, copy=False)
        s = np.zeros(groups, dtype=np.float64)
        if starts.size:
            s[present] = np.add.reduceat(x, starts)
        mean = np.divide(s, n, out=np.zeros(groups), where=n > 0)
        d = x - mean[gid]
        out["mean"] = mean
        out["m2"] = np.bincount(gid, weights=d * d, minlength=groups)
    else:  # min / max
        ufunc = np.minimum if func == "min" else np.maximum
        v = np.zeros(groups, dtype=values.dtype)
        if starts.size:
            v[present] = ufunc.reduceat(values, starts)
        out[func] = v
    return out


def partial_aggregate(table: pa.Table, node: Aggregation) -> Partial:
    """The partial state of ``node``'s aggregation over the rows of ``table``.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"_healpix_29": [1, 2, 3], "ra": [0.0] * 3, "dec": [0.0] * 3, "k": [1, 1, 2], "x": [1.0, 3.0, None]})
    >>> node = Aggregation(("k",), (AggSpec("m", "mean", "x"),), t.schema)
    >>> p = partial_aggregate(t, node)
    >>> p.keys[0].tolist(), p.rows.tolist(), p.states[0]["n"].tolist(), p.states[0]["mean"].tolist()
    ([1, 2], [2, 1], [2, 0], [2.0, 0.0])
    """
    gid, keys, groups = _group_ids(table, node.keys)
    sorted_ids = gid.size == 0 or bool(np.all(gid[1:] >= gid[:-1]))
    order = None if sorted_ids else np.argsort(gid, kind="stable")
    gs = gid if order is None else gid[order]
    rows = np.bincount(gid, minlength=groups).astype(np.int64)
    states = []
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for spec in node.aggregates:
        if spec.column is None:
            states.append({"n": rows.copy()})
            continue
        if spec.column not in cache:
            values, valid = _column_values(table, spec.column)
            if order is not None:
                values, valid = values[order], valid[order]
            cache[spec.column] = (values[valid], gs[valid])
        values, g = cache[spec.column]
        states.append(_reduce(values, g, groups, spec.func))
    return Partial(keys, rows, states)


def _merge_into(dst: dict[str, np.ndarray], src: dict[str, np.ndarray], pos: np.ndarray, func: str) -> None:
    na = dst["n"][pos]
    nb = src["n"]
    tot = na + nb
    dst["n"][pos] = tot
    if func == "sum":
        dst["sum"][pos] += src["sum"]
    elif func in ("mean", "std"):
        ma, mb = dst["mean"][pos], src["mean"]
        safe = np.maximum(tot, 1)
        delta = mb - ma
        dst["mean"][pos] = np.where(tot > 0, ma + delta * (nb / safe), 0.0)
        dst["m2"][pos] = (
            dst["m2"][pos] + src["m2"] + np.where(tot > 0, delta * delta * (na * (nb / safe)), 0.0)
        )
    elif func in ("min", "max"):
        ufunc = np.minimum if func == "min" else np.maximum
        a, b = dst[func][pos], src[func]
        dst[func][pos] = np.where(nb > 0, np.where(na > 0, ufunc(a, b), b), a)


@dataclass
class MergedState:
    """Partials merged so far: dense over pixels for a low-order sky map, else hashed.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"_healpix_29": [1, 2, 3], "ra": [0.0] * 3, "dec": [0.0] * 3, "k": [1, 1, 2], "x": [1.0, 3.0, 5.0]})
    >>> node = Aggregation(("k",), (AggSpec("s", "std", "x"),), t.schema)
    >>> state = MergedState.for_node(node)
    >>> state.merge(partial_aggregate(t.slice(0, 1), node)); state.merge(partial_aggregate(t.slice(1), node))
    >>> state.finalize().to_pylist()
    [{'k': 1, 's': 1.4142135623730951}, {'k': 2, 's': None}]
    """

    node: Aggregation
    dense: bool
    rows: np.ndarray
    states: list[dict[str, np.ndarray]]
    index: pd.Index | None = None
    keys: list[np.ndarray] = field(default_factory=list)
    partitions: int = 0

    @classmethod
    def for_node(cls, node: Aggregation) -> MergedState:
        hk = node.healpix_key
        dense = hk is not None and hk.order <= DENSE_MAX_ORDER
        size = hk.npix if dense else (1 if not node.keys else 0)
        schema = node.input_schema
        states = []
        for spec in node.aggregates:
            st = {}
            for name in _STATES[spec.func]:
                st[name] = np.zeros(size, dtype=_state_dtype(name, spec, schema))
            states.append(st)
        return cls(node, dense, np.zeros(size, dtype=np.int64), states)

    def _positions(self, partial: Partial) -> np.ndarray:
        if self.dense:
            return partial.keys[0].astype(np.int64)
        if not self.node.keys:
            return np.zeros(partial.groups, dtype=np.int64)
        new_index = (
            pd.Index(partial.keys[0]) if len(partial.keys) == 1 else pd.MultiIndex.from_arrays(partial.keys)
        )
        if self.index is None:
            pos = np.full(partial.groups, -1, dtype=np.int64)
        else:
            pos = self.index.get_indexer(new_index).astype(np.int64)
        fresh = np.flatnonzero(pos < 0)
        if fresh.size:
            start = len(self.rows)
            pos[fresh] = np.arange(start, start + fresh.size)
            added = new_index[fresh]
            self.index = added if self.index is None else self.index.append(added)
            self.keys = (
                [k[fresh] for k in partial.keys]
                if not self.keys
                else [np.concatenate([a, k[fresh]]) for a, k in zip(self.keys, partial.keys, strict=True)]
            )
            self.rows = np.concatenate([self.rows, np.zeros(fresh.size, dtype=np.int64)])
            for st in self.states:
                for name, arr in st.items():
                    st[name] = np.concatenate([arr, np.zeros(fresh.size, dtype=arr.dtype)])
        return pos

    def merge(self, partial: Partial) -> None:
        """Fold one partial state in (exactly; order does not matter)."""
        self.partitions += 1
        if partial.groups == 0:
            return
        pos = self._positions(partial)
        self.rows[pos] += partial.rows
        for spec, dst, src in zip(self.node.aggregates, self.states, partial.states, strict=True):
            _merge_into(dst, src, pos, spec.func)

    def values(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(values, valid)`` of aggregate ``i`` over every slot (dense: every pixel)."""
        spec = self.node.aggregates[i]
        st = self.states[i]
        n = st["n"]
        if spec.func == "count":
            return n, np.ones(len(n), dtype=bool)
        if spec.func == "std":
            var = np.divide(st["m2"], n - 1, out=np.zeros(len(n)), where=n > 1)
            return np.sqrt(np.maximum(var, 0.0)), n > 1
        return st[spec.func], n > 0

    def group_keys(self) -> list[np.ndarray]:
        """Key values of every slot (dense: the pixel numbers)."""
        if self.dense:
            return [np.arange(len(self.rows), dtype=np.int64)]
        return self.keys

    def finalize(self) -> pa.Table:
        """One row per non-empty group (with no keys, always one row), keys then aggregates."""
        keep = self.rows > 0 if self.node.keys else np.ones(len(self.rows), dtype=bool)
        if not self.node.keys and len(keep) == 0:
            keep = np.ones(1, dtype=bool)
            self.rows = np.zeros(1, dtype=np.int64)
        schema = self.node.output_arrow_schema()
        take = np.flatnonzero(keep)
        if not self.dense and self.index is not None:  # groups in key order, as a dense map has them
            try:
                order = self.index.argsort()
                take = order[keep[order]]
            except TypeError:  # keys of mixed types do not sort: first-seen order
                pass
        columns = []
        for k, key in zip(self.group_keys(), self.node.keys, strict=True):
            columns.append(pa.array(k[take], type=schema.field(key_name(key)).type, from_pandas=True))
        for i, spec in enumerate(self.node.aggregates):
            values, valid = self.values(i)
            if len(values) == 0:
                values, valid = np.zeros(len(keep)), np.zeros(len(keep), dtype=bool)
            columns.append(pa.array(values[take], mask=~valid[take], type=schema.field(spec.name).type))
        return pa.Table.from_arrays(columns, schema=schema)


def _state_dtype(name: str, spec: AggSpec, schema: pa.Schema) -> type | np.dtype:
    if name == "n":
        return np.int64
    if name in ("mean", "m2"):
        return np.float64
    col_type = schema.field(spec.column).type if spec.column is not None else pa.int64()
    out = result_type(spec.func, col_type)
    return np.dtype(out.to_pandas_dtype())
