"""Each optimizer rule against its golden fixture (tests/plan/fixtures/<rule>.txt).

A fixture holds the rendered input plan and the rendered output, separated by ``=>``.
Regenerate after an intended change with ``PROXCOMPUTE_REGEN=1 pytest tests/plan``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from proxcompute.plan import (
    RULES,
    Filter,
    OptFlags,
    Project,
    RegionFilter,
    optimize,
    parse_predicate,
    render_tree,
)
from proxcompute.sky import Box, Cone

FIXTURES = Path(__file__).parent / "fixtures"


def _chain(scan):
    """The same user chain for every rule: project, filter, cone, filter, box, project."""
    schema = scan.source.schema
    p = Project(scan, ("id", "ra", "dec", "mag", "flag"))
    p = Filter(p, parse_predicate("mag < 20", schema))
    p = RegionFilter(p, Cone(45.0, 30.0, 72000.0))
    p = Filter(p, parse_predicate("flag in [1, 2]", schema))
    p = RegionFilter(p, Box(30.0, 60.0, 15.0, 45.0))
    return Project(p, ("id", "mag"))


def _input_for(rule_name, scan):
    """Each rule sees the output of the rules before it (as in ``optimize``)."""
    plan = _chain(scan)
    for name, rule in RULES:
        if name == rule_name:
            return plan
        plan = rule(plan)
    raise AssertionError(rule_name)


@pytest.mark.parametrize("name", [n for n, _ in RULES])
def test_rule_matches_golden_fixture(name, scan):
    rule = dict(RULES)[name]
    plan = _input_for(name, scan)
    text = f"{render_tree(plan)}\n=>\n{render_tree(rule(plan))}\n"
    path = FIXTURES / f"{name}.txt"
    if os.environ.get("PROXCOMPUTE_REGEN"):
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize("name", [n for n, _ in RULES])
def test_rules_are_idempotent(name, scan):
    rule = dict(RULES)[name]
    once = rule(_input_for(name, scan))
    assert render_tree(rule(once)) == render_tree(once)


def test_flags_switch_rules_off(scan):
    plan = _chain(scan)
    assert optimize(plan, OptFlags.none()) is plan
    assert set(OptFlags.__dataclass_fields__) == {n for n, _ in RULES}


def test_every_flag_combination_gives_the_same_rows(scan):
    from itertools import product

    from proxcompute.execute import compute_table

    plan = _chain(scan)
    want = compute_table(plan).to_pandas()
    assert 0 < len(want)
    for combo in product([False, True], repeat=len(RULES)):
        flags = OptFlags(**dict(zip([n for n, _ in RULES], combo, strict=True)))
        got = compute_table(plan, flags=flags).to_pandas()
        assert got.equals(want), flags
