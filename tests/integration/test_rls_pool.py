"""Pooled connections never carry one user's identity, state or rows to another."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.integration.test_rls_policies import World, world  # noqa: F401 (fixture)
from workbench.accounts import api as accounts
from workbench.core.config import load_settings
from workbench.db.errors import NoDatabaseIdentityError
from workbench.db.identity_connect import UserConnections


def _labels(conn: object) -> set[str]:
    return {str(r[0]) for r in conn.execute(text("SELECT label FROM metrics"))}  # type: ignore[attr-defined]


def test_failed_work_of_a_then_b_on_the_pool(world: World) -> None:  # noqa: F811
    settings = load_settings(
        secret_key=world.settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
        pool_size=1,
        max_overflow=0,
    )
    alice, bob = world.users["alice"], world.users["bob"]
    with UserConnections(settings, world.url) as conns:
        with conns.connect(alice) as conn:
            first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # Alice's cell changes session state, then fails in the middle of a transaction.
        with pytest.raises(DBAPIError), conns.connect(alice) as conn:
            conn.execute(text("SET app.user_id = 'someone-else'"))
            conn.execute(text("SET ROLE workbench_analyst"))
            conn.execute(text("CREATE TEMP TABLE scratch AS SELECT * FROM metrics"))
            conn.execute(text("SELECT set_config('search_path', 'pg_temp, public', false)"))
            conn.commit()  # session state now outlives the transaction
            conn.execute(text("INSERT INTO metrics (label) VALUES ('half-done')"))
            conn.execute(text("SELECT 1 / 0"))
        # The same pooled connection comes back clean: no role, setting or temp table left.
        with conns.connect(alice) as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == first_pid
            who = conn.execute(text("SELECT session_user, current_user")).one()
            assert tuple(who) == (alice.db_role, alice.db_role)
            assert conn.execute(text("SELECT current_setting('app.user_id', true)")).scalar() in (
                None,
                "",
            )
            assert conn.execute(text("SELECT to_regclass('pg_temp.scratch')")).scalar() is None
            assert _labels(conn) == {"a1", "a2"}
        # Bob, right after, has his own login and sees only his rows.
        with conns.connect(bob) as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != first_pid
            who = conn.execute(text("SELECT session_user, current_user")).one()
            assert tuple(who) == (bob.db_role, bob.db_role)
            assert _labels(conn) == {"b1", "b2", "b3"}
            assert conn.execute(text("SELECT current_setting('app.user_id', true)")).scalar() in (
                None,
                "",
            )
    assert world.owner_count("metrics", world.team_a) == 2  # the failed insert left nothing


def test_rotated_credentials_get_a_fresh_pool(world: World) -> None:  # noqa: F811
    alice = world.users["alice"]
    with UserConnections(world.settings, world.url) as conns:
        before = conns.engine(alice)
        accounts.rotate_credentials(alice.username, workbench=world.bench)
        with world.bench.session() as session:
            from workbench.accounts.users import get_user

            rotated = get_user(session, alice.username)
        assert rotated.db_role == alice.db_role
        assert rotated.db_password_encrypted != alice.db_password_encrypted
        after = conns.engine(rotated)
        assert after is not before
        with conns.connect(rotated) as conn:
            assert _labels(conn) == {"a1", "a2"}


def test_a_disabled_user_gets_no_connection(world: World) -> None:  # noqa: F811
    accounts.disable_user(world.users["vera"].username, workbench=world.bench)
    with world.bench.session() as session:
        from workbench.accounts.users import get_user

        vera = get_user(session, world.users["vera"].username)
    with (
        UserConnections(world.settings, world.url) as conns,
        pytest.raises(NoDatabaseIdentityError, match="disabled"),
    ):
        conns.engine(vera)
