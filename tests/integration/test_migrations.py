"""Migrations against real databases: drift, round trips and concurrent upgrades."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import inspect, text

from workbench.core.config import Settings
from workbench.core.errors import MigrationError
from workbench.db import migrate
from workbench.db.engine import create_workbench_engine
from workbench.db.models import Base


def test_upgrade_from_empty_gives_exactly_the_models(settings: Settings, empty_db_url: str) -> None:
    engine = create_workbench_engine(settings, empty_db_url)
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        assert migrate.migration_status(engine).at_head
        assert migrate.drift(engine) == []
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
    finally:
        engine.dispose()


def test_downgrade_to_base_then_upgrade_again(settings: Settings, empty_db_url: str) -> None:
    engine = create_workbench_engine(settings, empty_db_url)
    try:
        migrate.upgrade(engine)
        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        left = set(inspect(engine).get_table_names()) & set(Base.metadata.tables)
        assert left == set()
        migrate.upgrade(engine)
        assert migrate.drift(engine) == []
    finally:
        engine.dispose()


def test_drift_is_detected(settings: Settings, db_url: str) -> None:
    engine = create_workbench_engine(settings, db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE teams ADD COLUMN colour VARCHAR(20)"))
        differences = migrate.drift(engine)
        assert any("colour" in repr(d) for d in differences)
    finally:
        engine.dispose()


def test_user_tables_are_not_drift(settings: Settings, db_url: str) -> None:
    engine = create_workbench_engine(settings, db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE analyst_data (x INTEGER)"))
        assert migrate.drift(engine) == []
    finally:
        engine.dispose()


def test_unknown_revision_is_a_migration_error(settings: Settings, db_url: str) -> None:
    engine = create_workbench_engine(settings, db_url)
    try:
        with pytest.raises(MigrationError, match="nonexistent"):
            migrate.upgrade(engine, "nonexistent")
    finally:
        engine.dispose()


def test_history_lists_the_shipped_migrations() -> None:
    revisions = migrate.history()
    assert revisions[-1].down_revision is None
    assert revisions[0].revision == migrate.head_revision()
    assert all(r.message for r in revisions)


def test_concurrent_upgrades_on_postgresql_are_serialised(
    settings: Settings, pg_empty_url: str
) -> None:
    errors: list[BaseException] = []

    def upgrade() -> None:
        engine = create_workbench_engine(settings, pg_empty_url)
        try:
            migrate.upgrade(engine)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = create_workbench_engine(settings, pg_empty_url)
    try:
        assert migrate.migration_status(engine).at_head
        assert migrate.drift(engine) == []
    finally:
        engine.dispose()
