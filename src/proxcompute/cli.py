"""The ``proxcompute`` command line: wiring only (parse, call the Python API, print)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from proxcompute.errors import ProxError

app = typer.Typer(
    name="proxcompute",
    help="Data-proximate compute for very large sky catalogs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _add_commands_of_other_modules() -> None:
    from proxcompute.calibrate import calibrate_cli
    from proxcompute.cluster.cli import cluster_app

    app.add_typer(
        cluster_app, name="cluster", help="Cluster profiles and clusters: list, show (with the job script), up, status, down."
    )
    app.command("calibrate")(calibrate_cli)


_add_commands_of_other_modules()


@contextlib.contextmanager
def _on_cluster(profile: str | None):
    """``proxcompute.cluster(profile)`` for the duration of a command (None: no cluster)."""
    if profile is None:
        yield None
        return
    from proxcompute.cluster import cluster

    _console(stderr=True).print(f"using cluster profile {profile!r} ...")
    with cluster(profile) as client:
        yield client


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


@app.command()
def ingest(
    inputs: Annotated[
        list[str], typer.Argument(help="Parquet/CSV/FITS/VOTable files, directories or globs.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output catalog (collection) directory.")],
    name: Annotated[
        str | None, typer.Option(help="Catalog name (default: the output directory's name).")
    ] = None,
    ra_column: Annotated[str, typer.Option(help="Right ascension column (degrees).")] = "ra",
    dec_column: Annotated[str, typer.Option(help="Declination column (degrees).")] = "dec",
    max_rows: Annotated[int, typer.Option(help="Most rows in one partition.")] = 1_000_000,
    margin_arcsec: Annotated[
        float, typer.Option(help="Margin width for edge-correct crossmatch (0: none).")
    ] = 10.0,
    workers: Annotated[int | None, typer.Option(help="Local Dask workers (default: one per core).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted ingest.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    drop_invalid: Annotated[
        bool, typer.Option("--drop-invalid", help="Skip rows with NaN/inf or |dec| > 90 coordinates.")
    ] = False,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Run on this cluster profile.")] = None,
    index_column: Annotated[
        list[str] | None,
        typer.Option("--index-column", help="Also build an index catalog of this column (repeatable)."),
    ] = None,
) -> None:
    """Ingest tables into a HEALPix-partitioned, HATS-compatible catalog (with margin)."""
    from proxcompute.ingest import ingest as run_ingest

    with _on_cluster(cluster) as client:
        result = run_ingest(
            inputs,
            out,
            name=name,
            ra_column=ra_column,
            dec_column=dec_column,
            max_rows=max_rows,
            margin_arcsec=margin_arcsec,
            workers=workers,
            resume=resume,
            overwrite=overwrite,
            drop_invalid=drop_invalid,
            client=client,
            index_columns=index_column or (),
        )
    _console().print(str(result))


@app.command("index")
def index_command(
    catalog: Annotated[Path, typer.Argument(help="Catalog or collection directory.")],
    column: Annotated[str, typer.Option("--column", help="Column to index (ids, names).")],
    out: Annotated[
        Path | None, typer.Option(help="Index catalog directory (default: NAME_COLUMN_index next to the catalog).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Local threads (default: one per core).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing index.")] = False,
) -> None:
    """Build a HATS index catalog of a column, for id_search and joins (LSDB reads it too)."""
    from proxcompute.ingest.index import build_index

    _console().print(str(build_index(catalog, column, out=out, overwrite=overwrite, workers=workers)))


_CATALOG_HELP = "Catalog or collection directory, or a URL (https://..., s3://...; needs the [remote] extra)."


@app.command()
def info(
    catalog: Annotated[str, typer.Argument(help=_CATALOG_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Describe a catalog from its metadata (no row data is read)."""
    from proxcompute.catalog import open_catalog

    cat = open_catalog(catalog)
    summary = catalog_summary(cat)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.table import Table

    con = _console()
    con.print(f"[bold]{summary['name']}[/bold]  {summary['path']}")
    con.print(
        f"rows: {summary['rows']:,}   partitions: {summary['partitions']}   ra/dec: {summary['ra_column']}/{summary['dec_column']}"
    )
    if summary["margin"]:
        m = summary["margin"]
        con.print(f"margin: {m['name']} ({m['threshold_arcsec']:g} arcsec, {m['rows']:,} rows)")
    else:
        con.print("margin: none")
    orders = Table("order", "partitions", title="partitions by order")
    for order, n in summary["orders"].items():
        orders.add_row(str(order), str(n))
    con.print(orders)
    for line in summary["collection"]["lines"] if summary["collection"] else []:
        con.print(f"collection: {line}")
    cols = Table("column", "type", title="columns")
    for col, typ in summary["columns"].items():
        cols.add_row(col, typ)
        for sub, subtyp in summary["nested_fields"].get(col, {}).items():
            cols.add_row(f"  {sub}", subtyp)
    con.print(cols)


def catalog_summary(cat) -> dict:
    """A JSON-ready summary of a Catalog's metadata (:func:`proxcompute.catalog._display.catalog_summary`)."""
    from proxcompute.catalog._display import catalog_summary as summary

    return summary(cat)


def _write_table(df, out: Path) -> None:
    from proxcompute.formats import write_file

    write_file(df, out)  # format from the suffix, written atomically


@app.command()
def cone(
    catalog: Annotated[str, typer.Argument(help=_CATALOG_HELP)],
    ra: Annotated[float, typer.Option(help="Centre right ascension, degrees.")],
    dec: Annotated[float, typer.Option(help="Centre declination, degrees.")],
    radius_arcsec: Annotated[float, typer.Option(help="Cone radius, arcsec.")],
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns to return.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write rows to FILE (.parquet or .csv).")] = None,
) -> None:
    """Rows within a cone: a count and a preview, or a file with --out."""
    from proxcompute.catalog import open_catalog

    _check_out(out)
    cat = open_catalog(catalog).cone_search(ra, dec, radius_arcsec)
    if columns:
        cat = cat[[c.strip() for c in columns.split(",") if c.strip()]]
    df = cat.compute()
    con = _console()
    if out is not None:
        _write_table(df, out)
        con.print(f"{len(df):,} rows written to {out}")
        return
    con.print(f"{len(df):,} rows")
    if len(df):
        con.print(df.head(10).to_string(index=False))


def _check_out(out: Path | None) -> None:
    """Refuse an --out whose name is no writable table format before any work is done."""
    from proxcompute.formats import WRITABLE, format_of

    if out is not None and format_of(out) not in WRITABLE:
        raise ProxError(f"--out must end in .parquet or .csv (or .tsv, .vot), got {out.name!r}")


def _open_side(location: str, what: str):
    """A catalog directory or URL, or a table file (a target list) read into memory."""
    from proxcompute.catalog import from_dataframe, open_catalog
    from proxcompute.storage.location import is_url

    if is_url(location):
        return open_catalog(location)
    path = Path(location)
    if path.is_dir():
        return open_catalog(path)
    if not path.exists():
        raise ProxError(f"{what} {path} does not exist")
    from proxcompute.formats import read_table

    return from_dataframe(read_table(path, what=what), name=path.name.split(".")[0])


@app.command()
def crossmatch(
    left: Annotated[
        str, typer.Argument(help="Left catalog directory or URL, or a table file (e.g. a target list).")
    ],
    right: Annotated[str, typer.Argument(help="Right catalog directory or URL, or a table file.")],
    radius_arcsec: Annotated[float, typer.Option(help="Match radius, arcsec.")],
    out: Annotated[Path, typer.Option(help="Output: a catalog directory, or a .parquet/.csv file.")],
    n_neighbors: Annotated[int, typer.Option(help="Nearest matches kept per left row.")] = 1,
    how: Annotated[str, typer.Option(help="nearest | all | left")] = "nearest",
    min_radius_arcsec: Annotated[float, typer.Option(help="Smallest separation of a match, arcsec.")] = 0.0,
    ensure_margin: Annotated[
        bool,
        typer.Option(
            "--ensure-margin", help="Read neighbouring partitions if the right margin is too narrow."
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Run on a temporary local Dask cluster of this many single-threaded worker processes "
            "(default: threads in this process; not with --cluster)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Run on this cluster profile.")] = None,
    pmra: Annotated[
        str | None, typer.Option("--pmra", help="Left proper motion in RA*cos(dec) column, mas/yr.")
    ] = None,
    pmdec: Annotated[str | None, typer.Option("--pmdec", help="Left proper motion in Dec column, mas/yr.")] = None,
    from_epoch: Annotated[
        float | None, typer.Option("--from-epoch", help="Epoch of the left positions (Julian years).")
    ] = None,
    to_epoch: Annotated[
        float | None, typer.Option("--to-epoch", help="Epoch to move them to: the right's (Julian years).")
    ] = None,
) -> None:
    """Crossmatch two catalogs (or a table file and a catalog); write a catalog or a file.

    With --from-epoch/--to-epoch the left positions are moved by their proper motion
    (--pmra/--pmdec columns, default pmra/pmdec) before matching.
    """
    from proxcompute.execute import local_client

    proper_motion = _proper_motion_option(pmra, pmdec, from_epoch, to_epoch)

    if out.exists() and not overwrite:
        raise ProxError(f"output {out} already exists; pass --overwrite to replace it")
    from proxcompute.formats import format_of

    is_file = format_of(out) is not None
    if is_file:
        _check_out(out)
    matched = _open_side(left, "left").crossmatch(
        _open_side(right, "right"),
        radius_arcsec,
        n_neighbors=n_neighbors,
        how=how,
        min_radius_arcsec=min_radius_arcsec,
        ensure_margin=ensure_margin,
        proper_motion=proper_motion,
    )
    if cluster is not None and workers:
        raise ProxError("pass --workers (a local cluster) or --cluster PROFILE, not both")
    ctx = local_client(workers) if workers else _on_cluster(cluster)
    with ctx as client:
        if is_file:
            df = matched.compute(client=client)
            _write_table(df, out)
            n = len(df)
        else:
            n = matched.to_catalog(out, overwrite=overwrite, client=client).count()
    _console().print(f"{n:,} matches written to {out}")


def _proper_motion_option(pmra, pmdec, from_epoch, to_epoch):
    """A ProperMotion from the crossmatch flags, or None when none is given."""
    if pmra is None and pmdec is None and from_epoch is None and to_epoch is None:
        return None
    if from_epoch is None or to_epoch is None:
        raise ProxError("a proper-motion crossmatch needs both --from-epoch and --to-epoch")
    from proxcompute.ops.proper_motion import ProperMotion

    return ProperMotion(pmra=pmra or "pmra", pmdec=pmdec or "pmdec", from_epoch=from_epoch, to_epoch=to_epoch)


def _parse_catalog_options(values: list[str]) -> dict[str, str]:
    catalogs: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ProxError(f"--catalog takes NAME=PATH, got {value!r}")
        catalogs[name.strip()] = path.strip()
    return catalogs


@app.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="An ADQL/SQL query (use - to read it from stdin).")],
    catalog_root: Annotated[
        Path | None, typer.Option("--catalog-root", help="Every catalog under DIR is available by name.")
    ] = None,
    catalog: Annotated[
        list[str] | None,
        typer.Option("--catalog", help="NAME=PATH (a directory or URL): make one catalog available (repeatable)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the result to FILE (format from suffix).")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv, tsv, parquet or votable (default: from --out, else a table)."),
    ] = None,
    maxrec: Annotated[
        int | None, typer.Option("--maxrec", help="Return at most N rows (and say if cut).")
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Print the plan instead of running the query.")
    ] = False,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Run on this cluster profile.")] = None,
) -> None:
    """Run an ADQL/SQL query over catalogs; print a preview or write CSV/TSV/Parquet/VOTable."""
    import warnings

    from proxcompute.sql import SqlTruncatedWarning, sql

    if query == "-":
        query = sys.stdin.read()
    catalogs = _parse_catalog_options(catalog or [])
    if catalog_root is None and not catalogs:
        raise ProxError("name the catalogs a query may use: --catalog-root DIR and/or --catalog NAME=PATH")
    result = sql(query, catalogs, catalog_root=catalog_root, maxrec=maxrec)
    con = _console()
    if explain:
        con.print(result.explain(), markup=False)
        return
    if out is not None and fmt is None:
        from proxcompute.formats import WRITABLE, format_of

        fmt = format_of(out) if format_of(out) in WRITABLE else None
        if fmt is None:
            raise ProxError(f"cannot tell the format of {out.name!r}: pass --format csv|tsv|parquet|votable")
    with _on_cluster(cluster) as client, warnings.catch_warnings():
        warnings.simplefilter("ignore", SqlTruncatedWarning)
        if fmt is None:
            df = result.compute(client)
            con.print(f"{len(df):,} rows")
            if len(df):
                con.print(df.head(20).to_string(index=False), markup=False)
            if len(df) > 20:
                con.print(f"... ({len(df) - 20:,} more; write them all with --out FILE)")
        else:
            from proxcompute.formats import normalize_format, write_file, write_table

            fmt = normalize_format(fmt)
            table = result.to_arrow(client)
            if out is None:
                rows = write_table(
                    table, table.schema, sys.stdout.buffer, fmt, overflow=bool(result.overflow)
                )
                sys.stdout.buffer.flush()
            else:
                rows = write_file(table, out, fmt, overflow=bool(result.overflow))
                _console(stderr=True).print(f"{rows:,} rows written to {out}")
    if result.overflow:
        _console(stderr=True).print(f"note: the result was truncated at --maxrec {maxrec} rows")


def _read_tokens(tokens: Path) -> dict[str, str]:
    """The ``--tokens`` file: bearer token -> user name."""
    import yaml

    try:
        loaded = yaml.safe_load(tokens.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ProxError(f"cannot read the tokens file {tokens}: {exc}") from None
    if not isinstance(loaded, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()):
        raise ProxError(f"{tokens} must map token strings to user names")
    return loaded


@app.command()
def serve(
    catalog_root: Annotated[Path, typer.Option("--catalog-root", help="Serve every catalog under DIR.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    db: Annotated[
        str | None, typer.Option("--db", help="Job store URL (default: SQLite under --data-dir).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Results, uploads and MyDB (default: ROOT/.proxcompute-service).")
    ] = None,
    tokens: Annotated[
        Path | None, typer.Option("--tokens", help="YAML file mapping bearer tokens to user names.")
    ] = None,
    access: Annotated[
        Path | None,
        typer.Option("--access", help="Access file: users, groups, catalog rules, quotas (reloaded on change or SIGHUP)."),
    ] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Cluster profile jobs run on.")] = None,
    job_nice: Annotated[
        int, typer.Option("--job-nice", help="Nice value of async jobs' worker processes (0-19): sync queries first.")
    ] = 10,
    cost_rates: Annotated[
        Path | None,
        typer.Option("--cost-rates", help="Rates file of the quote's cost model (default: the one calibrate wrote)."),
    ] = None,
) -> None:
    """Serve the catalogs over IVOA TAP 1.1 (sync and async/UWS) at http://HOST:PORT/tap."""
    from proxcompute.execute import load_rates
    from proxcompute.service import ServiceConfig, create_app

    token_map = _read_tokens(tokens) if tokens is not None else {}
    if not catalog_root.is_dir():
        raise ProxError(f"--catalog-root {catalog_root} is not a directory")
    try:
        config = ServiceConfig(catalog_root, data_dir=data_dir, db_url=db, tokens=token_map, cluster=cluster,
                               access_file=access, job_nice=job_nice, cost_rates=load_rates(cost_rates))  # fmt: skip
    except ValueError as exc:
        raise ProxError(str(exc)) from None
    if access is not None and not access.is_file():
        raise ProxError(f"--access {access} is not a file")
    import signal

    import uvicorn

    with _on_cluster(cluster) as client:  # the profile's cluster lives as long as the server
        app_ = create_app(config, client=client)
        if access is not None and hasattr(signal, "SIGHUP"):  # kill -HUP re-reads the access file
            signal.signal(signal.SIGHUP, lambda *_: app_.state.tap.access.reload_soon())
        _console(stderr=True).print(f"serving {catalog_root} at http://{host}:{port}{config.base_path}")
        uvicorn.run(app_, host=host, port=port, server_header=False, log_level="warning")


user_app = typer.Typer(help="Users of the TAP service's access file.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("hash-password")
def hash_password_command(
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (one line).")
    ] = False,
) -> None:
    """Print an argon2 hash of a password for an access file's ``password_hash:``."""
    from proxcompute.service.access import hash_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise ProxError("the password is empty")
    typer.echo(hash_password(password))


@user_app.command("check")
def check_access_command(
    access: Annotated[Path, typer.Argument(help="The access file to check.")],
    tokens: Annotated[
        Path | None, typer.Option("--tokens", help="The --tokens file the server also gets (its users).")
    ] = None,
) -> None:
    """Check an access file as the server would (before a reload); print what it defines."""
    from proxcompute.service.access_file import Quota, load_access_file

    token_map = _read_tokens(tokens) if tokens is not None else {}
    rules = load_access_file(access, tokens=token_map, default_quota=Quota(1 << 30, 10))
    passwords = len(rules.password_hashes)
    typer.echo(f"{access}: {len(rules.users)} users ({passwords} with a password), {len(rules.members)} groups, "
               f"{len(rules.catalogs)} catalog rules, {len(rules.quotas) - 1} per-user quotas")  # fmt: skip


@app.command("run")
def run_pipeline_command(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML file (steps: ingest, crossmatch, sql, write).")],
    cluster: Annotated[str | None, typer.Option("--cluster", help="Run on this cluster profile.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip finished steps; continue an interrupted one.")
    ] = False,
    runner: Annotated[
        str | None,
        typer.Option("--runner", help="slurm: inside an sbatch allocation (srun), via dask-jobqueue's SLURMRunner."),
    ] = None,
) -> None:
    """Run a batch pipeline as one job, resumable after a failure or a walltime kill."""
    import os

    from rich.table import Table

    from proxcompute.pipeline import run_pipeline, summary_rows

    err = _console(stderr=True)

    def on_step(step, status: str) -> None:
        err.print(f"[{status}] {step.name} ({step.kind})", markup=False)

    if runner not in (None, "slurm"):
        raise ProxError(f"--runner must be slurm, got {runner!r}")
    if runner == "slurm":
        from dask_jobqueue.slurm import SLURMRunner
        from distributed import Client

        job = os.environ.get("SLURM_JOB_ID", "local")
        sched = os.environ.get("PROXCOMPUTE_SCHEDULER_FILE") or str(
            pipeline.resolve().parent / ".proxcompute-run" / f"scheduler-{job}.json"
        )
        Path(sched).parent.mkdir(parents=True, exist_ok=True)
        iface = os.environ.get("PROXCOMPUTE_INTERFACE")  # e.g. ib0 on a cluster, lo on one node
        opts = {"interface": iface} if iface else {}
        with (
            SLURMRunner(scheduler_file=sched, scheduler_options=dict(opts), worker_options=dict(opts)) as slurm,
            Client(slurm) as client,
        ):  # rank 0 runs the scheduler, rank 1 this pipeline, the other ranks are workers
            client.wait_for_workers(1)
            results = run_pipeline(pipeline, resume=resume, client=client, on_step=on_step)
    else:
        results = run_pipeline(pipeline, cluster=cluster, resume=resume, on_step=on_step)
    table = Table(title=f"pipeline {pipeline.name}")
    rows = summary_rows(results)
    for col in ("step", "kind", "status", "time", "rows", "output"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(row[c] for c in ("step", "kind", "status", "time", "rows", "output")))
    _console().print(table)


@app.command()
def demo(
    rows: Annotated[int, typer.Option(help="Rows in the synthetic catalog.")] = 3_000_000,
    workdir: Annotated[Path, typer.Option(help="Where to write the demo data.")] = Path("demo-data"),
    workers: Annotated[int | None, typer.Option(help="Local Dask workers.")] = None,
) -> None:
    """Generate a synthetic survey, ingest it, run cones, a crossmatch and a count (each checked); print timings."""
    from proxcompute.demo import run_demo

    run_demo(rows=rows, workdir=workdir, workers=workers, console=_console())


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line (no traceback) and exit 1; Ctrl-C exits 130."""
    try:
        app(args=argv, standalone_mode=True, prog_name="proxcompute")
    except SystemExit as exc:  # click/typer usage errors and normal exits
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except ProxError as exc:
        from rich.markup import escape

        err = _console(stderr=True)
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        _print_query_caret(err, exc, argv)
        return 1
    except KeyboardInterrupt:
        _console(stderr=True).print("interrupted (an ingest can be continued with --resume)")
        return 130
    return 0


def _print_query_caret(console, exc: ProxError, argv: list[str] | None) -> None:
    """For an SQL error with a position, show the query line and a caret under the column."""
    from proxcompute.errors import SqlError

    if not isinstance(exc, SqlError) or exc.line is None or exc.column is None:
        return
    args = list(sys.argv[1:] if argv is None else argv)
    if "sql" not in args:
        return
    rest = [a for a in args[args.index("sql") + 1 :] if not a.startswith("-")]
    if not rest:
        return
    lines = rest[0].splitlines()
    if 1 <= exc.line <= len(lines):
        console.print("  " + lines[exc.line - 1], markup=False, highlight=False, soft_wrap=True)
        console.print("  " + " " * (exc.column - 1) + "^", markup=False, highlight=False)


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
