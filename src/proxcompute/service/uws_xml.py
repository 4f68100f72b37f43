"""UWS 1.1 XML documents (job, job list, results, parameters), rendered as bytes.

Element order and nillability follow ``UWS.xsd`` (1.1-REC-20161024); times are UTC with
``Z`` (:func:`~proxcompute.service.jobs.uws_time`), because pyvo rejects ``+00:00``. Every
value is XML-escaped, and characters XML 1.0 cannot carry are replaced by U+FFFD, so a query
full of ``<`` and ``&`` always yields a well-formed document.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from proxcompute.formats.xml import quoted_attr, xml_text
from proxcompute.service.jobs import COMPLETED, ERROR, Job, uws_time

__all__ = [
    "UWS_NS",
    "XLINK_NS",
    "XSI_NS",
    "job_document",
    "job_list",
    "parameters_document",
    "results_document",
]

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

_HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'
_NS_ATTRS = f'xmlns:uws="{UWS_NS}" xmlns:xlink="{XLINK_NS}" xmlns:xsi="{XSI_NS}"'
_text = xml_text
_attr = quoted_attr


def _elem(name: str, value: object | None, *, nillable: bool = True, indent: str = "  ") -> str:
    if value is None:
        return f'{indent}<uws:{name} xsi:nil="true"/>\n' if nillable else ""
    if isinstance(value, datetime):
        value = uws_time(value)
    return f"{indent}<uws:{name}>{_text(value)}</uws:{name}>\n"


def _parameters(job: Job, job_url: str | None, indent: str) -> str:
    out = [f"{indent}<uws:parameters>\n"]
    for name, value in job.parameters.items():
        out.append(f"{indent}  <uws:parameter id={_attr(name)}>{_text(value)}</uws:parameter>\n")
    if job_url is not None:
        for name in job.uploads:
            if name in job.parameters:
                continue
            href = f"{job_url}/parameters/{name}"
            out.append(
                f'{indent}  <uws:parameter id={_attr(name)} byReference="true">{_text(href)}</uws:parameter>\n'
            )
    out.append(f"{indent}</uws:parameters>\n")
    return "".join(out)


def _results(job: Job, job_url: str, indent: str) -> str:
    if job.phase != COMPLETED or not job.result_path:
        return f"{indent}<uws:results/>\n"
    attrs = [
        'id="result"',
        'xlink:type="simple"',
        f"xlink:href={_attr(job_url + '/results/result')}",
        f"size={_attr(int(job.result_size or 0))}",
        f"mime-type={_attr(job.result_mime or 'application/octet-stream')}",
    ]
    return f"{indent}<uws:results>\n{indent}  <uws:result {' '.join(attrs)}/>\n{indent}</uws:results>\n"


def _job_info(job: Job) -> str:
    parts = [f"    <queue>{_text(job.queue)}</queue>\n"]
    if job.progress_total is not None:
        attrs = f'done="{int(job.progress_done or 0)}" total="{int(job.progress_total)}"'
        if job.progress_rows is not None:
            attrs += f' rows="{int(job.progress_rows)}"'
        rate, left = job.progress_rates()
        if rate is not None:
            attrs += f' rowsPerSecond="{rate:.0f}"'
        if left is not None:
            attrs += f' secondsLeft="{left:.1f}"'
        parts.append(f"    <progress {attrs}/>\n")
    if job.phase == COMPLETED and job.result_rows is not None:
        parts.append(
            f'    <rows overflow="{str(bool(job.overflow)).lower()}">{int(job.result_rows)}</rows>\n'
        )
    return "  <uws:jobInfo>\n" + "".join(parts) + "  </uws:jobInfo>\n"


def job_document(job: Job, job_url: str) -> bytes:
    """The ``uws:job`` document served at ``GET {async}/{id}``.

    Parameters
    ----------
    job : Job
        The job.
    job_url : str
        Absolute URL of the job (``.../async/{id}``), without a trailing slash; the result
        link is ``{job_url}/results/result``, inline uploads are listed by reference as
        ``{job_url}/parameters/{name}``.

    Returns
    -------
    bytes
        UTF-8 XML.
    """
    job_url = job_url.rstrip("/")
    out = [_HEADER, f'<uws:job {_NS_ATTRS} version="1.1">\n']
    out.append(_elem("jobId", job.id, nillable=False))
    out.append(_elem("runId", job.run_id, nillable=False))
    out.append(_elem("ownerId", job.owner))
    out.append(_elem("phase", job.phase, nillable=False))
    out.append(_elem("quote", job.quote))
    out.append(_elem("creationTime", job.creation_time, nillable=False))
    out.append(_elem("startTime", job.start_time))
    out.append(_elem("endTime", job.end_time))
    out.append(_elem("executionDuration", int(job.execution_duration), nillable=False))
    out.append(_elem("destruction", job.destruction))
    out.append(_parameters(job, job_url, "  "))
    out.append(_results(job, job_url, "  "))
    if job.phase == ERROR:
        out.append(
            '  <uws:errorSummary type="fatal" hasDetail="true">\n'
            f"    <uws:message>{_text(job.error_message or 'unknown error')}</uws:message>\n"
            "  </uws:errorSummary>\n"
        )
    out.append(_job_info(job))
    out.append("</uws:job>\n")
    return "".join(out).encode("utf-8")


def job_list(jobs: Iterable[Job], base_url: str) -> bytes:
    """The ``uws:jobs`` document served at ``GET {async}``.

    Parameters
    ----------
    jobs : iterable of Job
        The jobs to list (already filtered for owner, PHASE, AFTER, LAST).
    base_url : str
        Absolute URL of the job list (``.../async``); each ``jobref`` links to
        ``{base_url}/{id}``.

    Returns
    -------
    bytes
        UTF-8 XML.
    """
    base_url = base_url.rstrip("/")
    out = [_HEADER, f'<uws:jobs {_NS_ATTRS} version="1.1">\n']
    for job in jobs:
        href = f"{base_url}/{job.id}"
        out.append(f'  <uws:jobref id={_attr(job.id)} xlink:type="simple" xlink:href={_attr(href)}>\n')
        out.append(_elem("phase", job.phase, nillable=False, indent="    "))
        out.append(_elem("runId", job.run_id, nillable=False, indent="    "))
        out.append(_elem("ownerId", job.owner, indent="    "))
        out.append(_elem("creationTime", job.creation_time, nillable=False, indent="    "))
        out.append("  </uws:jobref>\n")
    out.append("</uws:jobs>\n")
    return "".join(out).encode("utf-8")


def results_document(job: Job, job_url: str) -> bytes:
    """The ``uws:results`` document served at ``GET {async}/{id}/results`` (empty unless COMPLETED)."""
    body = _results(job, job_url.rstrip("/"), "")
    if body.startswith("<uws:results/>"):
        return (_HEADER + f"<uws:results {_NS_ATTRS}/>\n").encode("utf-8")
    return (_HEADER + body.replace("<uws:results>", f"<uws:results {_NS_ATTRS}>", 1)).encode("utf-8")


def parameters_document(job: Job, job_url: str | None = None) -> bytes:
    """The ``uws:parameters`` document served at ``GET {async}/{id}/parameters``.

    Parameters
    ----------
    job : Job
        The job.
    job_url : str, optional
        If given, inline uploads are also listed, by reference, as
        ``{job_url}/parameters/{name}``.
    """
    body = _parameters(job, None if job_url is None else job_url.rstrip("/"), "")
    return (_HEADER + body.replace("<uws:parameters>", f"<uws:parameters {_NS_ATTRS}>", 1)).encode("utf-8")
