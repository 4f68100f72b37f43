"""Start and stop a real `proxcompute serve` process for the service tests."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(root: Path, *extra: str, timeout: float = 60.0) -> Iterator[str]:
    """``proxcompute serve --catalog-root ROOT`` on a free port; yields the TAP base URL."""
    from proxcompute.service import serve_in_background

    with serve_in_background(root, *extra, timeout=timeout) as server:
        yield server.url
