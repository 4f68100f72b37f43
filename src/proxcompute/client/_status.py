"""Typed job status objects: what :meth:`Client.status` and :meth:`Client.jobs` return."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

Phase = Literal[
    "PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED", "UNKNOWN", "HELD", "SUSPENDED", "ARCHIVED"
]
"""UWS 1.1 phases."""

FINAL_PHASES = frozenset({"COMPLETED", "ERROR", "ABORTED", "ARCHIVED"})


def _field(key: str, doc: str) -> property:
    return property(lambda self: self.get(key), doc=doc)


class JobStatus(dict):
    """A job's state: a ``dict`` (``status["phase"]``) with typed attributes (``status.phase``)
    that shows itself as a small table in notebooks.

    >>> s = JobStatus(job_id="j1", phase="EXECUTING", progress=(3, 12))
    >>> s.phase, s.progress, s.is_final, s["job_id"]
    ('EXECUTING', (3, 12), False, 'j1')
    """

    job_id: str | None = _field("job_id", "The job's id.")  # type: ignore[assignment]
    phase: Phase = _field("phase", "The UWS phase (upper case).")  # type: ignore[assignment]
    run_id: str | None = _field("run_id", "The RUNID given at submission.")  # type: ignore[assignment]
    owner: str | None = _field("owner", "The owner the service runs the job as.")  # type: ignore[assignment]
    created: datetime | None = _field("created", "Creation time (UTC).")  # type: ignore[assignment]
    started: datetime | None = _field("started", "Start time (UTC).")  # type: ignore[assignment]
    ended: datetime | None = _field("ended", "End time (UTC).")  # type: ignore[assignment]
    destruction: datetime | None = _field("destruction", "When the service deletes it (UTC).")  # type: ignore[assignment]
    execution_duration: int | None = _field("execution_duration", "Seconds it may run (0: unlimited).")  # type: ignore[assignment]
    quote: datetime | None = _field("quote", "The service's estimate of the end time.")  # type: ignore[assignment]
    progress: tuple[int, int] | None = _field("progress", "(done, total) partitions.")  # type: ignore[assignment]
    rows_per_second: float | None = _field("rows_per_second", "Rows read per second so far, while it runs.")  # type: ignore[assignment]
    seconds_left: float | None = _field("seconds_left", "The service's estimate of the seconds left, while it runs.")  # type: ignore[assignment]
    error: str | None = _field("error", "The service's message when the phase is ERROR.")  # type: ignore[assignment]
    rows: int | None = _field("rows", "Result rows, when the service reports them.")  # type: ignore[assignment]
    overflow: bool | None = _field("overflow", "True when the result was cut at MAXREC.")  # type: ignore[assignment]
    queue: str | None = _field("queue", "The queue the job runs in.")  # type: ignore[assignment]
    parameters: dict[str, str] = _field("parameters", "Job parameters, name -> value.")  # type: ignore[assignment]
    results: dict[str, str] = _field("results", "Result id -> URL.")  # type: ignore[assignment]

    @property
    def is_final(self) -> bool:
        """True once the job can no longer change (COMPLETED, ERROR, ABORTED, ARCHIVED)."""
        return self.get("phase") in FINAL_PHASES

    def __getattr__(self, name: str) -> Any:  # keys the service added that have no property
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def _repr_html_(self) -> str:
        import html

        esc = html.escape
        progress = self.get("progress")
        bar = ""
        if progress and progress[1]:
            done, total = progress
            pct = 100.0 * done / total
            bar = (
                f"<div style='width:200px;border:1px solid #999'><div style='width:{pct:.0f}%;"
                f"background:#4a8;height:8px'></div></div>{done}/{total} partitions"
            )
            bar += _pace(self.get("rows_per_second"), self.get("seconds_left"))
        rows = [("job", esc(str(self.get("job_id", "")))), ("phase", f"<b>{esc(str(self.get('phase', '')))}</b>")]
        if bar:
            rows.append(("progress", bar))
        for key in ("queue", "rows", "created", "started", "ended", "error"):
            if self.get(key) not in (None, ""):
                rows.append((key, esc(str(self[key]))))
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>"
                       for k, v in rows)  # fmt: skip
        return f"<table class='proxcompute-job'>{body}</table>"


def _pace(rows_per_second: float | None, seconds_left: float | None) -> str:
    """``", 12.3M rows/s, ~41 s left"`` for a running job's progress line; empty when unknown.

    >>> _pace(12.3e6, 41.2), _pace(None, None)
    (', 12.3M rows/s, ~41 s left', '')
    """
    from proxcompute.execute.progress import rows_rate_text

    out = f", {rows_rate_text(round(rows_per_second), 1.0)}" if rows_per_second else ""
    if seconds_left is not None:
        out += f", ~{seconds_left:.0f} s left"
    return out
