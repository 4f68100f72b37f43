"""Service settings: where catalogs and job data live, limits, queues, users."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from proxcompute.execute.cost_rates import CostRates, load_rates

__all__ = ["ServiceConfig"]


@dataclass
class ServiceConfig:
    """Everything ``proxcompute serve`` can be told; the defaults need no configuration.

    Parameters
    ----------
    catalog_root
        Directory whose catalogs are served (``ROOT/survey/gaia`` is ``survey.gaia``).
    data_dir
        Job database (SQLite by default), results, uploads and MyDB tables; default
        ``<catalog_root>/.proxcompute-service``.
    db_url
        SQLAlchemy URL of the job store, e.g. ``postgresql+psycopg://user@host/db``.
    """

    catalog_root: Path
    data_dir: Path | None = None
    db_url: str | None = None
    base_path: str = "/tap"
    default_maxrec: int = 100_000
    hard_maxrec: int = 100_000_000
    upload_limit_bytes: int = 100_000_000
    queues: dict[str, int] = field(default_factory=lambda: {"short": 600, "long": 86_400})
    """Queue name -> execution duration (seconds) of its jobs."""
    default_queue: str = "short"
    long_queue_seconds: float = 30.0
    """Jobs whose estimated run time (the UWS quote) is above this go to the ``long`` queue
    unless they ask for one with QUEUE."""
    cost_rates: CostRates | None = None
    """Rates of the cost model behind the quote and the queue choice (``--cost-rates``, or the
    file ``proxcompute calibrate`` wrote); None: the file in the user's configuration
    directory if there is one, else the shipped defaults."""
    retention_seconds: int = 7 * 86_400
    sync_timeout_seconds: int = 600
    tokens: dict[str, str] = field(default_factory=dict)
    """Bearer token -> user name (``--tokens``; kept next to an access file's users)."""
    access_file: Path | None = None
    """``--access``: users, groups, per-catalog rules and quotas (see ``docs/access.md``); None:
    every catalog is public and the users are those of ``tokens``."""
    max_query_chars: int = 200_000
    """Longest QUERY accepted (longer: HTTP 400 before any parsing)."""
    max_active_jobs: int = 10
    """Active (queued or running) jobs per user unless the access file's quotas say otherwise."""
    mydb_quota_bytes: int = 1 << 30
    """MyDB bytes per user unless the access file's quotas say otherwise."""
    job_processes: bool = True
    """Run UWS jobs in worker processes (when no cluster is given), so that a long job never
    holds the service's GIL; False: on threads of the service process."""
    job_nice: int = 10
    """Nice value added to a job's worker process: the service's sync queries get the CPU first."""
    cluster: str | None = None
    """Name of the cluster profile whose client was handed to ``create_app`` (shown on /availability)."""

    def __post_init__(self) -> None:
        self.catalog_root = Path(self.catalog_root).resolve()
        if self.data_dir is None:
            self.data_dir = self.catalog_root / ".proxcompute-service"
        self.data_dir = Path(self.data_dir).resolve()
        if self.db_url is None:
            self.db_url = f"sqlite:///{self.data_dir / 'jobs.sqlite'}"
        self.base_path = "/" + self.base_path.strip("/")
        if self.access_file is not None:
            self.access_file = Path(self.access_file).resolve()
        if not 0 <= int(self.job_nice) <= 19:
            raise ValueError(f"job_nice={self.job_nice} must be between 0 and 19")
        if self.cost_rates is None:
            self.cost_rates = load_rates()
        if not self.long_queue_seconds >= 0:
            raise ValueError(f"long_queue_seconds must be >= 0, got {self.long_queue_seconds!r}")
        if self.default_queue not in self.queues:
            raise ValueError(f"default queue {self.default_queue!r} is not one of {sorted(self.queues)}")

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def mydb_dir(self) -> Path:
        return self.data_dir / "mydb"

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.results_dir, self.mydb_dir):
            os.makedirs(d, exist_ok=True)
