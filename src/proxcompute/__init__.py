"""proxcompute: data-proximate compute for very large sky catalogs.

Public API (imported lazily, so ``import proxcompute`` stays fast and never imports Dask
until a computation needs it):

- :func:`open_catalog`, :func:`from_dataframe`, :class:`Catalog`: lazy catalogs;
- :func:`cluster`: start a Dask cluster from a profile (local, SLURM, PBS, SGE, dask-gateway);
- :func:`sql`: ADQL/SQL over catalogs, compiled to the same plans;
- :func:`ingest`: raw tables to a HATS-compatible catalog with margin;
- :func:`estimate_cost`: a plan's estimated run time, by operator, before it runs;
- :class:`Cone`, :class:`Box`, :class:`Polygon`: search regions;
- :class:`ProxError` and its subclasses: every error a user can cause.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Box": "proxcompute.sky",
    "Catalog": "proxcompute.catalog",
    "CatalogExistsError": "proxcompute.errors",
    "ColumnNotFoundError": "proxcompute.errors",
    "Cone": "proxcompute.sky",
    "CorruptPartitionError": "proxcompute.errors",
    "CostEstimate": "proxcompute.execute",
    "CostRates": "proxcompute.execute",
    "CostRatesError": "proxcompute.errors",
    "INDEX_COLUMN": "proxcompute.sky",
    "IngestError": "proxcompute.errors",
    "IngestResult": "proxcompute.ingest",
    "InputError": "proxcompute.errors",
    "InvalidCoordinatesError": "proxcompute.errors",
    "InvalidRegionError": "proxcompute.errors",
    "PlanError": "proxcompute.errors",
    "SqlError": "proxcompute.errors",
    "Polygon": "proxcompute.sky",
    "ProperMotion": "proxcompute.ops.proper_motion",
    "ProxError": "proxcompute.errors",
    "RemoteAccessError": "proxcompute.errors",
    "StorageError": "proxcompute.errors",
    # mapparts: user code next to the data
    "InvalidOrderError": "proxcompute.errors",
    "SkyMap": "proxcompute.catalog",
    "UserFunctionError": "proxcompute.errors",
    "WorkerLostError": "proxcompute.errors",
    "cluster": "proxcompute.cluster",
    "crossmatch": "proxcompute.catalog",
    "estimate_cost": "proxcompute.execute",
    "from_dataframe": "proxcompute.catalog",
    "generate_catalog": "proxcompute.synthetic",
    "ingest": "proxcompute.ingest",
    "open_catalog": "proxcompute.catalog",
    "sql": "proxcompute.sql",
}

__all__ = [
    "INDEX_COLUMN",
    "Box",
    "Catalog",
    "CatalogExistsError",
    "ColumnNotFoundError",
    "Cone",
    "CorruptPartitionError",
    "CostEstimate",
    "CostRates",
    "CostRatesError",
    "IngestError",
    "IngestResult",
    "InputError",
    "InvalidCoordinatesError",
    "InvalidOrderError",
    "InvalidRegionError",
    "PlanError",
    "Polygon",
    "ProperMotion",
    "ProxError",
    "RemoteAccessError",
    "SkyMap",
    "SqlError",
    "StorageError",
    "UserFunctionError",
    "WorkerLostError",
    "cluster",
    "crossmatch",
    "estimate_cost",
    "from_dataframe",
    "generate_catalog",
    "ingest",
    "open_catalog",
    "sql",
]
assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'proxcompute' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover
    from proxcompute.catalog import Catalog, crossmatch, from_dataframe, open_catalog
    from proxcompute.errors import (
        CatalogExistsError,
        ColumnNotFoundError,
        CorruptPartitionError,
        CostRatesError,
        IngestError,
        InputError,
        InvalidCoordinatesError,
        InvalidRegionError,
        PlanError,
        ProxError,
        RemoteAccessError,
        StorageError,
        WorkerLostError,
    )
    from proxcompute.execute import CostEstimate, CostRates, estimate_cost
    from proxcompute.ingest import IngestResult, ingest
    from proxcompute.ops.proper_motion import ProperMotion
    from proxcompute.sky import INDEX_COLUMN, Box, Cone, Polygon
    from proxcompute.synthetic import generate_catalog
