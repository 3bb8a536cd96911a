"""`workbench users` and `workbench teams` as a user runs them (real subprocesses)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import Result, run_cli
from tests.integration.test_rls_policies import _drop_roles
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.models import User


@pytest.fixture
def pg_cli(pg_url: str, isolated_env: Path) -> Iterator[dict[str, str]]:
    env = {"WORKBENCH_DATABASE_URL": pg_url}
    yield env
    bench = Workbench(load_settings(), pg_url)
    try:
        with bench.session() as session:
            roles = [u.db_role for u in session.query(User) if u.db_role]
    finally:
        bench.close()
    _drop_roles(pg_url.rsplit("/", 1)[1], roles)


def _ok(result: Result) -> str:
    assert result.code == 0, result.output
    return result.stdout


def _one_time_password(output: str) -> str:
    match = re.search(r"One-time password for \S+.*?\n.*?([A-Za-z0-9_-]{24,})", output, re.S)
    assert match, output
    return match.group(1)


def test_users_and_teams_on_postgresql(pg_cli: dict[str, str], tmp_path: Path) -> None:
    _ok(run_cli("init", env=pg_cli))
    _ok(run_cli("teams", "add", "red", "--description", "Red team", env=pg_cli))
    added = _ok(run_cli("users", "add", "alice", "--team", "red", env=pg_cli))
    assert "with a database login" in added
    generated = _one_time_password(added)
    _ok(run_cli("users", "add", "vic", "--role", "viewer", env=pg_cli))
    _ok(run_cli("teams", "add-member", "red", "vic", env=pg_cli))
    teams = _ok(run_cli("teams", "list", env=pg_cli))
    assert re.search(r"red\s+│\s+alice, vic", teams), teams
    listing = _ok(run_cli("users", "list", env=pg_cli))
    assert re.search(r"alice\s+│\s+analyst\s+│\s+active\s+│\s+red\s+│\s+yes", listing), listing
    assert generated not in listing

    bench = Workbench(load_settings(), pg_cli["WORKBENCH_DATABASE_URL"])
    try:
        assert accounts.login("alice", generated, workbench=bench).username == "alice"
        chosen = tmp_path / "pw"
        chosen.write_text("a chosen long password\n", encoding="utf-8")
        changed = _ok(
            run_cli("users", "passwd", "alice", "--password-file", str(chosen), env=pg_cli)
        )
        assert "a chosen long password" not in changed
        assert "One-time" not in changed
        accounts.login("alice", "a chosen long password", workbench=bench)

        with bench.session() as session:
            before = session.query(User).filter_by(username="alice").one().db_password_encrypted
        rotated = _ok(run_cli("users", "rotate-credentials", "alice", env=pg_cli))
        assert "rotated" in rotated
        with bench.session() as session:
            after = session.query(User).filter_by(username="alice").one()
            assert after.db_password_encrypted != before
            assert after.db_role is not None and after.db_role not in rotated
        # The first admin, made by init, gets its database login on first rotation.
        _ok(run_cli("users", "rotate-credentials", "admin", env=pg_cli))

        _ok(run_cli("teams", "remove-member", "red", "vic", env=pg_cli))
        _ok(run_cli("users", "disable", "alice", env=pg_cli))
        listing = _ok(run_cli("users", "list", env=pg_cli))
        assert re.search(r"alice\s+│\s+analyst\s+│\s+disabled", listing), listing
        assert re.search(r"vic\s+│\s+viewer\s+│\s+active\s+│\s+-", listing), listing
    finally:
        bench.close()

    missing = run_cli("teams", "add-member", "red", "nobody", env=pg_cli)
    assert missing.code != 0
    assert "no user 'nobody'" in missing.stderr
    assert "Traceback" not in missing.output


def test_multi_user_commands_refuse_sqlite(isolated_env: Path) -> None:
    _ok(run_cli("init"))
    added = _ok(run_cli("users", "add", "solo"))
    assert "database login" not in added
    _one_time_password(added)
    for args in (
        ("teams", "add", "red"),
        ("teams", "list"),
        ("users", "rotate-credentials", "solo"),
        ("users", "add", "duo", "--team", "red"),
    ):
        result = run_cli(*args)
        assert result.code != 0, args
        assert "PostgreSQL" in result.stderr
        assert "single-user" in result.stderr
        assert "Traceback" not in result.output
