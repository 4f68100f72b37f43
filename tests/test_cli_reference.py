"""The command line and its documentation agree.

- docs/reference/cli.md is what scripts/docs/gen_cli_reference.py writes from the command's own
  definitions now (so it carries every command, option and help text of ``--help``);
- every ``proxcompute COMMAND ... --option`` written in README.md or a page under docs/ (code
  blocks and inline code) names a command and options that exist;
- what the how-to pages say a command does is what its ``--help`` says.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import typer
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from proxcompute.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CALL = re.compile(r"(?:^|[\s`(;&|$])proxcompute\s+([a-z][\w-]*)")
# Python imports, pip, and kubectl's namespace of the same name
NOT_A_CALL = re.compile(r"(?:\b(?:import|from|install|show|uninstall)|-n|--namespace)\s+proxcompute\s+$")


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_reference", ROOT / "scripts" / "docs" / "gen_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


def test_cli_reference_is_current():
    gen = _generator()
    assert gen.PAGE.read_text() == gen.render(), "run: python scripts/docs/gen_cli_reference.py"


def test_cli_reference_covers_every_command():
    text = (ROOT / "docs" / "reference" / "cli.md").read_text()
    root = typer.main.get_command(app)
    for name, cmd in root.commands.items():
        assert f"## `proxcompute {name}`" in text, name
        for sub in getattr(cmd, "commands", {}):
            assert f"### `proxcompute {name} {sub}`" in text, f"{name} {sub}"
    assert "```console" not in text, "usage lines must not be run by the docs test"


def _code_in(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every fenced block and inline code span of a page, continuations joined."""
    out = []
    for tok in MarkdownIt("commonmark").parse(path.read_text()):
        line = (tok.map[0] + 1) if tok.map else 0
        if tok.type == "fence":
            out.append((line, tok.content.replace("\\\n", " ")))
        elif tok.type == "inline":
            out += [(line, child.content) for child in tok.children or [] if child.type == "code_inline"]
    return out


def _calls(text: str) -> list[list[str]]:
    """The words of each ``proxcompute ...`` call in a piece of code, up to a comment or a pipe."""
    calls = []
    for line in text.splitlines():
        for m in CALL.finditer(line):
            if NOT_A_CALL.search(line[: m.start(1)]):
                continue
            rest = re.split(r"\s(?:#|&&|;|>)|`|\|", line[m.start(1) :])[0]
            try:
                calls.append(shlex.split(rest))
            except ValueError:  # an unbalanced quote in prose-like code: the command word is enough
                calls.append(rest.split()[:1])
    return calls


def _resolve(words: list[str]):
    """The command a call runs (descending into groups) and the remaining words; None if unknown."""
    cmd = typer.main.get_command(app)
    words = list(words)
    while hasattr(cmd, "commands") and words and not words[0].startswith("-"):  # a group
        sub = cmd.commands.get(words[0])
        if sub is None:
            return None
        cmd, words = sub, words[1:]
    return cmd, words


def test_documented_calls_name_real_commands_and_options():
    bad, seen = [], 0
    for path in PAGES:
        if path.name == "cli.md":  # generated from the commands themselves (usage placeholders)
            continue
        for line, code in _code_in(path):
            for words in _calls(code):
                where = f"{path.relative_to(ROOT)}:{line}: proxcompute {' '.join(words)}"
                found = _resolve(words)
                if found is None:
                    bad.append(f"{where}: no such command")
                    continue
                cmd, rest = found
                known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
                for word in rest:
                    if word.startswith("--") and word.split("=", 1)[0] not in known:
                        bad.append(f"{where}: {cmd.name} has no option {word}")
                seen += 1
    assert seen > 30, "the pages show the command line"
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    ("args", "page", "says"),
    [
        (["cluster"], "docs/clusters.md", ["list", "show", "up", "status", "down"]),
        (["crossmatch"], "docs/crossmatch.md", ["temporary local Dask cluster", "worker processes"]),
        (["demo"], "README.md", ["survey", "ingest it", "crossmatch", "timings"]),
        (["serve"], "docs/tap.md", ["--catalog-root", "--port"]),
    ],
)  # fmt: skip
def test_help_says_what_the_page_says(args, page, says):
    helptext = _help(*args)
    text = " ".join((ROOT / page).read_text().split())
    for phrase in says:
        assert phrase in helptext, f"`proxcompute {' '.join(args)} --help` does not mention {phrase!r}"
        assert phrase in text, f"{page} does not mention {phrase!r}"
