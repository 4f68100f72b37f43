"""Install as users do: the wheel in a clean venv runs the demo, every CLI command and the notebooks.

The environments come from the session fixture ``wheel_envs`` (conftest.py, tests/wheel_env.py):
``plain`` has ``pip install proxcompute`` and nothing else; ``user`` adds the documented user
extras. Neither sees this checkout's ``src`` or the test extras.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {"local", "slurm", "pbs", "sge", "gateway", "kubernetes"}
pytestmark = pytest.mark.timeout(2400)  # the first test builds the environments (a few minutes)


def _ok(proc) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    return proc.stdout


def test_wheel_has_no_test_packages(wheel_envs, tmp_path):
    plain, user = wheel_envs
    assert (plain.bin / "proxcompute").exists() and (user.bin / "proxcompute").exists()
    code = (
        "import importlib.util as u, json; "
        "print(json.dumps({m: u.find_spec(m) is not None for m in "
        "['pytest', 'lsdb', 'hats', 'pyvo', 'dask_gateway', 'psycopg', 'jupyterlab', 'proxcompute', 'scipy']}))"
    )
    found = json.loads(_ok(plain.run([str(plain.python), "-c", code], cwd=tmp_path)))
    assert found == {
        "pytest": False, "lsdb": False, "hats": False, "pyvo": False, "dask_gateway": False,
        "psycopg": False, "jupyterlab": False, "proxcompute": True, "scipy": True,
    }  # fmt: skip
    where = _ok(plain.run([str(plain.python), "-c", "import proxcompute; print(proxcompute.__file__)"], cwd=tmp_path))
    assert str(plain.root) in where and str(ROOT / "src") not in where


def test_wheel_lists_the_shipped_profiles(wheel_envs, tmp_path):
    plain, _ = wheel_envs
    home = tmp_path / "home"
    home.mkdir()
    out = _ok(plain.run(["proxcompute", "cluster", "list"], cwd=tmp_path, HOME=str(home), COLUMNS="200"))
    for name in SHIPPED:
        assert re.search(rf"^\S\s*{name}\s", out, re.M), f"profile {name} missing from:\n{out}"
    assert "site-packages/proxcompute/cluster/profiles" in out
    # a user profile still overrides a shipped one
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"proxcompute": {"cluster": {"local": {"backend": "local", "workers": 3}}}}))
    out = _ok(
        plain.run(["proxcompute", "cluster", "list"], cwd=tmp_path, HOME=str(home), COLUMNS="200",
                  PROXCOMPUTE_CLUSTERS=str(mine))
    )  # fmt: skip
    assert re.search(r"local\s+│\s+local\s+│\s+3\s", out) and "mine.yaml" in out, out


def test_demo_runs_from_the_plain_wheel(wheel_envs, tmp_path):
    plain, _ = wheel_envs
    out = _ok(plain.run(["proxcompute", "demo", "--rows", "150000", "--workdir", "demo"], cwd=tmp_path, COLUMNS="160"))
    assert "astropy match_to_catalog_sky agrees" in out
    assert (tmp_path / "demo" / "survey" / "collection.properties").exists()


def test_every_cli_command_runs_from_the_plain_wheel(wheel_envs, tmp_path):
    """Each command of ``proxcompute --help`` runs (on a small catalog) without extras."""
    plain, _ = wheel_envs
    helptext = _ok(plain.run(["proxcompute", "--help"], cwd=tmp_path, COLUMNS="200"))
    commands = set(re.findall(r"^│ (\w[\w-]*)\s", helptext, re.M))
    make = (
        "import proxcompute as pc\n"
        "pc.generate_catalog(30000, seed=1).to_parquet('raw.parquet')\n"
        "t = pc.generate_catalog(200, seed=1)[['id', 'ra', 'dec']]\n"
        "t.rename(columns={'id': 'target'}).to_csv('targets.csv', index=False)\n"
    )
    _ok(plain.run([str(plain.python), "-c", make], cwd=tmp_path))
    (tmp_path / "pipe.yaml").write_text(
        "name: smoke\nsteps:\n  - name: count\n    sql:\n      query: SELECT COUNT(*) AS n FROM survey\n"
        "      catalog_root: catalogs\n      out: count.csv\n"
    )
    hashed = _ok(plain.run(["sh", "-c", "echo s3cret | proxcompute user hash-password --password-stdin"], cwd=tmp_path))
    (tmp_path / "access.yaml").write_text(
        f"users:\n  alice: {{token: alice-secret-token, password_hash: '{hashed.strip()}', groups: [desi]}}\n"
        "catalogs:\n  survey: {groups: [desi]}\n"
    )
    runs = {
        "ingest": ["raw.parquet", "--out", "catalogs/survey", "--max-rows", "5000", "--margin-arcsec", "10"],
        "info": ["catalogs/survey", "--json"],
        "index": ["catalogs/survey", "--column", "id"],
        "cone": ["catalogs/survey", "--ra", "45", "--dec", "30", "--radius-arcsec", "3600", "--out", "cone.csv"],
        "crossmatch": ["targets.csv", "catalogs/survey", "--radius-arcsec", "1", "--out", "m.parquet"],
        "sql": ["SELECT COUNT(*) AS n FROM survey WHERE mag < 20", "--catalog-root", "catalogs"],
        "cluster": ["list"],
        "run": ["pipe.yaml"],
        "serve": ["--help"],  # a server runs until stopped: tests/test_docs_pages.py serves from this venv
        "demo": ["--help"],  # run in full by test_demo_runs_from_the_plain_wheel
        "user": ["check", "access.yaml"],  # hash-password ran above (argon2-cffi is a dependency)
        "calibrate": ["--rows", "100000", "--out", "rates.json"],  # the smallest calibration it accepts
    }
    assert commands <= set(runs), f"commands without a run here: {commands - set(runs)}"
    for command in [c for c in runs if c in commands]:  # in the order above: ingest first
        _ok(plain.run(["proxcompute", command, *runs[command]], cwd=tmp_path, COLUMNS="160"))
    assert json.loads(_ok(plain.run(["proxcompute", "info", "catalogs/survey", "--json"], cwd=tmp_path)))
    checked = _ok(plain.run(["proxcompute", "user", "check", "access.yaml"], cwd=tmp_path))
    assert "1 users (1 with a password)" in checked and "1 catalog rules" in checked
    rates = json.loads((tmp_path / "rates.json").read_text())  # what serve --cost-rates reads
    assert rates["query_s"] > 0 and rates["row_group_s"] > 0


def test_postgres_without_its_extra_says_what_to_install(wheel_envs, tmp_path):
    plain, _ = wheel_envs
    code = "from proxcompute.service.jobs import JobStore; JobStore('postgresql+psycopg://u:pw@localhost/db')"
    proc = plain.run([str(plain.python), "-c", code], cwd=tmp_path)
    assert proc.returncode != 0
    assert "pip install 'proxcompute[postgres]'" in proc.stderr and "pw" not in proc.stderr.split("Error")[-1]


def test_notebooks_name_what_they_need():
    """Each notebook's first cell is markdown and names the install it needs."""
    nbformat = pytest.importorskip("nbformat")
    for path in sorted((ROOT / "docs" / "notebooks").glob("*.ipynb")):
        first = nbformat.read(path, as_version=4).cells[0]
        assert first.cell_type == "markdown", path.name
        assert "pip install 'proxcompute[notebooks]'" in first.source, f"{path.name}: first cell names no install"


def _kernelspec(user, tmp_path: Path) -> str:
    """A Jupyter kernelspec named ``proxcompute-wheel`` that starts the user venv's python."""
    spec = tmp_path / "jupyter" / "kernels" / "proxcompute-wheel"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(user.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "proxcompute (wheel)",
        "language": "python",
        "env": {"PYTHONPATH": "", "PATH": user.env()["PATH"]},
    }))  # fmt: skip
    return "proxcompute-wheel"


NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_from_the_wheel(path, wheel_envs, tmp_path, monkeypatch):
    pytest.importorskip("nbclient")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_notebooks import run_notebook

    _, user = wheel_envs
    kernel = _kernelspec(user, tmp_path)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PROXCOMPUTE_PROGRESS", "0")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    _, problem = run_notebook(path, work, kernel_name=kernel)
    if problem is not None:
        pytest.fail(f"{path.name} (wheel install): {problem}", pytrace=False)


def test_make_without_venv_support_names_the_apt_command(tmp_path):
    """`make` with a Python that cannot create venvs (Debian without python3-venv) says what to install."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    fake = tmp_path / "python-without-venv"
    fake.write_text(f"#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in *ensurepip*) exit 1;; esac; done\nexec {sys.executable} \"$@\"\n")
    fake.chmod(0o755)
    proc = subprocess.run(["make", "demo", f"PYTHON={fake}"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "sudo apt-get install python3-venv" in proc.stdout
    assert not (tmp_path / ".venv").exists()
