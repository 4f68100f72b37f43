"""Turn a :class:`ClusterSpec` into a running Dask cluster (or a job script) via dask-jobqueue/-gateway."""

from __future__ import annotations

import ast
import contextlib
import inspect
import logging
import multiprocessing
import os
import sys
from collections.abc import Iterator
from typing import Any

from proxcompute.cluster.spec import JOBQUEUE_BACKENDS, ClusterError, ClusterSpec, thaw, validate

__all__ = ["MAIN_GUARD_HINT", "check_main_guard", "job_script", "jobqueue_kwargs", "start_cluster"]

_QUIET = ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny", "dask_jobqueue")


def _jobqueue_class(backend: str):
    try:
        import dask_jobqueue
    except ImportError:  # pragma: no cover - installed with proxcompute
        raise ClusterError("backend needs dask-jobqueue: pip install dask-jobqueue") from None
    return {
        "slurm": dask_jobqueue.SLURMCluster,
        "pbs": dask_jobqueue.PBSCluster,
        "sge": dask_jobqueue.SGECluster,
    }[backend]


def jobqueue_kwargs(spec: ClusterSpec) -> dict[str, Any]:
    """Keyword arguments for the dask-jobqueue cluster class of ``spec.backend``.

    Memory is passed with an explicit unit (``4GiB`` or ``4GB``, never a bare ``4G``), so
    the batch directive and the worker's ``--memory-limit`` agree. The profile's free
    ``jobqueue:`` mapping is applied last and wins.
    """
    if spec.backend not in JOBQUEUE_BACKENDS:
        raise ClusterError(
            f"cluster profile '{spec.name}' has backend {spec.backend}, not one of {JOBQUEUE_BACKENDS}"
        )
    kw: dict[str, Any] = {
        "cores": spec.cores,
        "processes": spec.processes,
        "memory": spec.memory_str,
        "walltime": spec.walltime_str,
        "job_name": f"proxc-{spec.name}",
        "scheduler_options": {"dashboard_address": ":0"},
    }
    if spec.queue is not None:
        kw["queue"] = spec.queue
    if spec.account is not None:
        # SGE calls it a project; SLURM and PBS an account.
        kw["project" if spec.backend == "sge" else "account"] = spec.account
    if spec.backend == "sge" and spec.memory is not None:
        # SGE renders no memory directive without a resource_spec; M is MiB for Grid Engine.
        kw["resource_spec"] = f"h_vmem={-(-spec.memory // 2**20)}M"
    extra = thaw(spec.jobqueue)
    if "scheduler_options" in extra:
        kw["scheduler_options"] = {**kw["scheduler_options"], **extra.pop("scheduler_options")}
    kw.update(extra)
    return kw


def job_script(spec: ClusterSpec) -> str:
    """The batch script dask-jobqueue would submit for one worker job of ``spec``; submits nothing.

    The cluster object is built with its scheduler on 127.0.0.1 (no jobs, no network) and
    closed right after.
    """
    validate(spec)
    kw = jobqueue_kwargs(spec)
    cls = _jobqueue_class(spec.backend)
    sched = dict(kw.pop("scheduler_options"))
    sched.pop("interface", None)
    sched["host"] = "127.0.0.1"
    with _quiet():
        cluster = cls(n_workers=0, scheduler_options=sched, silence_logs="critical", **kw)
        try:
            return cluster.job_script()
        finally:
            cluster.close()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    levels = {n: logging.getLogger(n).level for n in _QUIET}
    for n in _QUIET:
        logging.getLogger(n).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for n, lvl in levels.items():
            logging.getLogger(n).setLevel(lvl)


@contextlib.contextmanager
def start_cluster(spec: ClusterSpec) -> Iterator[Any]:
    """A ``distributed.Client`` on a cluster started from ``spec``; the cluster is closed on exit.

    The cluster is closed also when the body raises, including on KeyboardInterrupt, so
    no worker processes or batch jobs are left behind.
    """
    validate(spec)
    if spec.backend == "local":
        with _local(spec) as client:
            yield client
    elif spec.backend in JOBQUEUE_BACKENDS:
        with _jobqueue(spec) as client:
            yield client
    elif spec.backend == "gateway":
        with _gateway(spec) as client:
            yield client
    else:  # pragma: no cover - validated at load time
        raise ClusterError(f"unknown backend {spec.backend!r}")


PREFLIGHT = {
    "slurm": ["sbatch", "--test-only"],  # validates against partitions and limits, submits nothing
    "sge": ["qsub", "-w", "v"],  # verify: "verification: found suitable queue(s)" or the reason
}
"""Commands that ask the batch scheduler whether it would accept a job script, without submitting."""


def preflight(backend: str, script: str) -> None:
    """Ask the scheduler whether it accepts ``script``; raise its own message if it would not.

    dask-jobqueue only logs a refused submission and then waits for workers that never come;
    this runs before anything is submitted. Back ends without a dry run (PBS) are not checked.
    """
    import shutil
    import subprocess
    import tempfile

    cmd = PREFLIGHT.get(backend)
    if cmd is None or shutil.which(cmd[0]) is None:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as fh:
        fh.write(script)
        path = fh.name
    try:
        proc = subprocess.run([*cmd, path], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{cmd[0]} did not answer within 60 s: is the {backend} controller running?") from None
    finally:
        os.unlink(path)
    text = (proc.stderr + proc.stdout).strip()
    refused = proc.returncode != 0 or (backend == "sge" and "no suitable queues" in text.lower())
    if refused:
        raise ClusterError(f"{backend} refused the worker job before submission: {text or 'no message'}")


def _scale(cluster: Any, spec: ClusterSpec) -> None:
    if spec.adaptive is not None:
        cluster.adapt(minimum=spec.adaptive[0], maximum=spec.adaptive[1])
    elif spec.workers:
        cluster.scale(spec.workers)


MAIN_GUARD_HINT = (
    'a script that starts a local cluster of worker processes must start it under `if __name__ == "__main__":` '
    "(each worker process re-imports the script): move the cluster and the work on it into that block"
)


def _is_main_test(test: ast.expr) -> bool:
    """Whether ``test`` is ``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    consts = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and consts == ["__main__"]


def _unguarded_script_line() -> int | None:
    """The line of the running script's top-level code that is starting a cluster, when it is
    not inside ``if __name__ == "__main__":``; None otherwise (or when there is no script: a
    notebook, ``python -c``, the REPL)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path or not os.path.isfile(path):
        return None
    frame = inspect.currentframe()
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return None
    line = frame.f_lineno
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.lineno <= line <= (node.end_lineno or 0):
            return None
    return line


def check_main_guard() -> None:
    """Refuse to start worker processes from a script's unguarded top-level code.

    Dask starts workers with ``spawn``: each re-imports the main script, which, unguarded,
    starts a cluster again; multiprocessing refuses, and Dask prints a wall of "Nanny failed
    to start" tracebacks. This says in one line what to do instead, before any process starts.

    Raises
    ------
    ClusterError
        The cluster is started from a script's top-level code outside
        ``if __name__ == "__main__":``, or from a worker re-importing such a script.
    """
    import dask

    if dask.config.get("distributed.worker.multiprocessing-method", "spawn") == "fork":
        return  # forked workers do not re-import the script
    if getattr(multiprocessing.current_process(), "_inheriting", False):  # a worker bootstrapping
        raise ClusterError(MAIN_GUARD_HINT)
    line = _unguarded_script_line()
    if line is not None:
        raise ClusterError(f"{MAIN_GUARD_HINT} (line {line} of {sys.modules['__main__'].__file__})")


@contextlib.contextmanager
def _local(spec: ClusterSpec) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if spec.processes:
        check_main_guard()
    n = spec.workers or os.cpu_count() or 1
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    cluster = LocalCluster(
        n_workers=0 if spec.adaptive else n,
        threads_per_worker=spec.cores,
        processes=bool(spec.processes),
        memory_limit=spec.memory if spec.memory is not None else "auto",
        dashboard_address=":0",  # a free port: never collide with another cluster
        silence_logs=logging.CRITICAL,
    )
    client = None
    try:
        if spec.adaptive:
            cluster.adapt(minimum=spec.adaptive[0], maximum=spec.adaptive[1])
        client = Client(cluster, set_as_default=False)
        yield client
    finally:
        if client is not None:
            client.close()
        cluster.close()


@contextlib.contextmanager
def _jobqueue(spec: ClusterSpec) -> Iterator[Any]:
    from distributed import Client

    cls = _jobqueue_class(spec.backend)
    cluster = cls(**jobqueue_kwargs(spec))
    client = None
    try:
        script = getattr(cluster, "job_script", None)
        if callable(script):
            preflight(spec.backend, script())
        _scale(cluster, spec)
        client = Client(cluster, set_as_default=False)
        yield client
    finally:  # also on KeyboardInterrupt: close() cancels the submitted jobs
        if client is not None:
            client.close()
        cluster.close()


@contextlib.contextmanager
def _gateway(spec: ClusterSpec) -> Iterator[Any]:
    try:
        import dask_gateway
    except ImportError:
        raise ClusterError(
            f"cluster profile '{spec.name}' uses dask-gateway, which is not installed: pip install dask-gateway"
        ) from None
    opts = thaw(spec.gateway)
    address = opts.pop("address")
    proxy = opts.pop("proxy_address", None)
    auth = opts.pop("auth", None)
    cluster_options = opts.pop("cluster_options", {}) or {}
    gateway = dask_gateway.Gateway(address=address, proxy_address=proxy, auth=auth, **opts)
    cluster = None
    client = None
    try:
        try:
            options = gateway.cluster_options()
        except Exception as exc:  # before anything is submitted: say what is wrong, in our words
            status = getattr(exc, "status", None)
            if status in (401, 403):
                raise ClusterError(
                    f"cluster profile '{spec.name}': dask-gateway at {address} rejected the credentials "
                    f"(HTTP {status}); check the profile's gateway auth / Dask config gateway.auth.kwargs"
                ) from None
            raise ClusterError(
                f"cluster profile '{spec.name}': cannot reach dask-gateway at {address}: {type(exc).__name__}: {exc}"
            ) from None
        wanted = dict(cluster_options)
        if "worker_cores" in options:
            wanted.setdefault("worker_cores", spec.cores)
        if spec.memory is not None and "worker_memory" in options:
            wanted.setdefault("worker_memory", spec.memory / 2**30)  # dask-gateway counts GiB
        try:
            for k, v in wanted.items():
                options[k] = v
            cluster = gateway.new_cluster(options)
        except ValueError as exc:
            raise ClusterError(f"cluster profile '{spec.name}': dask-gateway refused the options: {exc}") from None
        _scale(cluster, spec)
        client = cluster.get_client(set_as_default=False)
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.shutdown()
        gateway.close()
