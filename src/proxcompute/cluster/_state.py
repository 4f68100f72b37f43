"""Clusters started by ``proxcompute cluster up``: a small state file per profile, so other
commands (and ``proxcompute.cluster(profile)``) join them and ``cluster down`` stops them."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["forget", "live_entries", "record", "state_dir"]


def state_dir() -> Path:
    """``$PROXCOMPUTE_STATE_DIR`` or ``~/.cache/proxcompute/clusters``."""
    base = os.environ.get("PROXCOMPUTE_STATE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "proxcompute" / "clusters"


def _path(profile: str) -> Path:
    return state_dir() / f"{profile}.json"


def record(profile: str, scheduler: str, dashboard: str | None, backend: str) -> None:
    """Note that this process runs ``profile``'s cluster (written atomically)."""
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True)
    entry = {"profile": profile, "pid": os.getpid(), "scheduler": scheduler, "dashboard": dashboard,
             "backend": backend, "started": time.time()}  # fmt: skip
    tmp = d / f".{profile}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(entry))
    os.replace(tmp, _path(profile))


def forget(profile: str, pid: int | None = None) -> None:
    """Remove the state of ``profile`` (only if written by ``pid``, when given)."""
    path = _path(profile)
    with contextlib.suppress(OSError, ValueError):
        if pid is None or json.loads(path.read_text()).get("pid") == pid:
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_entries() -> dict[str, dict[str, Any]]:
    """``{profile: entry}`` of clusters whose ``up`` process still runs (stale files removed)."""
    out: dict[str, dict[str, Any]] = {}
    d = state_dir()
    if not d.is_dir():
        return out
    for path in sorted(d.glob("*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _alive(int(entry.get("pid", -1))):
            out[entry["profile"]] = entry
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    return out
