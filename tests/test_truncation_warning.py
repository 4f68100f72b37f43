"""One truncation warning: SQL and the TAP client both emit proxcompute.errors.ResultTruncatedWarning."""

import pytest

import proxcompute
from proxcompute.client import ResultTruncatedWarning as ClientWarning
from proxcompute.errors import ResultTruncatedWarning
from proxcompute.sql import SqlTruncatedWarning
from proxcompute.synthetic import generate_catalog


def test_one_class_under_every_name():
    assert SqlTruncatedWarning is ResultTruncatedWarning is ClientWarning


def test_sql_maxrec_emits_it():
    result = proxcompute.sql("SELECT id FROM s", {"s": generate_catalog(500, seed=1)}, maxrec=10)
    with pytest.warns(ResultTruncatedWarning, match="truncated"):
        table = result.to_arrow()
    assert table.num_rows == 10 and result.overflow
