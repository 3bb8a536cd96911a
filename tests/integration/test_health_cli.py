"""`workbench doctor --json` and `workbench db check-migrations --wait`, as scripts and init
containers use them, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import time
from pathlib import Path

from tests.cli import run_cli
from tests.e2e.world import free_port


def test_doctor_json_parses_and_exits_by_the_rule(db_url: str) -> None:
    env = {"WORKBENCH_DATABASE_URL": db_url, "WORKBENCH_SECRET_KEY": secrets.token_urlsafe(48)}
    result = run_cli("doctor", "--json", env=env)
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "ok"
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses == {
        "secret key": "ok",
        "database": "ok",
        "migrations": "ok",
        "scheduler": "ok",
        "workers": "ok",
    }
    assert report["settings"]["WORKBENCH_SECRET_KEY"] == "***"
    assert env["WORKBENCH_SECRET_KEY"] not in result.output

    # Redis configured but down: a failed check, exit 1.
    down = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli("doctor", "--json", env={**env, "WORKBENCH_REDIS_URL": down})
    assert result.code == 1
    report = json.loads(result.stdout)
    assert report["status"] == "failed"
    assert {c["name"]: c["status"] for c in report["checks"]}["redis"] == "failed"

    # The Celery executor without a worker: a warning only, exit 2.
    result = run_cli("doctor", "--json", env={**env, "WORKBENCH_EXECUTOR": "celery"})
    assert result.code == 2, result.output
    assert json.loads(result.stdout)["status"] == "warning"
    # The human table keeps its form and follows the same rule.
    human = run_cli("doctor", env={**env, "WORKBENCH_EXECUTOR": "celery"})
    assert human.code == 2
    assert "Settings" in human.stdout and "Checks" in human.stdout
    assert "warning" in human.stdout


def test_doctor_json_reports_unsafe_production_settings_as_a_failed_check() -> None:
    env = {"WORKBENCH_ENV": "production", "WORKBENCH_SECRET_KEY": "changeme"}
    result = run_cli("doctor", "--json", env=env)
    assert result.code == 1, result.output
    report = json.loads(result.stdout)
    production = next(c for c in report["checks"] if c["name"] == "production")
    assert production["status"] == "failed"
    assert "changeme" not in result.output
    # Without --json, the refusal is the one every command gives.
    assert run_cli("doctor", env=env).code == 2


def test_check_migrations_succeeds_on_a_migrated_database(db_url: str) -> None:
    result = run_cli(
        "db", "check-migrations", "--wait", "10", env={"WORKBENCH_DATABASE_URL": db_url}
    )
    assert result.code == 0, result.output
    assert "database ready: schema at head" in result.stdout


def test_the_first_commands_of_a_deployment_create_the_home_private(
    pg_empty_url: str, tmp_path: Path
) -> None:
    """The migration Job and every pod's init container run as the services' own user, before
    any process running as root: whichever comes first makes the home, 0700, as its owner."""
    for command in (["db", "check-migrations"], ["db", "upgrade"]):
        home = tmp_path / command[-1] / "home"
        result = run_cli(
            *command, env={"WORKBENCH_DATABASE_URL": pg_empty_url, "WORKBENCH_HOME": str(home)}
        )
        assert result.code == (1 if command[-1] == "check-migrations" else 0), result.output
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert home.stat().st_uid == os.geteuid()
        for folder in ("runs", "backups"):
            assert stat.S_IMODE((home / folder).stat().st_mode) == 0o700


def test_check_migrations_fails_on_an_empty_database(empty_db_url: str) -> None:
    result = run_cli("db", "check-migrations", env={"WORKBENCH_DATABASE_URL": empty_db_url})
    assert result.code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "not initialised" in result.stderr


def test_check_migrations_waits_then_fails_in_one_line_on_a_closed_port() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    start = time.monotonic()
    result = run_cli("db", "check-migrations", "--wait", "3", env={"WORKBENCH_DATABASE_URL": url})
    waited = time.monotonic() - start
    assert result.code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: The database is not ready after 3s: database unreachable")
    assert 3 <= waited < 3 + 15  # the wait, plus the interpreter's start-up
    print(f"\ncheck-migrations --wait 3 gave up after {waited:.1f} s: {lines[0]}")


def test_a_health_port_in_use_is_one_line_not_a_traceback(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "scheduler", "--metrics-port", str(port), env={"WORKBENCH_DATABASE_URL": db_url}
        )
    assert result.code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: The health endpoints cannot listen on 127.0.0.1:{port} (Address already in "
        "use); choose another --metrics-port or --metrics-host."
    ]
