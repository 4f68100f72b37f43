"""The examples in the docstrings of catalog/, plan/, ops/ and the new execute/ modules run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "proxcompute.catalog._catalog",
    "proxcompute.catalog._open",
    "proxcompute.plan.parse",
    "proxcompute.ops.coords",
    "proxcompute.ops.filters",
    "proxcompute.ops.ranges",
    "proxcompute.ops.stats",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
