"""Plain numbers from numbers or astropy Quantities, for the Catalog's arguments."""

from __future__ import annotations

from typing import Any

from proxcompute.errors import InvalidRegionError

__all__ = ["_value"]


def _value(x: Any, unit: str) -> Any:
    """A plain number from a number or an astropy Quantity (converted to ``unit``)."""
    to_value = getattr(x, "to_value", None)
    if to_value is None:
        return x
    try:
        return float(to_value(unit))
    except Exception as exc:  # astropy raises UnitConversionError (a ValueError) and others
        raise InvalidRegionError(f"cannot convert {x!r} to {unit}: {exc}") from None
