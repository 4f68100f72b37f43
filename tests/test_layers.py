"""Imports only flow down the layers of DESIGN.md §2, and the pure core never imports dask."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "proxcompute"

# Higher number = higher layer. A module may import its own layer or lower ones.
LAYERS = {
    "errors": 0,
    "kernels": 1,
    "sky": 2,
    "storage": 3,
    "synthetic": 3,
    "formats": 3,
    "ops": 4,
    "plan": 5,
    "execute": 6,
    "catalog": 7,
    "sql": 8,
    "ingest": 9,
    "service": 9,
    "cluster": 9,
    "pipeline": 9,
    "client": 9,
    "cli": 10,
    "demo": 10,
    "__init__": 11,
}
PURE = {"kernels", "sky", "storage", "ops", "plan", "formats"}


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    head = rel.parts[0]
    return head[:-3] if head.endswith(".py") else head


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_down(path):
    pkg = _package_of(path)
    assert pkg in LAYERS, f"add {pkg} to LAYERS in tests/test_layers.py"
    problems = []
    for lineno, mod in _imports(path):
        top = mod.split(".")[0]
        if pkg in PURE and top in ("dask", "distributed"):
            problems.append(f"line {lineno}: {pkg} must not import {mod}")
        if top != "proxcompute" or mod == "proxcompute":
            continue
        target = mod.split(".")[1]
        if target not in LAYERS:
            continue
        if LAYERS[target] > LAYERS[pkg]:
            problems.append(f"line {lineno}: {pkg} imports {mod} (a higher layer)")
    assert not problems, "\n".join(problems)
