"""Portal sessions: a random id in an HttpOnly, SameSite cookie; the state stays on the server.

Every visitor gets a session (anonymous until sign-in) so that every form, the sign-in form
included, carries a CSRF token bound to it. The id a browser presents is only ever looked
up, never adopted: an unknown id gets a fresh session with a new id, and signing in or out
always moves to a new id and a new CSRF token (no session fixation). Sessions live in the
service process (a restart signs everyone out) and expire after ``idle_seconds`` without a
request or ``max_age_seconds`` after sign-in.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

__all__ = ["COOKIE", "Session", "SessionStore", "SignInThrottle"]

COOKIE = "proxcompute_session"
"""Name of the session cookie."""


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
        ``time.time()`` of the last request.
    job_ids : set of str
        Jobs an anonymous session submitted (anonymous jobs share one owner in the job store,
        so an anonymous visitor is shown only the jobs of their own session).
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


class SessionStore:
    """Sessions of one service process, by id (thread-safe).

    Parameters
    ----------
    idle_seconds : float
        A session not used for this long is gone.
    max_age_seconds : float
        A session older than this is gone, used or not.
    max_sessions : int
        When this many sessions exist (visitors that never come back), the least recently
        used half goes.
    """

    def __init__(
        self, idle_seconds: float = 8 * 3600, max_age_seconds: float = 24 * 3600, max_sessions: int = 100_000
    ) -> None:
        self.idle_seconds = float(idle_seconds)
        self.max_age_seconds = float(max_age_seconds)
        self.max_sessions = int(max_sessions)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def _alive(self, s: Session, now: float) -> bool:
        return now - s.last_seen < self.idle_seconds and now - s.created < self.max_age_seconds

    def new(self, user: str | None = None) -> Session:
        """A fresh session (new id, new CSRF token)."""
        now = time.time()
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now, now)
        with self._lock:
            if len(self._sessions) >= self.max_sessions:  # expired first, then the least recently used
                live = sorted((v for v in self._sessions.values() if self._alive(v, now)), key=lambda v: v.last_seen)
                self._sessions = {v.id: v for v in live[len(live) - self.max_sessions // 2 :]}
            self._sessions[s.id] = s
        return s

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (None for a missing, unknown or expired id)."""
        if not session_id:
            return None
        now = time.time()
        with self._lock:
            s = self._sessions.get(session_id)
            if s is None:
                return None
            if not self._alive(s, now):
                del self._sessions[session_id]
                return None
            s.last_seen = now
            return s

    def rotate(self, old: Session | None, user: str | None) -> Session:
        """End ``old`` and start a new session for ``user`` (sign-in and sign-out)."""
        self.drop(old)
        return self.new(user)

    def drop(self, session: Session | None) -> None:
        """End a session (its id is never valid again)."""
        if session is not None:
            with self._lock:
                self._sessions.pop(session.id, None)

    def __len__(self) -> int:
        return len(self._sessions)


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
