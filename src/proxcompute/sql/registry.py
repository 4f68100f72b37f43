"""Which catalogs a query can name: an explicit mapping and/or every catalog under a root.

Names are ADQL identifiers: ``gaia`` or, with a schema, ``survey.gaia`` (the catalog at
``ROOT/survey/gaia``). Unquoted names match case-insensitively. A catalog is addressed by its
directory name and by its own name (``obs_collection``, the ``--name`` given at ingest).
Catalogs are opened (metadata only) the first time a query names them.
"""

from __future__ import annotations

import difflib
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from proxcompute.catalog import Catalog, from_dataframe, open_catalog
from proxcompute.errors import SqlError
from proxcompute.storage.layout import COLLECTION_PROPERTIES, PROPERTIES
from proxcompute.storage.location import is_url
from proxcompute.storage.properties import read_properties

__all__ = ["CatalogRegistry", "TableRef"]

MAX_ROOT_DEPTH = 4


@dataclass(frozen=True)
class TableRef:
    """One nameable table: ``schema.name`` and how to open it."""

    name: str
    schema: str | None
    opener: Callable[[], Catalog] = field(compare=False, repr=False)
    source: str | None = field(default=None, compare=False, repr=False)
    """The catalog directory a name opens (its aliases share it); None for in-memory tables."""

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


class CatalogRegistry:
    """Catalog names a query may use.

    Parameters
    ----------
    catalogs
        ``{name: catalog}`` where a catalog is a :class:`~proxcompute.Catalog`, a path to a
        catalog or collection, or an in-memory table (pandas DataFrame, astropy Table). A name
        may carry a schema: ``"survey.gaia"``. A table without ``ra``/``dec`` columns (or an
        Arrow table) is a plain table: queries over it run in one process.
    catalog_root
        A directory: every catalog or collection under it is available.
    """

    def __init__(
        self, catalogs: Mapping[str, Any] | None = None, *, catalog_root: str | os.PathLike | None = None
    ):
        self._refs: list[TableRef] = []
        self._opened: dict[Callable, Catalog | pa.Table] = {}
        self._parent: CatalogRegistry | None = None
        self.root = Path(catalog_root) if catalog_root is not None else None
        if self.root is not None:
            if not self.root.is_dir():
                raise SqlError("unknown table", f"catalog root {self.root} is not a directory")
            for path, schema, names in _scan_root(self.root):
                for n in names:
                    self._refs.append(TableRef(n, schema, _path_opener(path), str(path.resolve())))
        for key, value in (catalogs or {}).items():
            schema, _, name = str(key).rpartition(".")
            self._refs.append(TableRef(name, schema or None, _value_opener(value, name)))

    _lock = threading.Lock()

    def extended(self, catalogs: Mapping[str, Any]) -> CatalogRegistry:
        """A registry with these names too (e.g. ``TAP_UPLOAD.t``); opened catalogs are shared."""
        new = object.__new__(CatalogRegistry)
        new.root = self.root
        new._opened = {}
        new._parent = self
        new._refs = list(self._refs)
        for key, value in catalogs.items():
            schema, _, name = str(key).rpartition(".")
            new._refs.append(TableRef(name, schema or None, _value_opener(value, name)))
        return new

    def filtered(self, keep: Callable[[list[TableRef]], bool]) -> CatalogRegistry:
        """A registry without the tables ``keep`` refuses; opened catalogs are shared.

        ``keep`` is called once per table with every reference to it (its name and its
        aliases: the directory name and ``obs_collection`` share a ``source``), so a table is kept or
        dropped under all its names at once. A dropped table is unknown in the new
        registry exactly as a table that does not exist: lookups miss, ``names()`` and
        "did you mean" hints do not show it.

        Examples
        --------
        >>> import pandas as pd
        >>> reg = CatalogRegistry({"a.t": pd.DataFrame({"x": [1]}), "b.u": pd.DataFrame({"x": [2]})})
        >>> reg.filtered(lambda refs: all(r.schema != "b" for r in refs)).names()
        ['a.t']
        """
        groups: dict[object, list[TableRef]] = {}
        for ref in self._refs:
            groups.setdefault(ref.source or id(ref.opener), []).append(ref)
        kept = {key for key, refs in groups.items() if keep(refs)}
        new = object.__new__(CatalogRegistry)
        new.root = self.root
        new._opened = {}
        new._parent = self
        new._refs = [r for r in self._refs if (r.source or id(r.opener)) in kept]
        return new

    PLAN_CACHE_SIZE = 256

    def cached_plan(self, text: str, compile_fn: Callable[[str, CatalogRegistry], Any]) -> Any:
        """``compile_fn(text, self)``, remembered per registry (a service reuses its registry).

        Plans hold the catalogs this registry opened, so they go stale exactly when the
        registry does (a new registry sees new data).
        """
        cache = self.__dict__.setdefault("_plans", {})
        plan = cache.get(text)
        if plan is None:
            plan = compile_fn(text, self)
            with self._lock:
                if len(cache) >= self.PLAN_CACHE_SIZE:
                    cache.pop(next(iter(cache)))
                cache[text] = plan
        return plan

    def __getstate__(self) -> dict[str, Any]:
        """Names and openers only: a registry sent to another process (a TAP job's worker,
        with cloudpickle, as openers are closures) reopens its catalogs there."""
        return {"root": self.root, "_refs": list(self._refs), "_opened": {}, "_parent": None}

    def __repr__(self) -> str:
        return f"CatalogRegistry({', '.join(self.names())})"

    def names(self) -> list[str]:
        """Every qualified name, sorted."""
        return sorted({r.qualified for r in self._refs})

    def refs(self) -> list[TableRef]:
        """Every table reference (one per name)."""
        return list(self._refs)

    def lookup(self, name: str, schema: str | None = None, *, quoted: bool = False) -> TableRef | None:
        """The table called ``schema.name`` (``schema`` may be omitted when unambiguous)."""

        def same(a: str | None, b: str | None) -> bool:
            if a is None or b is None:
                return a is b
            return a == b if quoted else a.lower() == b.lower()

        hits = [r for r in self._refs if same(r.name, name) and (schema is None or same(r.schema, schema))]
        if not hits and not quoted:
            return None
        if len({r.qualified for r in hits}) > 1:
            exact = [r for r in hits if r.schema is None]
            if len(exact) == 1:
                return exact[0]
            choices = ", ".join(sorted({r.qualified for r in hits}))
            raise SqlError(
                "unknown table", f"table name {name!r} is ambiguous: qualify it as one of {choices}"
            )
        return hits[0] if hits else None

    def open(self, ref: TableRef) -> Catalog | pa.Table:
        """The catalog for ``ref`` (opened once per registry)."""
        parent = getattr(self, "_parent", None)
        if parent is not None and ref in parent._refs:
            return parent.open(ref)
        with self._lock:
            if ref.opener not in self._opened:  # keyed by the opener itself: ids of dead ones get reused
                self._opened[ref.opener] = ref.opener()
            return self._opened[ref.opener]

    def suggest(self, name: str) -> str | None:
        """The closest known name, for "did you mean" hints."""
        names = self.names()
        lowered = {n.lower(): n for n in names}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        return lowered[close[0]] if close else None


def _path_opener(path: Path) -> Callable[[], Catalog]:
    return lambda: open_catalog(path)


def _value_opener(value: Any, name: str) -> Callable[[], Catalog | pa.Table]:
    if isinstance(value, (Catalog, pa.Table)):
        return lambda: value
    if is_url(value):  # https://, s3://: a remote catalog
        return lambda: open_catalog(value)
    if isinstance(value, (str, os.PathLike)):
        return _path_opener(Path(value))
    columns = [str(c).lower() for c in getattr(value, "columns", getattr(value, "colnames", []))]
    if "ra" not in columns or "dec" not in columns:  # no sky coordinates: a plain table
        return lambda: pa.Table.from_pandas(value, preserve_index=False) if hasattr(value, "iloc") else pa.table(value)
    return lambda: from_dataframe(value, name=name)


def _scan_root(root: Path) -> Iterable[tuple[Path, str | None, list[str]]]:
    """``(path, schema, names)`` of every catalog or collection under ``root``."""
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        directory, depth = stack.pop()
        try:
            children = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            continue
        for child in children:
            if ".tmp-" in child.name:
                continue  # a write in progress
            names = _catalog_names(child)
            if names is None:
                if depth + 1 < MAX_ROOT_DEPTH:
                    stack.append((child, depth + 1))
                continue
            if names:
                parts = child.relative_to(root).parts[:-1]
                yield child, ".".join(parts) or None, names


def _catalog_names(path: Path) -> list[str] | None:
    """Names a catalog directory answers to; None if it is not a catalog; [] for a margin."""
    try:
        if (path / COLLECTION_PROPERTIES).exists():
            props = read_properties(path / COLLECTION_PROPERTIES)
            primary = props.get("hats_primary_table_url", "")
            inner = path / primary if primary else None
            own = None
            if inner is not None and (inner / PROPERTIES).exists():
                own = read_properties(inner / PROPERTIES).get("obs_collection")
            return _unique([path.name, own])
        for fname in (PROPERTIES, "properties"):
            if (path / fname).exists():
                props = read_properties(path / fname)
                if props.get("dataproduct_type") == "margin":
                    return []
                return _unique([path.name, props.get("obs_collection")])
    except Exception:  # unreadable properties: not offered; opening it directly names the problem
        return None
    return None


def _unique(names: list[str | None]) -> list[str]:
    out: list[str] = []
    for n in names:
        if n and n not in out and n.replace("_", "a").isalnum():
            out.append(n)
    return out
