"""A production-like owner: not a superuser, so forced RLS applies to it too.

The service (scheduler, admin CLI) connects as the owner role; its explicit ``wb_service``
policy lets it see every row, while the analysts it creates see only their team's.
"""

from __future__ import annotations

import secrets

import psycopg
import pytest
from sqlalchemy import text

from tests import services
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db import migrate, rls
from workbench.db.identity_connect import user_database_url


@pytest.mark.usefixtures("postgres_available")
def test_a_non_superuser_owner_runs_the_service() -> None:
    with services.owner_database() as url:
        settings = load_settings(secret_key=secrets.token_urlsafe(48))
        with Workbench(settings, url) as bench:
            migrate.upgrade(bench.engine)
            accounts.add_team("red", workbench=bench)
            accounts.add_team("blue", workbench=bench)
            red = accounts.add_user("ann", teams_=("red",), workbench=bench).user
            accounts.add_user("ben", teams_=("blue",), workbench=bench)
            with bench.engine.begin() as conn:
                assert (
                    conn.execute(
                        text("SELECT usesuper FROM pg_user WHERE usename = current_user")
                    ).scalar_one()
                    is False
                )
                team_ids = dict(conn.execute(text("SELECT name, id FROM teams")).all())
                conn.execute(text("CREATE TABLE kpis (label text)"))
                rls.protect_table(conn, "kpis", team_id=team_ids["red"])
                conn.execute(text("INSERT INTO kpis (label) VALUES ('r1')"))
                conn.execute(
                    text("INSERT INTO kpis (label, team_id) VALUES ('b1', :t)"),
                    {"t": team_ids["blue"]},
                )
                assert rls.unprotected_relations(conn) == []
            # The owner, under FORCE RLS, sees every row through its service policy.
            with bench.engine.connect() as conn:
                labels = set(conn.execute(text("SELECT label FROM kpis")).scalars())
                assert labels == {"r1", "b1"}
                assert conn.execute(text("SELECT count(*) FROM users")).scalar_one() == 2
            analyst_url = user_database_url(settings, red, url)
            plain = analyst_url.set(drivername="postgresql")
            with psycopg.connect(plain.render_as_string(hide_password=False)) as conn:
                rows = conn.execute("SELECT label FROM kpis").fetchall()
                assert rows == [("r1",)]
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("SELECT * FROM users")
