"""What users read says nothing about how the project is run internally.

Every tracked file a user or a reader of the code sees (README, docs/ with the notebooks, src/,
benchmarks/, scripts/, clusters/, the Makefile, CI and packaging files) is searched for:

- a path out of the repository into the steering folder (``../`` + ``shared``);
- the name of the internal design document (the word in capitals);
- internal issue numbers: a bare ``#123`` or "issue 123" / "issues 12, 13".
  An upstream project's tracker named with the project (``lsdb#589``) is a public reference
  and allowed; HTML character references (``&#13;``) and CSS colours (``'#999'``) are not issues.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ("docs/", "docs-theme/", "src/", "benchmarks/", "scripts/", "clusters/", "catalogs/", ".ci/")
SCANNED_FILES = {"README.md", "Makefile", "mkdocs.yml", "pyproject.toml", "Dockerfile", ".importlinter"}
# spelled apart so that this file does not match itself
OUTSIDE = re.compile(re.escape("../" + "shared"))
DESIGN_DOC = re.compile(r"\b" + "DES" + r"IGN\b")
BARE_ISSUE = re.compile(r"(?<![\w&/#])#\d+\b(?!['\";])")
ISSUE_WORD = re.compile(r"\b(?:issues?|tickets?|PRs?)\s+#?\d+", re.I)
RULES = {"a path out of the repository": OUTSIDE, "the design document's name": DESIGN_DOC,
         "a bare issue number": BARE_ISSUE, "an issue number": ISSUE_WORD}  # fmt: skip


def _scanned() -> list[Path]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    picked = [f for f in files if f.startswith(SCANNED_DIRS) or f in SCANNED_FILES]
    return [ROOT / f for f in picked if (ROOT / f).is_file() and b"\0" not in (ROOT / f).read_bytes()[:8192]]  # text only


def offences(text: str) -> list[tuple[str, str]]:
    """``(rule, matched text)`` for every forbidden reference in ``text``."""
    found = []
    for rule, pattern in RULES.items():
        found += [(rule, m.group(0)) for m in pattern.finditer(text)]
    return found


def test_the_rules_catch_what_they_should():
    assert offences("see " + "../" + "shared/notes.md") and offences("as in " + "DES" + "IGN.md §7")
    assert [r for r, _ in offences("fixed in #42.")] == ["a bare issue number"]
    assert offences("(issue 17)") and offences("Issues #3 and #4")
    for fine in ["lsdb#589", "&#13;", "border:1px solid #999'", "## Heading", "x = 1  # 10 rows", "#!/bin/bash",
                 "the design notes", "color: '#336699';"]:  # fmt: skip
        assert not offences(fine), fine


def test_no_internal_references_in_what_users_read():
    files = _scanned()
    assert any(f.name == "README.md" for f in files) and any(f.suffix == ".ipynb" for f in files)
    assert sum(f.suffix == ".py" and "src" in f.parts for f in files) > 50
    bad = []
    for path in files:
        text = path.read_text(errors="ignore")
        for n, line in enumerate(text.splitlines(), 1):
            bad += [f"{path.relative_to(ROOT)}:{n}: {rule}: {hit!r}" for rule, hit in offences(line)]
    assert not bad, "\n".join(bad)
