"""The one error mapping of the TAP service: exception -> HTTP status and DALI error document.

Every route handler is wrapped by :func:`handles_errors`, so a user error (a bad query, a
bad parameter, an unknown job, a bad token) is a 4xx VOTable error document with the
message pyvo shows, and only a bug in the service is a 500 (logged with its traceback).
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from proxcompute.errors import ProxError
from proxcompute.formats import write_votable_error
from proxcompute.service.jobs import JobNotFound, PhaseError
from proxcompute.service.mydb import MyDBQuotaError
from proxcompute.service.params import TapRequestError

__all__ = ["AuthError", "QuotaError", "error_response", "handles_errors", "status_for"]

log = logging.getLogger("proxcompute.service")


class AuthError(ProxError):
    """A request with a bad credential (HTTP 401)."""


class QuotaError(ProxError):
    """A request over the user's quota (HTTP 403)."""


def error_response(message: str, status: int = 400) -> Response:
    """A DALI error document (``QUERY_STATUS=ERROR`` with the message as the INFO text)."""
    buf = io.BytesIO()
    write_votable_error(buf, message)
    return Response(buf.getvalue(), status_code=status, media_type="application/x-votable+xml")


def status_for(exc: BaseException) -> int:
    """The HTTP status of an exception: 401, 403, 404 and 400 for what the client caused, else 500.

    >>> status_for(JobNotFound("x")), status_for(TapRequestError("bad")), status_for(KeyError("bug"))
    (404, 400, 500)
    >>> status_for(RecursionError("deep")), status_for(QuotaError("over"))
    (400, 403)
    """
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, (QuotaError, MyDBQuotaError)):
        return 403
    if isinstance(exc, JobNotFound):
        return 404
    if isinstance(exc, (PhaseError, TapRequestError, ProxError)):
        return 400
    if isinstance(exc, RecursionError):  # a query nested past what any layer checked: the client's doing
        return 400
    return 500


def message_for(exc: BaseException) -> str:
    """The message a client sees: ours verbatim, anything else named as an internal error."""
    if isinstance(exc, RecursionError):
        return "the query is nested too deeply to analyse; flatten it (fewer nested parentheses or subqueries)"
    if status_for(exc) < 500:
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


Handler = Callable[[Request], Awaitable[Response]]


def handles_errors(handler: Handler) -> Handler:
    """Wrap a route handler: any exception becomes :func:`error_response` with :func:`status_for`."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            status = status_for(exc)
            if status >= 500:
                log.exception("%s %s failed", request.method, request.url.path)
            return error_response(message_for(exc), status)

    return wrapped
