"""UWS jobs: submit, status, wait, results, abort, delete, list."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from proxcompute.client._errors import (
    TapError,
    TapQueryError,
    TapTimeoutError,
    _ReadTimeout,
)
from proxcompute.client._session import (
    CLIENT_MAXREC,
    MAX_BLOCK_SECONDS,
    ResultKind,
    _block_for,
    _Session,
)
from proxcompute.client._status import JobStatus
from proxcompute.client._xml import (
    local_name,
    parse_int,
    parse_job,
    parse_time,
    votable_error,
)


class _JobsMixin(_Session):
    # ------------------------------------------------------------------ jobs

    def submit(
        self,
        adql: str,
        fmt: ResultKind = "pandas",
        maxrec: int | None = None,
        uploads: Mapping[str, Any] | None = None,
        queue: str | None = None,
        *,
        table_name: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """Start an async job (``POST /async`` with ``PHASE=RUN``) and return its id.

        Parameters
        ----------
        adql, maxrec, uploads, queue, params
            As for :meth:`query`.
        fmt : {"pandas", "table", "arrow"}
            Accepted for symmetry with :meth:`query` (the kind is chosen by :meth:`results`).
        table_name : str, optional
            Store the result in MyDB as ``mydb.<table_name>`` (``TABLE_NAME=``; needs a service
            with MyDB).

        Returns
        -------
        str
            The job id, for :meth:`status`, :meth:`wait`, :meth:`results`, :meth:`abort` and
            :meth:`delete`.

        Examples
        --------
        >>> job = tap.submit("SELECT flag, COUNT(*) AS n FROM survey.gaia GROUP BY flag")
        >>> tap.wait(job)
        'COMPLETED'
        >>> df = tap.results(job); tap.delete(job)
        """
        self._check_kind(fmt)
        plan = self._plan(maxrec)
        extra = dict(params or {})
        if plan.plus_one:
            extra[CLIENT_MAXREC] = plan.limit
        if table_name is not None:
            extra["TABLE_NAME"] = table_name
        request = self._params(adql, plan.mime, plan.send_maxrec, queue, extra)
        files = self._upload_files(uploads, request)
        return self._create(request, files)

    def _create(self, request: dict[str, str], files: dict[str, Any]) -> str:
        request = {**request, "PHASE": "RUN"}
        response = self._request(
            "POST", "async", what="job creation", query=True, follow_redirects=False,
            **self._post_params(request, files),
        )  # fmt: skip
        location = response.headers.get("location")
        if location:
            job_id = httpx.URL(location).path.rstrip("/").rsplit("/", 1)[-1]
        else:
            job_id = parse_job(response.content).get("job_id") or ""
        if not job_id:
            raise TapError(
                "job creation: the service named no job (no Location header)", status=response.status_code
            )
        if self.status(job_id)["phase"] == "PENDING":  # a service that ignores PHASE=RUN at creation
            self._request("POST", f"async/{job_id}/phase", what=f"running job {job_id}", data={"PHASE": "RUN"},
                          follow_redirects=False)  # fmt: skip
        return job_id

    def status(self, job_id: str) -> JobStatus:
        """The job's state, from its UWS document.

        Returns
        -------
        dict
            ``job_id``, ``phase`` (``PENDING``, ``QUEUED``, ``EXECUTING``, ``COMPLETED``,
            ``ERROR``, ``ABORTED``, ...), ``run_id``, ``owner``, the times ``created``,
            ``started``, ``ended`` and ``destruction`` (UTC datetimes or None),
            ``execution_duration`` (seconds, 0 = unlimited), ``quote``, ``progress``
            (``(done, total)`` partitions from ``jobInfo``, or None), ``error`` (the
            service's message when the phase is ERROR), ``rows`` and ``overflow`` (when the
            service reports them), ``queue``, ``parameters`` (name -> value) and ``results``
            (result id -> URL).

        Examples
        --------
        >>> job = tap.submit("SELECT COUNT(*) AS n FROM survey.gaia"); tap.wait(job)
        'COMPLETED'
        >>> status = tap.status(job)
        >>> status["phase"], status["progress"][0] == status["progress"][1]  # partitions done, total
        ('COMPLETED', True)
        >>> "COMPLETED" in status._repr_html_()  # a small table in notebooks
        True
        """
        return self._status(job_id)

    def _status(
        self, job_id: str, wait: int | None = None, read_timeout: float | None = None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if wait is not None:
            kwargs["params"] = {"WAIT": str(wait)}
        if read_timeout is not None:
            kwargs["timeout"] = httpx.Timeout(read_timeout, connect=min(read_timeout, 30.0))
        response = self._request("GET", f"async/{self._job_path(job_id)}", what=f"job {job_id}", **kwargs)
        status = JobStatus(parse_job(response.content))
        status["job_id"] = status["job_id"] or job_id
        return status

    @staticmethod
    def _job_path(job_id: str) -> str:
        job_id = str(job_id).strip()
        if not job_id or "/" in job_id or job_id in (".", ".."):
            raise TapError(f"{job_id!r} is not a job id")
        return job_id

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.5) -> str:
        """Block until the job ends; return ``"COMPLETED"``.

        Uses UWS blocking requests (``WAIT=-1``, or the remaining time, at most
        60 s per request), falling back to polling every ``poll`` seconds (growing to 5 s) for
        services that answer at once.

        Parameters
        ----------
        job_id : str
        timeout : float, optional
            Seconds to wait at most (default: no limit).
        poll : float
            First polling interval when the service does not block.

        Raises
        ------
        TapQueryError
            The job ended in ERROR (the service's message).
        TapError
            The job was aborted, is still PENDING (never started) or no longer exists.
        TapTimeoutError
            ``timeout`` expired; the job is still running (``exc.job_id``).

        Examples
        --------
        >>> tap.wait(tap.submit("SELECT COUNT(*) FROM survey.gaia"), timeout=60)
        'COMPLETED'
        """
        return self._wait(job_id, timeout, poll)["phase"]

    def _wait(self, job_id: str, timeout: float | None, poll: float = 0.5) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = max(poll, 0.01)
        block = _block_for(deadline)
        last_phase = None
        while True:
            started = time.monotonic()
            try:
                status = self._status(job_id, wait=block, read_timeout=None if block is None else
                                      (MAX_BLOCK_SECONDS if block < 0 else block) + 30)  # fmt: skip
            except _ReadTimeout:
                if block is None:
                    raise
                status = {"phase": last_phase or "UNKNOWN"}  # a blocking request the service held too long
            phase = status["phase"]
            if phase == "COMPLETED":
                return status
            if phase == "ERROR":
                message = status.get("error") or self._error_message(job_id)
                raise TapQueryError(f"job {job_id} failed: {message}")
            if phase == "ABORTED":
                raise TapError(f"job {job_id} was aborted")
            if phase == "ARCHIVED":
                raise TapError(f"job {job_id} is ARCHIVED: its results are gone")
            if phase == "PENDING":
                raise TapError(f"job {job_id} is PENDING: it was never started (POST PHASE=RUN to start it)")
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                exc = TapTimeoutError(f"job {job_id} is still {phase} after {timeout:g} s; it keeps running "
                                      f"(wait for it with wait({job_id!r}) or stop it with abort({job_id!r}))")  # fmt: skip
                exc.job_id = job_id
                raise exc
            if phase == last_phase and now - started < delay:  # the service does not block: poll
                time.sleep(min(delay, (deadline - now) if deadline is not None else delay))
                delay = min(delay * 1.5, 5.0)
            last_phase = phase
            block = _block_for(deadline)

    def _error_message(self, job_id: str) -> str:
        try:
            response = self._http.get(self._full(f"async/{job_id}/error"))
        except httpx.HTTPError:
            return "the job failed"
        return votable_error(response.content) or "the job failed"

    def _result_url(self, job_id: str, status: dict[str, Any]) -> str:
        links = status.get("results") or {}
        href = next((h for h in links.values() if h.rstrip("/").endswith("results/result")), None)
        href = href or links.get("result")
        job_url = self._full(f"async/{self._job_path(job_id)}")
        if not href:
            return job_url + "/results/result"
        return str(httpx.URL(job_url + "/").join(href))

    def _result_bytes(self, job_id: str, status: dict[str, Any]) -> bytes:
        return self._request("GET", self._result_url(job_id, status), what=f"job {job_id} result").content

    def results(self, job_id: str, fmt: ResultKind = "pandas"):
        """The result of a COMPLETED job as a pandas DataFrame, astropy Table or Arrow table.

        Raises
        ------
        TapQueryError
            The job failed (the service's message).
        TapError
            The job is not COMPLETED, or does not exist.

        Examples
        --------
        >>> job = tap.submit("SELECT TOP 3 id FROM survey.gaia ORDER BY id"); tap.wait(job)
        'COMPLETED'
        >>> t = tap.results(job, fmt="table")
        >>> len(t)
        3
        """
        self._check_kind(fmt)
        status = self.status(job_id)
        if status["phase"] == "ERROR":
            raise TapQueryError(f"job {job_id} failed: {status['error'] or self._error_message(job_id)}")
        if status["phase"] != "COMPLETED":
            raise TapError(f"job {job_id} is {status['phase']}: it has no result (yet)")
        given = {k.upper(): v for k, v in status["parameters"].items()}
        limit = parse_int(given.get(CLIENT_MAXREC))
        return self._decode(self._result_bytes(job_id, status), fmt, limit)

    def abort(self, job_id: str) -> None:
        """Abort a job (``PHASE=ABORT``); the service stops it and keeps its record.

        Examples
        --------
        >>> job = tap.submit("SELECT a.id FROM survey.gaia AS a JOIN survey.gaia AS b "
        ...                  "ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 1")
        >>> tap.abort(job)
        >>> tap.status(job)["phase"] in ("ABORTED", "COMPLETED")
        True
        """
        self._request("POST", f"async/{self._job_path(job_id)}/phase", what=f"aborting job {job_id}",
                      data={"PHASE": "ABORT"}, follow_redirects=False)  # fmt: skip

    def delete(self, job_id: str) -> None:
        """Delete a job and its result (HTTP ``DELETE``); a running job is aborted first.

        Examples
        --------
        >>> job = tap.submit("SELECT COUNT(*) FROM survey.gaia")
        >>> tap.delete(job)
        """
        self._request("DELETE", f"async/{self._job_path(job_id)}", what=f"deleting job {job_id}",
                      follow_redirects=False)  # fmt: skip

    def jobs(self, phase: str | Iterable[str] | None = None, last: int | None = None) -> list[JobStatus]:
        """Your jobs on the service (the UWS job list), in the order the service lists them.

        Parameters
        ----------
        phase : str or iterable of str, optional
            Only jobs in these phases (``PHASE=``).
        last : int, optional
            Only the ``last`` most recently created jobs (``LAST=``).

        Returns
        -------
        list of JobStatus
            ``job_id``, ``phase``, ``run_id``, ``owner``, ``created`` (UTC datetime) and
            ``url`` per job (as keys and attributes).

        Examples
        --------
        >>> isinstance([j["job_id"] for j in tap.jobs(phase="EXECUTING")], list)
        True
        """
        query: list[tuple[str, str]] = []
        if phase is not None:
            for p in [phase] if isinstance(phase, str) else phase:
                query.append(("PHASE", str(p).upper()))
        if last is not None:
            query.append(("LAST", str(int(last))))
        response = self._request("GET", "async", what="job list", params=query)
        try:
            root = ET.fromstring(response.content)
        except ET.ParseError as exc:
            raise TapError(f"the service sent an unreadable UWS job list: {exc}") from None
        out = []
        for ref in root:
            if local_name(ref.tag) != "jobref":
                continue
            fields = {local_name(c.tag): (c.text or "").strip() or None for c in ref}
            out.append(
                JobStatus(
                    job_id=ref.get("id"),
                    phase=(fields.get("phase") or "UNKNOWN").upper(),
                    run_id=fields.get("runId"),
                    owner=fields.get("ownerId"),
                    created=parse_time(fields.get("creationTime")),
                    url=ref.get("{http://www.w3.org/1999/xlink}href"),
                )
            )
        return out
