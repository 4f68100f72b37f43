"""SQL benchmark: proxcompute's ADQL front against DuckDB and PostgreSQL + Q3C, same data, one run.

    .venv/bin/python benchmarks/bench_sql.py [--repeats 5] [--quick] [--no-pg | --pg DSN | --setup-pg]
                                             [--workdir bench-data] [--markdown PATH] [--budget 30]

PostgreSQL needs a client library, which proxcompute does not declare:
``.venv/bin/pip install "psycopg[binary]"``. A throwaway PostgreSQL 15 + Q3C cluster is stood up
(as root, with apt) by ``scripts/postgres/setup_postgres.sh``, or by ``--setup-pg``. Without a
reachable server (default DSN ``postgresql://postgres@127.0.0.1:54329/postgres``) the PG column is
skipped with the reason printed.

Data: the crossmatch benchmark's cached catalogs (``bench_crossmatch._prepare``; built on first
use): a seeded non-uniform 10M-row survey ("big", HATS collection with a 10" margin) and 1M rows
drawn from it and jittered by 0.3" ("small"). ``--quick``: 1M and 100k rows.

Queries (each tool: one warm-up, then the median of ``--repeats``, the tools interleaved run by run;
a tool stops repeating a query once its timed runs of it have used ``--budget`` seconds):

- 1' cone and 1 deg cone at a cluster core (45.1, 30.05), rows (ra, dec, mag) to the client;
- all pairs within 1", small x big, with their distance;
- ``count(*)`` with ``mag < 20``;
- ``GROUP BY floor(dec)`` with count and avg(mag) over everything.

Tools, each in its own process (peak RSS of the process tree sampled every 50 ms):

- proxcompute: ADQL through ``proxcompute.sql(query, catalogs={"big": ..., "small": ...}).compute()``
  (a pandas DataFrame); "n/a (not landed)" while ``proxcompute.sql`` does not exist;
- DuckDB over the same Parquet files (``read_parquet('<catalog>/dataset/**/*.parquet')``, the
  Parquet metadata cache on), with the best hand-written SQL: ``dec BETWEEN`` (and an RA window
  where it is valid) before the exact haversine for cones; a zones equi-join (zone =
  floor(dec / 1"), each left row joined to zones z-1, z, z+1) with a dec/RA prefilter before the
  exact haversine for the crossmatch; results fetched as pandas (``.df()``);
- PostgreSQL 15 + Q3C: the same rows (id, ra, dec, mag) loaded by COPY, a
  ``q3c_ang2ipix(ra, dec)`` index, CLUSTER, ANALYZE (each timed, reported apart; cached
  between runs in the schema ``bench_sql``, ``--pg-reload`` redoes it); cones by
  ``q3c_radial_query``, the crossmatch by ``q3c_join`` + ``q3c_dist``; rows fetched by psycopg
  (binary cursor, ``fetchall``). The server's own memory is not counted in the RSS column.

Checks: cones against brute force (numpy haversine/Vincenty over all rows; the ra values of the
returned rows must equal the brute-force set, points within 1e-6" of the edge may go either way);
crossmatch pairs against a scipy KD-tree over unit vectors (same tolerance) and every tool's pair
set, with its distances, against it; counts against numpy; GROUP BY keys, counts and means
against numpy. A mismatch is a failure (exit status 1).

Prints a table (query | rows | proxcompute | DuckDB | PG + Q3C | best peer / proxcompute | target
| check), the PG load/index times and the peak RSS; ``--markdown`` writes it.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

from bench_crossmatch import _prepare  # noqa: E402
from bench_foundation import Reference, TreeSampler, _sep_arcsec, fmt_bytes, fmt_seconds  # noqa: E402

RESULT_TAG = "@@BENCH-RESULT "
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:54329/postgres"
SETUP_PG = REPO / "scripts" / "postgres" / "setup_postgres.sh"
XM_RADIUS_DEG = 1.0 / 3600.0
EDGE_ARCSEC = 1e-6
CONE_CENTRE = (45.1, 30.05)  # core of the synthetic cluster at (45, 30)
TOOLS = ("proxcompute", "duckdb", "pg")
TOOL_NAMES = {"proxcompute": "proxcompute", "duckdb": "DuckDB, hand-written", "pg": "PG 15 + Q3C"}


@dataclass(frozen=True)
class Query:
    key: str
    label: str
    kind: str  # cone | xmatch | count | groupby | topn
    target: str
    limit: float
    radius_deg: float = 0.0


QUERIES = [
    Query("cone1m", "1' cone, rows to client", "cone", "< 3 ms", 0.003, 1.0 / 60.0),
    Query("cone1d", "1 deg cone, rows to client", "cone", "< 100 ms", 0.1, 1.0),
    Query("xmatch", 'all pairs within 1", small x big', "xmatch", "< 1 s", 1.0),
    Query("count", "count(*) where mag < 20", "count", "< 30 ms", 0.03),
    Query("groupby", "GROUP BY floor(dec): count, avg(mag)", "groupby", "< 75 ms", 0.075),
    Query("topn", "TOP 10 ORDER BY mag, id", "topn", "—", 0.0),
]


# --------------------------------------------------------------------------------------
# the SQL each tool runs
# --------------------------------------------------------------------------------------


def adql(q: Query) -> str:
    ra0, dec0 = CONE_CENTRE
    if q.kind == "cone":
        return (
            "SELECT ra, dec, mag FROM big WHERE 1=CONTAINS(POINT('ICRS', ra, dec), "
            f"CIRCLE('ICRS', {ra0}, {dec0}, {q.radius_deg!r}))"
        )
    if q.kind == "xmatch":
        return (
            "SELECT a.id, b.id, DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) AS d "
            "FROM small AS a JOIN big AS b "
            "ON 1=CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, 1.0/3600))"
        )
    if q.kind == "count":
        return "SELECT COUNT(*) FROM big WHERE mag < 20"
    if q.kind == "topn":
        return "SELECT TOP 10 id, mag FROM big ORDER BY mag, id"
    return "SELECT FLOOR(dec) AS d, COUNT(*) AS n, AVG(mag) AS m FROM big GROUP BY FLOOR(dec)"


def _haversine_sql(ra1: str, dec1: str, ra2: str, dec2: str, cos_dec1: str | None = None) -> str:
    """Great-circle distance in radians (haversine), as SQL."""
    c1 = cos_dec1 or f"cos(radians({dec1}))"
    return (
        f"2 * asin(sqrt(pow(sin(radians({dec2} - {dec1}) / 2), 2) + "
        f"{c1} * cos(radians({dec2})) * pow(sin(radians({ra2} - {ra1}) / 2), 2)))"
    )


def duckdb_sql(q: Query) -> str:
    ra0, dec0 = CONE_CENTRE
    r = q.radius_deg
    if q.kind == "cone":
        where = [f"dec BETWEEN {dec0 - r!r} AND {dec0 + r!r}"]
        if abs(dec0) + r < 89.0:  # an RA window, where it is one interval
            alpha = r / math.cos(math.radians(abs(dec0) + r))
            if ra0 - alpha >= 0 and ra0 + alpha < 360:
                where.append(f"ra BETWEEN {ra0 - alpha!r} AND {ra0 + alpha!r}")
        where.append(
            f"{_haversine_sql(repr(ra0), repr(dec0), 'ra', 'dec', repr(math.cos(math.radians(dec0))))} "
            f"<= {math.radians(r)!r}"
        )
        return "SELECT ra, dec, mag FROM big WHERE " + " AND ".join(where)
    if q.kind == "xmatch":
        r = XM_RADIUS_DEG
        hav = _haversine_sql("a.ra", "a.dec", "b.ra", "b.dec", "a.cos_dec")
        return f"""
WITH a AS (
    SELECT id, ra, dec, cos(radians(dec)) AS cos_dec, CAST(floor(dec / {r!r}) AS BIGINT) + dz AS zone,
           CASE WHEN abs(dec) + {r!r} >= 89.99 THEN 180.0
                ELSE {r!r} / cos(radians(abs(dec) + {r!r})) END AS alpha
    FROM small CROSS JOIN (VALUES (-1), (0), (1)) AS t(dz)),
b AS (SELECT id, ra, dec, CAST(floor(dec / {r!r}) AS BIGINT) AS zone FROM big)
SELECT a.id AS id_a, b.id AS id_b, degrees({hav}) AS d
FROM a JOIN b ON b.zone = a.zone
WHERE b.dec BETWEEN a.dec - {r!r} AND a.dec + {r!r}
  AND least(abs(b.ra - a.ra), 360 - abs(b.ra - a.ra)) <= a.alpha
  AND {hav} <= {math.radians(r)!r}"""
    if q.kind == "count":
        return "SELECT count(*) FROM big WHERE mag < 20"
    if q.kind == "topn":
        return "SELECT id, mag FROM big ORDER BY mag, id LIMIT 10"
    return "SELECT floor(dec) AS d, count(*) AS n, avg(mag) AS m FROM big GROUP BY floor(dec)"


def pg_sql(q: Query, big: str, small: str) -> str:
    ra0, dec0 = CONE_CENTRE
    if q.kind == "cone":
        return (
            f"SELECT ra, dec, mag FROM {big} WHERE q3c_radial_query(ra, dec, {ra0}, {dec0}, {q.radius_deg!r})"
        )
    if q.kind == "xmatch":
        return (
            f"SELECT a.id, b.id, q3c_dist(a.ra, a.dec, b.ra, b.dec) AS d FROM {small} AS a, {big} AS b "
            f"WHERE q3c_join(a.ra, a.dec, b.ra, b.dec, {XM_RADIUS_DEG!r})"
        )
    if q.kind == "count":
        return f"SELECT count(*) FROM {big} WHERE mag < 20"
    if q.kind == "topn":
        return f"SELECT id, mag FROM {big} ORDER BY mag, id LIMIT 10"
    return f"SELECT floor(dec) AS d, count(*) AS n, avg(mag) AS m FROM {big} GROUP BY floor(dec)"


# --------------------------------------------------------------------------------------
# worker side: one process per tool
# --------------------------------------------------------------------------------------


def sql_entry() -> Callable[..., Any] | None:
    """``proxcompute.sql`` (the function), or ``proxcompute.sql.sql`` while the top level does not
    export it yet; None before the SQL front landed."""
    import importlib

    import proxcompute

    fn = getattr(proxcompute, "sql", None)
    if callable(fn):
        return fn
    try:
        return importlib.import_module("proxcompute.sql").sql
    except (ImportError, AttributeError):
        return None


def _columns(result: Any) -> list[np.ndarray]:
    """The result's columns, by position, as numpy arrays (pandas frame or list of tuples)."""
    if isinstance(result, list):  # psycopg rows
        if not result:
            return []
        return [np.asarray(col) for col in zip(*result, strict=True)]
    if hasattr(result, "to_pandas"):  # Arrow
        result = result.to_pandas()
    return [result.iloc[:, i].to_numpy() for i in range(result.shape[1])]


def _save(q: Query, result: Any, path: Path) -> int:
    """Store what the checks need; return the number of rows."""
    cols = _columns(result)
    n = len(cols[0]) if cols else 0
    if q.kind == "cone":
        ra = cols[0].astype(np.float64) if cols else np.empty(0)
        np.savez(path, ra=ra)
    elif q.kind == "xmatch":
        if cols:
            a, b, d = cols[0].astype(np.int64), cols[1].astype(np.int64), cols[2].astype(np.float64)
        else:
            a = b = np.empty(0, np.int64)
            d = np.empty(0)
        np.savez(path, a=a, b=b, d=d)
    elif q.kind == "count":
        np.savez(path, n=np.asarray([int(cols[0][0])]))
    elif q.kind == "topn":
        ids = cols[0].astype(np.int64) if cols else np.empty(0, np.int64)
        np.savez(path, ids=ids)
    else:
        d, cnt, m = (np.asarray(c, dtype=np.float64) for c in cols[:3]) if cols else (np.empty(0),) * 3
        np.savez(path, d=d, n=cnt, m=m)
    return n


def _runners(tool: str, spec: dict) -> tuple[dict[str, Callable[[], Any]], dict]:
    """One callable per query key, and facts about the tool (versions)."""
    queries = [Query(**q) for q in spec["queries"]]
    if tool == "proxcompute":
        import proxcompute

        sql = sql_entry()
        assert sql is not None
        catalogs = {"big": spec["big"], "small": spec["small"]}

        def make(q: Query) -> Callable[[], Any]:
            text = adql(q)
            return lambda: sql(text, catalogs=catalogs).compute()

        return {q.key: make(q) for q in queries}, {"version": getattr(proxcompute, "__version__", "?")}
    if tool == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute("SET parquet_metadata_cache = true")
        for name in ("big", "small"):
            glob = str(Path(spec[f"{name}_dataset"]) / "**" / "*.parquet")
            con.execute(
                f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{glob}', hive_partitioning = false)"
            )
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]

        def make(q: Query) -> Callable[[], Any]:
            text = duckdb_sql(q)
            return lambda: con.execute(text).df()

        return {q.key: make(q) for q in queries}, {"version": duckdb.__version__, "threads": threads}
    if tool == "pg":
        import psycopg

        conn = psycopg.connect(spec["dsn"], autocommit=True)
        server = conn.execute("SHOW server_version").fetchone()[0]
        q3c = conn.execute("SELECT q3c_version()").fetchone()[0]

        def make(q: Query) -> Callable[[], Any]:
            text = pg_sql(q, spec["pg_big"], spec["pg_small"])

            def run() -> list:
                with conn.cursor(binary=True) as cur:  # binary transfer: ~30% less client time
                    cur.execute(text)
                    return cur.fetchall()

            return run

        return {q.key: make(q) for q in queries}, {
            "version": f"PostgreSQL {server}, q3c {q3c}, psycopg {psycopg.__version__}"
        }
    raise ValueError(tool)


def serve(tool: str, spec: dict) -> None:
    """A warm session of one tool, driven by the parent through stdin: one JSON command a line
    (``{"op": "run", "key": ..., "save": bool}`` or ``{"op": "quit"}``), one tagged JSON reply each."""
    import warnings

    warnings.filterwarnings("ignore")

    def reply(obj: dict) -> None:
        sys.stdout.write(RESULT_TAG + json.dumps(obj) + "\n")
        sys.stdout.flush()

    t0 = time.perf_counter()
    runners, facts = _runners(tool, spec)
    reply({"facts": facts, "setup_s": time.perf_counter() - t0})
    queries = {qd["key"]: Query(**qd) for qd in spec["queries"]}
    outdir = Path(spec["outdir"])
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        q = queries[cmd["key"]]
        out: dict[str, Any] = {}
        try:
            t = time.perf_counter()
            result = runners[q.key]()
            out["t"] = time.perf_counter() - t
            if cmd.get("save"):
                out["rows"] = _save(q, result, outdir / f"{tool}-{q.key}.npz")
            del result
        except Exception as exc:  # a refused or failing query is a result too
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            out["error"] = f"{type(exc).__name__}: {msg}"[:300]
        reply(out)


class ToolProcess:
    """One tool's warm session in its own process; its process tree's RSS is sampled throughout."""

    def __init__(self, tool: str, spec: dict) -> None:
        self.tool = tool
        cmd = [sys.executable, str(HERE), "--serve", tool, json.dumps(spec)]
        env = dict(os.environ, PYTHONWARNINGS="ignore", PROXCOMPUTE_PROGRESS="0")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.sampler = TreeSampler(self.proc.pid)
        self.sampler.__enter__()
        self.hello = self._read()

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                raise RuntimeError(f"{self.tool} process exited (status {self.proc.returncode})")
            if line.startswith(RESULT_TAG):
                return json.loads(line[len(RESULT_TAG) :])

    def run(self, key: str, save: bool = False) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": "run", "key": key, "save": save}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> int:
        """Stop the process; return the peak RSS of its tree."""
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.sampler.__exit__(None, None, None)
        return self.sampler.peak_bytes


def run_sessions(tools: list[str], spec: dict, status: dict[str, str]) -> dict[str, dict]:
    """All tools' warm sessions side by side, the tools interleaved query by query and repeat by
    repeat (their order rotating), so that load from elsewhere on the machine hits them alike."""
    procs: dict[str, ToolProcess] = {}
    results: dict[str, dict] = {}
    for tool in tools:
        step(f"{TOOL_NAMES[tool]}: starting its session")
        try:
            procs[tool] = ToolProcess(tool, spec)
        except RuntimeError as exc:
            status[tool] = "failed"
            print(f"  FAILED: {exc}", flush=True)
            continue
        results[tool] = {"queries": {}, **procs[tool].hello}

    def ask(tool: str, key: str, save: bool = False) -> dict | None:
        try:
            return procs[tool].run(key, save)
        except RuntimeError as exc:
            status[tool] = "failed"
            print(f"  FAILED: {exc}", flush=True)
            results[tool]["peak_tree_rss"] = procs.pop(tool).close()
            return None

    for q in QUERIES:
        step(f"query {q.key}: {q.label}")
        live: list[str] = []
        for tool in list(procs):
            r = ask(tool, q.key, save=True)
            if r is None:
                continue
            res = results[tool]["queries"][q.key] = {"times": []}
            if "error" in r:
                res["error"] = r["error"]
                continue
            res["warmup_s"], res["rows"] = r["t"], r["rows"]
            live.append(tool)
        # round-robin, the order rotating; a tool stops at --repeats runs or once its runs of
        # this query have used --budget seconds (at least one run each)
        for rep in range(spec["repeats"]):
            order = live[rep % len(live) :] + live[: rep % len(live)] if live else []
            for tool in order:
                res = results[tool]["queries"][q.key]
                if tool not in procs or "error" in res or sum(res["times"]) >= spec["budget"]:
                    continue
                r = ask(tool, q.key)
                if r is None:
                    continue
                if "error" in r:
                    res["error"] = r["error"]
                else:
                    res["times"].append(r["t"])
        for tool in results:
            if q.key in results[tool]["queries"]:
                print(f"  {tool}: {_fmt_res(results[tool]['queries'][q.key])}", flush=True)
    for tool, proc in procs.items():
        results[tool]["peak_tree_rss"] = proc.close()
    return results


def _fmt_res(res: dict) -> str:
    if "error" in res:
        return "ERROR " + res["error"]
    return (
        f"median {fmt_seconds(statistics.median(res['times']))} of {len(res['times'])} "
        f"(warm-up {fmt_seconds(res['warmup_s'])}), {res['rows']:,} rows"
    )


# --------------------------------------------------------------------------------------
# PostgreSQL: reachability and the load
# --------------------------------------------------------------------------------------


def pg_connect(dsn: str) -> tuple[Any, str | None]:
    """A connection, or None and the reason why not."""
    try:
        import psycopg
    except ImportError:
        return None, 'no PostgreSQL client: .venv/bin/pip install "psycopg[binary]"'
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except Exception as exc:
        return None, f"server not reachable at {dsn} ({str(exc).strip().splitlines()[0]}); try --setup-pg"
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS q3c")
    except Exception as exc:
        conn.close()
        return None, f"no q3c extension on {dsn}: {str(exc).strip().splitlines()[0]}"
    return conn, None


def setup_pg() -> str:
    step(f"starting PostgreSQL: {SETUP_PG}")
    t = time.perf_counter()
    proc = subprocess.run(["bash", str(SETUP_PG)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"setup_postgres.sh failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    lines = proc.stdout.strip().splitlines()
    print(f"  {lines[-2] if len(lines) > 1 else ''} ({time.perf_counter() - t:.1f} s)", flush=True)
    return lines[-1]


def pg_load(conn: Any, table: str, dataset: Path, reload: bool) -> dict:
    """Load ``id, ra, dec, mag`` of a HATS dataset into ``table`` (COPY), index, CLUSTER, ANALYZE.

    Cached: the table's comment records the source and the timings; a table loaded from the same
    files is reused (its recorded timings are reported, marked cached)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    files = sorted(p for p in dataset.rglob("*.parquet"))
    source = json.dumps(
        [str(dataset.resolve()), sum(f.stat().st_size for f in files), max(f.stat().st_mtime for f in files)]
    )
    schema, name = table.split(".")
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    row = conn.execute(
        "SELECT obj_description(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    ).fetchone()
    if row and row[0] and not reload:
        meta = json.loads(row[0])
        if meta.get("source") == source:
            meta["timings"]["cached"] = True
            return meta["timings"]
    timings: dict[str, Any] = {}
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(
        f"CREATE TABLE {table} (id bigint, ra double precision, dec double precision, mag double precision)"
    )
    t = time.perf_counter()
    export = 0.0
    rows = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} (id, ra, dec, mag) FROM STDIN (FORMAT csv)") as copy:
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(
                batch_size=500_000, columns=["id", "ra", "dec", "mag"]
            ):
                te = time.perf_counter()
                buf = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch]), buf, pacsv.WriteOptions(include_header=False))
                export += time.perf_counter() - te
                copy.write(buf.getbuffer())
                rows += batch.num_rows
    timings["copy_s"] = time.perf_counter() - t
    timings["of which csv_s"] = export
    for key, sql in (
        ("index_s", f"CREATE INDEX ON {table} (q3c_ang2ipix(ra, dec))"),
        ("cluster_s", f"CLUSTER {table} USING {name}_q3c_ang2ipix_idx"),
        ("analyze_s", f"ANALYZE {table}"),
    ):
        t = time.perf_counter()
        conn.execute(sql)
        timings[key] = time.perf_counter() - t
    timings["rows"] = rows
    meta = {"source": source, "timings": timings}
    conn.execute(f"COMMENT ON TABLE {table} IS {_pg_literal(json.dumps(meta))}")
    return timings


def _pg_literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


# --------------------------------------------------------------------------------------
# truth and checks
# --------------------------------------------------------------------------------------


class Truth:
    """Brute-force answers over all rows of both catalogs."""

    def __init__(self, big_dataset: Path, small_dataset: Path) -> None:
        import pyarrow.parquet as pq

        self.big = Reference.load(sorted(str(p) for p in big_dataset.rglob("*.parquet")))
        small = pq.read_table(
            sorted(str(p) for p in small_dataset.rglob("*.parquet")), columns=["id", "ra", "dec"]
        )
        self.s_ids = small["id"].to_numpy()
        self.s_ra = small["ra"].to_numpy()
        self.s_dec = small["dec"].to_numpy()
        self._b_order = np.argsort(self.big.ids)
        self._s_order = np.argsort(self.s_ids)

    def cone(self, radius_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """Sorted ra values inside the cone, and those within 1e-6" of its edge."""
        inside, edge = self.big.cone(*CONE_CENTRE, radius_deg * 3600.0)
        return np.sort(self._big_col(self.big.ra, inside)), self._big_col(self.big.ra, edge)

    def _big_col(self, col: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return col[self._b_order[np.searchsorted(self.big.ids, ids, sorter=self._b_order)]]

    def _small_col(self, col: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return col[self._s_order[np.searchsorted(self.s_ids, ids, sorter=self._s_order)]]

    def xmatch(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys (small id * 2^32 + big id) of the pairs within 1", and of those within 1e-6" of 1"."""
        from scipy.spatial import cKDTree

        from bench_foundation import _xyz

        r_arcsec = XM_RADIUS_DEG * 3600.0
        chord = 2.0 * np.sin(np.radians((r_arcsec + EDGE_ARCSEC) / 3600.0) / 2.0)
        big_tree = cKDTree(self.big.xyz, balanced_tree=False, compact_nodes=False)
        small_tree = cKDTree(_xyz(self.s_ra, self.s_dec), balanced_tree=False, compact_nodes=False)
        m = small_tree.sparse_distance_matrix(big_tree, chord * 1.0001, output_type="ndarray")
        i, j = m["i"], m["j"]
        sep = _sep_arcsec(self.s_ra[i], self.s_dec[i], self.big.ra[j], self.big.dec[j])
        keys = _pair_keys(self.s_ids[i], self.big.ids[j])
        return np.sort(keys[sep <= r_arcsec]), keys[np.abs(sep - r_arcsec) <= EDGE_ARCSEC]

    def pair_sep(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _sep_arcsec(
            self._small_col(self.s_ra, a),
            self._small_col(self.s_dec, a),
            self._big_col(self.big.ra, b),
            self._big_col(self.big.dec, b),
        )

    def count(self) -> int:
        return int((self.big.mag < 20.0).sum())

    def topn(self, n: int = 10) -> np.ndarray:
        """Ids of the first ``n`` rows ordered by (mag, id)."""
        return self.big.ids[np.lexsort((self.big.ids, self.big.mag))[:n]].astype(np.int64)

    def groupby(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keys, inv, n = np.unique(np.floor(self.big.dec), return_inverse=True, return_counts=True)
        return keys, n, np.bincount(inv, weights=self.big.mag) / n


def _pair_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) * (1 << 32) + b.astype(np.int64)


def check(q: Query, path: Path, truth: Truth, answers: dict) -> tuple[bool, str]:
    """Compare a tool's stored answer with the truth; return (ok, why not)."""
    got = np.load(path)
    if q.kind == "cone":
        inside, edge = answers[q.key]
        ra = np.sort(got["ra"])
        diff = np.setxor1d(ra, inside)
        ok = len(np.unique(ra)) == len(ra) and bool(np.isin(diff, edge).all())
        return ok, "" if ok else f"{len(ra):,} rows, brute force {len(inside):,}, {len(diff)} differ"
    if q.kind == "xmatch":
        inside, edge = answers[q.key]
        keys = _pair_keys(got["a"], got["b"])
        diff = np.setxor1d(keys, inside)
        if len(np.unique(keys)) != len(keys) or not np.isin(diff, edge).all():
            return False, f"{len(keys):,} pairs, KD-tree {len(inside):,}, {len(diff)} differ"
        err = np.abs(got["d"] * 3600.0 - truth.pair_sep(got["a"], got["b"]))
        ok = bool((err <= 1e-5).all()) if len(err) else True
        return ok, "" if ok else f'distances off by up to {err.max():.2e}"'
    if q.kind == "count":
        ok = int(got["n"][0]) == answers[q.key]
        return ok, "" if ok else f"{int(got['n'][0]):,} != {answers[q.key]:,}"
    if q.kind == "topn":
        ok = np.array_equal(got["ids"], answers[q.key])
        return ok, "" if ok else f"ids {got['ids'].tolist()} != {answers[q.key].tolist()}"
    keys, n, m = answers[q.key]
    order = np.argsort(got["d"])
    ok = (
        np.array_equal(got["d"][order], keys)
        and np.array_equal(got["n"][order], n)
        and np.allclose(got["m"][order], m, rtol=1e-9, atol=0)
    )
    return ok, "" if ok else "groups, counts or means differ from numpy"


# --------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------


def _median(res: dict | None) -> float | None:
    if not res or "error" in res or not res.get("times"):
        return None
    return statistics.median(res["times"])


def build_table(results: dict[str, dict], status: dict[str, str], checks: dict, rows: dict) -> list[str]:
    header = [
        "query",
        "rows",
        *[TOOL_NAMES[t] for t in TOOLS],
        "best peer / proxcompute",
        "target",
        "check",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for q in QUERIES:
        cells = [q.label, f"{rows.get(q.key, 0):,}"]
        times = {}
        for tool in TOOLS:
            if tool in status:
                cells.append(status[tool])
                continue
            res = results.get(tool, {}).get("queries", {}).get(q.key)
            t = _median(res)
            times[tool] = t
            if res and "error" in res:
                cells.append("error")
            else:
                n = len(res["times"]) if res else 0
                cells.append(fmt_seconds(t) + ("" if n >= 3 else f" (n={n})"))
        peers = [t for k, t in times.items() if k != "proxcompute" and t]
        ours = times.get("proxcompute")
        cells.append(f"{min(peers) / ours:.2f}x" if (ours and peers) else "—")
        cells.append(q.target + ((" ✔" if ours < q.limit else " ✘") if (ours and q.limit > 0) else ""))
        qc = checks.get(q.key, {})
        cells.append(" ".join(f"{'✓' if ok else '✗'}{_short(t)}" for t, (ok, _) in qc.items()) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _short(tool: str) -> str:
    return {"proxcompute": "ours", "duckdb": "duck", "pg": "pg"}[tool]


def step(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "?"


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per query, after one warm-up")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds of timed repeats per query and tool")
    ap.add_argument("--quick", action="store_true", help="1M x 100k rows instead of 10M x 1M (smoke run)")
    ap.add_argument("--big-rows", type=int, default=None)
    ap.add_argument("--small-rows", type=int, default=None)
    ap.add_argument("--workdir", type=Path, default=REPO / "bench-data")
    ap.add_argument(
        "--pg", default=DEFAULT_DSN, metavar="DSN", help="PostgreSQL with q3c (default: %(default)s)"
    )
    ap.add_argument("--setup-pg", action="store_true", help="run scripts/postgres/setup_postgres.sh first")
    ap.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    ap.add_argument("--pg-reload", action="store_true", help="reload the PG tables even if cached")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    ap.add_argument("--markdown", type=Path, default=None, help="also write the report here")
    ap.add_argument("--serve", nargs=2, metavar=("TOOL", "JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve[0], json.loads(args.serve[1]))
        return 0

    t_run = time.perf_counter()
    rev = _git_rev()  # the code the tool processes import, before any later commit
    big_rows = args.big_rows or (1_000_000 if args.quick else 10_000_000)
    small_rows = args.small_rows or (100_000 if args.quick else 1_000_000)
    load_start = os.getloadavg()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    step(f"data: {big_rows:,} x {small_rows:,} rows in {workdir} (load average {_loads(load_start)})")
    small_col, big_col, _ = _prepare(workdir, big_rows, small_rows)
    big_ds, small_ds = _primary_dataset(big_col), _primary_dataset(small_col)
    outdir = workdir / "sql-results"
    outdir.mkdir(exist_ok=True)
    for old in outdir.glob("*.npz"):
        old.unlink()

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    status: dict[str, str] = {t: "not run" for t in TOOLS if t not in tools}
    if "proxcompute" in tools and sql_entry() is None:
        status["proxcompute"] = "n/a (not landed)"
        print("proxcompute.sql does not exist yet: its column is n/a", flush=True)

    pg_info: dict[str, Any] = {}
    spec: dict[str, Any] = {
        "big": str(big_col),
        "small": str(small_col),
        "big_dataset": str(big_ds),
        "small_dataset": str(small_ds),
        "queries": [q.__dict__ for q in QUERIES],
        "repeats": args.repeats,
        "budget": args.budget,
        "outdir": str(outdir),
        "dsn": args.pg,
        "pg_big": f"bench_sql.big_{big_rows}",
        "pg_small": f"bench_sql.small_{small_rows}_of_{big_rows}",
    }
    if "pg" in tools and args.no_pg:
        status["pg"] = "skipped (--no-pg)"
    elif "pg" in tools:
        if args.setup_pg:
            spec["dsn"] = setup_pg()
        conn, why = pg_connect(spec["dsn"])
        if conn is None:
            status["pg"] = "skipped"
            pg_info["skipped"] = why
            print(f"PostgreSQL skipped: {why}", flush=True)
        else:
            for key, ds in (("big", big_ds), ("small", small_ds)):
                step(f"PostgreSQL: loading {spec['pg_' + key]} from {ds}")
                pg_info[key] = pg_load(conn, spec["pg_" + key], ds, args.pg_reload)
                print(f"  {_fmt_load(pg_info[key])}", flush=True)
            conn.close()

    step("brute-force answers (numpy, scipy KD-tree)")
    t = time.perf_counter()
    truth = Truth(big_ds, small_ds)
    answers: dict[str, Any] = {}
    rows: dict[str, int] = {}
    for q in QUERIES:
        if q.kind == "cone":
            answers[q.key] = truth.cone(q.radius_deg)
            rows[q.key] = len(answers[q.key][0])
        elif q.kind == "xmatch":
            answers[q.key] = truth.xmatch()
            rows[q.key] = len(answers[q.key][0])
        elif q.kind == "count":
            answers[q.key] = truth.count()
            rows[q.key] = 1
        elif q.kind == "topn":
            answers[q.key] = truth.topn()
            rows[q.key] = 10
        else:
            answers[q.key] = truth.groupby()
            rows[q.key] = len(answers[q.key][0])
    print(f"  {time.perf_counter() - t:.1f} s; rows: {rows}", flush=True)
    del truth.big.xyz

    results = run_sessions([t for t in TOOLS if t not in status], spec, status)
    checks: dict[str, dict[str, tuple[bool, str]]] = {}
    failures: list[str] = [f"{t}: the process failed" for t, why in status.items() if why == "failed"]
    for tool in results:
        for q in QUERIES:
            res = results[tool]["queries"].get(q.key)
            if res is None:
                continue
            if "error" in res:
                checks.setdefault(q.key, {})[tool] = (False, res["error"])
                failures.append(f"{tool} {q.key}: {res['error']}")
                continue
            ok, why = check(q, outdir / f"{tool}-{q.key}.npz", truth, answers)
            checks.setdefault(q.key, {})[tool] = (ok, why)
            if not ok:
                failures.append(f"{tool} {q.key}: {why}")
                print(f"  CHECK FAILED: {tool} {q.key}: {why}", flush=True)

    raw = {
        "results": results,
        "status": status,
        "pg": pg_info,
        "rows": rows,
        "failures": failures,
        "checks": {k: {t: list(v) for t, v in c.items()} for k, c in checks.items()},
        "args": {k: str(v) for k, v in vars(args).items()},
        "git": rev,
    }
    (workdir / f"sql-results-{big_rows}.json").write_text(json.dumps(raw, indent=1, default=str))
    wall = time.perf_counter() - t_run
    lines = report(
        args, big_rows, small_rows, results, status, checks, rows, pg_info, failures, wall, load_start, rev
    )
    text = "\n".join(lines)
    print("\n" + text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")
    return 1 if failures else 0


def report(
    args, big_rows, small_rows, results, status, checks, rows, pg_info, failures, wall, load_start, rev: str
) -> list[str]:
    import duckdb

    lines = [
        f"SQL front, {big_rows:,}-row survey (big) and {small_rows:,} rows drawn from it (small); "
        f"warm medians of {args.repeats} after one warm-up; proxcompute at {rev}; "
        f"DuckDB {duckdb.__version__}; Python {platform.python_version()}, {os.cpu_count()} CPUs.",
        "",
        *build_table(results, status, checks, rows),
        "",
        "best peer / proxcompute = the faster peer's time / proxcompute's (> 1: proxcompute faster); "
        "(n=k): only k timed repeats fit the time budget; "
        "check: ✓ = equal to brute force (numpy / KD-tree).",
    ]
    details = []
    spread = []
    for q in QUERIES:
        parts = []
        for tool, res in results.items():
            times = res["queries"].get(q.key, {}).get("times")
            if times:
                parts.append(f"{_short(tool)} {fmt_seconds(min(times))}–{fmt_seconds(max(times))}")
        if parts:
            spread.append(f"{q.key}: " + ", ".join(parts))
    if spread:
        details.append("spread (fastest–slowest timed repeat): " + "; ".join(spread))
    for tool, res in results.items():
        facts = ", ".join(f"{k} {v}" for k, v in res.get("facts", {}).items())
        details.append(
            f"{TOOL_NAMES[tool]}: peak RSS of the process tree {fmt_bytes(res['peak_tree_rss'])}"
            f"{' (client only)' if tool == 'pg' else ''}; setup {fmt_seconds(res['setup_s'])}; {facts}"
        )
    if "skipped" in pg_info:
        details.append(f"PG + Q3C skipped: {pg_info['skipped']}")
    for key in ("big", "small"):
        if key in pg_info:
            details.append(f"PG load of {key}: {_fmt_load(pg_info[key])}")
    for tool, why in status.items():
        if why not in ("not run",) and tool != "pg":
            details.append(f"{TOOL_NAMES[tool]}: {why}")
    for f in failures:
        details.append(f"FAILED: {f}")
    details.append(
        f"load average {_loads(load_start)} at start, {_loads(os.getloadavg())} at the end; "
        f"whole run {wall:.0f} s"
    )
    return lines + [""] + [f"- {d}" for d in details]


def _fmt_load(t: dict) -> str:
    total = sum(t.get(k, 0.0) for k in ("copy_s", "index_s", "cluster_s", "analyze_s"))
    return (
        f"{t.get('rows', 0):,} rows: COPY {t['copy_s']:.1f} s "
        f"(of which CSV encoding {t['of which csv_s']:.1f} s), "
        f"q3c index {t['index_s']:.1f} s, CLUSTER {t['cluster_s']:.1f} s, ANALYZE {t['analyze_s']:.1f} s; "
        f"total {total:.1f} s{' (cached from an earlier run)' if t.get('cached') else ''}"
    )


def _loads(x) -> str:
    return " / ".join(f"{v:.1f}" for v in x)


def _primary_dataset(collection: Path) -> Path:
    """The ``dataset`` directory of a collection's primary catalog (margins left out)."""
    props = (collection / "collection.properties").read_text().splitlines()
    name = next(line.split("=", 1)[1].strip() for line in props if line.startswith("hats_primary_table_url="))
    return collection / name / "dataset"


if __name__ == "__main__":
    sys.exit(main())
