# proxcompute worker and scheduler image for dask-gateway on Kubernetes.
#
#   docker build -t ghcr.io/proxcompute/proxcompute:0.1.0 .
#
# clusters/kubernetes/values.yaml runs it as `python -m distributed.cli.dask_scheduler ...` and
# `python -m distributed.cli.dask_worker ...` (distributed >= 2026.6 has no dask-scheduler or
# dask-worker scripts). Schedulers need dask-gateway (the --preload dask_gateway.scheduler_preload
# the gateway adds); keep its version equal to the gateway server's (the chart's appVersion).
# Not built in the project's tests; tests/cluster/test_kubernetes_offline.py only checks this file.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/home/proxc/.cache/numba \
    PROXCOMPUTE_PROGRESS=0

# tini reaps the worker's child processes (nanny -> worker) and forwards SIGTERM on pod deletion
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

# uid/gid 1000: clusters/kubernetes/values.yaml sets runAsUser/runAsGroup 1000 and runAsNonRoot
RUN groupadd --gid 1000 proxc \
 && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin proxc

WORKDIR /opt/proxcompute
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . "dask-gateway==2026.3.0" \
 && python -c "import proxcompute, dask_gateway, distributed" \
 && rm -rf /opt/proxcompute/src /opt/proxcompute/build

USER 1000:1000
WORKDIR /home/proxc
# fill numba's on-disk cache as the user that runs the kernels
RUN python -m proxcompute.kernels.warm

ENTRYPOINT ["tini", "-g", "--"]
CMD ["python", "-m", "distributed.cli.dask_worker", "--help"]
