"""Raw files -> a HATS-compatible catalog collection: scan, plan, split, reduce; resumable.

See :func:`ingest`.
"""

from proxcompute.ingest._pipeline import DEFAULT_MAX_ROWS, IngestResult, ingest

__all__ = ["DEFAULT_MAX_ROWS", "IngestResult", "ingest"]
