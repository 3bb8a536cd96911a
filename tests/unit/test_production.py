from __future__ import annotations

import secrets

import pytest

from workbench.core.config import load_settings
from workbench.core.errors import InsecureConfigurationError
from workbench.core.production import (
    KNOWN_PLACEHOLDERS,
    database_url_problem,
    ensure_production_safe,
    secret_key_problem,
)

GOOD_KEY = secrets.token_urlsafe(48)
GOOD_DB = "postgresql://workbench:Zq8-generated-Pw-4hT@db:5432/workbench"


@pytest.mark.parametrize(
    "key",
    [*sorted(KNOWN_PLACEHOLDERS), "ChangeMe", "  secret  ", "please-changeme-before-deploying-it"],
)
def test_placeholders_are_refused(key: str) -> None:
    problem = secret_key_problem(key)
    assert problem is not None
    assert "WORKBENCH_SECRET_KEY" in problem


def test_short_key_is_refused_and_the_length_is_named() -> None:
    problem = secret_key_problem("Ab3$" * 7)  # 28 bytes, varied characters
    assert problem is not None
    assert "too short (28 bytes" in problem


def test_repetitive_key_is_refused() -> None:
    assert "too few characters" in (secret_key_problem("ab" * 40) or "")


def test_missing_key_is_refused() -> None:
    assert "missing" in (secret_key_problem(None) or "")


def test_generated_key_is_accepted() -> None:
    assert secret_key_problem(GOOD_KEY) is None


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("sqlite+pysqlite:////var/lib/wb.db", "embedded SQLite"),
        ("postgresql://postgres:postgres@db/wb", "default credential"),
        ("postgresql://admin:admin@db/wb", "default credential"),
        ("postgresql://wb:password@db/wb", "default credential"),
        ("postgresql://wb@db/wb", "empty password"),
        ("postgresql://wb:@db/wb", "empty password"),
    ],
)
def test_weak_database_urls_are_refused(url: str, fragment: str) -> None:
    problem = database_url_problem(url)
    assert problem is not None
    assert fragment in problem


def test_strong_database_url_is_accepted() -> None:
    assert database_url_problem(GOOD_DB) is None


def test_production_lists_every_problem_without_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_ENV", "production")
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", "changeme")
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", "postgresql://postgres:postgres@db/wb")
    with pytest.raises(InsecureConfigurationError) as info:
        ensure_production_safe(load_settings())
    assert len(info.value.problems) == 2
    message = str(info.value)
    assert "changeme" not in message
    assert ":postgres@" not in message


def test_production_with_good_settings_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_ENV", "production")
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", GOOD_DB)
    ensure_production_safe(load_settings())


def test_development_accepts_the_embedded_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", "changeme")
    ensure_production_safe(load_settings())
