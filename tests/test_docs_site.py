"""The documentation site: ``mkdocs build --strict`` succeeds, the API reference is rendered from
the docstrings, and every internal link of the built site points at a file that exists.

Builds once into a temporary directory (a few seconds, no network: ``theme.font`` is off and no
plugin fetches anything).
"""

from __future__ import annotations

import html
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import proxcompute as pc

REPO = Path(__file__).resolve().parents[1]
HREF = re.compile(r"""\b(?:href|src)="([^"]*)\"""")
TAG = re.compile(r"<[^>]+>")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _text(page: Path) -> str:
    """The visible text of a built page, whitespace collapsed."""
    return " ".join(html.unescape(TAG.sub(" ", page.read_text(encoding="utf-8"))).split())


def _first_line(obj: object) -> str:
    """A docstring's summary line as rendered (inline-code backticks dropped)."""
    line = inspect.getdoc(obj).splitlines()[0]
    return " ".join(line.replace("``", "").replace("`", "").split())


def test_pages_are_built(site):
    for page in ["index", "install", "quickstart", "concepts", "howto/ingest", "howto/search",
                 "crossmatch", "sql", "tap", "clusters", "pipelines", "benchmarks", "design/foundation"]:  # fmt: skip
        assert (site / page / "index.html").is_file() if page != "index" else (site / "index.html").is_file()
    assert (site / "howto" / "topcat" / "index.html").is_file() and (site / "reference" / "cli" / "index.html").is_file()


NOTEBOOKS = sorted((REPO / "docs" / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_pages(site, path):
    """mkdocs-jupyter renders each notebook (its title and code) with a download link to the .ipynb."""
    import json

    page = site / "notebooks" / path.stem / "index.html"
    assert page.is_file(), f"{path.name} is not a page of the site"
    cells = json.loads(path.read_text())["cells"]
    title = "".join(cells[0]["source"]).splitlines()[0].lstrip("# ").replace("`", "")
    first_code = next("".join(c["source"]).strip().splitlines()[0] for c in cells if c["cell_type"] == "code")
    text = _text(page)
    squeezed = re.sub(r"\s+([,.;:])", r"\1", text)  # inline code in a heading leaves a space before a comma
    assert title in squeezed and " ".join(first_code.split()) in text, path.name
    assert f'{path.name}" title="Download the notebook"' in page.read_text(encoding="utf-8"), f"no download link to {path.name}"
    assert (page.parent / path.name).is_file(), f"{path.name} is not copied next to its page"


@pytest.mark.parametrize(
    ("page", "anchor", "obj", "params"),
    [
        ("catalog", "proxcompute.catalog.open_catalog", pc.open_catalog, []),
        ("catalog", "proxcompute.catalog.Catalog.crossmatch", pc.Catalog.crossmatch,
         ["radius_arcsec", "n_neighbors", "ensure_margin"]),
        ("sql", "proxcompute.sql.sql", "proxcompute.sql:sql", ["catalog_root", "maxrec"]),
        ("ingest", "proxcompute.ingest.ingest", "proxcompute.ingest:ingest", ["max_rows", "margin_arcsec", "drop_invalid"]),
        ("cluster", "proxcompute.cluster.cluster", "proxcompute.cluster:cluster", ["profile"]),
    ],
)  # fmt: skip
def test_api_reference_renders_docstrings(site, page, anchor, obj, params):
    if isinstance(obj, str):  # a function named like its package: pc.sql may be the (callable) package
        import importlib

        module, name = obj.split(":")
        obj = getattr(importlib.import_module(module), name)
    built = site / "reference" / page / "index.html"
    raw = built.read_text(encoding="utf-8")
    assert f'id="{anchor}"' in raw, f"{anchor} has no heading on reference/{page}"
    text = _text(built)
    assert _first_line(obj) in text, f"the docstring of {anchor} is not rendered"
    for name in params:  # the numpydoc Parameters section became a table
        assert re.search(rf"\b{name}\b", text), f"parameter {name} of {anchor} is not rendered"
    if params:
        assert "Parameters:" in text
    assert "Examples:" in text or ">>>" in text


def test_internal_links_resolve(site):
    broken, to_markdown = [], []
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        for url in HREF.findall(page.read_text(encoding="utf-8")):
            parts = urlsplit(html.unescape(url))
            if parts.scheme or parts.netloc or not parts.path:  # external, or an anchor on this page
                continue
            if parts.path.endswith(".md"):
                to_markdown.append(f"{page.relative_to(site)} -> {url}")
                continue
            path = unquote(parts.path)  # 404.html links from the site root, the rest relatively
            target = (site / path.lstrip("/") if path.startswith("/") else page.parent / path).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {url}")
    assert not to_markdown, "links to .md files (not converted by mkdocs):\n" + "\n".join(to_markdown)
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def test_no_sphinx_roles_left_as_text(site):
    """:class:`X`-style roles in docstrings become links or code, never literal text."""
    import re

    leftovers = []
    for page in Path(site).rglob("*.html"):
        text = page.read_text(errors="replace")
        leftovers += [f"{page.name}: {m}" for m in re.findall(r":(?:class|func|meth|mod|attr|data|exc):`?\w", text)]
    assert not leftovers, leftovers[:10]
