"""The CLI as a user runs it: real subprocesses, real databases."""

from __future__ import annotations

import re
import secrets
import stat
from pathlib import Path

import pytest

from tests.cli import run_cli
from workbench.db.migrate import head_revision

VERBS = ["init", "doctor", "db", "version"]
DB_VERBS = ["upgrade", "downgrade", "current", "history", "check"]


def test_help_lists_every_verb_with_help() -> None:
    result = run_cli("--help")
    assert result.code == 0
    for verb in VERBS:
        line = next(line for line in result.stdout.splitlines() if f" {verb} " in line)
        assert len(line.split(verb, 1)[1].strip(" │")) > 10, line
    db_help = run_cli("db", "--help")
    for verb in DB_VERBS:
        assert re.search(rf"{verb}\s+\S+", db_help.stdout), verb


def test_init_twice_then_doctor(isolated_env: Path) -> None:
    first = run_cli("init")
    assert first.code == 0, first.output
    assert f"schema:      at {head_revision()}" in first.stdout
    password = re.search(r"One-time password for admin.*?\n.*?(\S{24})", first.stdout, re.S)
    assert password, first.stdout
    key_file = isolated_env / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert key not in first.output

    second = run_cli("init")
    assert second.code == 0, second.output
    assert "exists, unchanged" in second.stdout
    assert "One-time password" not in second.stdout
    assert key_file.read_text().strip() == key

    doctor = run_cli("doctor")
    assert doctor.code == 0, doctor.output
    assert re.search(r"migrations\s*│\s*ok\s*│\s*at head", doctor.stdout), doctor.stdout
    assert key not in doctor.output
    assert password.group(1) not in doctor.output


def test_doctor_before_init_fails_and_says_what_to_do() -> None:
    result = run_cli("doctor")
    assert result.code != 0
    assert "workbench init" in result.stdout


def test_admin_password_from_file(tmp_path: Path) -> None:
    pw_file = tmp_path / "admin-pw"
    pw_file.write_text("a-long-chosen-password\n")
    result = run_cli(
        "init", "--admin-username", "root-admin", "--admin-password-file", str(pw_file)
    )
    assert result.code == 0, result.output
    assert "root-admin (created)" in result.stdout
    assert "a-long-chosen-password" not in result.output
    assert "One-time password" not in result.stdout


def test_short_admin_password_is_refused_cleanly(tmp_path: Path) -> None:
    pw_file = tmp_path / "admin-pw"
    pw_file.write_text("short\n")
    result = run_cli("init", "--admin-password-file", str(pw_file))
    assert result.code != 0
    assert "at least 12 characters" in result.stderr
    assert "Traceback" not in result.output


def test_production_refuses_placeholder_key_without_echoing_it() -> None:
    result = run_cli(
        "doctor", env={"WORKBENCH_ENV": "production", "WORKBENCH_SECRET_KEY": "changeme"}
    )
    assert result.code != 0
    assert "WORKBENCH_SECRET_KEY" in result.stderr
    assert "placeholder" in result.stderr
    assert "changeme" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [["doctor"], ["db", "current"], ["init"]])
def test_production_refuses_default_database_credentials(command: list[str]) -> None:
    env = {
        "WORKBENCH_ENV": "production",
        "WORKBENCH_SECRET_KEY": secrets.token_urlsafe(48),
        "WORKBENCH_DATABASE_URL": "postgresql://postgres:postgres@127.0.0.1:5432/wb",
    }
    result = run_cli(*command, env=env)
    assert result.code != 0
    assert "default credential" in result.stderr
    assert ":postgres@" not in result.output
    assert env["WORKBENCH_SECRET_KEY"] not in result.output


def test_production_refuses_embedded_database() -> None:
    result = run_cli(
        "doctor",
        env={"WORKBENCH_ENV": "production", "WORKBENCH_SECRET_KEY": secrets.token_urlsafe(48)},
    )
    assert result.code != 0
    assert "embedded SQLite" in result.stderr


def test_config_error_has_no_traceback() -> None:
    result = run_cli("doctor", env={"WORKBENCH_POOL_SIZE": "lots"})
    assert result.code == 2
    assert "WORKBENCH_POOL_SIZE" in result.stderr
    assert "Traceback" not in result.output


def test_db_commands_on_postgresql(pg_empty_url: str) -> None:
    env = {"WORKBENCH_DATABASE_URL": pg_empty_url}
    assert "base (empty)" in run_cli("db", "current", env=env).stdout
    up = run_cli("db", "upgrade", env=env)
    assert up.code == 0, up.output
    current = run_cli("db", "current", env=env)
    assert "(at head)" in current.stdout
    check = run_cli("db", "check", env=env)
    assert check.code == 0, check.output
    assert "matches the models" in check.stdout
    down = run_cli("db", "downgrade", "base", env=env)
    assert down.code == 0, down.output
    failed_check = run_cli("db", "check", env=env)
    assert failed_check.code != 0
    assert "workbench db upgrade" in failed_check.stderr
    assert "Traceback" not in failed_check.output


def test_db_history_lists_revisions() -> None:
    result = run_cli("db", "history")
    assert result.code == 0
    assert "0001" in result.stdout
    assert "core schema" in result.stdout


def test_bad_revision_is_a_clean_error(sqlite_url: str) -> None:
    result = run_cli("db", "downgrade", "no-such-rev", env={"WORKBENCH_DATABASE_URL": sqlite_url})
    assert result.code != 0
    assert "no-such-rev" in result.stderr
    assert "Traceback" not in result.output


def test_unreachable_database_is_reported(tmp_path: Path) -> None:
    env = {
        "WORKBENCH_DATABASE_URL": "postgresql://wb:pw-never-shown@127.0.0.1:1/wb",
        "WORKBENCH_CONNECT_TIMEOUT": "2",
    }
    result = run_cli("doctor", env=env)
    assert result.code != 0
    assert re.search(r"database\s*│\s*failed\s*│\s*unreachable", result.stdout), result.stdout
    assert "pw-never-shown" not in result.output


def test_doctor_checks_redis_when_configured(redis_url: str) -> None:
    assert run_cli("init").code == 0
    ok = run_cli("doctor", env={"WORKBENCH_REDIS_URL": redis_url})
    assert ok.code == 0, ok.output
    assert re.search(r"redis\s*│\s*ok\s*│\s*Redis \d", ok.stdout)
    down = run_cli("doctor", env={"WORKBENCH_REDIS_URL": "redis://:pw-hidden@127.0.0.1:1/0"})
    assert down.code != 0
    assert re.search(r"redis\s*│\s*failed", down.stdout)
    assert "pw-hidden" not in down.output


def test_version() -> None:
    from workbench import __version__

    result = run_cli("version")
    assert result.code == 0
    assert __version__ in result.stdout
