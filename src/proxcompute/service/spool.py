"""A result written in a worker thread to a spooled file, then streamed with its length.

The sync endpoint and the portal's downloads both write a whole result before answering (so
an error becomes a 4xx instead of a cut-off body), in memory up to ``SPOOL_BYTES`` and in a
temporary file under the results directory beyond.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

__all__ = ["SPOOL_BYTES", "spooled_response"]

SPOOL_BYTES = 64 << 20
"""Bytes of a result kept in memory before the spool moves to a temporary file."""


async def spooled_response(
    write: Callable[[IO[bytes]], object],
    *,
    directory: Path,
    media_type: str,
    headers: Mapping[str, str] | None = None,
) -> StreamingResponse:
    """Run ``write(spool)`` in a thread, then stream the spool (``content-length`` set).

    An exception from ``write`` propagates (the caller's error mapping answers it) and the
    spool is closed; otherwise it is closed once the body has been sent.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=directory)
    try:
        await run_in_threadpool(write, spool)
    except BaseException:
        spool.close()
        raise
    size = spool.tell()
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        try:
            while block := spool.read(1 << 20):
                yield block
        finally:
            spool.close()

    return StreamingResponse(
        chunks(), media_type=media_type, headers={**(headers or {}), "content-length": str(size)}
    )
