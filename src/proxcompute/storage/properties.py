"""Read and write ``hats.properties`` and ``collection.properties`` (Java-properties style)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from proxcompute.errors import StorageError
from proxcompute.storage.layout import COLLECTION_PROPERTIES, PROPERTIES
from proxcompute.storage.location import as_location, read_text

__all__ = ["read_properties", "write_collection_properties", "write_properties"]

_HATS_VERSION = "v1.0"


def _builder() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"proxcompute v{version('proxcompute')}"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "proxcompute"


def read_properties(path: str | os.PathLike) -> dict[str, str]:
    """Parse a ``key=value`` properties file into a dict (comments and blanks skipped).

    ``path`` may be remote (a :class:`upath.UPath`); it is then cached per process."""
    p = as_location(path)
    try:
        text = read_text(p)
    except FileNotFoundError:
        raise StorageError(f"{p.parent} is not a catalog: {p.name} is missing") from None
    props: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def _format(props: dict[str, object], header: str) -> str:
    lines = [header]
    for key, value in props.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value)
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def write_properties(root: str | os.PathLike, props: dict[str, object]) -> None:
    """Write ``hats.properties`` and its copy ``properties`` (what hats-import writes)."""
    full = dict(props)
    full.setdefault("hats_builder", _builder())
    full.setdefault("hats_creation_date", datetime.now(UTC).strftime("%Y-%m-%dT%H:%MUTC"))
    full.setdefault("hats_version", _HATS_VERSION)
    text = _format(full, "#HATS catalog")
    for name in (PROPERTIES, "properties"):
        (Path(root) / name).write_text(text)


def write_collection_properties(
    root: str | os.PathLike, name: str, primary: str, margins: list[str], default_margin: str | None
) -> None:
    """Write ``collection.properties`` naming the primary catalog and its margins."""
    props: dict[str, object] = {
        "obs_collection": name,
        "hats_primary_table_url": primary,
        "all_margins": margins or None,
        "default_margin": default_margin,
        "hats_builder": _builder(),
        "hats_creation_date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%MUTC"),
        "hats_version": _HATS_VERSION,
    }
    (Path(root) / COLLECTION_PROPERTIES).write_text(_format(props, "#HATS Collection"))
