"""Engine behaviour on the real databases: pragmas, pools, timeouts, transactions."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from workbench.core.config import Settings, load_settings
from workbench.core.errors import ConfigError
from workbench.db.engine import create_workbench_engine


def test_sqlite_pragmas(settings: Settings, sqlite_url: str) -> None:
    engine = create_workbench_engine(settings, sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    finally:
        engine.dispose()


def test_sqlite_rolls_back_ddl_and_rows(settings: Settings, sqlite_url: str) -> None:
    engine = create_workbench_engine(settings, sqlite_url)
    try:
        with pytest.raises(RuntimeError), engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            raise RuntimeError("fail mid-transaction")
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT count(*) FROM sqlite_master WHERE name = 't'")
            ).scalar()
        assert exists == 0
    finally:
        engine.dispose()


def test_pool_defaults_are_small(settings: Settings, db_url: str) -> None:
    engine = create_workbench_engine(settings, db_url)
    try:
        pool = engine.pool
        assert pool.size() == 5  # type: ignore[attr-defined]
        assert pool._max_overflow == 5  # type: ignore[attr-defined]
        assert pool._pre_ping is True
    finally:
        engine.dispose()


def test_pool_is_configurable(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    monkeypatch.setenv("WORKBENCH_POOL_SIZE", "2")
    monkeypatch.setenv("WORKBENCH_MAX_OVERFLOW", "1")
    engine = create_workbench_engine(load_settings(), db_url)
    try:
        assert engine.pool.size() == 2  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == 1  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_postgresql_statement_timeout(monkeypatch: pytest.MonkeyPatch, pg_url: str) -> None:
    monkeypatch.setenv("WORKBENCH_STATEMENT_TIMEOUT_MS", "200")
    engine = create_workbench_engine(load_settings(), pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "200ms"
            assert conn.execute(text("SHOW application_name")).scalar() == "workbench"
        with pytest.raises(OperationalError, match="statement timeout"), engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(2)"))
    finally:
        engine.dispose()


def test_postgresql_default_statement_timeout(settings: Settings, pg_url: str) -> None:
    engine = create_workbench_engine(settings, pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "1min"
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "not a url"])
def test_unsupported_urls_are_config_errors(settings: Settings, url: str) -> None:
    with pytest.raises(ConfigError):
        create_workbench_engine(settings, url)
