"""A client for IVOA TAP services: ADQL queries, UWS async jobs, table uploads and MyDB tables.

:class:`Client` speaks plain TAP 1.1 / UWS 1.1 over HTTP (httpx), so it works against any TAP
service, with a few shortcuts when the service offers them:

* results come as **Parquet** when the service declares a Parquet output format in
  ``/capabilities`` (fast and typed), else as VOTable;
* uploads go as Parquet to a proxcompute service (it reads Parquet, VOTable, CSV and FITS)
  and as VOTable (the one standard upload format) to any other service;
* **MyDB** (per-user tables) needs a proxcompute service: a job with ``TABLE_NAME=t`` stores
  its result as ``mydb.t``, which later queries read like any other table; its owner can
  share it read-only with a group or every signed-in user (:meth:`Client.mydb_share`), who
  read it as ``mydb_<owner>.t``.

Every failure is a :class:`TapError` (a :class:`~proxcompute.errors.ProxError`); a query the
service refuses or that fails is a :class:`TapQueryError` carrying the service's message and
HTTP status. A result cut short by ``MAXREC`` emits a :class:`ResultTruncatedWarning`.

>>> from proxcompute.client import Client
>>> tap = Client(tap_url)  # e.g. "http://localhost:8000/tap"
>>> df = tap.query("SELECT TOP 5 id, ra, dec FROM survey.gaia ORDER BY id")
>>> list(df.columns), len(df)
(['id', 'ra', 'dec'], 5)

How overflow is detected
------------------------
TAP reports truncation only inside VOTable (a trailing ``QUERY_STATUS=OVERFLOW`` INFO); a
Parquet document has no such slot. When the client loads a result itself it therefore asks
for ``MAXREC = limit + 1`` rows in Parquet and keeps ``limit``: getting the extra row proves
the result was truncated, so the check is exact and Parquet stays usable. ``limit`` is the
``maxrec`` you pass, or the service's declared default. VOTable is used instead when the limit
is unknown (no ``outputLimit`` in the capabilities) or is the hard limit (asking one row more
is impossible there). For ``out=`` files the document is stored as the service sends it, with
``MAXREC`` as given: VOTable files are checked exactly (their OVERFLOW INFO), async jobs on a
proxcompute service exactly (its ``jobInfo`` rows/overflow), and other Parquet/CSV/TSV files
get a warning when they hold exactly ``limit`` rows (they *may* be truncated).

Async jobs started by :meth:`Client.query` are deleted once their result has been read (into
memory or into ``out``) and when they fail; a job still running when ``timeout`` expires is
left running (the :class:`TapTimeoutError` names it, so :meth:`Client.wait` and
:meth:`Client.results` can pick it up), and Ctrl-C aborts and deletes it. Jobs started with
:meth:`Client.submit` are yours to :meth:`~Client.delete`.
"""

from proxcompute.client._errors import ResultTruncatedWarning, TapError, TapQueryError, TapTimeoutError
from proxcompute.client._jobs import _JobsMixin
from proxcompute.client._mydb import _MyDBMixin
from proxcompute.client._query import _QueryMixin
from proxcompute.client._status import JobStatus

__all__ = ["Client", "JobStatus", "ResultTruncatedWarning", "TapError", "TapQueryError", "TapTimeoutError"]


class Client(_QueryMixin, _JobsMixin, _MyDBMixin):
    """A TAP service at ``url``.

    Parameters
    ----------
    url : str
        The TAP base URL (the one with ``/sync``, ``/async`` and ``/capabilities`` below it),
        e.g. ``http://localhost:8000/tap``.
    token : str, optional
        A bearer token, sent as ``Authorization: Bearer <token>``; the service then runs your
        jobs as your user (you see only your own jobs and MyDB tables).
    timeout : float
        Seconds any single HTTP request may take (queries and downloads included); the
        connection itself must open within 30 s.

    Examples
    --------
    >>> tap = Client(tap_url, token="s3cret")
    >>> tap  # doctest: +ELLIPSIS
    Client('http://127.0.0.1:.../tap', token=<set>)
    >>> df = tap.query("SELECT COUNT(*) AS n FROM survey.gaia")
    >>> t = tap.query("SELECT * FROM survey.gaia WHERE mag < 12", fmt="table", async_=True)
    """
