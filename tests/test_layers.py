"""Imports flow one way: the contracts in ``.importlinter`` hold (checked by import-linter).

``make test`` runs ``lint-imports`` next to ruff; this test runs the same check so a plain
``pytest`` run sees a broken contract too, and checks that the check itself can fail.
"""

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "proxcompute"
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(src_parent: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(CONFIG), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_import_contracts_are_kept():
    result = _lint(SRC.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_top_level_module_is_placed_in_a_contract():
    text = CONFIG.read_text()
    tops = {p.stem if p.suffix == ".py" else p.name for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    missing = sorted(t for t in tops - {"__init__"} if f"proxcompute.{t}\n" not in text and f"proxcompute.{t} " not in text)
    assert not missing, f"name these in .importlinter (layers or a forbidden contract): {missing}"


def test_every_exception_has_a_reason():
    cfg = configparser.ConfigParser()
    cfg.read(CONFIG)
    raw = CONFIG.read_text().splitlines()
    for section in cfg.sections():
        if "ignore_imports" not in cfg[section]:
            continue
        start = next(i for i, line in enumerate(raw) if line.strip() == f"[{section}]")
        block = raw[start:]
        at = next(i for i, line in enumerate(block) if line.startswith("ignore_imports"))
        assert any(line.strip().startswith("# Reason:") for line in block[at:]), f"{section}: an exception without a reason"


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("kernels/_violation.py", "import dask\n", "no dask or distributed below execute"),
        ("storage/_violation.py", "import proxcompute.plan\n", "Layers"),
        ("service/_violation.py", "import proxcompute.cluster\n", "never starts clusters"),
        ("cluster/_violation.py", "import proxcompute.catalog\n", "cluster depends on nothing"),
    ],
)
def test_a_violation_breaks_its_contract(tmp_path, module, line, contract):
    """The check can fail: a copy of the package with one bad import breaks the named contract."""
    copy = tmp_path / "proxcompute"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / module).write_text(line)
    result = _lint(tmp_path)
    assert result.returncode != 0
    broken = " ".join(result.stdout.split("Broken contracts", 1)[-1].split())  # lint-imports wraps lines
    assert contract in broken, result.stdout
