"""``ingest()``: raw files -> a HATS collection (object catalog + margin), out of core, resumable.

Stages (the driver plans, Dask workers do the row work):

1. **scan** (tasks): per input chunk, read only RA/Dec, validate, histogram at order 10;
   CSV/FITS/VOTable files are converted to Arrow IPC on the way (parsed once);
2. **plan** (driver): merge the histograms, plan partitions of at most ``max_rows`` rows;
3. **split** (tasks): per input chunk, stream batches, compute ``_healpix_29``, group rows
   by partition, append each bin's slice to the chunk's (zstd) IPC file of the bin's group;
4. **reduce** (tasks, :mod:`proxcompute.ingest._reduce`): per group of partitions, gather
   each bin's slices, sort, write the partitions' files, delete the group's split files;
5. **metadata** (driver): partition list, ``_metadata``, properties of the object catalog;
6. **margin**: the margin catalog (``proxcompute.ingest.margin``);
7. **publish**: ``collection.properties``, then one atomic rename of the collection.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from proxcompute.errors import IngestError, InvalidCoordinatesError, ProxError
from proxcompute.ingest import _plan, _reduce, _tasks
from proxcompute.ingest._inputs import InputFile, resolve_inputs
from proxcompute.ingest._staging import Staging, atomic_write_json, is_out_of_space, read_json, task_marker
from proxcompute.ingest._tasks import HISTOGRAM_ORDER, Chunk
from proxcompute.ingest.index import build_ingest_indexes, check_index_columns
from proxcompute.storage import CatalogBuilder, check_destination, publish, write_collection_properties
from proxcompute.storage.index import register_indexes
from proxcompute.storage.layout import PartitionPixel
from proxcompute.storage.partitioning import DEFAULT_MAX_ROWS
from proxcompute.storage.skymap import POINT_MAP_ORDER

__all__ = ["DEFAULT_MAX_ROWS", "IngestResult", "ingest"]

_STAGES = ("discover", "cluster", "scan", "plan", "split", "reduce", "metadata", "margin", "publish")


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest` wrote."""

    path: Path
    """The output collection directory."""
    name: str
    """Name of the object catalog (``path / name``)."""
    rows: int
    """Rows in the object catalog."""
    partitions: int
    """Number of partition files."""
    orders: Counter[int]
    """Number of partitions at each HEALPix order."""
    dropped_rows: int
    """Input rows skipped for invalid coordinates (``drop_invalid=True``)."""
    margin_rows: int
    """Rows in the margin catalog (0 without one)."""
    margin_arcsec: float
    """Margin width; 0 when no margin catalog was built."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per stage (stages done by an earlier, resumed run count ~0)."""

    @property
    def margin_name(self) -> str | None:
        """Name (subdirectory) of the margin catalog, or None."""
        return margin_catalog_name(self.name, self.margin_arcsec) if self.margin_arcsec > 0 else None

    @property
    def seconds(self) -> float:
        return float(sum(self.timings.values()))

    def __str__(self) -> str:
        orders = ", ".join(f"{o}: {n}" for o, n in sorted(self.orders.items()))
        margin = (
            f'{self.margin_name} ({self.margin_rows:,} rows within {self.margin_arcsec:g}")'
            if self.margin_name
            else "none"
        )
        times = ", ".join(f"{k} {v:.2f}" for k, v in self.timings.items() if v >= 0.005)
        lines = [
            f"Ingested {self.rows:,} rows into {self.path}",
            f"  catalog   {self.name}: {self.partitions} partitions (per order {orders})",
            f"  margin    {margin}",
            f"  dropped   {self.dropped_rows:,} rows with invalid coordinates",
            f"  time      {self.seconds:.2f} s ({times})",
        ]
        return "\n".join(lines)


def margin_catalog_name(name: str, margin_arcsec: float) -> str:
    """Name of the margin catalog in the collection, as hats-import spells it: ``NAME_10arcs``."""
    return f"{name}_{margin_arcsec:g}arcs"


def ingest(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    name: str | None = None,
    ra_column: str = "ra",
    dec_column: str = "dec",
    max_rows: int = DEFAULT_MAX_ROWS,
    margin_arcsec: float = 10.0,
    workers: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    drop_invalid: bool = False,
    client: Any = None,
    show_progress: bool = True,
    index_columns: Sequence[str] = (),
) -> IngestResult:
    """Ingest raw tables into a HEALPix-partitioned, HATS-compatible catalog collection.

    The output ``out`` is a HATS collection, as hats-import writes it, that both
    ``proxcompute`` and ``lsdb.open_catalog`` open with its margin::

        out/collection.properties       names the object catalog and its default margin
        out/NAME/                       the object catalog
        out/NAME_10arcs/                the margin catalog (unless margin_arcsec=0)

    Every output row holds every input column plus ``_healpix_29`` (NESTED, order 29) as
    its first column; each partition file is sorted by it. An input ``_healpix_29`` (or
    HATS ``Norder``/``Dir``/``Npix``, or a pandas ``__index_level_N__``) column is dropped.
    RA outside [0, 360) is wrapped, and the wrapped value is written.

    The work runs as Dask tasks, out of core, in bounded memory whatever the input size: a
    scan or split task reads one chunk of input (up to 4 million rows: a group of Parquet row
    groups, or batches of a converted file) in batches of ~12 MiB (65 thousand to 2 million
    rows), and a reduce task holds up to 2 million rows of consecutive partitions (or one
    partition, if bigger: a single order-10 pixel can exceed ``max_rows``, which is warned
    about; lower ``max_rows`` for very wide rows). Besides the input, the disk must hold about
    the catalog's size: the staged rows are zstd-compressed and released group by group as
    the partitions are written (a full disk stops the ingest with a message saying how much
    it needs; ``resume=True`` continues it). CSV, FITS
    and VOTable files are read once, by one task per file, and converted to Arrow in the
    staging directory: CSV streams, FITS is memory-mapped, but astropy parses a VOTable whole.

    Parameters
    ----------
    inputs
        A path, a glob pattern, or a sequence of them: Parquet (``.parquet``, ``.pq``),
        CSV (``.csv``, ``.csv.gz``), FITS binary tables (``.fits``, ``.fit``, ``.fits.gz``)
        and VOTable (``.vot``, ``.votable``, ``.xml``) files, or directories (searched
        recursively for those endings). All inputs must have the same columns; types are
        unified (e.g. int64 and float64 give float64).
    out
        The output collection directory; it must not exist unless ``overwrite``.
    name
        Name of the object catalog; defaults to the name of ``out``.
    ra_column, dec_column
        Coordinate columns, in degrees.
    max_rows
        Largest number of rows per partition; dense sky gets deeper HEALPix orders.
    margin_arcsec
        Width of the margin catalog; 0 builds none.
    workers
        Worker processes of the temporary local cluster (default: one per core); ignored
        when ``client`` is given or a Dask client is already active.
    resume
        Continue an interrupted ingest of the same inputs and arguments from its staging
        directory ``<out>.tmp-ingest``: finished stages and tasks are not redone. Without
        it, an existing staging directory is removed and the ingest starts over.
    overwrite
        Replace an existing ``out`` (only once the new collection is complete).
    drop_invalid
        Skip rows with NaN/infinite/null coordinates or ``|dec| > 90`` instead of failing;
        :attr:`IngestResult.dropped_rows` counts them.
    client
        A ``distributed.Client`` to run on.
    show_progress
        Draw progress bars on stderr.
    index_columns
        Columns to build HATS index catalogs of (``NAME_COLUMN_index`` in the collection,
        listed in ``collection.properties``), for :meth:`Catalog.id_search` and joins; see
        :func:`proxcompute.ingest.index.build_index`.

    Returns
    -------
    IngestResult
        Rows, partitions, orders, dropped and margin rows, and seconds per stage.

    Raises
    ------
    CatalogExistsError
        ``out`` exists and ``overwrite`` is False (checked before any work).
    InputError
        An input is missing, of unknown format, unreadable or corrupt, has a non-numeric
        coordinate column, or has columns that other inputs lack; the message names the file.
    ColumnNotFoundError
        An input lacks ``ra_column`` or ``dec_column``; the message lists its columns.
    InvalidCoordinatesError
        Some rows have invalid coordinates and ``drop_invalid`` is False; the message counts
        them over all inputs and shows up to 5 (file, row).
    IngestError
        Bad options (``max_rows < 1``, ``margin_arcsec < 0``), a resume whose arguments or
        inputs differ from the interrupted run, no rows to ingest, or inputs that changed
        during the ingest.

    Notes
    -----
    The output appears at ``out`` by one rename when everything is written, so a failed or
    interrupted ingest never leaves a catalog there. Its staging directory is kept so that
    ``resume=True`` can continue it (delete it to reclaim the space), except after an input
    error found by the scan, when there is nothing worth resuming.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from proxcompute.synthetic import generate_catalog
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> generate_catalog(10_000, seed=1).to_parquet(d / "part0.parquet")
    >>> res = ingest(d / "part0.parquet", d / "sky", max_rows=2_000, margin_arcsec=0,
    ...              workers=1, show_progress=False)  # doctest: +SKIP
    >>> res.rows  # doctest: +SKIP
    10000
    """
    if int(max_rows) < 1:
        raise IngestError(f"max_rows must be at least 1, got {max_rows}")
    if not (float(margin_arcsec) >= 0.0 and np.isfinite(margin_arcsec)):
        raise IngestError(f"margin_arcsec must be a finite number >= 0, got {margin_arcsec}")
    out_path = Path(out).expanduser().absolute()
    check_destination(out_path, overwrite)
    opts = _Options(
        out=out_path,
        name=out_path.name if name is None else str(name),
        ra=ra_column,
        dec=dec_column,
        max_rows=int(max_rows),
        margin_arcsec=float(margin_arcsec),
        drop_invalid=bool(drop_invalid),
        overwrite=bool(overwrite),
    )
    if not opts.name or opts.name in (".", "..") or "/" in opts.name or os.sep in opts.name:
        raise IngestError(f"catalog name {opts.name!r} is not a valid directory name")
    if opts.margin_arcsec > 0 and importlib.util.find_spec("proxcompute.ingest.margin") is None:
        raise IngestError(
            "the margin builder (proxcompute.ingest.margin) is not available; pass margin_arcsec=0"
        )
    clock = _Clock()
    staging = Staging(out_path)
    files = resolve_inputs(inputs, exclude=[out_path, staging.root])
    parquet_chunks, file_schemas = _plan.discover_parquet(files, ra_column, dec_column)
    clock.lap("discover")
    staging.start(opts.manifest(files), resume)

    # imported here: workers import this package to run the tasks and need no graph code
    from proxcompute.execute import local_client

    # threads: every ingest stage releases the GIL (numba nogil, numpy sort, Arrow I/O),
    # and a threaded cluster starts in 0.3 s instead of 2.5 s and uses 40% less memory
    runner: _StageRunner | None = None
    stage = "scan"
    try:  # a full disk in any stage (tasks or the driver's metadata): one clear, resumable error
        with local_client(workers, client, processes=False) as c:
            clock.lap("cluster")
            runner = _StageRunner(c, staging, show_progress)
            run = _Run(opts, staging, runner, clock)
            try:
                plan = run.scan_and_plan(files, parquet_chunks, file_schemas)
                check_index_columns(
                    index_columns, _tasks.deserialize_schema(plan["schema"]), f"catalog {opts.name!r}"
                )
            except InvalidCoordinatesError:
                raise  # the staging directory stays: resume=True, drop_invalid=True reuses the scan
            except ProxError:
                staging.cleanup()  # bad input: nothing worth resuming
                raise
            stage = "split/reduce"
            pixel_rows, dropped = run.split_and_reduce(plan)
            stage = "metadata"
            run.write_metadata(plan, pixel_rows)
            stage = "margin"
            margin_rows = run.margin(c, show_progress)
            stage = "index"
            indexes = build_ingest_indexes(staging.collection / opts.name, index_columns, c, show_progress)
        clock.lap("cluster")  # shutting a temporary cluster down
        stage = "publish"
        run.publish(indexes)
    except OSError as exc:
        if is_out_of_space(exc):
            raise staging.out_of_space(stage, runner.needed_bytes if runner else None) from None
        raise
    return IngestResult(
        path=out_path,
        name=opts.name,
        rows=int(sum(pixel_rows.values())),
        partitions=len(pixel_rows),
        orders=Counter(p.order for p in pixel_rows),
        dropped_rows=dropped,
        margin_rows=margin_rows,
        margin_arcsec=opts.margin_arcsec,
        timings={k: round(v, 4) for k, v in clock.timings.items()},
    )


@dataclass(frozen=True)
class _Options:
    out: Path
    name: str
    ra: str
    dec: str
    max_rows: int
    margin_arcsec: float
    drop_invalid: bool
    overwrite: bool

    @property
    def margin_name(self) -> str | None:
        return margin_catalog_name(self.name, self.margin_arcsec) if self.margin_arcsec > 0 else None

    def manifest(self, files: list[InputFile]) -> dict[str, Any]:
        """What a resumed run must match. ``drop_invalid`` is not in it: it changes nothing
        before the split, and the split starts only if there are no invalid rows or they
        are dropped, so resuming with ``drop_invalid=True`` after the error is safe."""
        return {
            "out": str(self.out),
            "name": self.name,
            "ra_column": self.ra,
            "dec_column": self.dec,
            "max_rows": self.max_rows,
            "margin_arcsec": self.margin_arcsec,
            "histogram_order": HISTOGRAM_ORDER,
            "inputs": [f.to_dict() for f in files],
        }


def _point_map(plan: dict[str, Any], pixel_rows: dict[PartitionPixel, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The scan's row histogram as the point map, if it was kept and counts exactly the rows written."""
    path = plan.get("histogram")
    if not path or not os.path.exists(path):
        return None  # a plan from an older run: the catalog builder counts the files instead
    with np.load(path) as h:
        if int(h["order"]) != POINT_MAP_ORDER:
            return None
        pixels, counts = h["pixels"], h["counts"]
    return (pixels, counts) if int(counts.sum()) == sum(pixel_rows.values()) else None


class _Clock:
    """Seconds per stage: each ``lap`` charges the time since the previous one."""

    def __init__(self) -> None:
        self.timings = dict.fromkeys(_STAGES, 0.0)
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] += now - self._last
        self._last = now


class _Run:
    """The stages of one ingest, each skipped when its marker says an earlier run did it."""

    def __init__(self, opts: _Options, staging: Staging, run: _StageRunner, clock: _Clock) -> None:
        self.opts = opts
        self.staging = staging
        self.run = run
        self.clock = clock
        self.work = str(staging.work)
        self.plan_path = staging.work / "plan.json"

    def scan_and_plan(
        self, files: list[InputFile], parquet_chunks: dict[int, list[Chunk]], file_schemas: dict[int, Any]
    ) -> dict[str, Any]:
        """Stages 1-2: scan every input, then plan the partitions (``work/plan.json``)."""
        o = self.opts
        plan = read_json(self.plan_path)
        if plan is None:
            units = _plan.scan_units(files, parquet_chunks)
            scans = self.run("scan", _tasks.scan_task, units, "scan", work=self.work, ra=o.ra, dec=o.dec)
            self.clock.lap("scan")
            plan = _plan.make_plan(
                files, parquet_chunks, file_schemas, scans, o.ra, o.dec, o.max_rows,
                histogram_path=self.staging.work / "histogram.npz",
            )  # fmt: skip
            atomic_write_json(self.plan_path, plan)
            for scan in scans:  # merged into the plan (and histogram.npz): ~20 MB per input chunk
                Path(scan["hist"]).unlink(missing_ok=True)
            self.clock.lap("plan")
        _plan.check_plan(plan, o.max_rows, o.ra, o.dec, o.drop_invalid)
        self.run.needed_bytes = _plan.estimate_output_bytes(plan)
        return plan

    def split_and_reduce(self, plan: dict[str, Any]) -> tuple[dict[PartitionPixel, int], int]:
        """Stages 3-4: split the inputs by partition, then sort and write each partition."""
        o = self.opts
        partitions = [PartitionPixel(order, pixel) for order, pixel, _ in plan["partitions"]]
        reduced = self.staging.stage_done("reduce")
        if reduced is None:
            chunks = [Chunk.from_dict(d) for d in plan["chunks"]]
            splits = self.run(
                "split",
                _tasks.split_task,
                chunks,
                "split",
                work=self.work,
                plan_path=str(self.plan_path),
                schema=plan["schema"],
                ra=o.ra,
                dec=o.dec,
                drop_invalid=o.drop_invalid,
            )
            self.clock.lap("split")
            # the split's converted inputs are read by no later stage
            shutil.rmtree(self.staging.work / "convert", ignore_errors=True)
            groups = _reduce.reduce_groups(plan, partitions, splits)
            catalog_dir = self.staging.collection / o.name
            catalog_dir.mkdir(parents=True, exist_ok=True)
            (self.staging.work / "reduce").mkdir(exist_ok=True)  # the partitions' markers
            written = self.run(
                "group",
                _reduce.reduce_group_task,
                groups,
                "sort+write",
                work=self.work,
                catalog_dir=str(catalog_dir),
                schema=plan["schema"],
            )
            reduced = {
                "rows": [int(n) for w in written for n in w["rows"]],
                "dropped": sum(int(s["dropped"]) for s in splits),
            }
            self.staging.mark_stage("reduce", reduced)
            shutil.rmtree(self.staging.work / "split", ignore_errors=True)  # only markers are left
            self.clock.lap("reduce")
        return dict(zip(partitions, reduced["rows"], strict=True)), int(reduced["dropped"])

    def write_metadata(self, plan: dict[str, Any], pixel_rows: dict[PartitionPixel, int]) -> None:
        """Stage 5: partition list, ``_metadata`` and properties of the object catalog."""
        o = self.opts
        if self.staging.stage_done("metadata") is None:
            builder = CatalogBuilder(
                o.out / o.name,
                name=o.name,
                ra_column=o.ra,
                dec_column=o.dec,
                overwrite=o.overwrite,
                staging=self.staging.collection / o.name,
            )
            schema = _tasks.deserialize_schema(plan["schema"])
            builder.finish(
                pixel_rows, schema, max_rows=o.max_rows, publish_now=False, point_map=_point_map(plan, pixel_rows)
            )
            self.staging.mark_stage("metadata")
        self.clock.lap("metadata")

    def margin(self, client: Any, show_progress: bool) -> int:
        """Stage 6: the margin catalog; returns its row count (0 without a margin)."""
        margin_name = self.opts.margin_name
        if margin_name is None:
            return 0
        done = self.staging.stage_done("margin")
        if done is None:
            from proxcompute.ingest.margin import build_margin_catalog

            coll = self.staging.collection
            for leftover in coll.glob(f"{margin_name}*"):  # from an interrupted attempt
                shutil.rmtree(leftover, ignore_errors=True)
            rows = build_margin_catalog(
                coll / self.opts.name,
                coll / margin_name,
                margin_arcsec=self.opts.margin_arcsec,
                name=margin_name,
                client=client,
                show_progress=show_progress,
            )
            if not (coll / margin_name).is_dir():
                raise IngestError(f"the margin builder did not write {coll / margin_name}")
            done = {"rows": int(rows)}
            self.staging.mark_stage("margin", done)
        self.clock.lap("margin")
        return int(done["rows"])

    def publish(self, indexes: dict[str, str] | None = None) -> None:
        """Stage 7: ``collection.properties``, then one atomic rename to ``out``."""
        o = self.opts
        margin_name = o.margin_name
        write_collection_properties(
            self.staging.collection,
            name=o.name,
            primary=o.name,
            margins=[margin_name] if margin_name else [],
            default_margin=margin_name,
        )
        register_indexes(self.staging.collection, indexes or {})
        publish(self.staging.collection, o.out, o.overwrite)
        self.staging.cleanup()
        self.clock.lap("publish")


class _StageRunner:
    """Runs a stage's tasks on the client, skipping those whose completion marker exists."""

    def __init__(self, client: Any, staging: Staging, show_progress: bool) -> None:
        self.client = client
        self.staging = staging
        self.show_progress = show_progress
        self.needed_bytes: int | None = None
        """Estimated bytes the ingest writes (for the out-of-disk message), once planned."""

    def __call__(
        self,
        stage: str,
        func: Callable[..., dict[str, Any]],
        items: list[Any],
        description: str,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        (self.staging.work / stage).mkdir(parents=True, exist_ok=True)
        if stage == "scan":
            (self.staging.work / "convert").mkdir(exist_ok=True)
        results: dict[str, dict[str, Any]] = {}
        todo = []
        for item in items:
            done = read_json(task_marker(self.staging.work, stage, item.id))
            if done is not None:
                results[item.id] = done
            else:
                todo.append(item)
        from proxcompute.execute import map_tasks

        try:
            computed = map_tasks(
                func,
                todo,
                client=self.client,
                description=f"ingest: {description}",
                show_progress=self.show_progress,
                rows_of=result_rows,
                **kwargs,
            )
        except OSError as exc:
            if is_out_of_space(exc):
                raise self.staging.out_of_space(stage, self.needed_bytes) from None
            raise
        for item, res in zip(todo, computed, strict=True):
            results[item.id] = res
        return [results[item.id] for item in items]


def result_rows(result: Any) -> int:
    """Rows an ingest task handled, from its result (``{"rows": n}`` or ``{"rows": [n, ...]}``), for rows/s."""
    rows = result.get("rows", 0) if isinstance(result, dict) else 0
    return int(sum(rows)) if isinstance(rows, list) else int(rows or 0)
