"""The access file of ``proxcompute serve --access FILE``: users, groups, catalog rules, quotas.

::

    users:
      alice: {token: "alice-secret-token", password_hash: "$argon2id$...", groups: [desi]}
      bob: {token: "bob-secret-token"}
    groups:
      desi: {members: [alice]}          # members may be given here or under the user
    catalogs:
      survey: public                    # public (also anonymous), authenticated, or groups/users
      desi_dr2: {groups: [desi]}
    quotas:
      default: {mydb_bytes: 1GB, active_jobs: 4}
      alice: {mydb_bytes: 10GB}         # per user; unset fields come from default

:func:`load_access_file` checks all of it and names the file, line and reason of the first
problem (:class:`AccessFileError`); nothing of a bad file is used.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from proxcompute.errors import ProxError

__all__ = ["AccessFileError", "AccessRules", "CatalogRule", "Quota", "load_access_file", "parse_size"]

NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
"""User and group names (the characters a MyDB owner directory may carry)."""
CATALOG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}  # fmt: skip
MIN_TOKEN_CHARS = 16


class AccessFileError(ProxError):
    """An access file that cannot be used; the message names the file, the line and the reason."""


@dataclass(frozen=True)
class Quota:
    """What one user may hold: bytes of MyDB tables and UWS jobs queued or running at once."""

    mydb_bytes: int
    active_jobs: int


@dataclass(frozen=True)
class CatalogRule:
    """Who may read a catalog: everybody, any signed-in user, or the named groups and users."""

    public: bool = False
    authenticated: bool = False
    groups: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()

    def allows(self, user: str | None, groups: frozenset[str] | set[str]) -> bool:
        """True when ``user`` (None: anonymous), a member of ``groups``, may read."""
        if self.public:
            return True
        if user is None:
            return False
        return self.authenticated or user in self.users or bool(self.groups & set(groups))


@dataclass(frozen=True)
class AccessRules:
    """A validated access file (or the empty rules: everything public, only ``--tokens`` users)."""

    token_digests: tuple[tuple[bytes, str], ...] = ()
    """``(sha256(token), user)`` for every token (compared digest against digest, timing-safe)."""
    password_hashes: Mapping[str, str] = field(default_factory=dict)
    """User -> argon2 hash."""
    members: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Group -> its users."""
    catalogs: Mapping[str, CatalogRule] = field(default_factory=dict)
    """Lower-cased catalog name, alias or schema -> its rule."""
    quotas: Mapping[str, Quota] = field(default_factory=dict)
    """``default`` and user names -> quota (fields already merged with the default)."""
    users: frozenset[str] = frozenset()


def token_digest(token: str) -> bytes:
    """The SHA-256 of a token: what is kept and compared (equal lengths, no early exit)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_size(value: Any) -> int:
    """Bytes from ``1GB``, ``500 MB``, ``2GiB`` or a number (KB/MB/GB/TB are powers of 1000).

    >>> parse_size("1GB"), parse_size("2 KiB"), parse_size(123)
    (1000000000, 2048, 123)
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative")
        return value
    m = SIZE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a size (use e.g. 500MB, 1GB, 2GiB or a number of bytes)")
    return int(float(m.group(1)) * UNITS[(m.group(2) or "b").lower()])


class _Reader:
    """Walks the YAML node tree, so every complaint carries the line it is about."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._loader = yaml.SafeLoader("")

    def fail(self, node: yaml.Node | None, reason: str) -> AccessFileError:
        where = f"{self.path}:{node.start_mark.line + 1}" if node is not None else str(self.path)
        return AccessFileError(f"{where}: {reason}")

    def value(self, node: yaml.Node) -> Any:
        return self._loader.construct_object(node, deep=True)

    def mapping(self, node: yaml.Node | None, what: str, allowed: tuple[str, ...] | None = None) -> dict:
        """``{key: (key_node, value_node)}``; refuses duplicates and keys not in ``allowed``."""
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                raise self.fail(key_node, f"{what}: keys must be names, got {key!r}")
            if key in out:
                raise self.fail(key_node, f"{what}: {key!r} is given twice")
            if allowed is not None and key not in allowed:
                raise self.fail(key_node, f"{what}: unknown key {key!r} (expected one of {', '.join(allowed)})")
            out[key] = (key_node, value_node)
        return out

    def names(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list of names")
        out = []
        for item in node.value:
            name = self.value(item)
            if not isinstance(name, str) or not NAME.match(name):
                raise self.fail(item, f"{what}: {name!r} is not a name (letters, digits, _ . @ -)")
            out.append((name, item))
        return out

    def string(self, node: yaml.Node, what: str) -> str:
        value = self.value(node)
        if not isinstance(value, str) or not value:
            raise self.fail(node, f"{what} must be a non-empty string")
        return value


def load_access_file(path: str | Path, *, tokens: Mapping[str, str], default_quota: Quota) -> AccessRules:
    """Read and check an access file.

    Parameters
    ----------
    path
        The YAML file (see the module docstring).
    tokens
        Bearer token -> user of ``--tokens`` (kept; its users may be group members).
    default_quota
        The quota of users the file's ``quotas`` do not name (fields it omits keep these).

    Raises
    ------
    AccessFileError
        ``FILE:LINE: reason`` of the first problem.
    """
    path = Path(path)
    reader = _Reader(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessFileError(f"{path}: cannot be read: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise AccessFileError(f"{path}{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise AccessFileError(f"{path}: not valid YAML: {exc}") from None
    top = reader.mapping(root, "the access file", ("users", "groups", "catalogs", "quotas"))

    from argon2 import extract_parameters
    from argon2.exceptions import InvalidHashError

    digests: dict[bytes, str] = {token_digest(t): u for t, u in tokens.items()}
    hashes: dict[str, str] = {}
    members: dict[str, set[str]] = {}
    member_nodes: list[tuple[str, str, yaml.Node]] = []
    users = set(tokens.values())
    for name, (key_node, spec) in reader.mapping(top.get("users", (None, None))[1], "users").items():
        if not NAME.match(name):
            raise reader.fail(key_node, f"user name {name!r}: use letters, digits, _ . @ -")
        users.add(name)
        fields = reader.mapping(spec, f"user {name}", ("token", "password_hash", "groups"))
        if "token" in fields:
            token = reader.string(fields["token"][1], f"user {name}: token")
            if len(token) < MIN_TOKEN_CHARS:
                raise reader.fail(fields["token"][1], f"user {name}: a token needs {MIN_TOKEN_CHARS} characters at least")
            digest = token_digest(token)
            if digest in digests and digests[digest] != name:
                raise reader.fail(fields["token"][1], f"user {name}: this token is already {digests[digest]}'s")
            digests[digest] = name
        if "password_hash" in fields:
            h = reader.string(fields["password_hash"][1], f"user {name}: password_hash")
            try:
                extract_parameters(h)
            except InvalidHashError:
                raise reader.fail(fields["password_hash"][1], f"user {name}: password_hash is not an argon2 hash "
                                  "(make one with `proxcompute user hash-password`)") from None  # fmt: skip
            hashes[name] = h
        if "groups" in fields:
            for group, _node in reader.names(fields["groups"][1], f"user {name}: groups"):
                members.setdefault(group, set()).add(name)
    for group, (key_node, spec) in reader.mapping(top.get("groups", (None, None))[1], "groups").items():
        if not NAME.match(group):
            raise reader.fail(key_node, f"group name {group!r}: use letters, digits, _ . @ -")
        members.setdefault(group, set())
        fields = reader.mapping(spec, f"group {group}", ("members",))
        if "members" in fields:
            for user, node in reader.names(fields["members"][1], f"group {group}: members"):
                member_nodes.append((group, user, node))
                members[group].add(user)
    for group, user, node in member_nodes:
        if user not in users:
            raise reader.fail(node, f"group {group}: member {user!r} is not a user (not under users: or in --tokens)")

    catalogs: dict[str, CatalogRule] = {}
    for key, (key_node, spec) in reader.mapping(top.get("catalogs", (None, None))[1], "catalogs").items():
        if not CATALOG_KEY.match(key):
            raise reader.fail(key_node, f"catalog {key!r}: give a catalog name, alias or schema (a.b)")
        if key.lower() in catalogs:
            raise reader.fail(key_node, f"catalog {key!r} is given twice (names are case-insensitive)")
        catalogs[key.lower()] = _catalog_rule(reader, key, spec, users, members)

    quotas = {"default": default_quota}
    quota_items = reader.mapping(top.get("quotas", (None, None))[1], "quotas")
    if "default" in quota_items:  # first: the others inherit from it
        quota_items = {"default": quota_items.pop("default"), **quota_items}
    for key, (key_node, spec) in quota_items.items():
        if key != "default" and key not in users:
            raise reader.fail(key_node, f"quotas: {key!r} is neither default nor a user")
        fields = reader.mapping(spec, f"quotas {key}", ("mydb_bytes", "active_jobs"))
        base = quotas["default"]
        mydb_bytes, active_jobs = base.mydb_bytes, base.active_jobs
        if "mydb_bytes" in fields:
            try:
                mydb_bytes = parse_size(reader.value(fields["mydb_bytes"][1]))
            except ValueError as exc:
                raise reader.fail(fields["mydb_bytes"][1], f"quotas {key}: mydb_bytes: {exc}") from None
        if "active_jobs" in fields:
            n = reader.value(fields["active_jobs"][1])
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise reader.fail(fields["active_jobs"][1], f"quotas {key}: active_jobs must be a whole number >= 0")
            active_jobs = n
        quotas[key] = Quota(mydb_bytes, active_jobs)
    return AccessRules(
        token_digests=tuple(digests.items()),
        password_hashes=hashes,
        members={g: frozenset(m) for g, m in members.items()},
        catalogs=catalogs,
        quotas=quotas,
        users=frozenset(users),
    )


def _catalog_rule(reader: _Reader, key: str, spec: yaml.Node, users: set[str], members: dict) -> CatalogRule:
    if isinstance(spec, yaml.ScalarNode):
        word = reader.value(spec)
        if word == "public":
            return CatalogRule(public=True)
        if word == "authenticated":
            return CatalogRule(authenticated=True)
        raise reader.fail(spec, f"catalog {key}: {word!r} is not a rule (public, authenticated, "
                          "or {groups: [...], users: [...]})")  # fmt: skip
    fields = reader.mapping(spec, f"catalog {key}", ("groups", "users"))
    groups: set[str] = set()
    named: set[str] = set()
    if "groups" in fields:
        for group, node in reader.names(fields["groups"][1], f"catalog {key}: groups"):
            if group not in members:
                raise reader.fail(node, f"catalog {key}: no group {group!r} (define it under groups: or a user's groups)")
            groups.add(group)
    if "users" in fields:
        for user, node in reader.names(fields["users"][1], f"catalog {key}: users"):
            if user not in users:
                raise reader.fail(node, f"catalog {key}: no user {user!r}")
            named.add(user)
    return CatalogRule(groups=frozenset(groups), users=frozenset(named))
