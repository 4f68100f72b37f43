"""Where a catalog lives: a local directory, or a URL (``https://``, ``s3://``) read through fsspec.

A local path stays a :class:`pathlib.Path` and every local code path is unchanged. A URL
becomes a :class:`upath.UPath` (universal_pathlib over fsspec), which joins, names and
compares like a path and carries its ``storage_options`` (credentials, endpoint) to every
child. Remote files are read with ranged requests only: :func:`open_input` opens a file
without a read-ahead cache, so pyarrow's coalesced reads of a footer and of the row groups a
plan needs are the only bytes fetched.

Remote metadata (``hats.properties``, ``partition_info.csv``, schemas, Parquet footers) is
cached per process by URL (:func:`remote_cached`); :func:`revalidate` drops a catalog's
entries when its properties file changed, and :func:`clear_remote_cache` drops them all.
Transport failures become :class:`~proxcompute.errors.RemoteAccessError` naming the URL
(:func:`remote_error`); a missing file stays :class:`FileNotFoundError` for the caller to
word.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from proxcompute.errors import RemoteAccessError, StorageError

if TYPE_CHECKING:
    from upath import UPath

__all__ = [
    "as_location",
    "clear_remote_cache",
    "file_size",
    "is_remote",
    "is_url",
    "open_input",
    "read_text",
    "remote_cached",
    "remote_error",
    "revalidate",
]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_TRANSPORT_MODULES = ("aiohttp", "botocore", "aiobotocore", "fsspec", "s3fs", "urllib3", "requests")
T = TypeVar("T")


def is_url(path: object) -> bool:
    """Whether ``path`` is a URL string (``scheme://...``) rather than a local path."""
    return isinstance(path, str) and _URL.match(path) is not None


def is_remote(path: object) -> bool:
    """Whether ``path`` is a remote location (a :class:`upath.UPath` that is not local)."""
    return not isinstance(path, (str, Path)) and type(path).__module__.startswith("upath")


def as_location(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> Path | UPath:
    """``path`` as a :class:`~pathlib.Path`, or a :class:`upath.UPath` for a URL.

    ``file://`` URLs become local paths. ``storage_options`` (fsspec options such as
    ``anon``, ``key``/``secret``, ``client_kwargs={"endpoint_url": ...}``, ``headers``) apply
    to URLs only.

    Raises
    ------
    StorageError
        ``storage_options`` were given for a local path, or the URL's protocol needs a package
        that is not installed (the message names the ``[remote]`` extra).

    Examples
    --------
    >>> as_location("catalogs/survey")
    PosixPath('catalogs/survey')
    >>> str(as_location("https://example.org/hats/survey") / "hats.properties")
    'https://example.org/hats/survey/hats.properties'
    """
    if is_remote(path):
        return path
    if is_url(path):
        if path.startswith("file://"):
            return _local(path[len("file://") :], storage_options)
        return _upath(path, storage_options or {})
    return _local(path, storage_options)


def _local(path: Any, storage_options: Mapping[str, Any] | None) -> Path:
    if storage_options:
        raise StorageError(f"storage_options apply to URLs (https://, s3://), not to the local path {path}")
    return path if isinstance(path, Path) else Path(path)


def _upath(url: str, storage_options: Mapping[str, Any]) -> UPath:
    try:
        from upath import UPath
    except ImportError:
        raise StorageError(
            f"cannot open {url}: reading catalogs from URLs needs the [remote] extra "
            "(pip install 'proxcompute[remote]')"
        ) from None
    try:
        return UPath(url, **dict(storage_options))
    except (ImportError, ValueError) as exc:
        raise StorageError(
            f"cannot open {url}: {exc} (remote catalogs need the [remote] extra: pip install 'proxcompute[remote]')"
        ) from None


def remote_error(path: Any, exc: BaseException) -> RemoteAccessError | None:
    """The :class:`RemoteAccessError` for a transport failure reading ``path``, else None.

    HTTP status codes (403, 500, ...), refused or unresolvable connections, credentials the
    server rejects: the message names the URL and the reason. A missing file
    (:class:`FileNotFoundError`) is not converted: callers say what was missing.
    """
    if isinstance(exc, FileNotFoundError):
        return None
    module = type(exc).__module__.split(".")[0]
    if not isinstance(exc, OSError) and module not in _TRANSPORT_MODULES:
        return None
    status = getattr(exc, "status", None)
    if isinstance(exc, PermissionError) or status in (401, 403):
        reason = f"access denied (HTTP {status})" if status else f"access denied ({_first_line(exc)})"
    elif status is not None:
        reason = f"HTTP {status} {getattr(exc, 'message', '')}".rstrip()
    else:
        reason = _first_line(exc) or type(exc).__name__
    return RemoteAccessError(str(path), reason)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _call(path: Any, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except FileNotFoundError as exc:
        # fsspec's HTTP size probe words every failure (403, refused) as "not found": the cause says
        cause = exc.__cause__
        err = remote_error(path, cause) if cause is not None else None
        if err is None or getattr(cause, "status", None) == 404:
            raise
        raise err from None
    except Exception as exc:
        err = remote_error(path, exc)
        if err is None:
            raise
        raise err from None


_CACHE_SIZE = 4096
_cache: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_lock = threading.Lock()
_MISSING = object()


def _key(kind: str, path: Any) -> tuple[str, str, str]:
    opts = getattr(path, "storage_options", {}) or {}
    return (kind, str(path), repr(sorted(opts.items())))


def remote_cached(kind: str, path: Any, load: Callable[[], T]) -> T:
    """``load()`` for remote ``path``, remembered per process under ``(kind, url, options)``.

    A :class:`FileNotFoundError` is remembered too (and raised again), so probing for an
    optional file (``_common_metadata``, ``collection.properties``) costs one request.
    Transport failures are raised as :class:`RemoteAccessError` and not remembered.
    """
    key = _key(kind, path)
    with _lock:
        value = _cache.get(key, _MISSING)
        if value is not _MISSING:
            _cache.move_to_end(key)
    if value is _MISSING:
        try:
            value = _call(path, load)
        except FileNotFoundError as exc:
            value = exc
        with _lock:
            _cache[key] = value
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    if isinstance(value, FileNotFoundError):
        raise FileNotFoundError(*value.args)
    return value


def revalidate(properties_path: Any) -> None:
    """Re-read a remote catalog's properties file; when it changed (or vanished), forget every
    cached entry under the catalog's directory, so a rewritten catalog is never read through
    stale footers. One small request per call."""
    if not is_remote(properties_path):
        return
    root = str(properties_path.parent).rstrip("/") + "/"
    try:
        fresh: Any = _call(properties_path, lambda: _cat(properties_path))
    except FileNotFoundError as exc:
        fresh = exc
    key = _key("bytes", properties_path)
    with _lock:
        old = _cache.get(key, _MISSING)
        same = old is not _MISSING and (
            old == fresh or (isinstance(old, FileNotFoundError) and isinstance(fresh, FileNotFoundError))
        )
        if not same:
            for k in [k for k in _cache if k[1].startswith(root) or k[1] == root.rstrip("/")]:
                del _cache[k]
        _cache[key] = fresh


def clear_remote_cache() -> None:
    """Forget every cached remote file, schema and footer."""
    with _lock:
        _cache.clear()


def read_text(path: Any) -> str:
    """The text of a small file (properties, CSV); cached when remote.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    RemoteAccessError
        A remote read failed for another reason (the message names the URL).
    """
    if not is_remote(path):
        return Path(path).read_text()
    data = remote_cached("bytes", path, lambda: _cat(path))
    return data.decode("utf-8")


def _cat(path: UPath) -> bytes:
    """The whole of a small remote file in one request (no size probe first)."""
    return path.fs.cat_file(path.path)


def file_size(path: Any) -> int:
    """Size in bytes of a remote file (one request the first time, then cached)."""
    return remote_cached("size", path, lambda: int(path.fs.size(path.path)))


def open_input(path: Any) -> Any:
    """What pyarrow should open for ``path``: the path itself when local, else an fsspec file
    doing one ranged request per read (no read-ahead: pyarrow asks for exactly the footer and
    the column chunks it needs, coalescing neighbours)."""
    if not is_remote(path):
        return path
    size = file_size(path)
    return _call(path, lambda: path.fs.open(path.path, "rb", cache_type="none", size=size))
