"""Real servers for the remote-catalog tests: nginx (Range requests) and moto's S3 server.

nginx is installed (apt, as root) and started by ``scripts/remote/start_nginx.sh``; where it
cannot be installed the tests skip, except under CI (``CI=true``), where they fail. Its access
log (one line per request: method, URI, status, bytes sent, Range header) is how the tests
count requests and bytes, independently of the client.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "remote"

MARGIN_ARCSEC = 10.0
"""Margin of the served survey (arcseconds)."""
CLUSTER = (150.0, 2.0)
"""(ra, dec) of a cluster dense enough that its partition has several row groups."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Request:
    method: str
    uri: str
    status: int
    bytes_sent: int
    range: str


@dataclass
class Nginx:
    url: str
    """Base URL, ending in ``/``."""
    access_log: Path

    def mark(self) -> int:
        """The current end of the access log (pass it to :meth:`requests_since`)."""
        return self.access_log.stat().st_size if self.access_log.exists() else 0

    def requests_since(self, mark: int) -> list[Request]:
        """Requests logged after ``mark`` (nginx writes a line when a response is done)."""
        with open(self.access_log, "rb") as fh:
            fh.seek(mark)
            text = fh.read().decode()
        out = []
        for line in text.splitlines():
            method, uri, status, sent, rng = line.split(" ", 4)
            out.append(Request(method, uri, int(status), int(sent), rng.strip('"')))
        return out


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"nginx is needed in CI: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def running_nginx(root: Path, run_dir: Path) -> Iterator[Nginx]:
    """nginx serving ``root`` on a free loopback port (``root/forbidden/`` answers 403)."""
    port = free_port()
    env = dict(os.environ, NGINX_DIR=str(run_dir))
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "start_nginx.sh"), str(root), str(port)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    if proc.returncode == 2:
        _skip_or_fail(proc.stderr.strip())
    if proc.returncode != 0:
        pytest.fail(f"start_nginx.sh failed:\n{proc.stdout}\n{proc.stderr}")
    url = proc.stdout.strip().splitlines()[-1]
    try:
        yield Nginx(url, run_dir / "access.log")
    finally:
        subprocess.run(["bash", str(SCRIPTS / "stop_nginx.sh"), str(port)], env=env, timeout=60, check=False)


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    storage_options: dict


@contextlib.contextmanager
def running_s3(bucket: str, uploads: dict[str, Path]) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port with ``bucket`` holding ``{key: directory}``."""
    import s3fs
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    # moto keeps its buckets per process, not per server: start and end from an empty store
    reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=30).close()
    try:
        import boto3  # moto's dependency; s3fs's mkdir sends a location constraint moto refuses

        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket=bucket)  # fmt: skip
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
        for key, directory in uploads.items():
            fs.put(str(directory), f"{bucket}/{key}", recursive=True)
        yield S3Server(endpoint, options)
    finally:
        urllib.request.urlopen(reset, timeout=30).close()
        server.stop()
