"""Per-operator rates of the cost model: what one unit of work costs on one worker thread.

:func:`proxcompute.execute.estimate_cost` multiplies the work a plan will do (partitions,
row groups, rows and columns decoded, rows through each operator) by these rates.
``proxcompute calibrate`` measures them on the machine and writes them as a small JSON file
(:func:`default_rates_path`, under the user's configuration directory); ``proxcompute serve``
reads that file (or ``--cost-rates FILE``). Without a file, :data:`DEFAULT_RATES` are used:
rates measured by ``proxcompute calibrate`` on the project's development machine (2 cores,
24 GiB, Linux; the date is in ``measured_on``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from proxcompute.errors import CostRatesError

__all__ = [
    "DEFAULT_RATES",
    "RATES_FILE_ENV",
    "CostRates",
    "default_rates_path",
    "load_rates",
    "save_rates",
]

RATES_FILE_ENV = "PROXCOMPUTE_COST_RATES"
"""Environment variable naming a rates file (takes precedence over the configuration directory)."""

_FORMAT = "proxcompute-cost-rates/1"


@dataclass(frozen=True)
class CostRates:
    """Seconds per unit of work, on one worker thread (see the module docstring).

    ``query_s`` is paid once per query (open, plan, merge); the other rates are per unit of
    the work they name, divided among the worker threads that do it in parallel.

    Examples
    --------
    >>> slow_disk = DEFAULT_RATES.with_rates(scan_cell_s=2e-8, measured_on="a guess")
    >>> slow_disk.scan_cell_s, CostRates.rate_names()[:2]
    (2e-08, ['query_s', 'sql_s'])
    """

    query_s: float = 0.002
    """Opening, planning and merging one query (whatever it reads)."""
    sql_s: float = 0.001
    """Parsing and compiling one ADQL/SQL query (a TAP job compiles its query when it runs)."""
    partition_s: float = 0.0008
    """One partition touched: its task, its footer (cached when warm)."""
    row_group_s: float = 0.0004
    """One row group read (seek, page headers, buffers)."""
    scan_row_s: float = 2e-8
    """One row produced by the reader (slicing, concatenation), whatever its columns."""
    scan_cell_s: float = 6e-9
    """One value decoded by the reader (a row times a column read)."""
    region_row_s: float = 2e-8
    """One row tested against a region (exact spherical test)."""
    filter_row_s: float = 1e-8
    """One row tested against a predicate (per comparison)."""
    duckdb_cell_s: float = 4e-9
    """One value read and aggregated by DuckDB reading the partition files itself (single scan)."""
    aggregate_row_s: float = 3e-8
    """One row through a GROUP BY, DISTINCT or sort over Arrow tables (partial and merge)."""
    aggregate_partition_s: float = 0.002
    """One partition's partial aggregate run on its own (a DuckDB query per partition, its merge)."""
    crossmatch_left_row_s: float = 4e-7
    """One left row of a crossmatch (buckets, search, assembly of its matches)."""
    crossmatch_right_row_s: float = 1e-7
    """One right row (and margin row) read and bucketed for a crossmatch."""
    gather_row_s: float = 5e-8
    """One input row of a query gathered whole into DuckDB (subqueries, CTEs, other joins)."""
    result_cell_s: float = 1e-8
    """One value of the result handed back (concatenated, converted to pandas), when the row
    count is known."""
    write_cell_s: float = 5e-8
    """One value of the result written out (a row times a column), when the row count is known."""
    user_row_s: float = 5e-8
    """One row handed to a user function (the overhead; the function's own work is not known)."""
    measured_on: str = "defaults (no calibration)"
    """What measured these rates: machine, date, ``proxcompute calibrate``."""

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name == "measured_on":
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{f.name} must be a number of seconds, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be a finite number of seconds >= 0, got {value!r}")

    @classmethod
    def rate_names(cls) -> list[str]:
        """The names of the rates (every field but ``measured_on``)."""
        return [f.name for f in fields(cls) if f.name != "measured_on"]

    def to_json(self) -> str:
        """The rates as the JSON document ``proxcompute calibrate`` writes."""
        data = {"format": _FORMAT, **asdict(self)}
        return json.dumps(data, indent=1) + "\n"

    def with_rates(self, **rates: float) -> CostRates:
        """A copy with some rates replaced."""
        return replace(self, **rates)


DEFAULT_RATES = CostRates(
    query_s=0.000503,
    sql_s=0.0001,
    partition_s=0.000534,
    row_group_s=0.00013,
    scan_row_s=2e-09,
    scan_cell_s=6.56e-09,
    region_row_s=1e-07,
    filter_row_s=2.06e-08,
    duckdb_cell_s=1.92e-08,
    aggregate_row_s=1.31e-07,
    aggregate_partition_s=0.00371,
    crossmatch_left_row_s=5.33e-07,
    crossmatch_right_row_s=1.96e-07,
    gather_row_s=6.63e-08,
    result_cell_s=7.56e-09,
    write_cell_s=2.45e-08,
    user_row_s=2.61e-07,
    measured_on="shipped defaults: proxcompute calibrate on vm, 2 cores, 2026-12-04 19:04 UTC, 1,000,000 rows, load 5.4",
)
"""Rates measured by ``proxcompute calibrate`` on the project's development machine (2 cores,
24 GiB, Linux, 2026-12); used when no rates file is found."""


def default_rates_path() -> Path:
    """Where ``proxcompute calibrate`` writes and ``serve`` looks: ``$PROXCOMPUTE_COST_RATES``,
    else ``cost-rates.json`` in the user's configuration directory, ``~/.config/proxcompute``
    (where the user's cluster profiles live too)."""
    env = os.environ.get(RATES_FILE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".config" / "proxcompute" / "cost-rates.json"


def load_rates(path: str | os.PathLike | None = None) -> CostRates:
    """The rates in ``path``; with None, the default file if it exists, else :data:`DEFAULT_RATES`.

    Raises
    ------
    CostRatesError
        The file (given, or the default one when it exists) is unreadable, not JSON, or holds
        a missing, unknown or bad rate; the message names the file.
    """
    if path is None:
        path = default_rates_path()
        if not path.is_file():
            return DEFAULT_RATES
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise CostRatesError(f"cannot read the cost rates file {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CostRatesError(f"the cost rates file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise CostRatesError(
            f"the cost rates file {path} is not a rates file (expected an object with "
            f'"format": "{_FORMAT}"; write one with: proxcompute calibrate)'
        )
    values = {k: v for k, v in data.items() if k != "format"}
    names = set(CostRates.rate_names())
    unknown = sorted(set(values) - names - {"measured_on"})
    missing = sorted(names - set(values))
    if unknown or missing:
        what = "; ".join(
            s for s in (f"unknown: {', '.join(unknown)}" if unknown else "",
                        f"missing: {', '.join(missing)}" if missing else "") if s
        )  # fmt: skip
        raise CostRatesError(f"the cost rates file {path} has bad rate names ({what})")
    try:
        return CostRates(**values)
    except (TypeError, ValueError) as exc:
        raise CostRatesError(f"the cost rates file {path} has a bad value: {exc}") from None


def save_rates(rates: CostRates, path: str | os.PathLike) -> Path:
    """Write ``rates`` to ``path`` atomically (the directory is created); returns the path."""
    from proxcompute.storage.atomic import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as fh:
        fh.write(rates.to_json())
    return path
