"""Run ``proxcompute serve`` in the background, e.g. from a notebook or a test."""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proxcompute.errors import ProxError

__all__ = ["BackgroundServer", "serve_in_background"]


class BackgroundServer:
    """A ``proxcompute serve`` process; ``url`` is its TAP base URL. Stop it with :meth:`stop`
    (or leave a ``with`` block); it is also stopped at interpreter exit."""

    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``); returns its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.process.poll() is None else f"stopped ({self.process.returncode})"
        return f"<BackgroundServer {self.url} pid={self.process.pid} {state}>"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_in_background(
    catalog_root: str | os.PathLike, *args: str, port: int | None = None, timeout: float = 60.0
) -> BackgroundServer:
    """Start ``proxcompute serve --catalog-root ROOT`` on 127.0.0.1 and wait until it answers.

    Parameters
    ----------
    catalog_root
        The catalogs to serve.
    *args
        More ``serve`` options, e.g. ``"--tokens", "tokens.yaml"`` or ``"--cluster", "local"``.
    port
        TCP port (default: a free one).
    timeout
        Seconds to wait for ``/availability``.

    Returns
    -------
    BackgroundServer
        With ``.url`` (the TAP base URL) and ``.stop()``; usable as a context manager.

    Examples
    --------
    >>> import tempfile
    >>> from proxcompute.catalog import from_dataframe
    >>> from proxcompute.client import Client
    >>> from proxcompute.synthetic import generate_catalog
    >>> root = tempfile.mkdtemp()
    >>> _ = from_dataframe(generate_catalog(2_000, seed=1), name="g").to_catalog(f"{root}/g")
    >>> with serve_in_background(root) as server:
    ...     len(Client(server.url).query("SELECT TOP 3 id FROM g"))
    3
    """
    import httpx

    port = port or _free_port()
    log = Path(tempfile.mkstemp(prefix="proxcompute-serve-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "proxcompute.cli", "serve", "--catalog-root", str(catalog_root),
           "--port", str(port), *args]  # fmt: skip
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PROXCOMPUTE_PROGRESS="0"))  # fmt: skip
    server = BackgroundServer(proc, f"http://127.0.0.1:{port}/tap", log)
    atexit.register(server.stop)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(server.url + "/availability", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise ProxError(f"the TAP server did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
