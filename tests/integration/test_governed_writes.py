"""wb.write in team mode on the real PostgreSQL: every table it creates is a protected team table.

Built on the RLS world (teams A and B, analysts alice (A) and bob (B), viewer vera (A), an
admin): each user writes and reads through a Workbench that logs in as their own role, the
way their notebooks do. After every write the schema check must find nothing unprotected.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from sqlalchemy import select, text

from tests import services
from tests.cli import run_cli
from tests.integration.test_rls_policies import World, _drop_roles, _team_name, world  # noqa: F401
from workbench.accounts import api as accounts
from workbench.api import init
from workbench.app import Workbench
from workbench.core.config import Settings, load_settings
from workbench.data.errors import DataError, TeamChoiceError
from workbench.db import migrate, rls
from workbench.db.identity_connect import user_database_url
from workbench.db.models import User


def frame(n: int, start: int = 0) -> pd.DataFrame:
    ids = np.arange(start, start + n, dtype="int64")
    return pd.DataFrame(
        {
            "id": ids,
            "x": ids * 0.5,
            "label": pd.array([f"r{i}" for i in ids], dtype="string"),
            "kind": pd.Categorical(["a" if i % 2 else "b" for i in ids], categories=["a", "b"]),
        }
    )


@pytest.fixture
def benches(world: World) -> Iterator[dict[str, Workbench]]:  # noqa: F811
    """A workbench per user of the world, logged in as that user's own role."""
    made = {
        name: Workbench(
            world.settings,
            user_database_url(world.settings, user, world.url).render_as_string(
                hide_password=False
            ),
        )
        for name, user in world.users.items()
    }
    yield made
    for bench in made.values():
        bench.close()


def _unprotected(place: World) -> list[tuple[str, str]]:
    with place.bench.engine.connect() as conn:
        return rls.unprotected_relations(conn)


def _rows(bench: Workbench, table: str) -> int:
    return len(bench.read_table(table))


def _policies(place: World, table: str) -> list[tuple[str, ...]]:
    with place.bench.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT policyname, cmd, array_to_string(roles, ','), qual, "
                "coalesce(with_check, '') FROM pg_policies WHERE tablename = :t ORDER BY 1"
            ),
            {"t": table},
        )
        return [tuple(str(v) for v in row) for row in rows]


def _table_state(place: World, table: str) -> tuple[object, ...]:
    """Owner role, RLS flags, dataset id, team and sharing of ``table`` (as the service)."""
    with place.bench.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity, "
                "d.id, d.team_id, d.shared, d.owner_id FROM pg_class c "
                "JOIN datasets d ON d.name = c.relname WHERE c.oid = to_regclass(:t)"
            ),
            {"t": table},
        ).one()
        return tuple(row)


def test_an_analyst_writes_a_team_table_in_every_mode(
    world: World,  # noqa: F811
    benches: dict[str, Workbench],
) -> None:
    alice, bob, vera = benches["alice"], benches["bob"], benches["vera"]
    assert alice.write(frame(4), "kpis", key="id") == 4
    # The exact frame comes back, without the team column the table gained.
    pd.testing.assert_frame_equal(alice.read_table("kpis"), frame(4))
    assert [c.name for c in alice.describe("kpis").columns] == ["id", "x", "label", "kind"]
    assert _unprotected(world) == []
    owner, enabled, forced, _, team, shared, owner_id = _table_state(world, "kpis")
    assert owner != world.users["alice"].db_role
    assert (enabled, forced, team, shared) == (True, True, world.team_a, False)
    assert owner_id == world.users["alice"].id
    # The team's viewer reads it; team B sees nothing and cannot write.
    pd.testing.assert_frame_equal(vera.read_table("kpis"), frame(4))
    assert _rows(bob, "kpis") == 0
    with pytest.raises(DataError, match=r"row-level security|permission denied"):
        bob.write(frame(1, start=10), "kpis", mode="append")
    with pytest.raises(DataError):
        vera.write(frame(1, start=10), "kpis", mode="append")

    alice.write(frame(2, start=4), "kpis", mode="append")
    pd.testing.assert_frame_equal(alice.read_table("kpis"), frame(6))
    assert _unprotected(world) == []

    changed = frame(3, start=4).assign(x=[9.0, 9.5, 10.0])
    alice.write(changed, "kpis", mode="upsert", key="id")
    expected = pd.concat([frame(4), changed], ignore_index=True)
    back = alice.read_table("kpis").sort_values("id", ignore_index=True)
    pd.testing.assert_frame_equal(back, expected)
    assert _unprotected(world) == []

    before = _table_state(world, "kpis")
    policies = _policies(world, "kpis")
    alice.write(frame(2, start=100), "kpis", mode="replace")
    pd.testing.assert_frame_equal(alice.read_table("kpis"), frame(2, start=100))
    assert _table_state(world, "kpis") == before
    assert _policies(world, "kpis") == policies
    assert _unprotected(world) == []
    assert _rows(bob, "kpis") == 0
    assert _rows(vera, "kpis") == 2
    # The writes were recorded in the catalog, as alice.
    with world.bench.engine.connect() as conn:
        mode, rows = conn.execute(
            text("SELECT last_write_mode, last_write_rows FROM datasets WHERE name = 'kpis'")
        ).one()
    assert (mode, rows) == ("replace", 2)


def test_an_analysts_replace_keeps_other_teams_rows_and_needs_the_columns(
    world: World,  # noqa: F811
    benches: dict[str, Workbench],
) -> None:
    alice = benches["alice"]
    alice.write(frame(3), "scores")
    with world.bench.engine.begin() as conn:  # the service adds a row of team B
        conn.execute(
            text("INSERT INTO scores (id, x, label, kind, team_id) VALUES (99, 1, 'b', 'a', :b)"),
            {"b": world.team_b},
        )
    alice.write(frame(1, start=7), "scores", mode="replace")
    pd.testing.assert_frame_equal(alice.read_table("scores"), frame(1, start=7))
    assert world.owner_count("scores", world.team_b) == 1
    with pytest.raises(DataError, match="ask an admin"):
        alice.write(frame(2).drop(columns=["kind"]), "scores", mode="replace")
    with pytest.raises(DataError, match="ask an admin"):
        alice.write(frame(2).assign(id=["a", "b"]), "scores", mode="replace")
    pd.testing.assert_frame_equal(alice.read_table("scores"), frame(1, start=7))
    with pytest.raises(DataError, match="ask an admin"):
        wider = frame(1, start=8).assign(extra=1.5)
        alice.write(wider, "scores", mode="append", add_columns=True)


def test_sharing_by_an_analyst_is_read_only_and_checked_by_the_database(
    world: World,  # noqa: F811
    benches: dict[str, Workbench],
) -> None:
    alice, bob, vera = benches["alice"], benches["bob"], benches["vera"]
    alice.write(frame(3), "airports")
    bob.write(frame(2), "bob_only")
    team_b = _team_name(world, "b")
    with pytest.raises(rls.ShareError, match="not a member"):
        accounts.share("airports", team_b, workbench=bob)
    with pytest.raises(rls.ShareError, match="permission denied"):
        accounts.share("airports", team_b, workbench=vera)
    with pytest.raises(rls.ShareError, match="not a member"):
        accounts.share("bob_only", _team_name(world, "a"), workbench=alice)
    assert _rows(bob, "airports") == 0
    assert _rows(alice, "bob_only") == 0

    accounts.share("airports", team_b, workbench=alice)
    pd.testing.assert_frame_equal(bob.read_table("airports"), frame(3))
    with pytest.raises(DataError):
        bob.write(frame(1, start=5), "airports", mode="append")
    with pytest.raises(DataError):
        bob.write(frame(3), "airports", mode="replace")
    with psycopg.connect(world.psycopg_url("bob"), autocommit=True) as conn:
        assert conn.execute("UPDATE airports SET x = 0").rowcount == 0
        assert conn.execute("DELETE FROM airports").rowcount == 0
    assert _rows(alice, "airports") == 3
    assert _unprotected(world) == []


def test_shared_true_lets_every_user_read(
    world: World,  # noqa: F811
    benches: dict[str, Workbench],
) -> None:
    benches["alice"].write(frame(2), "reference", shared=True)
    for name in ("bob", "vera", "root"):
        pd.testing.assert_frame_equal(benches[name].read_table("reference"), frame(2))
    with pytest.raises(DataError):
        benches["bob"].write(frame(1), "reference", mode="append")
    assert _unprotected(world) == []


def test_the_team_must_be_named_when_it_is_ambiguous(
    world: World,  # noqa: F811
    benches: dict[str, Workbench],
) -> None:
    team_a, team_b = _team_name(world, "a"), _team_name(world, "b")
    accounts.add_member(team_b, world.users["alice"].username, workbench=world.bench)
    alice = benches["alice"]
    with pytest.raises(TeamChoiceError, match="team="):
        alice.write(frame(1), "two_teams")
    with pytest.raises(TeamChoiceError, match="not a member"):
        benches["bob"].write(frame(1), "bob_t", team=team_a)
    with pytest.raises(DataError, match="only analysts and admins write"):
        benches["vera"].write(frame(1), "vera_t", team=team_a)
    alice.write(frame(1), "two_teams", team=team_b)
    assert _table_state(world, "two_teams")[4] == world.team_b
    assert _rows(benches["bob"], "two_teams") == 1
    assert _rows(benches["vera"], "two_teams") == 0
    # The admin has no team: names one, and may name any.
    with pytest.raises(TeamChoiceError, match="team="):
        benches["root"].write(frame(1), "admin_t")
    benches["root"].write(frame(1), "admin_t", team=team_a)
    assert _rows(benches["vera"], "admin_t") == 1
    assert _unprotected(world) == []


def test_the_service_writes_for_a_team_and_replace_keeps_the_protection(
    world: World,  # noqa: F811
    benches: dict[str, Workbench],
) -> None:
    service = world.bench
    with pytest.raises(TeamChoiceError, match="several teams"):
        service.write(frame(2), "flights_b")
    with pytest.raises(TeamChoiceError, match="no team 'nope'"):
        service.write(frame(2), "flights_b", team="nope")
    service.write(frame(2), "flights_b", team=_team_name(world, "b"), key="id")
    assert _rows(benches["bob"], "flights_b") == 2
    assert _rows(benches["alice"], "flights_b") == 0
    assert _unprotected(world) == []
    accounts.share("flights_b", _team_name(world, "a"), workbench=service)
    assert _rows(benches["vera"], "flights_b") == 2
    before, policies = _table_state(world, "flights_b"), _policies(world, "flights_b")

    service.write(frame(5, start=10), "flights_b", mode="replace", key="id")
    assert _table_state(world, "flights_b") == before
    assert _policies(world, "flights_b") == policies
    assert _unprotected(world) == []
    pd.testing.assert_frame_equal(benches["bob"].read_table("flights_b"), frame(5, start=10))
    assert _rows(benches["vera"], "flights_b") == 5  # still shared with team A
    service.write(frame(2, start=10).assign(x=[7.0, 8.0]), "flights_b", mode="upsert", key="id")
    service.write(frame(1, start=20), "flights_b", mode="append")
    assert _rows(benches["bob"], "flights_b") == 6
    assert _unprotected(world) == []
    # Reference data of no team: admins and, once shared, everyone read it.
    service.write(frame(2), "airlines", shared=True)
    for name in ("alice", "bob", "vera", "root"):
        assert _rows(benches[name], "airlines") == 2
    with pytest.raises(DataError):
        benches["alice"].write(frame(1, start=9), "airlines", mode="append")
    assert _unprotected(world) == []


def test_a_team_column_comes_back_only_when_asked_for(
    world: World,  # noqa: F811
    benches: dict[str, Workbench],
) -> None:
    alice = benches["alice"]
    alice.write(frame(2), "mine")
    back = alice.read_table("mine", columns=["id", "team_id"])
    assert list(back.columns) == ["id", "team_id"]
    assert back["team_id"].notna().all()
    with pytest.raises(DataError, match="'team_id' is set by Workbench"):
        alice.write(frame(1).assign(team_id="x"), "other")


HOSTILE = [
    "ALTER TABLE hostile DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE hostile NO FORCE ROW LEVEL SECURITY",
    "DROP POLICY wb_team ON hostile",
    "CREATE POLICY open ON hostile USING (true)",
    "ALTER TABLE hostile OWNER TO {alice}",
    "ALTER TABLE hostile ALTER COLUMN team_id DROP NOT NULL",
    "GRANT SELECT ON hostile TO PUBLIC",
    "DROP TABLE hostile",
    "SELECT wb_private.apply_team_policies('hostile'::regclass)",
    "SELECT wb_private.protect_service_table('hostile'::regclass, NULL, true)",
    "SELECT wb_private.grant_team_table('hostile'::regclass)",
    "UPDATE datasets SET shared = true WHERE name = 'bobs'",
    "UPDATE datasets SET team_id = '{b}' WHERE name = 'hostile'",
    "INSERT INTO dataset_shares (dataset_id, team_id, created_at) "
    "SELECT id, '{b}', now() FROM datasets WHERE name = 'bobs'",
    "SELECT wb_private.share_table('bobs', NULL)",
    "SELECT wb_private.add_unique_key('bobs', 'ux_evil', ARRAY['id'])",
    "SELECT wb_private.create_team_table('evil', ARRAY['x'], ARRAY['int'], '{b}')",
]


def test_hostile_code_cannot_unprotect_a_table_it_wrote(
    world: World,  # noqa: F811
    benches: dict[str, Workbench],
) -> None:
    benches["alice"].write(frame(2), "hostile")
    benches["bob"].write(frame(3), "bobs")
    values = {"alice": str(world.users["alice"].db_role), "b": str(world.team_b)}
    with psycopg.connect(world.psycopg_url("alice"), autocommit=True) as conn:
        for statement in HOSTILE:
            sql_text = statement.format(**values)
            try:
                conn.execute(sql_text)
            except psycopg.Error:
                pass
            else:
                # GRANT by a non-owner only warns: it must not have granted anything.
                assert sql_text.startswith("GRANT"), f"{sql_text!r} was allowed"
            assert conn.execute("SELECT count(*) FROM bobs").fetchone() == (0,), sql_text
    assert _unprotected(world) == []
    assert _rows(benches["bob"], "hostile") == 0
    assert _rows(benches["alice"], "bobs") == 0
    assert _table_state(world, "hostile")[1:3] == (True, True)
    with world.bench.engine.connect() as conn:
        public = conn.execute(
            text("SELECT has_table_privilege('public', 'hostile', 'SELECT')")
        ).scalar_one()
    assert public is False


def test_the_cli_ingest_creates_a_shared_team_table(
    world: World,  # noqa: F811
    benches: dict[str, Workbench],
    tmp_path: Path,
) -> None:
    (tmp_path / "airports.csv").write_text("code,name\nJFK,Kennedy\nLGA,LaGuardia\n")
    env = {"WORKBENCH_DATABASE_URL": world.url}
    path = f"path={tmp_path / 'airports.csv'}"
    ok = run_cli(
        "ingest", "files", "-t", "airports", "-o", path, "--team", _team_name(world, "a"),
        "--shared", env=env,
    )  # fmt: skip
    assert ok.code == 0, ok.output
    assert _table_state(world, "airports")[4:6] == (world.team_a, True)
    assert _rows(benches["bob"], "airports") == 2
    with pytest.raises(DataError):
        benches["bob"].write(benches["bob"].read_table("airports"), "airports", mode="append")
    ambiguous = run_cli("ingest", "files", "-t", "other", "-o", path, env=env)
    assert ambiguous.code != 0
    assert "--team" in ambiguous.stderr
    assert "Traceback" not in ambiguous.output
    assert _unprotected(world) == []


def test_team_and_shared_need_team_mode(sqlite_url: str, settings: Settings) -> None:
    with Workbench(settings, sqlite_url) as bench:
        with pytest.raises(rls.MultiUserError, match="single-user"):
            bench.write(frame(1), "t", team="a")
        with pytest.raises(rls.MultiUserError, match="single-user"):
            bench.write(frame(1), "t", shared=True)
        bench.write(frame(2), "t")  # the embedded database writes as before
        pd.testing.assert_frame_equal(bench.read_table("t"), frame(2))
        assert [c.name for c in bench.describe("t").columns] == ["id", "x", "label", "kind"]


def test_init_gives_the_first_admin_a_database_login(pg_url: str, tmp_path: Path) -> None:
    settings = load_settings(
        database_url=pg_url, secret_key=secrets.token_urlsafe(48), home=tmp_path / "home"
    )
    result = init(settings)
    assert result.admin_created
    with Workbench(settings, pg_url) as bench, bench.session() as session:
        admin = session.scalar(select(User).where(User.username == result.admin_username))
        assert admin is not None and admin.db_role is not None
    try:
        url = user_database_url(settings, admin, pg_url).set(drivername="postgresql")
        with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
            assert conn.execute("SELECT session_user").fetchone() == (admin.db_role,)
            assert conn.execute("SELECT wb_private.is_admin()").fetchone() == (True,)
    finally:
        _drop_roles(pg_url.rsplit("/", 1)[1], [admin.db_role])


@pytest.mark.usefixtures("postgres_available")
def test_a_non_superuser_service_writes_protected_tables(tmp_path: Path) -> None:
    """Forced RLS applies to a production owner: its writes must still work and protect."""
    with services.owner_database() as url:
        settings = load_settings(secret_key=secrets.token_urlsafe(48))
        with Workbench(settings, url) as bench:
            migrate.upgrade(bench.engine)
            bench.write(frame(2), "before_teams")  # no team yet: admins only
            accounts.add_team("red", workbench=bench)
            accounts.add_team("blue", workbench=bench)
            red = accounts.add_user("ann", teams_=("red",), workbench=bench).user
            bench.write(frame(3), "kpis", team="red", key="id")
            bench.write(frame(2, start=3), "kpis", mode="append")
            bench.write(frame(2, start=3).assign(x=[1.0, 2.0]), "kpis", mode="upsert", key="id")
            bench.write(frame(4), "kpis", mode="replace", key="id")
            pd.testing.assert_frame_equal(bench.read_table("kpis"), frame(4))
            with bench.engine.connect() as conn:
                assert rls.unprotected_relations(conn) == []
            user_url = user_database_url(settings, red, url).render_as_string(hide_password=False)
            with Workbench(settings, user_url) as ann:
                pd.testing.assert_frame_equal(ann.read_table("kpis"), frame(4))
                assert len(ann.read_table("before_teams")) == 0
                ann.write(frame(1, start=9), "kpis", mode="append")
                assert len(bench.read_table("kpis")) == 5
