"""Batch pipelines: ``proxcompute run PIPELINE.yaml`` runs declared steps as one job.

A pipeline is a YAML file::

    name: targets-x-survey
    cluster: local              # optional profile (``--cluster`` overrides)
    steps:
      - name: survey            # ingest raw tables into a catalog
        ingest: {inputs: [raw/*.parquet], out: catalogs/survey, max_rows: 1000000}
      - name: match             # crossmatch; a directory output is a catalog
        crossmatch: {left: targets.csv, right: catalogs/survey, radius_arcsec: 1, out: catalogs/matches}
      - name: bright            # ADQL over catalogs; a file output by suffix
        sql: {query: "SELECT * FROM matches WHERE mag_survey < 20", catalogs: {matches: catalogs/matches},
              out: results/bright.parquet}
      - name: export            # a catalog (optionally filtered/projected) to a file or catalog
        write: {catalog: catalogs/matches, where: "mag_survey < 21", columns: [id_targets], out: m.csv}
      - name: colours           # your function over every partition (Catalog.map_partitions)
        map: {catalog: catalogs/survey, function: "mycode.photometry:colours", include_margin: false,
              out: catalogs/colours}
      - name: density           # a HEALPix sky map: FITS (every aggregate a column) and a PNG
        skymap: {catalog: catalogs/colours, order: 8, aggregates: {n: count, mean_r: [r, mean]},
                 out: maps/density.fits, png: maps/density.png}

A ``map`` step's ``function`` is ``package.module:callable``, imported from the Python path
or from the pipeline file's directory (``mycode/photometry.py`` next to the YAML); ``meta``
(``{column: dtype}``) declares its output schema, ``include_pixel``/``include_margin`` are
those of ``map_partitions``.

Paths are relative to the YAML file. Progress is kept in ``.proxcompute-run/<name>.json``
next to it. With ``--resume``, finished steps whose settings did not change are skipped and
an interrupted step continues where it stopped: an ingest resumes its stages, and catalog
outputs skip the partitions already written. A walltime kill therefore costs at most the
partitions in flight.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from proxcompute.errors import ProxError

__all__ = ["Pipeline", "PipelineError", "StepResult", "load_pipeline", "run_pipeline"]

STEP_KINDS = ("ingest", "crossmatch", "sql", "write", "map", "skymap")
_ALLOWED = {
    "ingest": {"inputs", "out", "name", "ra_column", "dec_column", "max_rows", "margin_arcsec", "drop_invalid"},
    "crossmatch": {"left", "right", "radius_arcsec", "how", "n_neighbors", "min_radius_arcsec", "out",
                   "ensure_margin", "name"},
    "sql": {"query", "catalog_root", "catalogs", "out", "maxrec", "name"},
    "write": {"catalog", "where", "columns", "out", "name"},
    "map": {"catalog", "function", "meta", "include_margin", "include_pixel", "where", "out", "name"},
    "skymap": {"catalog", "order", "aggregates", "where", "out", "png", "plot"},
}  # fmt: skip
_REQUIRED = {
    "ingest": {"inputs", "out"},
    "crossmatch": {"left", "right", "radius_arcsec", "out"},
    "sql": {"query", "out"},
    "write": {"catalog", "out"},
    "map": {"catalog", "function", "out"},
    "skymap": {"catalog", "order", "out"},
}


class PipelineError(ProxError):
    """A pipeline file that cannot run as written (the message names the step and the key)."""


@dataclass(frozen=True)
class Step:
    name: str
    kind: str
    settings: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        """Hash of the step's settings: a changed step is not skipped on resume."""
        text = json.dumps({"kind": self.kind, **self.settings}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Pipeline:
    name: str
    base: Path
    steps: list[Step]
    cluster: str | None = None

    def path(self, value: str | os.PathLike) -> Path:
        p = Path(os.path.expanduser(str(value)))
        return p if p.is_absolute() else self.base / p


@dataclass
class StepResult:
    name: str
    kind: str
    status: str  # done, skipped, failed
    seconds: float = 0.0
    output: str = ""
    rows: int | None = None
    message: str = ""


@dataclass
class _State:
    path: Path
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> _State:
        try:
            return cls(path, json.loads(path.read_text()).get("steps", {}))
        except (OSError, ValueError):
            return cls(path)

    def save(self) -> None:
        from proxcompute.storage.atomic import atomic_write

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path, "w") as fh:
            json.dump({"steps": self.steps}, fh, indent=1)


def load_pipeline(path: str | os.PathLike) -> Pipeline:
    r"""Read and check a pipeline file; every problem names the step and the key.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "p.yaml").write_text("steps:\n  - write: {catalog: c, out: o.csv}\n")
    >>> [(s.name, s.kind) for s in load_pipeline(d / "p.yaml").steps]
    [('1-write', 'write')]
    >>> _ = (d / "bad.yaml").write_text("steps:\n  - ingest: {out: x}\n")
    >>> load_pipeline(d / "bad.yaml")
    Traceback (most recent call last):
    ...
    proxcompute.pipeline.PipelineError: bad.yaml step '1-ingest' (ingest): missing required setting(s) inputs
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PipelineError(f"cannot read pipeline {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list) or not raw["steps"]:
        raise PipelineError(f"{path}: a pipeline is a mapping with a non-empty list of 'steps'")
    unknown = set(raw) - {"name", "cluster", "steps", "description"}
    if unknown:
        raise PipelineError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    steps: list[Step] = []
    for i, item in enumerate(raw["steps"], 1):
        where = f"{path.name} step {i}"
        if not isinstance(item, dict):
            raise PipelineError(f"{where}: a step is a mapping like {{ingest: {{...}}}}")
        kinds = [k for k in item if k in STEP_KINDS]
        extra = set(item) - set(STEP_KINDS) - {"name"}
        if len(kinds) != 1 or extra:
            raise PipelineError(
                f"{where}: give exactly one of {', '.join(STEP_KINDS)} (and optionally name); got {sorted(item)}"
            )
        kind = kinds[0]
        settings = item[kind]
        if not isinstance(settings, dict):
            raise PipelineError(f"{where} ({kind}): settings must be a mapping")
        name = str(item.get("name") or f"{i}-{kind}")
        where = f"{path.name} step {name!r} ({kind})"
        bad = set(settings) - _ALLOWED[kind]
        if bad:
            raise PipelineError(f"{where}: unknown setting(s) {', '.join(sorted(bad))}; "
                                f"known: {', '.join(sorted(_ALLOWED[kind]))}")  # fmt: skip
        missing = _REQUIRED[kind] - set(settings)
        if missing:
            raise PipelineError(f"{where}: missing required setting(s) {', '.join(sorted(missing))}")
        if name in {s.name for s in steps}:
            raise PipelineError(f"{where}: two steps are named {name!r}")
        steps.append(Step(name, kind, dict(settings)))
    return Pipeline(str(raw.get("name") or path.stem), path.resolve().parent, steps, raw.get("cluster"))


def _is_file(out: Path) -> bool:
    from proxcompute.formats import WRITABLE, format_of

    return format_of(out) in WRITABLE


def _write_arrow(table: Any, out: Path) -> int:
    from proxcompute.formats import write_file

    return write_file(table, out)


def _open_input(pipe: Pipeline, value: str) -> Any:
    """A catalog directory, or a table file (read into an in-memory catalog)."""
    from proxcompute.catalog import from_dataframe, open_catalog

    path = pipe.path(value)
    if path.is_dir():
        return open_catalog(path)
    if not path.exists():
        raise PipelineError(f"input {value!r} ({path}) does not exist")
    from proxcompute.formats import read_table

    return from_dataframe(read_table(path, what=f"input {value!r}"), name=path.name.split(".")[0])


def _run_step(pipe: Pipeline, step: Step, client: Any, resume: bool) -> tuple[str, int | None]:
    """Run one step; an existing output of a step being (re)run is replaced."""
    s = step.settings
    out = pipe.path(s["out"])
    resume_dir = out.with_name(f".{out.name}.resume")
    if not resume and resume_dir.exists():  # a fresh run does not continue an old partial write
        import shutil

        shutil.rmtree(resume_dir)
    if step.kind == "ingest":
        from proxcompute.ingest import ingest

        inputs = s["inputs"] if isinstance(s["inputs"], list) else [s["inputs"]]
        paths = []
        for item in inputs:
            p = str(pipe.path(item))
            paths += sorted(glob.glob(p)) if any(ch in p for ch in "*?[") else [p]
        if not paths:
            raise PipelineError(f"step {step.name!r}: no input files match {inputs}")
        kwargs = {k: s[k] for k in ("name", "ra_column", "dec_column", "max_rows", "margin_arcsec", "drop_invalid")
                  if k in s}  # fmt: skip
        continuing = resume and _ingest_started(out) and not out.exists()
        result = ingest(paths, out, resume=continuing, overwrite=not continuing, client=client, **kwargs)
        return str(out), getattr(result, "rows", None)
    if step.kind == "crossmatch":
        left, right = _open_input(pipe, s["left"]), _open_input(pipe, s["right"])
        kw = {k: s[k] for k in ("how", "n_neighbors", "min_radius_arcsec", "ensure_margin") if k in s}
        matched = left.crossmatch(right, float(s["radius_arcsec"]), **kw)
        if _is_file(out):
            return str(out), _write_arrow(_arrow(matched, client), out)
        cat = matched.to_catalog(out, name=s.get("name"), client=client, resume_dir=resume_dir, overwrite=True)
        return str(out), cat.count()
    if step.kind == "sql":
        from proxcompute.sql import sql

        catalogs = {k: str(pipe.path(v)) for k, v in (s.get("catalogs") or {}).items()}
        root = pipe.path(s["catalog_root"]) if s.get("catalog_root") else None
        result = sql(s["query"], catalogs, catalog_root=root, maxrec=s.get("maxrec"))
        if _is_file(out):
            return str(out), _write_arrow(result.to_arrow(client), out)
        cat = result.to_catalog(out, name=s.get("name"), client=client, resume_dir=resume_dir, overwrite=True)
        return str(out), cat.count()
    if step.kind in ("map", "skymap"):
        return _run_user_step(pipe, step, client, out, resume_dir)
    # write
    cat = _open_input(pipe, s["catalog"])
    if s.get("where"):
        cat = cat.where(s["where"])
    if s.get("columns"):
        cat = cat[list(s["columns"])]
    if _is_file(out):
        return str(out), _write_arrow(_arrow(cat, client), out)
    written = cat.to_catalog(out, name=s.get("name"), client=client, resume_dir=resume_dir, overwrite=True)
    return str(out), written.count()


def import_function(spec: str, base: Path) -> Callable[..., Any]:
    """``package.module:callable`` imported from the Python path or from ``base``.

    A module found under ``base`` (not installed) is pickled by value, so cluster workers
    that cannot import it still run it.
    """
    import importlib
    import sys

    module_name, _, attr = str(spec).partition(":")
    if not module_name or not attr:
        raise PipelineError(f"function {spec!r}: write it as package.module:callable")
    added = str(base) not in sys.path
    if added:
        sys.path.insert(0, str(base))
    try:
        module = importlib.import_module(module_name)
        origin = getattr(module, "__file__", None) or ""
        if origin and Path(origin).resolve().is_relative_to(base.resolve()):
            module = importlib.reload(module)  # the user's code next to the pipeline: take their latest edit
    except ImportError as exc:
        raise PipelineError(f"function {spec!r}: cannot import {module_name!r} ({exc})") from None
    except Exception as exc:  # the user's module failed while importing
        raise PipelineError(f"function {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            sys.path.remove(str(base))
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise PipelineError(f"function {spec!r}: {module_name!r} has no {attr!r}")
    if not callable(fn):
        raise PipelineError(f"function {spec!r} is not callable")
    origin = getattr(module, "__file__", None) or ""
    if origin and Path(origin).resolve().is_relative_to(base.resolve()):
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    return fn  # type: ignore[return-value]


def _run_user_step(pipe: Pipeline, step: Step, client: Any, out: Path, resume_dir: Path) -> tuple[str, int | None]:
    s = step.settings
    cat = _open_input(pipe, s["catalog"])
    if s.get("where"):
        cat = cat.where(s["where"])
    if step.kind == "map":
        fn = import_function(s["function"], pipe.base)
        mapped = cat.map_partitions(fn, meta=s.get("meta"), include_pixel=bool(s.get("include_pixel", False)),
                                    include_margin=s.get("include_margin", False))  # fmt: skip
        if _is_file(out):
            return str(out), _write_arrow(_arrow(mapped, client), out)
        written = mapped.to_catalog(out, name=s.get("name"), client=client, resume_dir=resume_dir, overwrite=True)
        return str(out), written.count()
    from matplotlib.figure import Figure

    from proxcompute import execute
    from proxcompute.catalog import SkyMap

    aggregates = {k: tuple(v) if isinstance(v, list) else v for k, v in (s.get("aggregates") or {"n": "count"}).items()}
    node = cat._aggregate_node(s["order"], aggregates)
    sky = SkyMap(execute.aggregate(node, client=client, resume_dir=resume_dir), name=cat.name)
    sky.to_fits(out, overwrite=True)
    png = pipe.path(s["png"]) if s.get("png") else out.with_suffix(".png")
    fig = Figure(figsize=(10, 6))
    sky.plot(s.get("plot"), ax=fig.add_subplot())
    tmp = png.with_name(f".{png.name}.tmp-{os.getpid()}.png")
    png.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, png)
    finally:
        tmp.unlink(missing_ok=True)
    import shutil

    shutil.rmtree(resume_dir, ignore_errors=True)
    return str(out), sky.rows


def _arrow(cat: Any, client: Any) -> Any:
    from proxcompute import execute

    return execute.compute_table(cat.plan, client=client)


def _ingest_started(out: Path) -> bool:
    """An interrupted ingest leaves its staging next to ``out``; resume only then."""
    parent = out.parent
    if not parent.is_dir():
        return False
    return any(fnmatch.fnmatch(p.name, f"{out.name}.*") for p in parent.iterdir()) or out.exists()


def run_pipeline(
    path: str | os.PathLike,
    *,
    cluster: str | None = None,
    resume: bool = False,
    client: Any = None,
    on_step: Callable[[Step, str], None] | None = None,
) -> list[StepResult]:
    r"""Run a pipeline file; returns one :class:`StepResult` per step (stops at the first failure).

    Parameters
    ----------
    path
        The pipeline YAML file.
    cluster
        Cluster profile to run on (overrides the file's ``cluster``); None with no ``cluster``
        in the file: local threads.
    resume
        Skip steps finished earlier with the same settings; continue an interrupted one.
    client
        A ``distributed.Client`` to use instead of starting a cluster (e.g. SLURMRunner's).
    on_step
        Called with ``(step, "start"|"done"|"skipped"|"failed")``, e.g. for progress output.

    Examples
    --------
    >>> import tempfile
    >>> from proxcompute.catalog import from_dataframe
    >>> from proxcompute.synthetic import generate_catalog
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = from_dataframe(generate_catalog(5_000, seed=1), name="s").to_catalog(d / "s")
    >>> _ = (d / "p.yaml").write_text(
    ...     "steps:\n"
    ...     "  - name: bright\n"
    ...     "    sql: {query: 'SELECT id, mag FROM s WHERE mag < 18', catalogs: {s: s}, out: bright.csv}\n"
    ... )
    >>> [(r.name, r.status) for r in run_pipeline(d / "p.yaml")]
    [('bright', 'done')]
    >>> [(r.name, r.status) for r in run_pipeline(d / "p.yaml", resume=True)]
    [('bright', 'skipped')]
    """
    import contextlib

    pipe = load_pipeline(path)
    state = _State.load(pipe.base / ".proxcompute-run" / f"{pipe.name}.json")
    if not resume:
        state.steps = {}
    profile = cluster or pipe.cluster
    results: list[StepResult] = []
    with contextlib.ExitStack() as stack:
        if client is None and profile:
            from proxcompute.cluster import cluster as start

            client = stack.enter_context(start(profile))
        rerun = False  # once a step runs again, every later step does too (its inputs changed)
        for step in pipe.steps:
            record = state.steps.get(step.name, {})
            if (
                resume
                and not rerun
                and record.get("status") == "done"
                and record.get("fingerprint") == step.fingerprint
            ):
                out = record.get("output", "")
                if out and Path(out).exists():
                    results.append(StepResult(step.name, step.kind, "skipped", 0.0, out, record.get("rows"),
                                              "finished earlier"))  # fmt: skip
                    if on_step:
                        on_step(step, "skipped")
                    continue
            if on_step:
                on_step(step, "start")
            rerun = rerun or record.get("status") == "done"
            state.steps[step.name] = {"status": "running", "fingerprint": step.fingerprint}
            state.save()
            t0 = time.perf_counter()
            try:
                output, rows = _run_step(pipe, step, client, resume)
            except Exception as exc:
                seconds = time.perf_counter() - t0
                state.steps[step.name] = {"status": "failed", "fingerprint": step.fingerprint, "error": str(exc)}
                state.save()
                results.append(StepResult(step.name, step.kind, "failed", seconds, "", None, str(exc)))
                if on_step:
                    on_step(step, "failed")
                if isinstance(exc, ProxError):
                    raise PipelineError(
                        f"step {step.name!r} ({step.kind}) failed: {exc}. Fix it and run again with --resume: "
                        f"finished steps are skipped and this one continues where it stopped"
                    ) from None
                raise
            seconds = time.perf_counter() - t0
            state.steps[step.name] = {"status": "done", "fingerprint": step.fingerprint, "output": output,
                                      "rows": rows, "seconds": round(seconds, 3)}  # fmt: skip
            state.save()
            results.append(StepResult(step.name, step.kind, "done", seconds, output, rows))
            if on_step:
                on_step(step, "done")
    return results


def summary_rows(results: list[StepResult]) -> list[Mapping[str, str]]:
    """The summary table's rows (for the CLI)."""
    return [
        {"step": r.name, "kind": r.kind, "status": r.status, "time": f"{r.seconds:.1f} s",
         "rows": "" if r.rows is None else f"{r.rows:,}", "output": r.output or r.message}
        for r in results
    ]  # fmt: skip
