"""``make_sky`` from this directory's conftest, importable by name from any test module
(``from conftest import ...`` is ambiguous when several test directories run together)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_catalog_conftest", Path(__file__).with_name("conftest.py"))
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
make_sky = _module.make_sky

__all__ = ["make_sky"]
