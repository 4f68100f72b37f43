"""Row-group pruning by statistics never drops a row group holding a matching row."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from proxcompute.execute.reader import selected_row_groups
from proxcompute.plan import parse_predicate

PREDICATES = [
    "mag < 18",
    "mag >= 23",
    "not (mag < 20)",
    "mag != 20",
    "isnull(mag)",
    "notnull(mag)",
    "flag == 3",
    "flag != 3",
    "flag in [0, 2]",
    "flag not in [0, 1, 2]",
    "-mag > -17",
    "abs(mag - 20) > 3",
    "mag * 2 + flag < 37",
    "mag - flag > 24",
    "(mag < 17) or (flag == 0)",
    "not ((mag < 17) and (flag == 0))",
    "name == 'qso' and mag < 19",
    "name < 'c'",
    "ok",
    "not ok",
    "sqrt(mag) > 4.7",
]


def _file(table: pa.Table, rows: int) -> pq.FileMetaData:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=rows)
    return pq.read_metadata(io.BytesIO(buf.getvalue()))


@pytest.fixture(scope="module")
def grouped():
    """Row groups with narrow, varied value ranges (sorted by mag), nulls and NaN in some."""
    rng = np.random.default_rng(3)
    n = 4_000
    mag = np.sort(rng.normal(20, 2, n))
    mag[100] = np.nan
    flag = np.where(np.arange(n) < 2_000, 3, rng.integers(0, 4, n)).astype(np.int16)
    t = pa.table(
        {
            "mag": pa.array(mag, mask=(np.arange(n) > 3_900)),
            "flag": flag,
            "name": rng.choice(["galaxy", "qso", "star"], n),
            "ok": np.arange(n) % 1000 < 500,
        }
    )
    return t, 250


@pytest.mark.parametrize("text", PREDICATES)
def test_pruning_is_conservative(grouped, text):
    table, rows = grouped
    md = _file(table, rows)
    e = parse_predicate(text, table.schema)
    kept = set(selected_row_groups(md, None, e))
    for rg in range(md.num_row_groups):
        part = table.slice(rg * rows, rows)
        matches = pc.sum(pc.cast(pc.fill_null(e.mask(part), False), pa.int64())).as_py()
        if matches:
            assert rg in kept, (text, rg)


def test_pruning_prunes(grouped):
    table, rows = grouped
    md = _file(table, rows)
    for text in ("mag < 17", "mag >= 23", "flag == 3 and mag > 21", "not ok", "ok"):
        kept = selected_row_groups(md, None, parse_predicate(text, table.schema))
        assert len(kept) < md.num_row_groups, text
