"""Cluster profiles: find them, resolve one into a frozen :class:`ClusterSpec`, validate it.

Profiles are plain YAML in Dask's config layout::

    proxcompute:
      cluster:
        <name>:
          backend: local | slurm | pbs | sge | gateway
          workers: 2
          ...

They are looked up, later sources overriding earlier ones by profile name, in:

1. the profiles shipped in the package (``proxcompute/cluster/profiles/*.yaml``, package data
   found with :mod:`importlib.resources`, so a wheel has them),
2. ``~/.config/proxcompute/clusters/``,
3. ``PROXCOMPUTE_CLUSTERS``: files or directories separated by ``os.pathsep``.

Nothing here imports dask; everything is checked before anything is submitted.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import math
import os
import re
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from proxcompute.errors import ProxError

__all__ = [
    "BACKENDS",
    "ClusterError",
    "ClusterSpec",
    "format_bytes",
    "list_profiles",
    "load_profile",
    "parse_memory",
    "parse_walltime",
    "profile_paths",
    "validate",
]

BACKENDS = ("local", "slurm", "pbs", "sge", "gateway")
JOBQUEUE_BACKENDS = ("slurm", "pbs", "sge")
ENV_VAR = "PROXCOMPUTE_CLUSTERS"
DEFAULT_PROFILE = "local"

_PROFILE_KEYS = {
    "backend", "description", "workers", "cores", "processes", "memory", "walltime",
    "queue", "partition", "account", "adaptive", "limits", "jobqueue", "gateway",
}  # fmt: skip
_OVERRIDE_KEYS = {
    "workers",
    "cores",
    "processes",
    "memory",
    "walltime",
    "queue",
    "partition",
    "account",
    "adaptive",
}
_LIMIT_KEYS = {"max_workers", "max_cores", "max_memory", "max_walltime"}


class ClusterError(ProxError):
    """A cluster profile is unknown or malformed, or a resource request is invalid."""


# ---------------------------------------------------------------------------- units

_UNITS = {
    "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
}  # fmt: skip
_MEM_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def parse_memory(value: object, what: str = "memory") -> int:
    """Bytes in a memory request such as ``"4GiB"`` (4·2³⁰) or ``"4GB"`` (4·10⁹).

    The unit is required and must be explicit about its base: ``"4G"`` is rejected
    because batch systems disagree on what it means.
    """
    if isinstance(value, bool) or value is None:
        raise ClusterError(f"{what}: expected a size such as '4GiB' or '4GB', got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ClusterError(f"{what}: must be positive, got {value}")
        return value
    m = _MEM_RE.match(str(value))
    if not m:
        raise ClusterError(f"{what}: cannot parse {value!r}; write a number and a unit, e.g. '4GiB' or '4GB'")
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit not in _UNITS:
        hint = ""
        if unit in ("k", "m", "g", "t", "p"):
            hint = f" ('{m.group(2)}' is ambiguous: write '{m.group(1)}{m.group(2).upper()}iB' or '{m.group(1)}{m.group(2).upper()}B')"
        raise ClusterError(
            f"{what}: unknown unit in {value!r}{hint}; use B, KB/MB/GB/TB (10³) or KiB/MiB/GiB/TiB (2¹⁰)"
        )
    n = number * _UNITS[unit]
    if n < 1:
        raise ClusterError(f"{what}: must be positive, got {value!r}")
    return math.ceil(n)


def format_bytes(n: int) -> str:
    """An exact, explicit rendering of ``n`` bytes in the largest unit that divides it.

    ``4GiB``, ``1536MiB``, ``4GB`` or ``123B``; binary units win a tie.
    """
    units = ("TiB", "TB", "GiB", "GB", "MiB", "MB", "KiB", "KB")
    exact = [u for u in units if n >= _UNITS[u.lower()] and n % _UNITS[u.lower()] == 0]
    if not exact:
        return f"{n}B"
    unit = max(exact, key=lambda u: (_UNITS[u.lower()], u.endswith("iB")))
    return f"{n // _UNITS[unit.lower()]}{unit}"


_WALL_RE = re.compile(r"^\s*(?:(\d+)-)?(\d+):(\d{2})(?::(\d{2}))?\s*$")


def parse_walltime(value: object, what: str = "walltime") -> int:
    """Seconds in ``"HH:MM:SS"``, ``"HH:MM"`` or ``"D-HH:MM:SS"``."""
    m = _WALL_RE.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise ClusterError(f"{what}: cannot parse {value!r}; write 'HH:MM:SS' (or 'D-HH:MM:SS')")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    if minutes >= 60 or seconds >= 60:
        raise ClusterError(f"{what}: minutes and seconds must be below 60 in {value!r}")
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ClusterError(f"{what}: must be positive, got {value!r}")
    return total


def format_walltime(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    return f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}"


# ---------------------------------------------------------------------------- spec


def _freeze(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return tuple(_freeze(v) for v in obj)
    return obj


def thaw(obj: Any) -> Any:
    """Plain dicts and lists again, for passing on to dask-jobqueue or dask-gateway."""
    if isinstance(obj, Mapping):
        return {k: thaw(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [thaw(v) for v in obj]
    return obj


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """A profile resolved once: every field is final, memory in bytes, walltime in seconds."""

    name: str
    backend: str
    workers: int | None = None  # None: one per core (local)
    cores: int = 1  # threads per worker
    processes: int | bool = 1  # jobqueue: worker processes per job; local: use processes
    memory: int | None = None  # bytes per worker (local) / per job (batch); None: automatic
    walltime: int | None = None  # seconds
    queue: str | None = None  # SLURM partition, PBS/SGE queue
    account: str | None = None
    adaptive: tuple[int, int] | None = None  # (minimum, maximum)
    limits: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    jobqueue: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    gateway: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    source: str = ""

    @property
    def memory_str(self) -> str | None:
        """The memory request with an explicit unit, e.g. ``4GiB``; None when automatic."""
        return None if self.memory is None else format_bytes(self.memory)

    @property
    def walltime_str(self) -> str | None:
        return None if self.walltime is None else format_walltime(self.walltime)

    def to_dict(self) -> dict[str, Any]:
        """A readable, YAML-friendly view (units made explicit)."""
        return {
            "name": self.name,
            "backend": self.backend,
            "workers": self.workers,
            "cores": self.cores,
            "processes": self.processes,
            "memory": self.memory_str,
            "walltime": self.walltime_str,
            "queue": self.queue,
            "account": self.account,
            "adaptive": None
            if self.adaptive is None
            else {"minimum": self.adaptive[0], "maximum": self.adaptive[1]},
            "limits": thaw(self.limits),
            "jobqueue": thaw(self.jobqueue),
            "gateway": thaw(self.gateway),
            "source": self.source,
        }


def _int(value: object, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ClusterError(f"{what}: expected an integer ≥ {minimum}, got {value!r}")
    return value


def _adaptive(value: object, where: str) -> tuple[int, int] | None:
    if value is None or value is False:
        return None
    if isinstance(value, Mapping):
        unknown = set(value) - {"minimum", "maximum"}
        if unknown:
            raise ClusterError(f"{where}: adaptive accepts minimum and maximum, not {sorted(unknown)}")
        lo, hi = value.get("minimum", 0), value.get("maximum")
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        lo, hi = value
    else:
        raise ClusterError(f"{where}: adaptive must be {{minimum: N, maximum: M}}, got {value!r}")
    lo = _int(lo, f"{where}: adaptive.minimum")
    hi = _int(hi, f"{where}: adaptive.maximum", minimum=1)
    if lo > hi:
        raise ClusterError(f"{where}: adaptive.minimum ({lo}) is above adaptive.maximum ({hi})")
    return (lo, hi)


def _resolve(name: str, raw: Mapping[str, Any], source: str) -> ClusterSpec:
    where = f"cluster profile '{name}' ({source})"
    if not isinstance(raw, Mapping):
        raise ClusterError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = set(raw) - _PROFILE_KEYS
    if unknown:
        raise ClusterError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_PROFILE_KEYS)}")
    backend = raw.get("backend", "local")
    if backend not in BACKENDS:
        raise ClusterError(f"{where}: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if raw.get("queue") is not None and raw.get("partition") is not None and raw["queue"] != raw["partition"]:
        raise ClusterError(f"{where}: queue and partition are the same setting; give one")
    queue = raw.get("partition") if raw.get("partition") is not None else raw.get("queue")
    workers = raw.get("workers")
    memory = raw.get("memory")
    walltime = raw.get("walltime")
    processes = raw.get("processes", True if backend == "local" else 1)
    if backend == "local":
        processes = bool(processes)
    else:
        processes = _int(processes, f"{where}: processes", minimum=1)
    limits = raw.get("limits") or {}
    _check_limits_shape(limits, where)
    for key in ("jobqueue", "gateway"):
        if raw.get(key) is not None and not isinstance(raw[key], Mapping):
            raise ClusterError(f"{where}: {key} must be a mapping")
    return ClusterSpec(
        name=name,
        backend=backend,
        workers=None if workers is None else _int(workers, f"{where}: workers"),
        cores=_int(raw.get("cores", 1), f"{where}: cores", minimum=1),
        processes=processes,
        memory=None if memory in (None, "auto") else parse_memory(memory, f"{where}: memory"),
        walltime=None if walltime is None else parse_walltime(walltime, f"{where}: walltime"),
        queue=None if queue is None else str(queue),
        account=None if raw.get("account") is None else str(raw["account"]),
        adaptive=_adaptive(raw.get("adaptive"), where),
        limits=_freeze(limits),
        jobqueue=_freeze(raw.get("jobqueue") or {}),
        gateway=_freeze(raw.get("gateway") or {}),
        description=str(raw.get("description") or ""),
        source=source,
    )


def _check_limits_shape(limits: object, where: str) -> None:
    if not isinstance(limits, Mapping):
        raise ClusterError(f"{where}: limits must be a mapping")
    unknown = set(limits) - _LIMIT_KEYS - {"partitions"}
    if unknown:
        raise ClusterError(
            f"{where}: unknown limits {sorted(unknown)}; known: {sorted(_LIMIT_KEYS | {'partitions'})}"
        )
    parts = limits.get("partitions") or {}
    if not isinstance(parts, Mapping):
        raise ClusterError(f"{where}: limits.partitions must map partition names to limits")
    for pname, plim in parts.items():
        if not isinstance(plim, Mapping) or set(plim) - _LIMIT_KEYS:
            raise ClusterError(f"{where}: limits.partitions.{pname} accepts only {sorted(_LIMIT_KEYS)}")


# ---------------------------------------------------------------------------- lookup


def shipped_profiles_dir() -> Traversable:
    """The directory of the profiles shipped as package data (``proxcompute/cluster/profiles``)."""
    return importlib.resources.files("proxcompute.cluster") / "profiles"


def profile_paths() -> list[Traversable]:
    """Profile files and directories in lookup order (later ones override earlier ones)."""
    paths: list[Traversable] = [shipped_profiles_dir(), Path.home() / ".config" / "proxcompute" / "clusters"]
    env = os.environ.get(ENV_VAR, "")
    paths += [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    return paths


def _files(path: Traversable, explicit: bool) -> list[Traversable]:
    if path.is_dir():
        found = [p for p in path.iterdir() if p.name.endswith((".yaml", ".yml")) and p.is_file()]
        return sorted(found, key=lambda p: p.name)
    if path.is_file():
        return [path]
    if explicit:
        raise ClusterError(f"{ENV_VAR} names {path}, which does not exist")
    return []


def _read(path: Traversable) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterError(f"cannot read cluster profiles from {path}: {exc}") from None
    profiles = ((doc or {}).get("proxcompute") or {}).get("cluster") if isinstance(doc, Mapping) else None
    if not isinstance(profiles, Mapping):
        raise ClusterError(f"{path}: expected profiles under 'proxcompute: cluster: <name>: ...'")
    return dict(profiles)


def _raw_profiles() -> dict[str, tuple[Any, str]]:
    """Unresolved profile bodies by name, with the file each came from (last one wins)."""
    raw: dict[str, tuple[Any, str]] = {}
    n_builtin = 2  # the shipped dir and the user config dir may be absent
    for i, path in enumerate(profile_paths()):
        for f in _files(path, explicit=i >= n_builtin):
            for name, body in _read(f).items():
                raw[str(name)] = (body, str(f))
    return raw


def list_profiles() -> dict[str, ClusterSpec]:
    """Every known profile by name, resolved (user profiles override shipped ones)."""
    raw = _raw_profiles()
    return {name: _resolve(name, body, src) for name, (body, src) in sorted(raw.items())}


def load_profile(name: str = DEFAULT_PROFILE, **overrides: Any) -> ClusterSpec:
    """The profile ``name`` with ``overrides`` applied, resolved and validated.

    Overrides: workers, cores, processes, memory, walltime, queue (or partition), account,
    adaptive (``{"minimum": m, "maximum": n}`` or ``(m, n)``). ``None`` values are ignored.
    """
    unknown = set(overrides) - _OVERRIDE_KEYS
    if unknown:
        raise ClusterError(f"unknown cluster settings {sorted(unknown)}; known: {sorted(_OVERRIDE_KEYS)}")
    raw = _raw_profiles()
    if name not in raw:
        known = sorted(raw)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ClusterError(
            f"unknown cluster profile '{name}'{hint}; known profiles: {', '.join(known) or '(none)'}"
        )
    body, source = raw[name]
    if not isinstance(body, Mapping):
        raise ClusterError(f"cluster profile '{name}' ({source}): expected a mapping")
    merged = dict(body)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "partition" in given:
        given["queue"] = given.pop("partition")
    if "queue" in given:
        merged.pop("partition", None)
    merged.update(given)
    return validate(_resolve(name, merged, source))


def validate(spec: ClusterSpec) -> ClusterSpec:
    """``spec`` if its request fits the profile's limits (and its partition's); else ClusterError."""
    where = f"cluster profile '{spec.name}'"
    if spec.backend in JOBQUEUE_BACKENDS:
        if spec.memory is None:
            raise ClusterError(f"{where}: backend {spec.backend} needs memory (e.g. '4GiB')")
        if spec.walltime is None:
            raise ClusterError(f"{where}: backend {spec.backend} needs a walltime (e.g. '01:00:00')")
    if spec.backend == "gateway" and not spec.gateway.get("address"):
        raise ClusterError(f"{where}: backend gateway needs gateway.address")
    limits = dict(spec.limits)
    parts = limits.pop("partitions", None) or {}
    checks = [("profile", limits)]
    if parts:
        if spec.queue is None:
            raise ClusterError(f"{where}: choose a partition/queue, one of {', '.join(sorted(parts))}")
        if spec.queue not in parts:
            raise ClusterError(
                f"{where}: unknown partition/queue '{spec.queue}'; known: {', '.join(sorted(parts))}"
            )
        checks.append((f"partition '{spec.queue}'", dict(parts[spec.queue])))
    workers = max(spec.workers or 0, spec.adaptive[1] if spec.adaptive else 0)
    for label, lim in checks:
        if "max_workers" in lim and workers > int(lim["max_workers"]):
            raise ClusterError(
                f"{where}: {workers} workers exceed the {label} limit max_workers={lim['max_workers']}"
            )
        if "max_cores" in lim and spec.cores > int(lim["max_cores"]):
            raise ClusterError(
                f"{where}: {spec.cores} cores exceed the {label} limit max_cores={lim['max_cores']}"
            )
        if "max_memory" in lim and spec.memory is not None:
            cap = parse_memory(lim["max_memory"], f"{where}: {label} max_memory")
            if spec.memory > cap:
                raise ClusterError(
                    f"{where}: memory {spec.memory_str} ({spec.memory} bytes) exceeds the {label} "
                    f"limit max_memory={format_bytes(cap)} ({cap} bytes)"
                )
        if "max_walltime" in lim and spec.walltime is not None:
            cap = parse_walltime(lim["max_walltime"], f"{where}: {label} max_walltime")
            if spec.walltime > cap:
                raise ClusterError(
                    f"{where}: walltime {spec.walltime_str} exceeds the {label} limit max_walltime={format_walltime(cap)}"
                )
    return spec
