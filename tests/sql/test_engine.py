"""The SQL engine's own guards: no file access beyond a catalog's files, corrupt files named."""

import shutil

import pytest

import proxcompute
from proxcompute.catalog import from_dataframe
from proxcompute.errors import CorruptPartitionError, SqlError
from proxcompute.sql.engine import run_sql, run_sql_on_file
from proxcompute.synthetic import generate_catalog


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    path = tmp_path_factory.mktemp("engine") / "cat"
    from_dataframe(generate_catalog(8_000, seed=8), name="cat", max_rows=1_000).to_catalog(path)
    return path


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "COPY (SELECT 1) TO '{tmp}/proxcompute-engine-test.csv'",
        "ATTACH '{tmp}/proxcompute-engine-test.db'",
        "INSTALL httpfs",
        "SET enable_external_access = true",
    ],
)
def test_engine_connections_cannot_touch_files_even_if_sql_got_through(query, stored, tmp_path):
    query = query.replace("{tmp}", str(tmp_path))  # a fresh directory: the file cannot exist beforehand
    with pytest.raises(SqlError):
        run_sql(query, {})
    some_partition = next(stored.rglob("Npix=*.parquet"))
    with pytest.raises(SqlError):
        run_sql_on_file(query, str(some_partition), str(stored))
    assert not (tmp_path / "proxcompute-engine-test.csv").exists()
    assert not (tmp_path / "proxcompute-engine-test.db").exists()


def test_reader_connection_reads_only_its_catalog(stored, tmp_path):
    other = tmp_path / "other"
    from_dataframe(generate_catalog(100, seed=1), name="o").to_catalog(other)
    outside = next(other.rglob("Npix=*.parquet"))
    inside = next(stored.rglob("Npix=*.parquet"))
    assert run_sql_on_file('SELECT COUNT(*) AS n FROM "__file__"', str(inside), str(stored)).num_rows == 1
    with pytest.raises(SqlError, match=r"(?i)permission|disabled|access"):
        run_sql_on_file(f"SELECT COUNT(*) FROM read_parquet('{outside}')", str(inside), str(stored))


def test_corrupt_partition_is_named(stored, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(stored, broken)
    victim = sorted(broken.rglob("Npix=*.parquet"))[2]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    res = proxcompute.sql("SELECT flag, COUNT(*) AS n FROM c GROUP BY flag", {"c": broken})
    assert res._plan.direct_sql is not None
    with pytest.raises(CorruptPartitionError) as info:
        res.compute()
    assert info.value.path.endswith(victim.name)
    with pytest.raises(CorruptPartitionError):  # the in-memory (Arrow) path names it too
        proxcompute.sql("SELECT id, mag * 2 AS m FROM c WHERE CONTAINS(POINT(ra, dec), CIRCLE(0, 0, 180)) = 1",
                        {"c": broken}).compute()  # fmt: skip


def test_direct_and_arrow_paths_agree(stored):
    mem = proxcompute.open_catalog(stored)
    q = "SELECT flag, COUNT(*) AS n, AVG(mag) AS m, MIN(color) AS c FROM c WHERE mag < 21 GROUP BY flag ORDER BY flag"
    direct = proxcompute.sql(q, {"c": stored})
    via_arrow = proxcompute.sql(q, {"c": mem.where("dec > -91")})  # a filtered catalog: read through Arrow
    assert direct._plan.direct_sql is not None and via_arrow._plan.direct_sql is None
    a, b = direct.compute(), via_arrow.compute()
    assert a["n"].tolist() == b["n"].tolist() and a["flag"].tolist() == b["flag"].tolist()
    assert a["m"].tolist() == pytest.approx(b["m"].tolist(), rel=1e-12)
