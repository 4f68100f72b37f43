"""Reading the XML a TAP service sends (UWS job documents, VOTable QUERY_STATUS INFOs,
capabilities) with an XML parser (xml.etree.ElementTree), never regular expressions."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from proxcompute.client._errors import (
    TapError,
)


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_time(text: str | None) -> datetime | None:
    if not text or not text.strip():
        return None
    value = text.strip().replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def query_statuses(source: bytes | str | os.PathLike) -> list[tuple[str, str]]:
    """``(value, text)`` of each ``QUERY_STATUS`` INFO of a VOTable document, read with an XML parser.

    ``source`` is the document's bytes, possibly only its beginning (a streamed response's
    head: what was parsed before the cut counts), or the path of a file (parsed as a stream).
    """
    found: list[tuple[str, str]] = []

    def take(el: ET.Element) -> None:
        if local_name(el.tag).upper() == "INFO" and (el.get("name") or "").upper() == "QUERY_STATUS":
            found.append(((el.get("value") or "").upper(), (el.text or "").strip()))

    try:
        if isinstance(source, bytes):
            parser = ET.XMLPullParser(events=("end",))
            parser.feed(source)
            for _, el in parser.read_events():
                take(el)
        else:
            for _, el in ET.iterparse(os.fspath(source), events=("end",)):
                take(el)
                if local_name(el.tag).upper() in ("TR", "STREAM"):
                    el.clear()  # rows are not needed: keep memory flat
    except ET.ParseError:
        pass  # a cut (or broken) document: the INFOs before the cut are what we have
    return found


def votable_error(data: bytes) -> str | None:
    """The message of a VOTable error document (``QUERY_STATUS=ERROR``), or None."""
    for value, text in query_statuses(data[: 1 << 20]):
        if value == "ERROR":
            return text or "the service reported an error without a message"
    return None


def parse_job(content: bytes) -> dict[str, Any]:
    """The fields of a UWS job document (see :class:`~proxcompute.client.JobStatus`)."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise TapError(f"the service sent an unreadable UWS job document: {exc}") from None
    out: dict[str, Any] = {
        "job_id": None, "phase": "UNKNOWN", "run_id": None, "owner": None, "created": None,
        "started": None, "ended": None, "destruction": None, "execution_duration": None, "quote": None,
        "progress": None, "rows_per_second": None, "seconds_left": None,
        "error": None, "rows": None, "overflow": None, "queue": None,
        "parameters": {}, "results": {},
    }  # fmt: skip
    simple = {"jobId": "job_id", "runId": "run_id", "ownerId": "owner", "phase": "phase"}
    times = {"creationTime": "created", "startTime": "started", "endTime": "ended",
             "destruction": "destruction", "quote": "quote"}  # fmt: skip
    for el in root:
        tag = local_name(el.tag)
        text = (el.text or "").strip() or None
        if tag in simple:
            out[simple[tag]] = text
        elif tag in times:
            out[times[tag]] = parse_time(text)
        elif tag == "executionDuration":
            out["execution_duration"] = parse_int(text)
        elif tag == "parameters":
            out["parameters"] = {p.get("id", ""): (p.text or "") for p in el}
        elif tag == "results":
            out["results"] = {
                r.get("id", ""): r.get("{http://www.w3.org/1999/xlink}href") or r.get("href") or ""
                for r in el
            }
        elif tag == "errorSummary":
            msg = next((m.text for m in el if local_name(m.tag) == "message"), None)
            out["error"] = (msg or "").strip() or "the job failed"
        elif tag == "jobInfo":
            for info in el.iter():
                itag = local_name(info.tag)
                if itag == "progress" and info.get("total") is not None:
                    out["progress"] = (parse_int(info.get("done")) or 0, parse_int(info.get("total")))
                    out["rows_per_second"] = _parse_float(info.get("rowsPerSecond"))
                    out["seconds_left"] = _parse_float(info.get("secondsLeft"))
                elif itag == "rows":
                    out["rows"] = parse_int(info.text)
                    if info.get("overflow") is not None:
                        out["overflow"] = info.get("overflow", "").lower() == "true"
                elif itag == "queue":
                    out["queue"] = (info.text or "").strip() or None
    if out["phase"]:
        out["phase"] = out["phase"].upper()
    return out


def _parse_float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:  # a service that writes something else: not worth failing the status for
        return None
