"""Who a request is and what it may read: tokens, passwords, groups, catalog rules, quotas.

:class:`AccessControl` holds the rules of an access file (:mod:`~proxcompute.service.access_file`)
and the ``--tokens`` map, re-reads the file when it changes (or on :meth:`AccessControl.reload`,
which ``proxcompute serve`` calls on SIGHUP) and keeps the previous rules, logging why, when
the new file is bad. The service applies the rules where a query resolves its tables
(:meth:`~proxcompute.service.state.ServiceState.registry_for`), so every route obeys them.

The rule for catalogs: a catalog is readable when every rule that names it (by its qualified
name, by any alias, or by a schema it sits in) allows the user; a catalog no rule names is
public. A catalog a user may not read is absent from their registry, so it is an "unknown
table" exactly like one that does not exist.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from proxcompute.service.access_file import AccessRules, Quota, load_access_file, token_digest

__all__ = ["AccessControl", "Quota", "hash_password", "rule_keys"]

log = logging.getLogger("proxcompute.service.access")
BASIC_CACHE_SECONDS = 300.0
"""How long a verified HTTP Basic user/password pair is remembered (per process, per rules version)."""


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` for the access file's ``password_hash``.

    >>> hash_password("correct horse").startswith("$argon2id$")
    True
    """
    if not password:
        raise ValueError("the password is empty")
    return _hasher().hash(password)


def rule_keys(names: Iterable[str]) -> set[str]:
    """The rule keys that name a table known by ``names``: each name, its last part, its schemas.

    >>> sorted(rule_keys(["survey.gaia", "gaia_dr3"]))
    ['gaia', 'gaia_dr3', 'survey', 'survey.gaia']
    """
    keys: set[str] = set()
    for name in names:
        parts = name.lower().split(".")
        keys.add(".".join(parts))
        keys.add(parts[-1])
        keys.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return keys


class AccessControl:
    """The live access rules of one service.

    Parameters
    ----------
    path
        The access file (None: no file; every catalog is public, users come from ``tokens``).
    tokens
        Bearer token -> user (``--tokens``); these keep working next to the file's tokens.
    default_quota
        Quota of users the file does not name.

    Raises
    ------
    AccessFileError
        When the file is bad at start-up (the service must not start on rules it cannot read).
    """

    def __init__(self, path: str | os.PathLike | None, *, tokens: Mapping[str, str], default_quota: Quota) -> None:
        self.path = Path(path) if path is not None else None
        self._tokens = dict(tokens)
        self._default_quota = default_quota
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self.version = 0
        """Bumped whenever the rules change (caches of per-user registries key on it)."""
        self.last_error: str | None = None
        """Why the last reload was refused (None after a good one)."""
        self._dummy_hash: str | None = None
        self._salt = secrets.token_bytes(16)
        self._basic: dict[bytes, tuple[int, float]] = {}
        if self.path is None:
            self.rules = AccessRules(token_digests=tuple((token_digest(t), u) for t, u in self._tokens.items()),
                                     quotas={"default": default_quota}, users=frozenset(self._tokens.values()))  # fmt: skip
        else:
            self._seen = self._stamp()
            self.rules = self._load()
            self._dummy()  # now, so the first unknown user does not take twice as long as the others

    # ------------------------------------------------------------ reloading

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)  # type: ignore[arg-type]
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _load(self) -> AccessRules:
        return load_access_file(self.path, tokens=self._tokens, default_quota=self._default_quota)  # type: ignore[arg-type]

    def reload(self, *, only_if_changed: bool = False) -> bool:
        """Re-read the file now; on a bad file keep the current rules, log and remember why."""
        if self.path is None:
            return True
        from proxcompute.service.access_file import AccessFileError

        with self._lock:
            stamp = self._stamp()
            if only_if_changed and stamp == self._seen:  # another thread just read it
                return self.last_error is None
            self._seen = stamp
            try:
                rules = self._load()
            except AccessFileError as exc:
                self.last_error = str(exc)
                log.error("access rules not reloaded, the previous ones stay in force: %s", exc)
                return False
            self.rules = rules
            self.last_error = None
            self.version += 1
            log.warning("access rules reloaded from %s", self.path)
            return True

    def reload_soon(self) -> None:
        """:meth:`reload` on a new thread: what a signal handler calls (it must not take locks)."""
        threading.Thread(target=self.reload, name="proxcompute-access-reload", daemon=True).start()

    def refresh(self) -> None:
        """Reload when the file changed since it was last read (cheap: one ``stat``)."""
        if self.path is not None and self._stamp() != self._seen:
            self.reload(only_if_changed=True)

    # ------------------------------------------------------------ identity

    def user_for_token(self, token: str | None) -> str | None:
        """The user a bearer token names, or None; every known token is compared, timing-safe."""
        if not token:
            return None
        self.refresh()
        digest = token_digest(token)
        found = None
        for known, user in self.rules.token_digests:  # no early exit: the time does not depend on which
            if hmac.compare_digest(digest, known):
                found = user
        return found

    def check_password(self, user: str | None, password: str | None) -> bool:
        """True when ``password`` is ``user``'s; an unknown user costs the same (a dummy verify)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        self.refresh()
        stored = self.rules.password_hashes.get(user) if user else None
        if stored is None:
            stored = self._dummy()
        try:
            ok = _hasher().verify(stored, password or "")
        except (VerificationError, InvalidHashError):
            ok = False
        return ok and user is not None and user in self.rules.password_hashes

    def user_for_password(self, user: str, password: str) -> str | None:
        """:meth:`check_password` for HTTP Basic, which clients send with every request.

        A success is remembered for :data:`BASIC_CACHE_SECONDS` under a salted SHA-256 of the
        pair (the salt is random per process) until the rules change, so a polling client
        pays one argon2 check, not one per request. A failure is never remembered.
        """
        self.refresh()
        key = hashlib.sha256(self._salt + user.encode() + b"\0" + password.encode()).digest()
        hit = self._basic.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] == self.version and now - hit[1] < BASIC_CACHE_SECONDS:
            return user
        if not self.check_password(user, password):
            return None
        if len(self._basic) >= 1024:
            self._basic = {}
        self._basic[key] = (self.version, now)
        return user

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = hash_password(secrets.token_urlsafe(24))
        return self._dummy_hash

    def groups_of(self, user: str | None) -> set[str]:
        """The groups ``user`` is in (none for anonymous users)."""
        if user is None:
            return set()
        self.refresh()
        return {g for g, m in self.rules.members.items() if user in m}

    def knows(self, user: str | None) -> bool:
        """Whether ``user`` is a user of the current rules (a removed user's queued jobs are not)."""
        self.refresh()
        return user is not None and user in self.rules.users

    def group_exists(self, group: str) -> bool:
        self.refresh()
        return group in self.rules.members

    # ------------------------------------------------------------ rules

    def can_read_names(self, user: str | None, names: Iterable[str]) -> bool:
        """Whether ``user`` may read the table known by ``names`` (all its names and aliases)."""
        rules = self.rules.catalogs
        if not rules:
            return True
        if user is not None and user not in self.rules.users:
            user = None  # removed from the file since (e.g. the owner of a queued job): anonymous
        matching = [rules[k] for k in rule_keys(names) if k in rules]
        if not matching:
            return True
        groups = self.groups_of(user) if user is not None else set()
        return all(rule.allows(user, groups) for rule in matching)

    def quota_for(self, user: str | None) -> Quota:
        """The user's quota (the default for users the file does not name, and anonymous users)."""
        self.refresh()
        quotas = self.rules.quotas
        return quotas.get(user, quotas["default"]) if user is not None else quotas["default"]
