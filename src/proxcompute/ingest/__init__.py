"""Raw files -> a HATS-compatible catalog collection: scan, plan, split, reduce; resumable.

See :func:`ingest`.
"""

from proxcompute.ingest._pipeline import DEFAULT_MAX_ROWS, IngestResult, ingest

__all__ = ["DEFAULT_MAX_ROWS", "IngestResult", "ingest"]


import sys
import types


class _CallableModule(types.ModuleType):
    """``proxcompute.ingest`` is both this package and the :func:`ingest` function.

    Importing a subpackage makes it an attribute of its parent, so ``proxcompute.ingest`` may
    be this module rather than the function; calling it calls :func:`ingest` either way.
    """

    def __call__(self, *args, **kwargs):
        return ingest(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
