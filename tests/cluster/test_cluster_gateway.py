"""A real dask-gateway server on this machine, started by clusters/gateway/run_gateway.py.

The server uses ``UnsafeLocalBackend`` (schedulers and workers are local processes of the
server's own user; never the setuid ``LocalBackend`` as root), simple auth with a random
password, and 127.0.0.1 on free ports. A crossmatch runs on 2 gateway workers through a
``gateway`` profile and equals the in-process result; closing leaves no cluster on the
gateway and no scheduler or worker process. A wrong password fails before anything is
submitted. Skipped with the reason where dask-gateway is not installed (it is in the ``test``
extra); under ``CI`` that, or a server that does not start, is a failure.
"""

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import proxcompute as pc
from proxcompute.cluster import ClusterError, load_profile, start_cluster
from proxcompute.synthetic import generate_catalog

# dask-gateway 2026.3.0 with distributed 2026.8: Gateway.__del__ closes an already closed client
# again and its LoopRunner raises. Harmless; noted in docs/clusters.md.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function Gateway.__del__:pytest.PytestUnraisableExceptionWarning"
)

RUN_GATEWAY = Path(__file__).resolve().parents[2] / "clusters" / "gateway" / "run_gateway.py"
USER = "proxc-test"
PROFILE = """
proxcompute:
  cluster:
    gateway-test:
      backend: gateway
      workers: 2
      cores: 1
      memory: 1GiB
      limits: {{max_workers: 4}}
      gateway:
        address: {address}
        proxy_address: {proxy_address}
        auth: basic            # username/password from dask config gateway.auth.kwargs
"""


def _not_here(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"dask-gateway tests cannot run in CI: {reason}")
    pytest.skip(f"dask-gateway tests skipped: {reason}")


def _stop(workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(RUN_GATEWAY), "stop", str(workdir), "--keep"],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    try:
        import dask_gateway  # noqa: F401  (also loads dask_gateway's config defaults)
        import dask_gateway_server  # noqa: F401
    except ImportError as exc:
        _not_here(f"{exc} (pip install -e '.[test]')")
    workdir = tmp_path_factory.mktemp("gateway")
    proc = subprocess.run(
        [sys.executable, str(RUN_GATEWAY), "start", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        _stop(workdir)
        _not_here(f"run_gateway.py start failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    info = json.loads((workdir / "gateway.json").read_text())
    assert proc.stdout.strip().splitlines()[-1] == info["address"]
    print(f"dask-gateway-server healthy in {info['startup_seconds']:.1f} s at {info['address']}")
    yield info
    server = info["pid"]
    for _ in range(2):  # stopping twice is harmless
        done = _stop(workdir)
        assert done.returncode == 0, done.stdout + done.stderr
    assert not psutil.pid_exists(server) or psutil.Process(server).status() == psutil.STATUS_ZOMBIE
    assert _under(workdir) == []


def _under(workdir: Path) -> list[str]:
    """Live processes whose working directory is in the gateway's working directory."""
    found = []
    for p in psutil.process_iter(["pid", "cwd", "cmdline", "status"]):
        cwd = p.info["cwd"] or ""
        if cwd.startswith(str(workdir)) and p.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{p.info['pid']}: {' '.join(p.info['cmdline'] or [])}")
    return found


def _dask_processes(info: dict, recursive: bool = True) -> list[str]:
    """Processes the gateway server started but its proxy: schedulers, workers (nanny, worker, ...)."""
    try:
        children = psutil.Process(info["pid"]).children(recursive=recursive)
    except psutil.NoSuchProcess:
        children = []
    left = []
    for p in children:
        try:
            if p.status() == psutil.STATUS_ZOMBIE or "dask-gateway-proxy" in p.name():
                continue
            left.append(f"{p.pid}: {' '.join(p.cmdline())}")
        except psutil.NoSuchProcess:
            continue
    return left


def _gateway_client(info: dict, password: str):
    from dask_gateway import BasicAuth, Gateway

    return Gateway(info["address"], proxy_address=info["proxy_address"], auth=BasicAuth(USER, password))


def _wait_clean(info: dict, timeout: float = 30.0) -> tuple[list, list[str]]:
    """The gateway's clusters and dask processes once both are gone (or at the timeout)."""
    deadline = time.monotonic() + timeout
    with _gateway_client(info, info["password"]) as gw:
        while True:
            clusters, procs = gw.list_clusters(), _dask_processes(info)
            if (not clusters and not procs) or time.monotonic() > deadline:
                return clusters, procs
            time.sleep(0.2)


@pytest.fixture
def profile(gateway, tmp_path, monkeypatch):
    import dask

    path = tmp_path / "gateway-test.yaml"
    path.write_text(PROFILE.format(**gateway))
    monkeypatch.setenv("PROXCOMPUTE_CLUSTERS", str(path))
    with dask.config.set({"gateway.auth.kwargs": {"username": USER, "password": gateway["password"]}}):
        yield load_profile("gateway-test")
    gc.collect()  # closed Gateway objects: their __del__ noise falls under pytestmark's filter


def test_crossmatch_on_gateway_workers_and_nothing_left(gateway, profile, tmp_path):
    survey = pc.from_dataframe(generate_catalog(60_000, seed=3), name="survey", max_rows=4_000)
    survey = survey.to_catalog(tmp_path / "survey")
    targets = generate_catalog(6_000, seed=4).rename(columns={"id": "tid"})
    matched = pc.crossmatch(targets, survey, radius_arcsec=600.0, ensure_margin=True)
    expected = matched.compute()
    assert len(expected) > 100

    started = time.perf_counter()
    with start_cluster(profile) as client:
        client.wait_for_workers(2, timeout=60)
        up = time.perf_counter() - started
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2
        assert all(w["nthreads"] == 1 and w["memory_limit"] == 2**30 for w in workers.values())
        assert all(addr.startswith("tls://127.0.0.1:") for addr in workers)
        with _gateway_client(gateway, gateway["password"]) as gw:
            assert len(gw.list_clusters()) == 1
        assert len(_dask_processes(gateway, recursive=False)) == 3  # a scheduler and 2 workers
        got = matched.compute(client=client)
        assert sorted(zip(got.tid_targets, got.id_survey, strict=True)) == sorted(
            zip(expected.tid_targets, expected.id_survey, strict=True)
        )
    closed = time.perf_counter()
    clusters, procs = _wait_clean(gateway)
    print(
        f"2 gateway workers up in {up:.1f} s; after close, no cluster and no process "
        f"in {time.perf_counter() - closed:.1f} s"
    )
    assert clusters == []
    assert procs == []


def test_wrong_password_fails_clearly_and_leaves_nothing(gateway, profile):
    import dask

    spec = load_profile("gateway-test")
    with dask.config.set({"gateway.auth.kwargs": {"username": USER, "password": "not-the-password"}}):
        started = time.perf_counter()
        with pytest.raises(ClusterError) as failure:
            with start_cluster(spec):
                pytest.fail("a cluster started with a wrong password")
    took = time.perf_counter() - started
    err = failure.value
    assert "gateway-test" in str(err) and gateway["address"] in str(err) and "HTTP 401" in str(err)
    assert "auth" in str(err).lower()
    assert took < 10
    print(f"wrong password rejected in {took:.2f} s: {type(err).__name__}: {err}")
    clusters, procs = _wait_clean(gateway, timeout=5)
    assert clusters == []
    assert procs == []
