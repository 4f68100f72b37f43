"""The one decorator used by every numba kernel: ``cache=True``, ``nogil``, and lazy.

Importing numba and initialising its compiler costs ~0.6 s, which would double the time of
a cone search in a fresh process. ``@jit`` therefore returns a stand-in that imports numba
only when a kernel is first called; at that moment every ``@jit`` function of the same
module is turned into a numba dispatcher (so kernels can call each other), loaded from the
on-disk cache that ``python -m proxcompute.kernels.warm`` fills at install time.

Wrappers that see small inputs may use numpy instead while numba is not loaded yet:
:func:`numba_loaded` tells them.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["jit", "numba_loaded"]

_OPTIONS = {"cache": True, "nogil": True, "fastmath": False}
_lock = threading.RLock()


def numba_loaded() -> bool:
    """Whether numba is already imported in this process (then kernels cost no start-up)."""
    return "numba" in sys.modules


class _LazyKernel:
    """Stand-in for a numba dispatcher until the first call."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.py_func = func
        self.__name__ = func.__name__
        self.__qualname__ = func.__qualname__
        self.__doc__ = func.__doc__
        self.__module__ = func.__module__
        self._dispatcher: Any = None

    def compile_module(self) -> None:
        """Replace every lazy kernel of every loaded kernel module by its numba dispatcher.

        All modules at once, because kernels call kernels of other modules (crossmatch uses
        ``healpix_nested._neighbours_of``), and numba must find dispatchers there when it
        types a caller (always on a cache miss). Creating a dispatcher compiles nothing.
        """
        import numba

        with _lock:
            if self._dispatcher is not None:
                return
            package = self.__module__.rsplit(".", 1)[0]
            modules = [m for name, m in list(sys.modules.items()) if name.startswith(package + ".") and m]
            for module in modules:
                for lazy in [v for v in vars(module).values() if isinstance(v, _LazyKernel)]:
                    if lazy._dispatcher is None:
                        lazy._dispatcher = numba.njit(**_OPTIONS)(lazy.py_func)
                    if getattr(module, lazy.__name__, None) is lazy:
                        setattr(module, lazy.__name__, lazy._dispatcher)

    def __call__(self, *args: Any) -> Any:
        if self._dispatcher is None:
            self.compile_module()
        return self._dispatcher(*args)

    def __reduce__(self):  # pickled by reference, like a module-level function
        return (getattr, (sys.modules[self.__module__], self.__name__))


def jit(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``func`` as a numba kernel (nopython, cached, GIL released), compiled lazily."""
    return _LazyKernel(func)
