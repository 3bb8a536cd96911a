from __future__ import annotations

from pathlib import Path

import pytest

from workbench.core.config import load_settings, mask_url, normalize_database_url
from workbench.core.errors import ConfigError


def test_defaults_are_sized_for_notebooks(isolated_env: Path) -> None:
    s = load_settings()
    assert (s.pool_size, s.max_overflow) == (5, 5)
    assert s.pool_recycle > 0
    assert s.statement_timeout_ms == 60_000
    assert s.env == "development"
    assert s.home_path == isolated_env.resolve()
    assert s.effective_database_url() == f"sqlite+pysqlite:///{isolated_env / 'workbench.db'}"


def test_home_defaults_to_dot_workbench(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WORKBENCH_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings().home_path == tmp_path / ".workbench"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_POOL_SIZE", "3")
    monkeypatch.setenv("WORKBENCH_MAX_OVERFLOW", "0")
    monkeypatch.setenv("WORKBENCH_STATEMENT_TIMEOUT_MS", "1500")
    s = load_settings()
    assert (s.pool_size, s.max_overflow, s.statement_timeout_ms) == (3, 0, 1500)


def test_dotenv_file_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WORKBENCH_POOL_SIZE=7\nWORKBENCH_LOG_FORMAT=json\n")
    s = load_settings()
    assert s.pool_size == 7
    assert s.log_format == "json"


def test_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("WORKBENCH_POOL_SIZE=7\n")
    monkeypatch.setenv("WORKBENCH_POOL_SIZE", "2")
    assert load_settings().pool_size == 2


@pytest.mark.parametrize("name", ["secret_key", "database_url", "redis_url"])
def test_secret_file_variables(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret.txt"
    value = {
        "secret_key": "k" * 20 + "0123456789abcdefghij",
        "database_url": "postgresql://app:s3cr3t-Pw@db:5432/wb",
        "redis_url": "redis://:s3cr3t-Pw@cache:6379/0",
    }[name]
    secret.write_text(value + "\n")
    monkeypatch.setenv(f"WORKBENCH_{name.upper()}_FILE", str(secret))
    field = getattr(load_settings(), name)
    assert field.get_secret_value() == value


def test_secret_file_in_dotenv(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-a-file-" + "x1y2z3" * 6)
    (tmp_path / ".env").write_text(f"WORKBENCH_SECRET_KEY_FILE={secret}\n")
    key, source = load_settings().effective_secret_key()
    assert key == secret.read_text()
    assert source == "WORKBENCH_SECRET_KEY"


def test_secret_and_secret_file_together_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "key"
    secret.write_text("value-from-file")
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", "value-from-env")
    monkeypatch.setenv("WORKBENCH_SECRET_KEY_FILE", str(secret))
    with pytest.raises(ConfigError, match="keep only one") as info:
        load_settings()
    assert "value-from" not in str(info.value)


def test_unreadable_secret_file_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_DATABASE_URL_FILE", "/nonexistent/db-url")
    with pytest.raises(ConfigError, match=r"WORKBENCH_DATABASE_URL_FILE .*/nonexistent/db-url"):
        load_settings()


def test_invalid_value_is_a_config_error_without_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKBENCH_POOL_SIZE", "many-hunter2")
    with pytest.raises(ConfigError, match="WORKBENCH_POOL_SIZE") as info:
        load_settings()
    assert "hunter2" not in str(info.value)


def test_oversized_pool_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_POOL_SIZE", "500")
    with pytest.raises(ConfigError, match="WORKBENCH_POOL_SIZE"):
        load_settings()


def test_secrets_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", "super-private-key-value-0123456789")
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", "postgresql://app:db-pass-987@h/db")
    s = load_settings()
    for text in (repr(s), str(s), str(s.model_dump())):
        assert "super-private-key-value" not in text
        assert "db-pass-987" not in text


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite+pysqlite:///x.db"),
    ],
)
def test_database_urls_use_supported_drivers(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_mask_url_hides_password() -> None:
    masked = mask_url("postgresql+psycopg://app:hunter2-secret@db:5432/wb")
    assert "hunter2" not in masked
    assert masked == "postgresql+psycopg://app:***@db:5432/wb"
