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


def test_every_public_function_and_method_has_a_runnable_example():
    """Docstrings show a doctest example (collected and run by pytest) on the whole public API."""
    import importlib
    import inspect

    import proxcompute

    no_example = {"IngestResult", "INDEX_COLUMN"}  # a result record and a constant
    missing = []
    owners = [(proxcompute, proxcompute.__all__), (importlib.import_module("proxcompute.client"), ["Client"]),
              (importlib.import_module("proxcompute.sql"), ["SqlResult"]),
              (importlib.import_module("proxcompute.pipeline"), ["load_pipeline", "run_pipeline"])]  # fmt: skip
    for module, names in owners:
        for name in names:
            obj = getattr(module, name)
            if inspect.ismodule(obj):  # a package that is also callable (sql, cluster, ingest)
                obj = getattr(obj, name)
            if name in no_example or (inspect.isclass(obj) and issubclass(obj, BaseException)):
                continue
            if ">>>" not in (inspect.getdoc(obj) or ""):
                missing.append(f"{module.__name__}.{name}")
            if inspect.isclass(obj) and name in ("Catalog", "Client", "SqlResult"):
                for attr, value in vars(obj).items():
                    if attr.startswith("_") or not inspect.isfunction(value) or attr in ("close",):
                        continue
                    if ">>>" not in (inspect.getdoc(value) or ""):
                        missing.append(f"{module.__name__}.{name}.{attr}")
    assert not missing, missing


def test_callable_packages_work_whichever_was_imported_first():
    """proxcompute.sql/.cluster/.ingest are functions even after their subpackages are imported."""
    import importlib

    import proxcompute

    for name in ("sql", "cluster", "ingest"):
        importlib.import_module(f"proxcompute.{name}")
        assert callable(getattr(proxcompute, name)), name
