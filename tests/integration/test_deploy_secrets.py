"""`workbench deploy secrets DIR`: the secret files of a deployment, run as a user runs it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.cli import Result, run_cli
from workbench.core.config import load_settings
from workbench.core.production import production_problems

FILES = ("secret_key", "postgres_password", "database_url")


def _deploy(directory: Path, *args: str) -> Result:
    return run_cli("deploy", "secrets", str(directory), *args)


def _contents(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in FILES}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _assert_values_not_in(output: str, values: dict[str, bytes]) -> None:
    for name, value in values.items():
        assert value.decode() not in output, f"{name}'s value was printed"


def test_writes_private_files_whose_url_carries_the_password(tmp_path: Path) -> None:
    directory = tmp_path / "deploy" / "secrets"
    result = _deploy(directory, "--database-host", "db.internal", "--database-name", "ops")
    assert result.code == 0, result.output

    assert _mode(directory) == 0o700
    assert sorted(p.name for p in directory.iterdir()) == sorted(FILES)  # no temporary left
    for name in FILES:
        assert _mode(directory / name) == 0o600, name
        assert name in result.stdout
    values = _contents(directory)
    _assert_values_not_in(result.output, values)

    password = values["postgres_password"].decode()
    assert len(password) >= 40 and password.strip() == password
    url = make_url(values["database_url"].decode())
    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.host, url.port, url.database) == (
        "workbench",
        "db.internal",
        5432,
        "ops",
    )
    assert url.password == password


def test_an_odd_user_name_is_url_quoted(tmp_path: Path) -> None:
    result = _deploy(tmp_path / "s", "--database-user", "ops@team:1/x")
    assert result.code == 0, result.output
    url = make_url((tmp_path / "s" / "database_url").read_text())
    assert url.username == "ops@team:1/x"
    assert url.host == "postgres" and url.database == "workbench"
    assert url.password == (tmp_path / "s" / "postgres_password").read_text()


def test_workbench_accepts_the_files_as_production_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "s"
    assert _deploy(directory).code == 0
    key = (directory / "secret_key").read_text()
    env = {
        "WORKBENCH_SECRET_KEY_FILE": str(directory / "secret_key"),
        "WORKBENCH_DATABASE_URL_FILE": str(directory / "database_url"),
        "WORKBENCH_ENV": "production",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.effective_secret_key() == (key, "WORKBENCH_SECRET_KEY")
    assert settings.effective_database_url() == (directory / "database_url").read_text()
    # The production check that refuses placeholders, short keys and default passwords.
    assert production_problems(settings) == []

    # The real CLI loads the key from the file (doctor only reads it; the SQLite database
    # it would check does not exist, which is that check's failure, not the key's).
    doctor = run_cli(
        "doctor", "--json", env={"WORKBENCH_SECRET_KEY_FILE": env["WORKBENCH_SECRET_KEY_FILE"]}
    )
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["secret key"]["status"] == "ok"
    assert checks["secret key"]["detail"] == "from WORKBENCH_SECRET_KEY"
    assert key not in doctor.output


def test_a_second_run_refuses_and_force_writes_new_values(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    assert _deploy(directory).code == 0
    first = _contents(directory)

    again = _deploy(directory)
    assert again.code != 0
    assert "Refusing to overwrite" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.output
    assert _contents(directory) == first
    assert sorted(p.name for p in directory.iterdir()) == sorted(FILES)

    forced = _deploy(directory, "--force")
    assert forced.code == 0, forced.output
    second = _contents(directory)
    for name in FILES:
        assert second[name] != first[name], name
        assert _mode(directory / name) == 0o600, name
    _assert_values_not_in(forced.output, second)
    url = make_url(second["database_url"].decode())
    assert url.password == second["postgres_password"].decode()


def test_one_existing_file_is_enough_to_refuse_and_nothing_is_written(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    directory.mkdir(mode=0o700)
    (directory / "postgres_password").write_text("kept")
    result = _deploy(directory)
    assert result.code != 0
    assert "postgres_password" in result.stderr
    assert sorted(p.name for p in directory.iterdir()) == ["postgres_password"]
    assert (directory / "postgres_password").read_text() == "kept"


def test_two_folders_get_different_values(tmp_path: Path) -> None:
    assert _deploy(tmp_path / "a").code == 0
    assert _deploy(tmp_path / "b").code == 0
    a, b = _contents(tmp_path / "a"), _contents(tmp_path / "b")
    for name in FILES:
        assert a[name] != b[name], name


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    directory.mkdir()
    os.chmod(directory, 0o750)  # noqa: S103 (a folder the user chose; its mode must stay)
    assert _deploy(directory).code == 0
    assert _mode(directory) == 0o750
    for name in FILES:
        assert _mode(directory / name) == 0o600, name
