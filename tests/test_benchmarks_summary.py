"""docs/benchmarks.md states each number once: the summary at the top repeats its sections.

Every row of the summary table ("What you get") links to the section whose script produced it,
and each time and ratio of the row (with its unit) appears in that section. A rerun that updates
a section's results without the summary, or a summary number typed by hand, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

from markdown.extensions.toc import slugify

PAGE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?\s?(?:ms|s|x|GiB|MB)\b")


def _sections(text: str) -> dict[str, str]:
    """{anchor: text up to the next heading of the same or a higher level} for ## headings."""
    out = {}
    heads = [(m.start(), len(m.group(1)), m.group(2)) for m in re.finditer(r"^(#{1,2}) (.+)$", text, re.M)]
    for i, (start, level, title) in enumerate(heads):
        end = next((s for s, lv, _ in heads[i + 1 :] if lv <= level), len(text))
        out[slugify(title, "-")] = text[start:end]
    return out


def _summary_rows(text: str) -> list[list[str]]:
    top = text[text.index("## What you get") : text.index("\n## ", text.index("## What you get") + 5)]
    rows = [line for line in top.splitlines() if line.startswith("| ") and not line.startswith("| what")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows]


def test_summary_numbers_come_from_the_linked_sections():
    text = PAGE.read_text()
    sections = _sections(text)
    rows = _summary_rows(text)
    assert len(rows) >= 8
    problems = []
    for what, ours, peer, ratio, script in rows:
        link = re.search(r"\]\(#([^)]+)\)", script)
        if not link or link.group(1) not in sections:
            problems.append(f"{what}: the script cell links to no section ({script})")
            continue
        body = " ".join(sections[link.group(1)].split())
        for cell in (ours, peer, ratio):
            for number in NUMBER.findall(re.sub(r"\([^)]*\)", "", cell)):  # not the asides in brackets
                if " ".join(number.split()) not in body:
                    problems.append(f"{what}: {number} is not in section #{link.group(1)}")
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_changed_number(tmp_path):
    text = PAGE.read_text().replace("| 12.7x | [`bench_foundation.py`]", "| 13.7x | [`bench_foundation.py`]", 1)
    assert "13.7x" in text
    rows = _summary_rows(text)
    sections = _sections(text)
    row = next(r for r in rows if r[3] == "13.7x")
    anchor = re.search(r"\(#([^)]+)\)", row[4]).group(1)
    assert "13.7x" not in sections[anchor]
