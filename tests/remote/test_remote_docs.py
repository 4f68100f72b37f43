"""docs/howto/remote.md runs as written against real servers.

The page's server blocks are marked ``tested-by`` this test (tests/test_docs_pages.py runs the
rest in a wheel install, where no server is). Here every Python and shell block of the page
runs in order in one namespace, from an empty directory, with nginx serving the directory the
page's first block writes and moto's S3 server holding the same survey; the only change to a
block is the servers' addresses (the page's fixed ports become the free ports they got).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from markdown_it import MarkdownIt
from remote_servers import REPO, running_nginx, running_s3

PAGE = REPO / "docs" / "howto" / "remote.md"
PAGE_HTTP = "http://127.0.0.1:18480/"
PAGE_S3 = "http://127.0.0.1:5000"
SKIPPED = ("repo", "install")  # a clone's command and the installation: not run by any test


def page_blocks(path: Path) -> list[tuple[str, str]]:
    """``(language, code)`` of the page's Python and shell blocks, in order, without the
    ``repo`` and ``install`` ones."""
    out, pending = [], None
    for tok in MarkdownIt("commonmark").parse(path.read_text()):
        if tok.type == "html_block" and "docs-test:" in tok.content:
            pending = tok.content.split("docs-test:", 1)[1].split("-->")[0].strip()
            continue
        if tok.type == "fence":
            mark, pending = pending, None
            lang = tok.info.split()[0]
            if not (mark or "").startswith(SKIPPED) and lang in ("python", "bash"):
                out.append((lang, tok.content))
        elif tok.type in ("paragraph_open", "heading_open"):
            pending = None
    return out


def test_howto_blocks_run(tmp_path, monkeypatch, capsys):
    blocks = page_blocks(PAGE)
    langs = [lang for lang, _ in blocks]
    assert langs.count("python") >= 5 and "bash" in langs
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__main__"}
    first_lang, first = blocks[0]
    assert first_lang == "python" and "pc.ingest" in first  # writes catalogs/survey
    exec(compile(first, f"{PAGE}:first block", "exec"), ns)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    with (
        running_nginx(tmp_path / "catalogs", tmp_path / "nginx-run") as http,
        running_s3("hats", {"survey": tmp_path / "catalogs" / "survey"}) as s3,
    ):
        for i, (lang, code) in enumerate(blocks[1:], start=2):
            code = code.replace(PAGE_HTTP, http.url).replace(PAGE_S3, s3.endpoint)
            if lang == "python":
                exec(compile(code, f"{PAGE}:block {i}", "exec"), ns)
            else:
                subprocess.run(["bash", "-euo", "pipefail", "-c", code], check=True, env=env, timeout=600)
    out = capsys.readouterr().out
    assert "rows in the cone" in out and "is not a catalog" in out
    assert (tmp_path / "cone.parquet").exists() and (tmp_path / "catalogs" / "bright").is_dir()
