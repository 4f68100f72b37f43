"""The example notebooks in docs/notebooks: each runs top to bottom, and each is committed clean.

Every notebook runs in a fresh ``python3`` kernel (this interpreter: jupyter_client starts a
kernelspec whose command is ``python`` with ``sys.executable``), with a temporary working
directory, and must finish with no cell raising. A failing cell is reported with its source and
the error, without the ANSI colours of IPython's traceback.

The kernel runs with ``PROXCOMPUTE_PROGRESS=0``: rich's live progress bars need ipywidgets in a
Jupyter kernel (without it they warn ``install "ipywidgets" for Jupyter support`` and emit empty
display outputs), and a test has nobody to show progress to anyway.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "docs" / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 120  # seconds per cell; a whole notebook takes 5-15 s on 2 cores
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5, f"expected the example notebooks in {NOTEBOOK_DIR}"


def _failed_cell(nb) -> tuple[int, str, str] | None:
    """(index, source, error text) of the first cell with an error output."""
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                trace = ANSI.sub("", "\n".join(out.get("traceback", [])))
                return index, cell.source, trace or f"{out.get('ename')}: {out.get('evalue')}"
    return None


def run_notebook(path: Path, workdir: Path, kernel_name: str = "python3") -> tuple[object, str | None]:
    """Execute ``path`` in a fresh kernel whose working directory is ``workdir``.

    Returns the executed notebook and ``None``, or the notebook and a description of the
    first failing cell (its source and error, without ANSI colours). ``kernel_name`` picks
    the kernelspec (``python3`` is this interpreter; tests/test_install.py passes the wheel's).
    """
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(workdir)}},  # the kernel's working directory
    )
    problem = None
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        failed = _failed_cell(nb)
        if failed is None:
            problem = ANSI.sub("", str(exc))
        else:
            index, source, error = failed
            problem = f"cell {index} failed\n--- source ---\n{source}\n--- error ---\n{error}"
    except nbclient.exceptions.CellTimeoutError as exc:
        problem = f"a cell ran longer than {CELL_TIMEOUT} s: {exc}"
    return nb, problem


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PROXCOMPUTE_PROGRESS", "0")  # the kernel inherits this environment
    start = time.perf_counter()
    nb, problem = run_notebook(path, tmp_path)
    if problem is not None:  # outside the except block: no chained nbclient traceback
        pytest.fail(f"{path.name}: {problem}", pytrace=False)
    seconds = time.perf_counter() - start
    print(f"{path.name}: {seconds:.1f} s")
    assert any(c.cell_type == "markdown" for c in nb.cells), f"{path.name} explains nothing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path: Path):
    """No outputs and no execution counts in the repository: they are produced when the docs are built."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; strip them"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
