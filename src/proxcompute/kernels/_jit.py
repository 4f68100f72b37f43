"""The one numba decorator used by every kernel (``cache=True`` so fresh processes skip JIT)."""

from __future__ import annotations

import numba

jit = numba.njit(cache=True, nogil=True, fastmath=False)
"""Decorator for kernels: compiled on first use, cached on disk, releases the GIL."""

parallel_jit = numba.njit(cache=True, nogil=True, parallel=True, fastmath=False)
