"""The access file: what it accepts, and the file, line and reason of what it refuses."""

from __future__ import annotations

import sys

import pytest
from argon2 import PasswordHasher

from proxcompute.cli import main
from proxcompute.service.access import AccessControl, rule_keys
from proxcompute.service.access_file import AccessFileError, Quota, load_access_file, parse_size

DEFAULT = Quota(mydb_bytes=1 << 30, active_jobs=10)
GOOD = """\
users:
  alice: {token: "alice-secret-token", groups: [desi]}
  bob: {token: "bob-secret-token"}
groups:
  desi: {members: [alice]}
  everyone: {members: [alice, bob, carol]}
catalogs:
  survey: public
  desi_dr2: {groups: [desi]}
  survey.private: {users: [bob]}
  members_only: authenticated
quotas:
  default: {mydb_bytes: 1GB, active_jobs: 4}
  bob: {active_jobs: 1}
"""


def load(tmp_path, text, tokens=None):
    path = tmp_path / "access.yaml"
    path.write_text(text)
    return load_access_file(path, tokens=tokens or {"carol-token": "carol"}, default_quota=DEFAULT)


def test_a_good_file(tmp_path):
    rules = load(tmp_path, GOOD)
    assert rules.users == {"alice", "bob", "carol"}  # carol comes from --tokens
    assert rules.members["desi"] == {"alice"} and rules.members["everyone"] == {"alice", "bob", "carol"}
    assert rules.quotas["default"] == Quota(10**9, 4)
    assert rules.quotas["bob"] == Quota(10**9, 1)  # fields it omits come from default
    rule = rules.catalogs["desi_dr2"]
    assert rule.allows("alice", {"desi"}) and not rule.allows("bob", set()) and not rule.allows(None, set())
    assert rules.catalogs["members_only"].allows("bob", set()) and not rules.catalogs["members_only"].allows(None, set())


def test_catalog_rules_combine_restrictively(tmp_path):
    path = tmp_path / "access.yaml"
    path.write_text(GOOD)
    access = AccessControl(path, tokens={"carol-token": "carol"}, default_quota=DEFAULT)
    assert access.can_read_names(None, ["survey.gaia"])  # the schema is public
    # survey is public but survey.private names bob: every rule that names a table must allow
    assert access.can_read_names("bob", ["survey.private"])
    assert not access.can_read_names("alice", ["survey.private"]) and not access.can_read_names(None, ["survey.private"])
    # a rule on one alias covers the others (directory name and obs_collection)
    assert not access.can_read_names("bob", ["desi_main", "desi_dr2"]) and access.can_read_names("alice", ["desi_main", "desi_dr2"])
    assert access.can_read_names(None, ["unlisted"])  # not named anywhere: public
    # a user the rules no longer name (the owner of a job queued before) counts as anonymous
    assert access.can_read_names("bob", ["members_only"]) and not access.can_read_names("mallory", ["members_only"])
    assert access.knows("carol") and not access.knows("mallory") and not access.knows(None)
    assert sorted(rule_keys(["A.B.C"])) == ["a", "a.b", "a.b.c", "c"]


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("users:\n  alice: {token: short}\n", 2, "16 characters"),
    ("users:\n  alice: {token: \"alice-secret-token\"}\n  bob: {token: \"alice-secret-token\"}\n", 3, "already alice's"),
    ("users:\n  alice: {password_hash: \"plain\"}\n", 2, "not an argon2 hash"),
    ("users:\n  alice: {tokn: \"alice-secret-token\"}\n", 2, "unknown key 'tokn'"),
    ("users:\n  alice: {}\n  alice: {}\n", 3, "'alice' is given twice"),
    ("users:\n  'bad name!': {}\n", 2, "user name"),
    ("groups:\n  desi: {members: [alice]}\n", 2, "member 'alice' is not a user"),
    ("groups:\n  desi: {members: alice}\n", 2, "must be a list"),
    ("users:\n  alice: {}\ncatalogs:\n  x: {groups: [nope]}\n", 4, "no group 'nope'"),
    ("catalogs:\n  x: private\n", 2, "'private' is not a rule"),
    ("catalogs:\n  'x/../y': public\n", 2, "give a catalog name"),
    ("catalogs:\n  X: public\n  x: public\n", 3, "given twice"),
    ("quotas:\n  default: {mydb_bytes: lots}\n", 2, "'lots' is not a size"),
    ("quotas:\n  default: {active_jobs: -1}\n", 2, "whole number >= 0"),
    ("quotas:\n  mallory: {active_jobs: 1}\n", 2, "neither default nor a user"),
    ("users: [alice]\n", 1, "users must be a mapping"),
    ("users:\n  alice: {token: [\n", 3, "not valid YAML"),
    ("catalog:\n  x: public\n", 1, "unknown key 'catalog'"),
])  # fmt: skip
def test_refusals_name_file_line_and_reason(tmp_path, text, line, reason):
    with pytest.raises(AccessFileError) as info:
        load(tmp_path, text, tokens={})
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'access.yaml'}:{line}: "), message
    assert reason in message, message


def test_sizes():
    assert parse_size("1GB") == 10**9 and parse_size("1.5 MiB") == 3 << 19 and parse_size("100") == 100
    for bad in ("-1GB", "1 parsec", "", True):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_serve_refuses_a_bad_access_file(tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    bad = tmp_path / "bad.yaml"
    bad.write_text("users:\n  alice: {token: \"alice-secret-token\"}\ncatalogs:\n  x: {groups: [ghosts]}\n")
    assert main(["serve", "--catalog-root", str(root), "--access", str(bad), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4:" in err.replace("\n", "") and "ghosts" in err and "Traceback" not in err
    assert main(["serve", "--catalog-root", str(root), "--access", str(tmp_path / "missing.yaml")]) == 1
    assert "is not a file" in capsys.readouterr().err


def test_hash_password_command(monkeypatch, capsys):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret words\n"))
    assert main(["user", "hash-password", "--password-stdin"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("$argon2id$") and PasswordHasher().verify(printed, "s3cret words")
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["user", "hash-password", "--password-stdin"]) == 1
    assert "empty" in capsys.readouterr().err


def test_check_command(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("carol-token: carol\n")
    assert main(["user", "check", str(good), "--tokens", str(tokens)]) == 0
    out = capsys.readouterr().out
    assert "3 users (0 with a password), 2 groups, 4 catalog rules, 1 per-user quotas" in out
    assert main(["user", "check", str(good)]) == 1  # carol is a group member but no user without --tokens
    err = capsys.readouterr().err
    assert f"{good}:6:" in err.replace("\n", "") and "carol" in err and "Traceback" not in err
