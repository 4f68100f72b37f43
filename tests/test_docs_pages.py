"""Every page's shell and Python blocks run as written, in order, from a wheel install.

README.md and every page under docs/ are parsed with markdown-it-py (a dependency of rich, so
always installed). Each page runs in a fresh, empty directory with the ``plain`` wheel venv
(``pip install proxcompute``), or the ``user`` venv (plus the documented user extras) when the
page says ``<!-- docs-test: extras=notebooks -->`` (or another documented extra). Its blocks run
one after the other in one driver process: Python blocks share one namespace, shell blocks
(``bash``, ``sh``, ``console`` ``$`` lines) run with ``bash -euo pipefail`` and this venv first on
``PATH``. A block with ``title="name"`` in its info string (``yaml``, ``text``, ...) is a file the
page asks the reader to write: it is written before the blocks after it run.

A comment right before a block marks how it runs:

``<!-- docs-test: background -->`` or ``<!-- docs-test: background wait="SHELL COMMAND" -->``
    a shell command that serves until stopped (``proxcompute serve``, ``cluster up``): started
    in the background and waited for (its ``--port`` answers, or the wait command succeeds),
    then stopped when the page ends if it is still running.
``<!-- docs-test: repo -->``
    a command for a clone of the repository (``make demo``, ``make test``, the benchmarks):
    not run here; CI runs ``make test`` itself and tests/test_install.py runs the demo.
``<!-- docs-test: install -->``
    the installation itself: what the ``wheel_envs`` fixture does (tests/wheel_env.py).
``<!-- docs-test: not-run=REASON -->``
    a block for infrastructure no test machine has (a Kubernetes cluster, a registry); the
    reason is required and shown on the page's source.
``<!-- docs-test: tested-by=tests/cluster/test_x.py::test_name -->``
    a block that needs a batch system (SLURM, SGE, a gateway): run in CI by that test, where
    the tests/cluster fixtures start the back end. The test must exist.

``<!-- docs-test: needs=slurm -->`` or ``<!-- docs-test: needs=sge -->``
    a block that runs on a batch system: ``clusters/slurm/setup_slurm.sh`` or
    ``clusters/sge/setup_sge.sh`` installs and starts a one-node one (root and apt-get), and
    ``test_page_backend_blocks_run`` runs the page again with these blocks in their place (the
    daemons are stopped at the end). Where that cannot be done the test is skipped with the
    reason, and it fails under CI. ``test_page_blocks_run`` runs the page without them.

``<!-- docs-test: needs=stilts -->`` (anywhere on the page)
    the page calls STILTS: ``scripts/stilts/setup_stilts.sh`` installs it (as the taplint test
    does: root and apt-get); the page is skipped with the reason elsewhere, and fails under CI.

Every fenced block must have an info string, so nothing is left out by accident.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PYTHON = {"python", "py"}
SHELL = {"bash", "sh", "shell", "console"}
KINDS = {"background", "repo", "install"}
WAIT = re.compile(r'^background\s+wait="([^"]+)"$')
MARK = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->", re.S)
TITLE = re.compile(r'title="([^"]+)"')
DOCUMENTED_EXTRAS = {"notebooks", "gateway", "remote"}  # tests/wheel_env.py USER_EXTRAS
BACKENDS = {  # needs=NAME on a block: (set-up script, stop script, a daemon it installs)
    "slurm": (ROOT / "clusters/slurm/setup_slurm.sh", ROOT / "clusters/slurm/stop_slurm.sh", "slurmctld"),
    "sge": (ROOT / "clusters/sge/setup_sge.sh", ROOT / "clusters/sge/stop_sge.sh", "/usr/sbin/sge_qmaster"),
}
pytestmark = pytest.mark.timeout(2400)


def parse_page(path: Path) -> tuple[list[dict], set[str]]:
    """(blocks to run in order, extras and tools the page names: ``notebooks``, ``needs=stilts``)."""
    tokens = MarkdownIt("commonmark").parse(path.read_text())
    extras: set[str] = set()
    blocks: list[dict] = []
    pending: str | None = None
    for tok in tokens:
        if tok.type in ("html_block", "html_inline") or (tok.type == "inline" and "docs-test" in tok.content):
            for mark in MARK.findall(tok.content):
                if mark.startswith("extras="):
                    extras |= {e.strip() for e in mark.split("=", 1)[1].split(",") if e.strip()}
                elif mark.startswith("needs=") and mark.split("=", 1)[1] in BACKENDS:
                    pending = mark  # a block for a batch system
                elif mark.startswith("needs="):
                    extras.add(mark)
                else:
                    pending = mark
            continue
        if tok.type in ("paragraph_open", "heading_open", "bullet_list_open", "table_open"):
            pending = None  # a marker applies to the block right after it only
        if tok.type != "fence":
            continue
        line = (tok.map[0] + 1) if tok.map else 0
        info = tok.info.strip()
        lang = info.split()[0].lower() if info else ""
        assert lang, f"{path.relative_to(ROOT)}:{line}: a fenced block without an info string"
        kind, pending = pending, None
        if kind and kind.startswith("not-run="):
            assert len(kind) > len("not-run=") + 10, f"{path.relative_to(ROOT)}:{line}: not-run needs a reason"
            continue
        if kind and kind.startswith("tested-by="):
            _check_test_exists(kind.split("=", 1)[1], f"{path.relative_to(ROOT)}:{line}")
            continue
        needs = None
        if kind and kind.startswith("needs="):
            kind, needs = None, kind.split("=", 1)[1]
        wait = None
        if kind and WAIT.match(kind):
            kind, wait = "background", WAIT.match(kind).group(1)
        assert kind is None or kind in KINDS, f"{path.relative_to(ROOT)}:{line}: unknown marker {kind!r}"
        title = TITLE.search(info)
        if kind in ("repo", "install"):
            continue
        if title:
            blocks.append({"kind": "file", "line": line, "name": title.group(1), "code": tok.content})
        elif lang in PYTHON:
            blocks.append({"kind": "python", "line": line, "code": tok.content})
        elif lang in SHELL:
            code = tok.content if lang != "console" else _console_commands(tok.content)
            blocks.append({"kind": kind or "shell", "line": line, "code": code, "wait": wait})
        else:
            assert needs is None, f"{path.relative_to(ROOT)}:{line}: needs={needs} on a block that does not run"
            continue
        if needs:
            blocks[-1]["needs"] = needs
    return blocks, extras


def _check_test_exists(node: str, where: str) -> None:
    file, _, name = node.partition("::")
    source = (ROOT / file).read_text() if (ROOT / file).is_file() else ""
    assert re.search(rf"^def {re.escape(name)}\(", source, re.M), f"{where}: {node} does not exist"


def _console_commands(text: str) -> str:
    """The ``$ `` lines of a console block (with their ``\\`` continuations); output is not run."""
    out, cont = [], False
    for raw in text.splitlines():
        if raw.startswith("$ ") or cont:
            cmd = raw[2:] if raw.startswith("$ ") and not cont else raw
            out.append(cmd)
            cont = cmd.rstrip().endswith("\\")
    return "\n".join(out) + "\n"


DRIVER = r'''
import json, os, signal, socket, subprocess, sys, time, traceback
from pathlib import Path

ns = {"__name__": "__main__"}
background = []


def ready(port, wait):
    if wait:
        return subprocess.run(["bash", "-c", wait], capture_output=True).returncode == 0
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_until_ready(port, wait, proc, seconds=120):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the background command exited with {proc.returncode}")
        if ready(port, wait):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the background command is not ready after {seconds} s")


def main():
    page, blocks = json.loads(Path(sys.argv[1]).read_text())
    where = page
    try:
        for b in blocks:
            where = f"{page}:{b['line']}"
            print(f"=== {where} ({b['kind']})", flush=True)
            if b["kind"] == "python":
                exec(compile(b["code"], where, "exec"), ns)
            elif b["kind"] == "file":
                Path(b["name"]).parent.mkdir(parents=True, exist_ok=True)
                Path(b["name"]).write_text(b["code"])
            elif b["kind"] == "shell":
                subprocess.run(["bash", "-euo", "pipefail", "-c", b["code"]], check=True)
            elif b["kind"] == "background":
                proc = subprocess.Popen(["bash", "-c", "exec " + b["code"].strip()], start_new_session=True)
                background.append(proc)
                port = 8000
                words = b["code"].split()
                if "--port" in words:
                    port = int(words[words.index("--port") + 1])
                wait_until_ready(port, b.get("wait"), proc)
            sys.stdout.flush()
    except BaseException:
        traceback.print_exc()
        print(f"FAILED at {where}", flush=True)
        sys.exit(1)
    finally:
        for proc in background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(60)
    print("ALL BLOCKS RAN", flush=True)


if __name__ == "__main__":  # worker processes (spawn) import this file again
    main()
'''


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_pages_are_found():
    names = {_ids(p) for p in PAGES}
    assert {"README.md", "docs/quickstart.md", "docs/sql.md", "docs/tap.md", "docs/install.md"} <= names


@pytest.mark.parametrize("path", PAGES, ids=_ids)
def test_page_blocks_run(path: Path, wheel_envs, tmp_path: Path):
    blocks, extras = parse_page(path)
    _run_blocks(path, [b for b in blocks if "needs" not in b], extras, wheel_envs, tmp_path)


def _backend_pages() -> list[tuple[Path, str]]:
    found = []
    for path in PAGES:
        blocks, _ = parse_page(path)
        found += [(path, name) for name in BACKENDS if any(b.get("needs") == name for b in blocks)]
    return found


@pytest.mark.parametrize(("path", "backend"), _backend_pages(), ids=lambda v: v if isinstance(v, str) else _ids(v))
def test_page_backend_blocks_run(path: Path, backend: str, wheel_envs, tmp_path: Path):
    """The page again, with its needs=BACKEND blocks, on a one-node batch system started here."""
    blocks, extras = parse_page(path)
    env = _start_backend(backend)
    try:
        _run_blocks(path, [b for b in blocks if b.get("needs") in (None, backend)], extras, wheel_envs, tmp_path, env)
    finally:
        subprocess.run(["bash", str(BACKENDS[backend][1])], capture_output=True, text=True, timeout=180)


def test_clusters_page_runs_on_slurm_and_sge():
    assert {(p.name, b) for p, b in _backend_pages()} >= {("clusters.md", "slurm"), ("clusters.md", "sge")}


def _start_backend(name: str) -> dict[str, str]:
    """Install and start the one-node batch system; the environment its commands need."""
    setup, _, daemon = BACKENDS[name]
    installed = shutil.which(daemon) is not None or Path(daemon).exists()
    if os.geteuid() != 0 or (not installed and shutil.which("apt-get") is None):
        _skip_or_fail(f"needs={name} blocks need root and apt-get (or {name} installed) to start {name}")
    proc = subprocess.run(["bash", str(setup)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        subprocess.run(["bash", str(BACKENDS[name][1])], capture_output=True, text=True, timeout=180)
        _skip_or_fail(f"{setup.name} failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
    env = {}  # setup_sge.sh ends with SGE_ROOT=, SGE_CELL=, PATH= lines
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("SGE_ROOT", "SGE_CELL", "PATH"):
            env[key] = value
    return env


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _run_blocks(path: Path, blocks: list[dict], extras: set[str], wheel_envs, tmp_path: Path, env=None) -> None:
    """Run the blocks in a fresh directory and HOME, with the venv the page's extras call for."""
    tools = {e for e in extras if e.startswith("needs=")}
    extras = extras - tools
    assert tools <= {"needs=stilts"}, f"{_ids(path)}: unknown {tools}"
    if tools:
        _install_stilts()
    unknown = extras - DOCUMENTED_EXTRAS
    assert not unknown, f"{_ids(path)} names extras that docs/install.md does not document: {unknown}"
    if not any(b["kind"] != "file" for b in blocks):
        return  # nothing to run on this page (reference pages, design notes)
    plain, user = wheel_envs
    venv = user if extras else plain
    env = dict(env or {})
    if "PATH" in env:  # the batch system's commands, after the venv's
        env["PATH"] = f"{venv.bin}{os.pathsep}{env['PATH']}"
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps([_ids(path), blocks]))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    work, home = tmp_path / "page", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    if os.geteuid() == 0:  # CI runs as root, which JupyterLab refuses unless configured (readers are not root)
        (home / ".jupyter").mkdir()
        (home / ".jupyter" / "jupyter_server_config.json").write_text('{"ServerApp": {"allow_root": true}}')
    proc = venv.run(  # a fresh HOME: no user cluster profiles, no clusters left up by others
        [str(venv.python), str(driver), str(spec)], cwd=work, timeout=1200,
        MPLBACKEND="Agg", COLUMNS="120", HOME=str(home), PROXCOMPUTE_STATE_DIR=str(home / "state"), **env,
    )  # fmt: skip
    if proc.returncode != 0 or "ALL BLOCKS RAN" not in proc.stdout:
        pytest.fail(
            f"{_ids(path)} (venv {venv.root.name}):\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}",
            pytrace=False,
        )
    not_run = [b["line"] for b in blocks if f"=== {_ids(path)}:{b['line']} ({b['kind']})" not in proc.stdout]
    assert not not_run, f"{_ids(path)}: the blocks at lines {not_run} did not run"


def _install_stilts() -> None:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stilts" / "setup_stilts.sh")], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        _skip_or_fail(f"STILTS cannot be installed here: {proc.stderr.strip() or proc.stdout.strip()}")


EXTRA_USES = {  # what a block uses -> the extra that brings it (pyproject.toml, docs/install.md)
    "notebooks": re.compile(r"^\s*(?:import pyvo|from pyvo\b|jupyter\s)", re.M),
    "gateway": re.compile(r"^\s*(?:import dask_gateway|from dask_gateway\b)", re.M),
}


def test_pages_say_which_extras_they_need():
    """A page whose blocks use an extra's package declares the extra and shows its install."""
    problems = []
    for path in PAGES:
        blocks, extras = parse_page(path)
        code = "\n".join(b["code"] for b in blocks if b["kind"] != "file")
        text = path.read_text()
        for extra, uses in EXTRA_USES.items():
            if uses.search(code) and extra not in extras:
                problems.append(f"{_ids(path)} uses the {extra} extra without <!-- docs-test: extras={extra} -->")
        for extra in extras - {e for e in extras if e.startswith("needs=")}:
            if f"[{extra}]" not in text:
                problems.append(f"{_ids(path)} needs the {extra} extra but shows no pip install '...[{extra}]'")
    assert not problems, "\n".join(problems)


def test_console_commands_are_extracted():
    text = "$ proxcompute info x \\\n    --json\n{...}\n$ echo hi\nhi\n"
    assert _console_commands(text) == "proxcompute info x \\\n    --json\necho hi\n"
    assert shlex.split(_console_commands(text).splitlines()[-1]) == ["echo", "hi"]
