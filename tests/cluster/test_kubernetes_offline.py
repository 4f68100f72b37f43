"""Offline checks of the Kubernetes deployment: ``clusters/kubernetes/values.yaml`` and ``Dockerfile``.

There is no Kubernetes, Helm, Docker or network to the chart repository here, so this is what is
and is not checked.

Validated:

- ``values.yaml`` parses and uses only keys that the dask-gateway chart (2026.3.0) knows; the key
  tree is encoded below from the chart's ``values.yaml``, so a typo such as ``gateway.backend.workers``
  fails. Image, auth type, resources and idle timeout are what proxcompute expects.
- The gateway configuration that the chart's gateway ConfigMap template would generate is rebuilt in
  Python the way that template does it: the image, the ``gateway.backend.*`` to ``KubeClusterConfig``
  field mapping, the authenticator and ``gateway.extraConfig`` in key order. It is then executed
  with the installed dask-gateway-server, so the Python in ``extraConfig`` runs and its
  ``cluster_options`` accept exactly the options that ``proxcompute.cluster`` sends for the shipped
  ``kubernetes`` profile.
- dask-gateway's own controller code (``KubeController.make_pod`` and ``make_secret``) builds the
  scheduler Pod, the worker Pod and the credentials Secret for such a cluster. These are validated
  strictly with ``kubernetes-validate`` against the bundled Kubernetes 1.30 (the chart's
  ``kubeVersion`` floor) and 1.37 schemas. Pods carrying the resources of the api, controller and
  traefik pods are validated the same way.
- ``Dockerfile``: known instructions, a pinned ``python:3.11-slim`` base (no ``latest``), a
  numeric non-root ``USER`` whose uid is the one that ``values.yaml`` runs as, COPY sources that
  exist, dask-gateway pinned to the gateway server's version, and exec-form ENTRYPOINT/CMD.

Not validated: the chart's templates are not rendered, and Helm's values.schema.json is not
applied. Helm and the chart are not available offline; the reference notes that helm-python-sdk can
render it from a chart source copy. So template errors and the chart's Deployments, Services, RBAC,
CRDs and Traefik routes go unchecked. The image is not built. Nothing is scheduled (quotas, image
pulls, JupyterHub tokens, networking).
"""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from proxcompute.cluster import load_profile

_WHY = "needs the test extra: pip install -e '.[test]' (kubernetes-validate, dask-gateway-server[kubernetes])"
kv = pytest.importorskip("kubernetes_validate", reason=_WHY, exc_type=ImportError)
pytest.importorskip("dask_gateway_server.backends.kubernetes", reason=_WHY, exc_type=ImportError)

from dask_gateway_server.backends.kubernetes import KubeClusterConfig  # noqa: E402
from dask_gateway_server.backends.kubernetes.controller import KubeController  # noqa: E402
from dask_gateway_server.utils import FrozenAttrDict  # noqa: E402
from traitlets.config import Config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "clusters" / "kubernetes" / "values.yaml"
DOCKERFILE = ROOT / "Dockerfile"
K8S_VERSIONS = ("1.30.0", "1.37.0")  # the chart's kubeVersion floor, and the newest bundled schema
RELEASE, NAMESPACE = "dask-gateway", "proxcompute"
IMAGE = "ghcr.io/proxcompute/proxcompute"

# The dask-gateway chart's values (2026.3.0): None = a leaf, "*" = a free mapping, dict = known keys.
_IMG = {"name": None, "tag": None, "pullPolicy": None}
_PROBE = {
    k: None for k in ("enabled", "initialDelaySeconds", "timeoutSeconds", "periodSeconds", "failureThreshold")
}
_REQLIM = {"request": None, "limit": None}
_SIZING = {"extraPodConfig": "*", "extraContainerConfig": "*", "cores": _REQLIM, "memory": _REQLIM}
_PLACEMENT = {"nodeSelector": "*", "affinity": "*", "tolerations": None}
CHART_KEYS = {
    "nameOverride": None,
    "fullnameOverride": None,
    "global": "*",
    "gateway": {
        "replicas": None, "annotations": "*", "resources": "*", "prefix": None, "loglevel": None,
        "image": _IMG, "env": None, "imagePullSecrets": None, "service": {"annotations": "*"},
        "auth": {
            "type": None,
            "simple": {"password": None},
            "kerberos": {"keytab": None},
            "jupyterhub": {
                "apiToken": None, "apiTokenFromSecretName": None, "apiTokenFromSecretKey": None,
                "apiUrl": None, "jupyterhubServiceName": None,
            },
            "custom": {"class": None, "config": "*"},
        },
        "livenessProbe": _PROBE, "readinessProbe": _PROBE, **_PLACEMENT, "extraConfig": None,
        "backend": {
            "image": _IMG, "imagePullSecrets": None, "namespace": None, "environment": "*",
            "scheduler": _SIZING, "worker": {**_SIZING, "threads": None},
        },
    },
    "controller": {
        "enabled": None, "annotations": "*", "resources": "*", "imagePullSecrets": None, "loglevel": None,
        "completedClusterMaxAge": None, "completedClusterCleanupPeriod": None, "backoffBaseDelay": None,
        "backoffMaxDelay": None, "k8sApiRateLimit": None, "k8sApiRateLimitBurst": None, "image": _IMG,
        **_PLACEMENT,
    },
    "traefik": {
        "installTraefik": None, "replicas": None, "annotations": "*", "resources": "*", "image": _IMG,
        "imagePullSecrets": None, "additionalArguments": None, "loglevel": None, "dashboard": None,
        "service": {
            "type": None, "annotations": "*", "spec": "*",
            "ports": {"web": {"port": None, "nodePort": None}, "tcp": {"port": None, "nodePort": None}},
        },
        **_PLACEMENT,
    },
    "rbac": {
        "enabled": None,
        "controller": {"serviceAccountName": None},
        "gateway": {"serviceAccountName": None},
        "traefik": {"serviceAccountName": None},
    },
}  # fmt: skip

# The chart's gateway ConfigMap: gateway.backend.<path> -> c.KubeClusterConfig.<field>
CHART_FORWARDING = [
    ("scheduler_cores", "scheduler.cores.request"),
    ("scheduler_cores_limit", "scheduler.cores.limit"),
    ("scheduler_memory", "scheduler.memory.request"),
    ("scheduler_memory_limit", "scheduler.memory.limit"),
    ("scheduler_extra_container_config", "scheduler.extraContainerConfig"),
    ("scheduler_extra_pod_config", "scheduler.extraPodConfig"),
    ("worker_cores", "worker.cores.request"),
    ("worker_cores_limit", "worker.cores.limit"),
    ("worker_memory", "worker.memory.request"),
    ("worker_memory_limit", "worker.memory.limit"),
    ("worker_threads", "worker.threads"),
    ("worker_extra_container_config", "worker.extraContainerConfig"),
    ("worker_extra_pod_config", "worker.extraPodConfig"),
    ("image_pull_policy", "image.pullPolicy"),
    ("environment", "environment"),
    ("namespace", "namespace"),
]
AUTHENTICATORS = {
    "simple": "dask_gateway_server.auth.SimpleAuthenticator",
    "kerberos": "dask_gateway_server.auth.KerberosAuthenticator",
    "jupyterhub": "dask_gateway_server.auth.JupyterHubAuthenticator",
}


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def _unknown_keys(tree: dict, known: dict, where: str = "") -> list[str]:
    bad = []
    for key, value in tree.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            bad.append(path)
        elif isinstance(known[key], dict):
            if not isinstance(value, dict):
                bad.append(f"{path} (expected a mapping)")
            else:
                bad += _unknown_keys(value, known[key], path)
        elif known[key] == "*" and not isinstance(value, dict):
            bad.append(f"{path} (expected a mapping)")
    return bad


def _get(tree: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def gateway_config(values: dict) -> Config:
    """The traitlets config the chart's gateway ConfigMap would produce from ``values``."""
    c = Config()
    gateway = values["gateway"]
    backend = gateway["backend"]
    c.DaskGateway.backend_class = "dask_gateway_server.backends.kubernetes.KubeBackend"
    c.KubeBackend.gateway_instance = RELEASE
    c.KubeBackend.api_url = f"http://api-{RELEASE}.{NAMESPACE}:8000/api"
    name, tag = backend["image"]["name"], backend["image"].get("tag")
    c.KubeClusterConfig.image = f"{name}:{tag}" if tag else name
    c.KubeClusterConfig.image_pull_secrets = backend.get("imagePullSecrets") or []
    for field, prop in CHART_FORWARDING:
        value = _get(backend, prop)
        if value is not None:
            setattr(c.KubeClusterConfig, field, value)
    auth = gateway["auth"]["type"]
    assert auth in (*AUTHENTICATORS, "custom"), f"unknown gateway.auth.type {auth!r}"
    c.DaskGateway.authenticator_class = AUTHENTICATORS.get(auth, _get(gateway, "auth.custom.class"))
    extra = gateway.get("extraConfig") or {}
    snippets = [("", extra)] if isinstance(extra, str) else sorted(extra.items())
    for key, code in snippets:
        exec(compile(code, f"gateway.extraConfig.{key}", "exec"), {"c": c, "get_config": lambda: c})
    return c


def _requested_options(spec, options) -> dict:
    """What proxcompute.cluster.backends._gateway puts into gateway.new_cluster(options)."""
    names = {f["field"] for f in options.get_specification()}
    wanted = dict(spec.gateway.get("cluster_options") or {})
    if "worker_cores" in names:
        wanted.setdefault("worker_cores", spec.cores)
    if spec.memory is not None and "worker_memory" in names:
        wanted.setdefault("worker_memory", spec.memory / 2**30)
    return wanted


def _cluster_config(c: Config, request: dict) -> KubeClusterConfig:
    """The per-cluster config the gateway api pod stores in the DaskCluster object (as JSON)."""
    options = c.Backend.cluster_options
    overrides = options.get_configuration(options.parse_options(request), "alice")
    return KubeClusterConfig(config=c, **overrides)


def _controller() -> KubeController:
    cc = Config()
    cc.KubeController.api_url = f"http://api-{RELEASE}.{NAMESPACE}:8000/api"
    cc.KubeController.gateway_instance = RELEASE
    return KubeController(config=cc)


def _validate(obj: dict) -> None:
    for version in K8S_VERSIONS:
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as exc:
            raise AssertionError(f"{obj['kind']} invalid for Kubernetes {version}: {exc.message}") from None


def _pods(values: dict, request: dict) -> tuple[dict, dict, dict]:
    cfg = _cluster_config(gateway_config(values), request)
    frozen = FrozenAttrDict(json.loads(json.dumps(cfg.to_dict())))  # as read back from the CRD
    ctrl = _controller()
    scheduler = ctrl.make_pod(NAMESPACE, "c0ffee", frozen, is_worker=False)
    worker = ctrl.make_pod(NAMESPACE, "c0ffee", frozen, is_worker=True)
    worker["metadata"]["name"] = worker["metadata"].pop("generateName") + "x1"
    for pod in (scheduler, worker):
        pod["metadata"]["namespace"] = NAMESPACE
    return scheduler, worker, cfg.to_dict()


# ---------------------------------------------------------------------------- values.yaml


def test_values_use_only_keys_the_chart_knows(values):
    assert _unknown_keys(values, CHART_KEYS) == []
    # the check itself catches a typo
    assert _unknown_keys({"gateway": {"backend": {"workers": {}}}}, CHART_KEYS) == ["gateway.backend.workers"]


def test_values_carry_our_image_auth_and_defaults(values):
    backend = values["gateway"]["backend"]
    assert backend["image"]["name"] == IMAGE
    assert backend["image"]["tag"]  # a placeholder to pin; never empty
    assert values["gateway"]["auth"]["type"] in ("jupyterhub", "simple")
    assert values["gateway"]["auth"]["simple"]["password"] is None  # never a password in git
    for part in ("scheduler", "worker"):
        for res in ("cores", "memory"):
            assert backend[part][res]["request"] is not None and backend[part][res]["limit"] is not None
    for part in ("gateway", "controller", "traefik"):
        assert set(values[part]["resources"]) == {"requests", "limits"}
    text = VALUES.read_text()
    assert "c.ClusterConfig.idle_timeout" in text
    assert "distributed.cli.dask_scheduler" in text and "distributed.cli.dask_worker" in text


def test_extra_config_runs_and_matches_the_kubernetes_profile(values):
    c = gateway_config(values)
    spec = load_profile("kubernetes")
    assert spec.backend == "gateway"
    options = c.Backend.cluster_options
    fields = {f["field"]: f for f in options.get_specification()}
    assert set(fields) == {"worker_cores", "worker_memory"}
    request = _requested_options(spec, options)
    assert request == {"worker_cores": spec.cores, "worker_memory": spec.memory / 2**30}
    cfg = _cluster_config(c, request)
    assert cfg.worker_cores == cfg.worker_cores_limit == spec.cores
    assert cfg.worker_threads == spec.cores
    assert cfg.worker_memory == cfg.worker_memory_limit == spec.memory
    assert cfg.scheduler_cmd == ["python", "-m", "distributed.cli.dask_scheduler"]
    assert cfg.worker_cmd == ["python", "-m", "distributed.cli.dask_worker"]
    assert cfg.idle_timeout == 1800
    assert cfg.image == f"{IMAGE}:{values['gateway']['backend']['image']['tag']}"
    # the profile's limits fit the gateway's option bounds and per-cluster caps
    limits = dict(spec.limits)
    assert fields["worker_memory"]["spec"]["max"] * 2**30 >= spec.memory
    if "max_memory" in limits:
        from proxcompute.cluster import parse_memory

        assert parse_memory(limits["max_memory"]) == fields["worker_memory"]["spec"]["max"] * 2**30
    assert cfg.cluster_max_workers >= limits["max_workers"]
    # a request beyond the options is refused by the gateway (proxcompute's limits catch it first)
    with pytest.raises(ValueError, match="worker_memory"):
        options.parse_options({"worker_cores": 1, "worker_memory": 64.0})


@pytest.mark.parametrize(
    "request_", [None, {"worker_cores": 8, "worker_memory": 32.0}], ids=["profile", "max"]
)
def test_scheduler_and_worker_pods_validate_against_kubernetes_schemas(values, request_):
    c = gateway_config(values)
    request = request_ or _requested_options(load_profile("kubernetes"), c.Backend.cluster_options)
    scheduler, worker, cfg = _pods(values, request)
    _validate(scheduler)
    _validate(worker)
    _validate(_controller().make_secret("c0ffee"))
    container = worker["spec"]["containers"][0]
    assert container["image"] == cfg["image"]
    assert container["args"][:3] == ["python", "-m", "distributed.cli.dask_worker"]
    cores, memory = request["worker_cores"], int(request["worker_memory"] * 2**30)
    assert container["resources"] == {
        "requests": {"cpu": f"{cores:.3f}", "memory": str(memory)},
        "limits": {"cpu": f"{cores:.3f}", "memory": str(memory)},
    }
    args = container["args"]
    assert args[args.index("--nthreads") + 1] == str(cores)
    assert args[args.index("--memory-limit") + 1] == str(memory)
    for pod in (scheduler, worker):
        security = pod["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == _docker_uid()
        assert pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["OMP_NUM_THREADS"] == "1"


def test_gateway_controller_and_traefik_resources_validate(values):
    for part in ("gateway", "controller", "traefik"):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{part}-resources", "namespace": NAMESPACE},
            "spec": {"containers": [{"name": part, "image": "x:1", "resources": values[part]["resources"]}]},
        }
        _validate(pod)
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {"containers": [{"name": "x", "image": "x:1", "resources": {"request": {"cpu": "1"}}}]},
    }
    with pytest.raises(AssertionError, match="request"):  # the validator does catch a typo
        _validate(bad)


# ---------------------------------------------------------------------------- Dockerfile

DOCKER_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        current += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if not stripped.endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            current = ""
    assert not current, "Dockerfile ends inside a line continuation"
    return out


def _docker_uid() -> int:
    users = [args for word, args in _instructions() if word == "USER"]
    return int(users[-1].split(":")[0])


def test_dockerfile_parses_and_is_a_non_root_worker_image():
    ins = _instructions()
    words = [w for w, _ in ins]
    assert set(words) <= DOCKER_INSTRUCTIONS, set(words) - DOCKER_INSTRUCTIONS
    assert words[0] == "FROM" and words.count("FROM") == 1
    base = ins[0][1]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base
    assert not base.endswith(":latest")
    # the last USER is numeric and not root, so Kubernetes' runAsNonRoot can verify it
    users = [args for w, args in ins if w == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) != 0
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "COPY")
    values = yaml.safe_load(VALUES.read_text())
    assert (
        values["gateway"]["backend"]["worker"]["extraPodConfig"]["securityContext"]["runAsUser"]
        == _docker_uid()
    )
    for w, args in ins:
        if w == "COPY":
            *sources, _dest = shlex.split(args)
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        if w in ("ENTRYPOINT", "CMD"):
            assert isinstance(json.loads(args), list), f"{w} should use the exec (JSON) form"
    run = " ".join(args for w, args in ins if w == "RUN")
    assert re.search(r"pip install \.", run), "installs the project"
    from importlib.metadata import version

    assert f'"dask-gateway=={version("dask-gateway-server")}"' in run, (
        "dask-gateway pinned to the server's version"
    )
    assert "proxcompute.kernels.warm" in run
