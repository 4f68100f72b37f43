"""``proxcompute calibrate``: measure the cost model's per-operator rates on this machine.

A seeded catalog (:func:`proxcompute.synthetic.write_synthetic`: background, a band, dense
clusters) is ingested into a temporary directory, then a set of probe queries runs, each
chosen to exercise a few operators: a count from stored row counts, a tiny cone, scans of
one and of five columns, a predicate that keeps every row, a wide region, DuckDB's count and
GROUP BY over the files, a per-partition GROUP BY (a TAP job's path), two crossmatches with
different left sizes, a gathered query, a user function and writing a VOTable. Each probe's
median wall time is recorded.

The model is linear in its rates: :func:`~proxcompute.execute.estimate_cost` of a probe with
one rate set to 1 and the others to 0 is that rate's coefficient for the probe. The rates
are the non-negative least-squares fit (``scipy.optimize.nnls``) of the probes' times,
weighted by 1/time so that every probe counts by its relative error; a rate the probes
cannot pin down (fitted to 0) keeps a tenth of its round default (``CostRates()``), so that
no operator is ever free. The fit runs the same estimate the service's quote runs.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # imported where used: the CLI registers calibrate_cli without them
    from proxcompute.execute.cost_rates import CostRates

__all__ = ["Probe", "ProbeResult", "calibrate", "calibrate_cli", "calibrate_command", "fit_rates"]

SEED = 7


@dataclass(frozen=True)
class Probe:
    """One calibration query: what to estimate, and how to run it."""

    name: str
    subject: Any
    """What :func:`~proxcompute.execute.estimate_cost` is given (a Catalog or SqlResult)."""
    run: Callable[[], Any]
    observed: bool = False
    write_result: bool = False


@dataclass(frozen=True)
class ProbeResult:
    """A probe's measured median seconds and the fitted model's estimate."""

    name: str
    measured_s: float
    estimated_s: float


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm: footers, kernels, DuckDB
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _observed(fn: Callable[[], Any]) -> Callable[[], Any]:
    from proxcompute.execute import TaskObserver, observe

    def run() -> Any:
        with observe(TaskObserver()):
            return fn()

    return run


def _identity(df):
    return df


def _targets(sky: Path, rows: int):
    """Crossmatch targets: a tenth of the catalog's rows, moved by up to 0.5" (most match)."""
    import numpy as np
    import pyarrow.dataset as ds

    table = ds.dataset(sky / "sky" / "dataset", format="parquet", exclude_invalid_files=True).to_table(
        columns=["id", "ra", "dec"]
    )
    df = table.to_pandas().iloc[:: 10].reset_index(drop=True)
    rng = np.random.default_rng(SEED)
    off, ang = rng.uniform(0, 0.5 / 3600, len(df)), rng.uniform(0, 2 * np.pi, len(df))
    df["dec"] = np.clip(df["dec"] + off * np.cos(ang), -90, 90)
    df["ra"] = (df["ra"] + off * np.sin(ang) / np.maximum(np.cos(np.radians(df["dec"])), 1e-6)) % 360
    return df


def _probes(sky: Path, rows: int) -> list[Probe]:
    import proxcompute as pc
    from proxcompute.formats import write_table

    cat = pc.open_catalog(sky)
    cats = {"sky": cat}
    targets = _targets(sky, rows)
    left = pc.from_dataframe(targets, name="targets")
    half = pc.from_dataframe(targets.iloc[::4], name="targets")
    q_count = "SELECT COUNT(*) AS n FROM sky WHERE mag < 20"
    q_group = "SELECT flag, COUNT(*) AS n, AVG(mag) AS mean_mag FROM sky GROUP BY flag"
    q_cone_group = (q_group.replace(" GROUP BY", " WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
                                    "CIRCLE('ICRS', 200, 20, 10)) GROUP BY"))
    q_gather = "SELECT COUNT(*) AS n FROM (SELECT id, mag FROM sky WHERE mag < 19) AS s"

    def sql(q: str):
        return pc.sql(q, catalogs=cats)

    two = cat[["id", "ra"]]

    def write_two() -> None:
        table = pa_table(two)
        write_table(table, table.schema, io.BytesIO(), "votable")

    def pa_table(c):
        import pyarrow as pa

        return pa.Table.from_pandas(c.compute(), preserve_index=False)

    one_col = cat[["id"]]
    five = cat[["id", "ra", "dec", "mag", "color"]]
    kept_all = cat.where("mag < 99")[["id"]]
    user = cat.map_partitions(_identity, meta=cat.plan.source.schema)
    return [
        Probe("count(*) from stored counts", sql("SELECT COUNT(*) AS n FROM sky"),
              lambda: sql("SELECT COUNT(*) AS n FROM sky").compute()),
        Probe('1" cone', cat.cone_search(45.0, 30.0, 1.0), lambda: cat.cone_search(45.0, 30.0, 1.0).compute()),
        Probe("1' cone on a cluster", cat.cone_search(45.0, 30.0, 60.0),
              lambda: cat.cone_search(45.0, 30.0, 60.0).compute()),
        Probe("no row group matches", cat.where("mag > 1000"), lambda: cat.where("mag > 1000").compute()),
        Probe("scan of 1 column", one_col, one_col.compute),
        Probe("scan of 5 columns", five, five.compute),
        Probe("predicate keeping all rows", kept_all, kept_all.compute),
        Probe("20 deg cone", cat.cone_search(200.0, 20.0, 72_000.0)[["id"]],
              cat.cone_search(200.0, 20.0, 72_000.0)[["id"]].compute),
        Probe("count(mag < 20) (DuckDB)", sql(q_count), lambda: sql(q_count).compute()),
        Probe("GROUP BY (DuckDB over files)", sql(q_group), lambda: sql(q_group).compute()),
        Probe("GROUP BY per partition (a job)", sql(q_group), _observed(lambda: sql(q_group).compute()),
              observed=True),
        Probe("GROUP BY in a 10 deg cone (a job)", sql(q_cone_group),
              _observed(lambda: sql(q_cone_group).compute()), observed=True),
        Probe("crossmatch", left.crossmatch(cat, radius_arcsec=1.0),
              left.crossmatch(cat, radius_arcsec=1.0).compute),
        Probe("crossmatch, a quarter of the left rows", half.crossmatch(cat, radius_arcsec=1.0),
              half.crossmatch(cat, radius_arcsec=1.0).compute),
        Probe("gathered query (DuckDB)", sql(q_gather), lambda: sql(q_gather).compute()),
        Probe("user function", user, user.compute),
        Probe("2 columns written as VOTable", two, write_two, write_result=True),
    ]  # fmt: skip


def fit_rates(
    probes: list[Probe], measured: list[float], *, workers: int, measured_on: str, base: CostRates | None = None
) -> CostRates:
    """The non-negative least-squares rates for ``measured`` seconds (see the module docstring);
    a rate the probes leave at 0 keeps a tenth of ``base``'s (default: the class's round
    defaults, so that calibrating again does not shrink it further)."""
    import numpy as np
    from scipy.optimize import nnls

    from proxcompute.execute import CostRates, estimate_cost

    base = base or CostRates()

    names = CostRates.rate_names()
    zero = CostRates(**{n: 0.0 for n in names})
    a = np.zeros((len(probes), len(names)))
    for j, name in enumerate(names):
        unit = zero.with_rates(**{name: 1.0})
        for i, p in enumerate(probes):
            a[i, j] = estimate_cost(p.subject, rates=unit, workers=workers, observed=p.observed,
                                    write_result=p.write_result).seconds  # fmt: skip
    t = np.asarray(measured, dtype=float)
    w = 1.0 / np.maximum(t, 1e-4)
    scale = np.maximum(a.max(axis=0), 1e-30)  # columns of similar size for the solver
    x, _ = nnls(a * w[:, None] / scale, t * w)
    x = x / scale
    fitted = {
        n: float(v) if v > 0 and a[:, j].any() else getattr(base, n) / 10
        for j, (n, v) in enumerate(zip(names, x, strict=True))
    }
    return CostRates(**fitted, measured_on=measured_on)


def calibrate(
    *, rows: int = 1_000_000, workdir: str | os.PathLike | None = None, repeats: int = 5, progress: Any = None
) -> tuple[CostRates, list[ProbeResult]]:
    """Measure this machine's rates on a seeded catalog of ``rows`` rows.

    Parameters
    ----------
    rows
        Rows of the generated catalog (the crossmatch's left side has a tenth as many).
    workdir
        Where to write it (default: a temporary directory, removed at the end).
    repeats
        Timed runs of each probe (after one warm-up run); the median is kept.
    progress
        ``progress(description, done, total)``, called as the steps finish.

    Returns
    -------
    (CostRates, list of ProbeResult)
        The fitted rates, and each probe's measured and fitted-estimate seconds.
    """
    import proxcompute as pc
    from proxcompute.execute import estimate_cost, worker_threads
    from proxcompute.synthetic import write_synthetic

    def tell(what: str, done: int, total: int) -> None:
        if progress is not None:
            progress(what, done, total)

    own = workdir is None
    base = Path(tempfile.mkdtemp(prefix="proxcompute-calibrate-")) if own else Path(workdir)
    try:
        base.mkdir(parents=True, exist_ok=True)
        tell("generating and ingesting a seeded catalog", 0, 1)
        write_synthetic(rows, 2, base / "input", seed=SEED)
        pc.ingest(base / "input", base / "sky", max_rows=max(10_000, rows // 12), margin_arcsec=2.0,
                  overwrite=True, show_progress=False)  # fmt: skip
        probes = _probes(base / "sky", rows)
        measured = []
        for k, p in enumerate(probes):
            tell(p.name, k, len(probes))
            measured.append(_median_seconds(p.run, repeats))
        tell("fitting the rates", len(probes), len(probes))
        workers = worker_threads()
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        rates = fit_rates(probes, measured, workers=workers, measured_on=(
            f"proxcompute calibrate on {os.uname().nodename}, {os.cpu_count()} cores, {stamp} UTC, "
            f"{rows:,} rows, load {os.getloadavg()[0]:.1f}"))  # fmt: skip
        results = [
            ProbeResult(p.name, m, estimate_cost(p.subject, rates=rates, workers=workers, observed=p.observed,
                                                  write_result=p.write_result).seconds)
            for p, m in zip(probes, measured, strict=True)
        ]  # fmt: skip
        return rates, results
    finally:
        if own:
            shutil.rmtree(base, ignore_errors=True)


def calibrate_command(
    out: Path | None = None, rows: int = 1_000_000, workdir: Path | None = None, console: Any = None
) -> Path:
    """What ``proxcompute calibrate`` does: measure, show the fit, write the rates file."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from proxcompute.errors import ProxError
    from proxcompute.execute.cost_rates import default_rates_path, save_rates

    if rows < 100_000:
        raise ProxError(f"--rows must be at least 100000 (too few rows measure only overheads), got {rows}")
    console = console or Console(stderr=True, highlight=False)
    target = Path(out) if out is not None else default_rates_path()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("calibrating", total=None)

        def step(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        rates, results = calibrate(rows=rows, workdir=workdir, progress=step)
    table = Table(title="probes: measured (median) and the fitted model's estimate")
    for col in ("probe", "measured", "estimated", "ratio"):
        table.add_column(col, justify="left" if col == "probe" else "right")
    for r in results:
        table.add_row(r.name, f"{r.measured_s * 1e3:.1f} ms", f"{r.estimated_s * 1e3:.1f} ms",
                      f"{r.estimated_s / max(r.measured_s, 1e-9):.2f}")  # fmt: skip
    console.print(table)
    try:
        save_rates(rates, target)
    except OSError as exc:
        raise ProxError(f"cannot write the cost rates file {target}: {exc.strerror or exc}") from None
    console.print(f"rates written to {target} ({rates.measured_on}); proxcompute serve reads them")
    return target


def calibrate_cli(
    out: Annotated[
        Path | None, typer.Option("--out", help="Rates file (default: cost-rates.json in the user's config dir).")
    ] = None,
    rows: Annotated[int, typer.Option(help="Rows of the generated catalog the probes run on.")] = 1_000_000,
) -> None:
    """Measure the cost model's per-operator rates on this machine (seconds) for serve's quotes."""
    from rich.console import Console

    calibrate_command(out=out, rows=rows, console=Console(stderr=True, highlight=False))
