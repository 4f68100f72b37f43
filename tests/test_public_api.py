"""The public API is one explicit list, every name resolves, and importing stays light."""

import subprocess
import sys

import proxcompute

EXPECTED = [
    "INDEX_COLUMN",
    "Box",
    "Catalog",
    "CatalogExistsError",
    "ColumnNotFoundError",
    "Cone",
    "CorruptPartitionError",
    "IngestError",
    "IngestResult",
    "InputError",
    "InvalidCoordinatesError",
    "InvalidRegionError",
    "PlanError",
    "Polygon",
    "ProxError",
    "SqlError",
    "StorageError",
    "cluster",
    "crossmatch",
    "from_dataframe",
    "generate_catalog",
    "ingest",
    "open_catalog",
    "sql",
]


def test_all_snapshot():
    assert proxcompute.__all__ == EXPECTED


def test_every_name_resolves():
    for name in proxcompute.__all__:
        assert getattr(proxcompute, name) is not None


def test_import_does_not_pull_dask_healpy_or_numba():
    code = (
        "import sys, proxcompute; proxcompute.open_catalog; proxcompute.Cone;"
        "print(sorted(m for m in ('dask', 'distributed', 'healpy', 'numba', 'astropy', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
