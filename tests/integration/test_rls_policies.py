"""Row-level security on the real PostgreSQL: the access matrix, hostile code, the schema check.

Each test builds its own world in its own database: teams A and B, analysts alice (A) and
bob (B), viewer vera (A), an admin, a protected user table ``metrics`` and rows of both
teams in the system table ``sources``. Login roles are cluster-wide, so the fixture drops
every role it made, also when the test fails.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import select, text

from tests import services
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import Settings, load_settings
from workbench.db import rls
from workbench.db.identity_connect import UserConnections, user_database_url
from workbench.db.models import Team, User


@dataclass
class World:
    bench: Workbench
    settings: Settings
    url: str
    users: dict[str, User]
    team_a: uuid.UUID
    team_b: uuid.UUID

    def psycopg_url(self, name: str) -> str:
        url = user_database_url(self.settings, self.users[name], self.url)
        return url.set(drivername="postgresql").render_as_string(hide_password=False)

    def owner_count(self, table: str, team: uuid.UUID) -> int:
        with self.bench.engine.connect() as conn:
            query = text(f"SELECT count(*) FROM {table} WHERE team_id = :t")
            return int(conn.execute(query, {"t": team}).scalar_one())


def _drop_roles(dbname: str, role_names: list[str]) -> None:
    with services.admin_connect(dbname) as conn:
        for role in role_names:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
            if exists:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def world(pg_url: str, isolated_env: object) -> Iterator[World]:
    settings = load_settings(secret_key=secrets.token_urlsafe(48))
    bench = Workbench(settings, pg_url)
    prefix = f"t{uuid.uuid4().hex[:6]}"
    made: list[str] = []
    try:
        accounts.add_team(f"{prefix}-a", workbench=bench)
        accounts.add_team(f"{prefix}-b", workbench=bench)
        for name, role, team in [
            ("alice", "analyst", "a"),
            ("bob", "analyst", "b"),
            ("vera", "viewer", "a"),
            ("root", "admin", None),
        ]:
            teams = (f"{prefix}-{team}",) if team else ()
            account = accounts.add_user(
                f"{prefix}_{name}", role=role, teams_=teams, workbench=bench
            )
            assert account.user.db_role is not None
            made.append(account.user.db_role)
        with bench.session() as session:
            users = {
                u.username.split("_", 1)[1]: u
                for u in session.scalars(select(User).where(User.username.like(f"{prefix}_%")))
            }
            team_ids = {t.name[-1]: t.id for t in session.scalars(select(Team))}
        with bench.engine.begin() as conn:
            conn.execute(text("CREATE TABLE metrics (id serial PRIMARY KEY, label text)"))
            rls.protect_table(conn, "metrics", team_id=team_ids["a"], owner_id=users["alice"].id)
            for team, labels in (("a", ["a1", "a2"]), ("b", ["b1", "b2", "b3"])):
                for label in labels:
                    conn.execute(
                        text("INSERT INTO metrics (label, team_id) VALUES (:l, :t)"),
                        {"l": label, "t": team_ids[team]},
                    )
                    conn.execute(
                        text(
                            "INSERT INTO sources (id, name, plugin, options, team_id, created_at) "
                            "VALUES (gen_random_uuid(), :l, 'files', '{}', :t, now())"
                        ),
                        {"l": "src-" + label, "t": team_ids[team]},
                    )
        yield World(bench, settings, pg_url, users, team_ids["a"], team_ids["b"])
    finally:
        bench.close()
        _drop_roles(pg_url.rsplit("/", 1)[1], made)


TABLES = {"metrics": "label", "sources": "name"}


def _labels(conn: psycopg.Connection, table: str) -> set[str]:
    column = sql.Identifier(TABLES[table])
    query = sql.SQL("SELECT {} FROM {}").format(column, sql.Identifier(table))
    return {str(row[0]).removeprefix("src-") for row in conn.execute(query)}


def _insert(conn: psycopg.Connection, table: str, label: str, team: uuid.UUID) -> None:
    if table == "metrics":
        conn.execute("INSERT INTO metrics (label, team_id) VALUES (%s, %s)", [label, team])
    else:
        conn.execute(
            "INSERT INTO sources (id, name, plugin, options, team_id, created_at) "
            "VALUES (gen_random_uuid(), %s, 'files', '{}', %s, now())",
            [label, team],
        )


@pytest.mark.parametrize("table", sorted(TABLES))
def test_access_matrix_has_no_leaks(world: World, table: str) -> None:
    """Teams A and B and an admin x SELECT/INSERT/UPDATE/DELETE on each other's rows."""
    a, b = world.team_a, world.team_b
    col = sql.Identifier(TABLES[table])
    tbl = sql.Identifier(table)
    expected = {"vera": {"a1", "a2"}, "alice": {"a1", "a2"}, "bob": {"b1", "b2", "b3"}}
    for name, own in expected.items():
        with psycopg.connect(world.psycopg_url(name), autocommit=True) as conn:
            # SELECT: exactly the own team's rows, even when asking for the other's.
            assert _labels(conn, table) == own
            other = b if own & {"a1"} else a
            rows = conn.execute(sql.SQL("SELECT * FROM {} WHERE team_id = %s").format(tbl), [other])
            assert rows.fetchall() == []
            # UPDATE and DELETE of the other team's rows touch nothing.
            if name == "vera":
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(sql.SQL("UPDATE {} SET {} = 'x'").format(tbl, col))
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    _insert(conn, table, "v1", a)
                continue
            cur = conn.execute(
                sql.SQL("UPDATE {} SET {} = {} WHERE team_id = %s").format(tbl, col, col), [other]
            )
            assert cur.rowcount == 0
            cur = conn.execute(sql.SQL("DELETE FROM {} WHERE team_id = %s").format(tbl), [other])
            assert cur.rowcount == 0
            # INSERT for the own team works; for the other team it is refused.
            _insert(conn, table, f"{name}-new", a if other == b else b)
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                _insert(conn, table, f"{name}-forged", other)
            # Moving an own row to the other team is refused too.
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                conn.execute(sql.SQL("UPDATE {} SET team_id = %s").format(tbl), [other])
    # The owner's view: nothing of B was changed or lost; each team gained only its own row.
    assert world.owner_count(table, b) == 4
    assert world.owner_count(table, a) == 3
    with psycopg.connect(world.psycopg_url("root"), autocommit=True) as conn:
        everything = _labels(conn, table)
        assert {"a1", "a2", "b1", "b2", "b3", "alice-new", "bob-new"} <= everything
        cur = conn.execute(sql.SQL("UPDATE {} SET {} = {}").format(tbl, col, col))
        assert cur.rowcount == 7
        _insert(conn, table, "root-b", b)
        cur = conn.execute(sql.SQL("DELETE FROM {} WHERE {} = 'root-b'").format(tbl, col))
        assert cur.rowcount == 1


HOSTILE = [
    ("RESET ROLE", False),
    ("SET ROLE {bob}", True),
    ("SET SESSION AUTHORIZATION {bob}", True),
    ("SET ROLE workbench_admin", True),
    ("SET app.user_id = '{bob_id}'", False),
    ("SELECT set_config('app.user_id', '{bob_id}', false)", False),
    ("SELECT set_config('role', '{bob}', false)", True),
    ("CREATE TEMP VIEW peek AS SELECT * FROM metrics", False),
    ("CREATE TEMP VIEW peek2 WITH (security_invoker = false) AS SELECT * FROM sources", False),
    (
        "CREATE FUNCTION pg_temp.peek() RETURNS SETOF metrics LANGUAGE sql SECURITY DEFINER "
        "AS 'SELECT * FROM metrics'",
        False,
    ),
    ("CREATE VIEW public.peek AS SELECT * FROM metrics", True),
    ("CREATE FUNCTION public.peek() RETURNS int LANGUAGE sql AS 'SELECT 1'", True),
    ("ALTER TABLE metrics DISABLE ROW LEVEL SECURITY", True),
    ("ALTER TABLE metrics NO FORCE ROW LEVEL SECURITY", True),
    ("DROP POLICY wb_team ON metrics", True),
    ("CREATE POLICY open ON metrics USING (true)", True),
    ("ALTER TABLE metrics OWNER TO {alice}", True),
    ("SELECT wb_private.apply_team_policies('metrics'::regclass)", True),
    ("UPDATE users SET db_role = '{alice}' WHERE username = '{bob_name}'", True),
    (
        "INSERT INTO memberships (user_id, team_id, created_at) "
        "VALUES ('{alice_id}', '{b}', now())",
        True,
    ),
    ("SELECT * FROM memberships", True),
    ("GRANT {bob} TO {alice}", True),
]


def test_hostile_code_cannot_read_the_other_team(world: World) -> None:
    """Every trick a notebook cell could try, as alice (team A), then count B's rows."""
    alice, bob = world.users["alice"], world.users["bob"]
    values = {
        "alice": alice.db_role,
        "bob": bob.db_role,
        "bob_id": str(bob.id),
        "alice_id": str(alice.id),
        "bob_name": bob.username,
        "b": str(world.team_b),
    }
    probes = [
        "SELECT count(*) FROM metrics WHERE team_id = '{b}'",
        "SELECT count(*) FROM sources WHERE team_id = '{b}'",
        "SELECT count(*) FROM metrics WHERE label LIKE 'b%'",
    ]
    refused: list[str] = []
    with psycopg.connect(world.psycopg_url("alice"), autocommit=True) as conn:
        for statement, must_fail in HOSTILE:
            try:
                conn.execute(statement.format(**values))
            except psycopg.Error:
                refused.append(statement)
            else:
                assert not must_fail, f"{statement!r} was allowed"
            for probe in probes:
                seen = conn.execute(probe.format(**values)).fetchone()
                assert seen == (0,), f"after {statement!r}: {probe!r} saw {seen}"
            for view in ("peek", "peek2"):
                exists = conn.execute("SELECT to_regclass(%s)", [f"pg_temp.{view}"]).fetchone()
                if exists and exists[0]:
                    assert _labels_of(conn, view) <= {"a1", "a2", "src-a1", "src-a2"}
            if conn.execute("SELECT to_regprocedure('pg_temp.peek()')").fetchone() != (None,):
                leaked = conn.execute("SELECT count(*) FROM pg_temp.peek() WHERE label LIKE 'b%'")
                assert leaked.fetchone() == (0,)
        assert conn.execute("SELECT session_user").fetchone() == (alice.db_role,)
    assert len(refused) == sum(must for _, must in HOSTILE)
    assert world.owner_count("metrics", world.team_b) == 3


def _labels_of(conn: psycopg.Connection, view: str) -> set[str]:
    rows = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(view)))
    names = [d.name for d in rows.description or []]
    column = names.index("label") if "label" in names else names.index("name")
    return {str(row[column]) for row in rows}


def test_identity_follows_the_login_not_set_role(world: World) -> None:
    """Even a pooled owner connection switched with SET ROLE gets no one's rows."""
    with world.bench.engine.connect() as conn:
        conn.execute(text(f'SET ROLE "{world.users["bob"].db_role}"'))
        assert conn.execute(text("SELECT count(*) FROM metrics")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM sources")).scalar_one() == 0
        conn.rollback()


def test_disabled_user_sees_nothing_at_once(world: World) -> None:
    with psycopg.connect(world.psycopg_url("alice"), autocommit=True) as conn:
        assert _labels(conn, "metrics") == {"a1", "a2"}
        accounts.disable_user(world.users["alice"].username, workbench=world.bench)
        assert _labels(conn, "metrics") == set()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _insert(conn, "metrics", "late", world.team_a)
    with services.admin_connect() as admin:
        row = admin.execute(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [world.users["alice"].db_role]
        )
        assert row.fetchone() == (False,)


def test_share_makes_a_table_readable_but_not_writable(world: World) -> None:
    with psycopg.connect(world.psycopg_url("bob"), autocommit=True) as conn:
        assert _labels(conn, "metrics") == {"b1", "b2", "b3"}
        accounts.share("metrics", _team_name(world, "b"), workbench=world.bench)
        assert _labels(conn, "metrics") == {"a1", "a2", "b1", "b2", "b3"}
        cur = conn.execute("UPDATE metrics SET label = 'x' WHERE label LIKE 'a%'")
        assert cur.rowcount == 0
        cur = conn.execute("DELETE FROM metrics WHERE label LIKE 'a%'")
        assert cur.rowcount == 0
    assert world.owner_count("metrics", world.team_a) == 2


def _team_name(world: World, letter: str) -> str:
    with world.bench.session() as session:
        team_id = world.team_a if letter == "a" else world.team_b
        team = session.get(Team, team_id)
        assert team is not None
        return team.name


def test_roles_are_not_owners_nor_privileged(world: World) -> None:
    with services.admin_connect(world.url.rsplit("/", 1)[1]) as conn:
        for user in world.users.values():
            row = conn.execute(
                "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolcanlogin "
                "FROM pg_roles WHERE rolname = %s",
                [user.db_role],
            ).fetchone()
            assert row == (False, False, False, False, True)
            owned = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                "WHERE r.rolname = %s",
                [user.db_role],
            ).fetchone()
            assert owned == (0,)


def test_an_analyst_creates_a_team_table_she_does_not_own(world: World) -> None:
    with UserConnections(world.settings, world.url) as conns:
        with conns.connect(world.users["alice"]) as conn:
            rls.create_team_table(conn, "alice_kpis", [("label", "text"), ("value", "float8")])
            conn.execute(text("INSERT INTO alice_kpis (label, value) VALUES ('k1', 1.5)"))
            conn.commit()
            assert conn.execute(text("SELECT label FROM alice_kpis")).scalars().all() == ["k1"]
            with pytest.raises(rls.TeamTableError, match="not a member"):
                rls.create_team_table(conn, "forged", [("x", "int")], team_id=world.team_b)
            with pytest.raises(rls.TeamTableError, match="was not created"):
                rls.create_team_table(conn, "evil", [("x", "int); DROP TABLE metrics; --")])
            conn.commit()
        with conns.connect(world.users["bob"]) as conn:
            assert conn.execute(text("SELECT count(*) FROM alice_kpis")).scalar_one() == 0
        with conns.connect(world.users["vera"]) as conn:
            assert conn.execute(text("SELECT label FROM alice_kpis")).scalars().all() == ["k1"]
            with pytest.raises(rls.TeamTableError, match="permission denied"):
                rls.create_team_table(conn, "viewer_table", [("x", "int")])
    with world.bench.engine.connect() as conn:
        owner = conn.execute(
            text("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'alice_kpis'")
        ).scalar_one()
        assert owner == conn.execute(text("SELECT current_user")).scalar_one()
        assert rls.unprotected_relations(conn) == []
        assert conn.execute(text("SELECT to_regclass('metrics')")).scalar() is not None
        assert conn.execute(text("SELECT to_regclass('forged')")).scalar() is None
