"""The schema check: every table forced under row-level security, every view security_invoker."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text

from workbench.core.config import Settings
from workbench.db import rls
from workbench.db.engine import create_workbench_engine
from workbench.db.models import Base, Team


@pytest.fixture
def engine(settings: Settings, pg_url: str) -> Engine:
    engine = create_workbench_engine(settings, pg_url)
    yield engine
    engine.dispose()


def test_every_workbench_table_is_forced_under_rls(engine: Engine) -> None:
    with engine.connect() as conn:
        assert rls.unprotected_relations(conn) == []
        forced = {
            name
            for name, enabled, force in conn.execute(
                text(
                    "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'"
                )
            )
            if enabled and force
        }
    assert set(Base.metadata.tables) <= forced


def test_a_protected_user_table_passes(engine: Engine) -> None:
    team = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            Team.__table__.insert().values(id=team, name="t-schema", created_at=text("now()"))
        )
        conn.execute(text("CREATE TABLE airports (code text)"))
        conn.execute(
            text("CREATE VIEW big_airports WITH (security_invoker) AS SELECT * FROM airports")
        )
        rls.protect_table(conn, "airports", team_id=team)
        assert rls.unprotected_relations(conn) == []


@pytest.mark.parametrize(
    ("ddl", "culprit", "problem"),
    [
        ("CREATE TABLE loose (x int)", "loose", "table"),
        (
            "CREATE TABLE half (x int); ALTER TABLE half ENABLE ROW LEVEL SECURITY",
            "half",
            "table",
        ),
        (
            "CREATE TABLE unforced (x int); ALTER TABLE unforced ENABLE ROW LEVEL SECURITY; "
            "ALTER TABLE unforced FORCE ROW LEVEL SECURITY; "
            "ALTER TABLE unforced NO FORCE ROW LEVEL SECURITY",
            "unforced",
            "table",
        ),
        ("CREATE VIEW definer_view AS SELECT * FROM jobs", "definer_view", "view"),
        (
            "CREATE VIEW off_view WITH (security_invoker = false) AS SELECT * FROM jobs",
            "off_view",
            "view",
        ),
        ("CREATE MATERIALIZED VIEW frozen AS SELECT * FROM jobs", "frozen", "materialized"),
        ("ALTER TABLE jobs NO FORCE ROW LEVEL SECURITY", "jobs", "table"),
        ("CREATE SCHEMA other; CREATE TABLE other.hidden (x int)", "other.hidden", "table"),
    ],
)
def test_the_check_finds_what_escapes(engine: Engine, ddl: str, culprit: str, problem: str) -> None:
    with engine.begin() as conn:
        for statement in ddl.split("; "):
            conn.execute(text(statement))
        found = rls.unprotected_relations(conn)
    names = [name.split(".", 1)[1] if "." not in culprit else name for name, _ in found]
    assert culprit in names
    assert all(p.startswith(problem) for name, p in found if name.endswith(culprit))
