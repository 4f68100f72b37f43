"""Portal sessions: a random id in an HttpOnly, SameSite cookie; the state stays on the server.

Every visitor gets a session (anonymous until sign-in) so that every form, the sign-in form
included, carries a CSRF token bound to it. The id a browser presents is only ever looked
up, never adopted: an unknown id gets a fresh session with a new id, and signing in or out
always moves to a new id and a new CSRF token (no session fixation).

Sessions are rows of the job database (``portal_sessions``, next to ``jobs``), so a restart
of the service signs no one out and several service processes on one database share them.
A row is keyed by the SHA-256 of the cookie value, never the value itself: reading the
database gives no session to steal. Sessions expire after ``idle_seconds`` without a
request or ``max_age_seconds`` after sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

__all__ = ["COOKIE", "Session", "SessionStore", "SignInThrottle", "sessions_table"]

COOKIE = "proxcompute_session"
"""Name of the session cookie."""

_metadata = sa.MetaData()
sessions_table = sa.Table(
    "portal_sessions",
    _metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # hex SHA-256 of the cookie value
    sa.Column("user_name", sa.Text, nullable=True),
    sa.Column("csrf", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False, index=True),
    sa.Column("job_ids", sa.Text, nullable=False),  # JSON list: an anonymous session's jobs
)
_T = sessions_table


@dataclass
class Session:
    """One browser's session.

    Attributes
    ----------
    id : str
        The cookie value (256 random bits).
    user : str or None
        Who signed in; None for an anonymous visitor.
    csrf : str
        The token every state-changing form of this session must send back.
    created : float
        ``time.time()`` at creation (sign-in for a signed-in session).
    last_seen : float
        ``time.time()`` of the last request (recorded at most once a minute).
    job_ids : set of str
        Jobs an anonymous session submitted (anonymous jobs share one owner in the job store,
        so an anonymous visitor is shown only the jobs of their own session). Change it with
        :meth:`SessionStore.add_job` and :meth:`SessionStore.forget_job`, which store it.
    """

    id: str
    user: str | None
    csrf: str
    created: float
    last_seen: float
    job_ids: set[str] = field(default_factory=set)

    def csrf_ok(self, token: str | None) -> bool:
        """Whether ``token`` is this session's CSRF token (compared in constant time)."""
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Sessions in the job database, by id (thread-safe; shared by every process on that database).

    Parameters
    ----------
    database : JobStore
        The job store whose database holds the sessions (its :meth:`transaction`).
    idle_seconds : float
        A session not used for this long is gone.
    max_age_seconds : float
        A session older than this is gone, used or not.
    max_sessions : int
        When more sessions than this exist (visitors that never come back), the expired ones
        and then the least recently used half go.
    """

    SEEN_EVERY_SECONDS = 60.0
    """``last_seen`` is written when older than this: one write a minute per active browser."""
    SWEEP_EVERY_SECONDS = 60.0

    def __init__(
        self,
        database: Any,
        idle_seconds: float = 8 * 3600,
        max_age_seconds: float = 24 * 3600,
        max_sessions: int = 100_000,
    ) -> None:
        self.database = database
        self.idle_seconds = float(idle_seconds)
        self.max_age_seconds = float(max_age_seconds)
        self.max_sessions = int(max_sessions)
        self._last_sweep = 0.0
        self._lock = threading.Lock()
        _metadata.create_all(database.engine)

    def _alive(self, s: Session, now: float) -> bool:
        return now - s.last_seen < self.idle_seconds and now - s.created < self.max_age_seconds

    def new(self, user: str | None = None) -> Session:
        """A fresh session (new id, new CSRF token), stored."""
        now = time.time()
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now, now)
        with self.database.transaction() as conn:
            conn.execute(sa.insert(_T).values(key=_key(s.id), user_name=user, csrf=s.csrf, created=now,
                                              last_seen=now, job_ids="[]"))  # fmt: skip
        self._sweep(now)
        return s

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (None for a missing, unknown or expired id)."""
        if not session_id:
            return None
        now = time.time()
        key = _key(session_id)
        with self.database.transaction() as conn:
            row = conn.execute(sa.select(_T).where(_T.c.key == key)).first()
            if row is None:
                return None
            m = row._mapping
            s = Session(session_id, m["user_name"], m["csrf"], m["created"], m["last_seen"],
                        set(json.loads(m["job_ids"])))  # fmt: skip
            if not self._alive(s, now):
                conn.execute(sa.delete(_T).where(_T.c.key == key))
                return None
            if now - s.last_seen >= self.SEEN_EVERY_SECONDS:
                conn.execute(sa.update(_T).where(_T.c.key == key).values(last_seen=now))
                s.last_seen = now
        return s

    def add_job(self, session: Session, job_id: str) -> None:
        """Remember that this (anonymous) session submitted ``job_id``."""
        session.job_ids.add(job_id)
        self._save_jobs(session)

    def forget_job(self, session: Session, job_id: str) -> None:
        """Stop showing ``job_id`` to this session (deleted, or gone from the job store)."""
        if job_id in session.job_ids:
            session.job_ids.discard(job_id)
            self._save_jobs(session)

    def _save_jobs(self, session: Session) -> None:
        with self.database.transaction() as conn:
            conn.execute(sa.update(_T).where(_T.c.key == _key(session.id))
                         .values(job_ids=json.dumps(sorted(session.job_ids))))  # fmt: skip

    def rotate(self, old: Session | None, user: str | None) -> Session:
        """End ``old`` and start a new session for ``user`` (sign-in and sign-out)."""
        self.drop(old)
        return self.new(user)

    def drop(self, session: Session | None) -> None:
        """End a session (its id is never valid again, in any process)."""
        if session is not None:
            with self.database.transaction() as conn:
                conn.execute(sa.delete(_T).where(_T.c.key == _key(session.id)))

    def _sweep(self, now: float) -> None:
        """Delete expired sessions, and the least recently used half beyond ``max_sessions`` (once a minute)."""
        with self._lock:
            if now - self._last_sweep < self.SWEEP_EVERY_SECONDS:
                return
            self._last_sweep = now
        with self.database.transaction() as conn:
            conn.execute(sa.delete(_T).where(sa.or_(_T.c.last_seen <= now - self.idle_seconds,
                                                    _T.c.created <= now - self.max_age_seconds)))  # fmt: skip
            n = conn.execute(sa.select(sa.func.count()).select_from(_T)).scalar_one()
            if n > self.max_sessions:
                keep = self.max_sessions // 2
                cutoff = conn.execute(
                    sa.select(_T.c.last_seen).order_by(_T.c.last_seen.desc()).offset(keep).limit(1)
                ).scalar()
                if cutoff is not None:
                    conn.execute(sa.delete(_T).where(_T.c.last_seen <= cutoff))

    def __len__(self) -> int:
        now = time.time()
        with self.database.transaction() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_T).where(
                _T.c.last_seen > now - self.idle_seconds, _T.c.created > now - self.max_age_seconds)).scalar_one())  # fmt: skip


class SignInThrottle:
    """Failed sign-ins per client address: after ``max_failures`` within ``window_seconds``, wait.

    Guessing passwords or tokens from one address is slowed to ``max_failures`` tries per
    window, whatever user names are tried (so it says nothing about which users exist).

    Parameters
    ----------
    max_failures : int
        Failures allowed per address within the window.
    window_seconds : float
        How long a failure counts.
    """

    def __init__(self, max_failures: int = 10, window_seconds: float = 300.0) -> None:
        self.max_failures = int(max_failures)
        self.window_seconds = float(window_seconds)
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(address, ()) if now - t < self.window_seconds]
        if kept:
            self._failures[address] = kept
        else:
            self._failures.pop(address, None)
        return kept

    def wait_seconds(self, address: str) -> float:
        """Seconds until ``address`` may try again (0: now)."""
        now = time.time()
        with self._lock:
            recent = self._recent(address, now)
            if len(recent) < self.max_failures:
                return 0.0
            return max(0.0, recent[-self.max_failures] + self.window_seconds - now)

    def failed(self, address: str) -> None:
        """Count a failed sign-in from ``address``."""
        now = time.time()
        with self._lock:
            self._recent(address, now)
            self._failures.setdefault(address, []).append(now)
            if len(self._failures) > 100_000:  # many addresses: forget the oldest half
                oldest = sorted(self._failures, key=lambda a: self._failures[a][-1])
                for a in oldest[: len(oldest) // 2]:
                    del self._failures[a]
