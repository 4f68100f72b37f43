"""Start and stop a real `proxcompute serve` process for the service tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(root: Path, *extra: str, timeout: float = 60.0) -> Iterator[str]:
    """``proxcompute serve --catalog-root ROOT`` on a free port; yields the TAP base URL."""
    port = free_port()
    env = dict(os.environ, PROXCOMPUTE_PROGRESS="0")
    cmd = [sys.executable, "-m", "proxcompute.cli", "serve", "--catalog-root", str(root), "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/tap"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(url + "/availability", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"the server did not start: {out}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
