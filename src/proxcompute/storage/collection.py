"""HATS collections: ``collection.properties`` naming a primary catalog, margins and indexes."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from proxcompute.errors import StorageError
from proxcompute.storage.layout import COLLECTION_PROPERTIES
from proxcompute.storage.location import as_location, is_remote, is_url
from proxcompute.storage.properties import read_properties

__all__ = ["CollectionInfo", "read_collection"]


def _split(value: str | None) -> list[str]:
    """hats' space-delimited lists (it also accepts ``;`` and ``,``)."""
    return [v for v in re.split(r"[;, \n]+", value or "") if v]


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection holds besides its primary catalog.

    ``margins`` and ``indexes`` map a name (a margin's relative path, an index's column) to
    the catalog directory; ``default_margin`` is the margin opened with the catalog.
    """

    root: Path
    name: str
    primary: Path
    margins: dict[str, Path] = field(default_factory=dict)
    default_margin: str | None = None
    indexes: dict[str, Path] = field(default_factory=dict)
    default_index: str | None = None

    @property
    def margin_dir(self) -> Path | None:
        return self.margins.get(self.default_margin) if self.default_margin else None

    def describe(self) -> list[str]:
        """One line per margin and index, the defaults marked."""
        lines = [
            f"margin {name}" + (" (default)" if name == self.default_margin else "") for name in self.margins
        ]
        lines += [
            f"index on {col}: {_rel(p, self.root)}" + (" (default)" if col == self.default_index else "")
            for col, p in self.indexes.items()
        ]
        return lines


def _rel(p: Path, root: Path) -> str:
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)


def _resolve(root: Path, value: str) -> Path:
    if is_url(value):  # a remote collection may name its members by URL (same credentials)
        return as_location(value, getattr(root, "storage_options", None) or None)
    if is_remote(root):
        return root / value
    return Path(value) if os.path.isabs(value) else root / value


def read_collection(path: str | os.PathLike) -> CollectionInfo:
    """Read ``collection.properties`` of the collection at ``path``.

    The default margin is ``default_margin``, else the first of ``all_margins``.

    Raises
    ------
    StorageError
        No primary catalog, a default that is not listed, or an ``all_indexes`` that is not
        pairs of column and path: the message names the file and the property.
    """
    root = as_location(path)
    file = root / COLLECTION_PROPERTIES
    props = read_properties(file)
    primary = props.get("hats_primary_table_url")
    if not primary:
        raise StorageError(f"{file} names no primary catalog (hats_primary_table_url)")
    margin_names = _split(props.get("all_margins"))
    default_margin = props.get("default_margin") or None
    if default_margin and default_margin not in margin_names:
        margin_names.insert(0, default_margin)  # hats requires it listed; accept it anyway
    if default_margin is None and margin_names:
        default_margin = margin_names[0]
    pairs = _split(props.get("all_indexes"))
    if len(pairs) % 2:
        raise StorageError(
            f"{file}: all_indexes must be pairs of column and path, got {props['all_indexes']!r}"
        )
    indexes = {pairs[i]: _resolve(root, pairs[i + 1]) for i in range(0, len(pairs), 2)}
    default_index = props.get("default_index") or None
    if default_index and default_index not in indexes:
        raise StorageError(f"{file}: default_index={default_index} is not in all_indexes")
    return CollectionInfo(
        root=root,
        name=props.get("obs_collection", root.name),
        primary=_resolve(root, primary),
        margins={m: _resolve(root, m) for m in margin_names},
        default_margin=default_margin,
        indexes=indexes,
        default_index=default_index,
    )
