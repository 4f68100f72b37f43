"""The exceptions and warning of the TAP client."""

from __future__ import annotations

from proxcompute.errors import ProxError, ResultTruncatedWarning  # noqa: F401 - the one truncation warning


class TapError(ProxError):
    """A TAP request failed: the service is unreachable, refused the request, or a job failed.

    Attributes
    ----------
    message : str
        What went wrong (the service's own message when it sent one).
    status : int or None
        The HTTP status, if the service answered.
    url : str or None
        The URL that was requested.
    """

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None) -> None:
        self.message = message
        self.status = status
        self.url = url
        super().__init__(f"{message} (HTTP {status})" if status is not None else message)

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.status, self.url))


class TapQueryError(TapError):
    """The service refused a query or the query failed; ``message`` is the service's text."""


class TapTimeoutError(TapError):
    """A job did not finish in time; it is still on the service (``job_id``)."""

    job_id: str | None = None


class _ReadTimeout(TapError):
    """The service accepted the request but sent no answer in time."""


def _rebuild(cls, message, status, url):
    return cls(message, status=status, url=url)


