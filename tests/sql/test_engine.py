"""The SQL engine's own guards: no file access beyond a catalog's files, corrupt files named."""

import shutil

import pytest

import proxcompute
from proxcompute import execute
from proxcompute.catalog import from_dataframe
from proxcompute.errors import CorruptPartitionError, SqlError
from proxcompute.ops.sql_engine import run_sql, run_sql_over_files
from proxcompute.plan import optimize
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
        run_sql_over_files(query, "__file__", [str(some_partition)], ["id"], str(stored))
    assert not (tmp_path / "proxcompute-engine-test.csv").exists()
    assert not (tmp_path / "proxcompute-engine-test.db").exists()


def test_reader_connection_reads_only_its_catalog(stored, tmp_path):
    other = tmp_path / "other"
    from_dataframe(generate_catalog(100, seed=1), name="o").to_catalog(other)
    outside = next(other.rglob("Npix=*.parquet"))
    inside = next(stored.rglob("Npix=*.parquet"))
    args = ("__file__", [str(inside)], ["id"], str(stored))
    assert run_sql_over_files('SELECT COUNT(*) AS n FROM "__file__"', *args).num_rows == 1
    with pytest.raises(SqlError, match=r"(?i)permission|disabled|access"):
        run_sql_over_files(f"SELECT COUNT(*) FROM read_parquet('{outside}')", *args)
    with pytest.raises(SqlError, match=r"(?i)permission|disabled|access"):  # the file list itself is guarded
        run_sql_over_files('SELECT COUNT(*) FROM "__file__"', "__file__", [str(outside)], ["id"], str(stored))


def test_corrupt_partition_is_named(stored, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(stored, broken)
    victim = sorted(broken.rglob("Npix=*.parquet"))[2]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    res = proxcompute.sql("SELECT flag, COUNT(*) AS n FROM c GROUP BY flag", {"c": broken})
    assert execute.strategy(optimize(res.plan)) == "single-scan"  # the generic Aggregate, one pass
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
    via_arrow = proxcompute.sql(q, {"c": mem.where("dec > -91")})
    having = proxcompute.sql(q.replace(" ORDER BY", " HAVING COUNT(*) >= 0 ORDER BY"), {"c": stored})
    assert execute.strategy(optimize(direct.plan)) == "single-scan"  # the generic Aggregate, one pass
    assert execute.strategy(optimize(having.plan)) == "single-scan"  # DuckDB SQL, one pass
    a, c = direct.compute(), having.compute()
    with execute.observe(execute.TaskObserver()):  # observed: one task per partition
        assert execute.strategy(optimize(having.plan)) == "partitions"
        assert execute.strategy(optimize(via_arrow.plan)) == "aggregate"  # numpy states per partition
        b = via_arrow.compute()
        d = having.compute()
    for other in (b, c, d):
        assert a["n"].tolist() == other["n"].tolist() and a["flag"].tolist() == other["flag"].tolist()
        assert a["m"].tolist() == pytest.approx(other["m"].tolist(), rel=1e-12)
        assert a["c"].tolist() == other["c"].tolist()
