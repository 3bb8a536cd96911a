"""Every SECURITY DEFINER function fails closed, on the real PostgreSQL, from every role.

Built on the RLS world (teams A and B, analysts alice (A) and bob (B), viewer vera (A), an
admin) with carl, an analyst of no team, and dora, a disabled analyst of team A. Team B owns
a table, a job and a run; the service owns ``payroll``, a table of no team, shared with no
one. The functions are read from ``pg_proc``, so a function added later is called too: each
is called with NULL arguments and with team B's and the service's objects, from each role's
own login, and must raise or do nothing: no row or schema object changed, nothing returned
that the caller may not see. Then the findings of issue #13 one by one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import select, text

from tests import services
from tests.integration.test_rls_policies import World, _drop_roles, _team_name, world  # noqa: F401
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import Settings
from workbench.data.errors import DataError, TableNotFoundError, TeamChoiceError
from workbench.db import migrate, rls
from workbench.db.engine import create_workbench_engine
from workbench.db.identity_connect import user_database_url
from workbench.db.models import Dataset, User

pytestmark = pytest.mark.postgres

#: Every role whose own login calls the functions; the admin only with NULL arguments (an
#: admin acts on any team's objects by design).
CALLERS = ("root", "alice", "vera", "carl", "dora")
#: SQLSTATEs of a call the database could not even make: a syntax error, an unknown
#: function or type, a datatype mismatch.
MALFORMED = {"42601", "42883", "42704", "42804"}
#: A full product of candidate arguments up to this many calls, else one argument at a time.
PRODUCT_LIMIT = 200


def frame(n: int, start: int = 0) -> pd.DataFrame:
    ids = np.arange(start, start + n, dtype="int64")
    return pd.DataFrame({"id": ids, "x": ids * 0.5})


@dataclass
class Place:
    """The world, its extra users and the objects no caller but the admin may touch."""

    world: World
    benches: dict[str, Workbench]
    urls: dict[str, str]
    candidates: dict[str, list[Any]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)

    @property
    def dbname(self) -> str:
        return self.world.url.rsplit("/", 1)[1]


def _bench(scene: World, user: User) -> Workbench:
    url = user_database_url(scene.settings, user, scene.url)
    return Workbench(scene.settings, url.render_as_string(hide_password=False))


@pytest.fixture
def place(world: World) -> Iterator[Place]:  # noqa: F811
    prefix = world.users["alice"].username.split("_", 1)[0]
    made: list[str] = []
    benches: dict[str, Workbench] = {}
    try:
        for name, teams in (("carl", ()), ("dora", (_team_name(world, "a"),))):
            account = accounts.add_user(
                f"{prefix}_{name}", role="analyst", teams_=teams, workbench=world.bench
            )
            assert account.user.db_role is not None
            made.append(account.user.db_role)
            world.users[name] = account.user
        urls = {name: world.psycopg_url(name) for name in world.users}
        benches = {name: _bench(world, user) for name, user in world.users.items()}
        yield Place(world, benches, urls)
    finally:
        for bench in benches.values():
            bench.close()
        _drop_roles(world.url.rsplit("/", 1)[1], made)


def _team_b_and_the_services_objects(place: Place) -> None:
    """Team B's table, job and run (made by bob's own login); the service's ``payroll``."""
    scene = place.world
    place.benches["bob"].write(frame(3), "b_ledger")
    with psycopg.connect(place.urls["bob"], autocommit=True) as conn:
        job = conn.execute(
            "SELECT wb_private.save_job('b_job', 'b.ipynb', '0 * * * *', 'UTC', '{}', 0, 60, "
            "NULL, 1, 'latest', 100, now(), NULL)"
        ).fetchone()
        run = conn.execute(
            "SELECT wb_private.queue_run('b.ipynb', '{}', NULL, NULL, 1, 'api')"
        ).fetchone()
    assert job is not None and run is not None
    with scene.bench.engine.begin() as conn:
        conn.execute(text("CREATE TABLE payroll (id bigint, salary double precision)"))
        conn.execute(text("SELECT wb_private.protect_service_table('payroll'::regclass)"))
        conn.execute(text("INSERT INTO payroll (id, salary) VALUES (1, 9000.0)"))
    with scene.bench.session() as session:
        datasets = {d.name: d.id for d in session.scalars(select(Dataset))}
    team_b, bob = scene.team_b, scene.users["bob"]
    b_name = _team_name(scene, "b")
    uuids = [team_b, datasets["b_ledger"], job[0], run[0], bob.id, datasets["payroll"]]
    texts = [b_name, "b_ledger", "payroll", "b_job", bob.username]
    place.candidates = {
        "uuid": uuids,
        "text": texts,
        "text[]": [["b_ledger", "payroll"], ["id"]],
        "uuid[]": [[bob.id, team_b]],
        "jsonb": ['{"team": "x"}'],
        "integer": [1],
        "boolean": [True, False],
        "timestamp with time zone": [datetime.now(UTC)],
        "regclass": ["b_ledger", "payroll"],
    }
    place.forbidden = {str(v) for v in uuids} | set(texts)


def _definers(conn: psycopg.Connection) -> list[tuple[str, str, list[str]]]:
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text, p.proname::text, "
        "coalesce(p.proargtypes::regtype[]::text[], '{}') "
        "FROM pg_proc p WHERE p.pronamespace = 'wb_private'::regnamespace AND p.prosecdef "
        "ORDER BY 1"
    ).fetchall()
    return [(str(sig), str(name), list(types)) for sig, name, types in rows]


def _state(conn: psycopg.Connection) -> dict[str, str]:
    """A digest of every row of every table in the schema and of its relations, indexes,
    grants and policies (read as the superuser, past row-level security)."""
    tables = [
        str(r[0])
        for r in conn.execute(
            "SELECT c.relname FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace "
            "AND c.relkind IN ('r', 'p') ORDER BY 1"
        )
    ]
    digests = {
        name: sql.SQL(
            "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {} t"
        ).format(sql.Identifier(name))
        for name in tables
    }
    state = {name: str(_one(conn, query)) for name, query in digests.items()}
    state["(relations)"] = str(
        _one(
            conn,
            "SELECT md5(string_agg(concat_ws('|', c.relname, c.relkind, c.relacl, "
            "c.relrowsecurity, c.relforcerowsecurity), ',' ORDER BY c.relname)) FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace",
        )
    )
    state["(policies)"] = str(
        _one(
            conn,
            "SELECT md5(coalesce(string_agg(concat_ws('|', polrelid::regclass::text, polname, "
            "pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)), ',' "
            "ORDER BY polrelid::regclass::text, polname), '')) FROM pg_policy",
        )
    )
    return state


def _one(conn: psycopg.Connection, query: sql.Composable | str) -> object:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _argument_lists(place: Place, types: Sequence[str], nulls_only: bool) -> list[list[Any]]:
    """NULL everywhere; then team B's and the service's objects in every position."""
    calls: list[list[Any]] = [[None] * len(types)]
    if nulls_only or not types:
        return calls
    unknown = [t for t in types if t not in place.candidates]
    if unknown:
        pytest.fail(f"No candidate arguments of type {unknown[0]}: add some to this test.")
    pools = [[None, *place.candidates[t]] for t in types]
    if math.prod(len(p) for p in pools) <= PRODUCT_LIMIT:
        return calls + [list(args) for args in itertools.product(*pools)]
    for position, pool in enumerate(pools):
        for value in pool[1:]:
            args: list[Any] = [None] * len(types)
            args[position] = value
            calls.append(args)
    longest = max(len(p) for p in pools)
    calls += [[pool[1 + k % (len(pool) - 1)] for pool in pools] for k in range(longest)]
    return calls


def _flat(rows: Sequence[Sequence[Any]]) -> set[str]:
    values: set[str] = set()
    for row in rows:
        for value in row:
            for item in value if isinstance(value, list) else [value]:
                values.add(str(item))
    return values


def test_every_definer_fails_closed_from_every_role(place: Place) -> None:
    _team_b_and_the_services_objects(place)
    problems: list[str] = []
    with services.admin_connect(place.dbname) as service:
        service.autocommit = True
        definers = _definers(service)
        assert {"writable_dataset", "share_table", "readable_tables"} <= {d[1] for d in definers}
        refused = dict.fromkeys(CALLERS, 0)
        answered: set[tuple[str, str]] = set()
        # dora's session is open when her account is disabled: the database's state in the
        # moment before her login refuses new sessions and the open ones end.
        connections = {c: psycopg.connect(place.urls[c], autocommit=True) for c in CALLERS}
        service.execute(
            "UPDATE users SET is_active = false WHERE id = %s", [place.world.users["dora"].id]
        )
        state = _state(service)
        for caller, conn in connections.items():
            with conn:
                for signature, name, types in definers:
                    for args in _argument_lists(place, types, nulls_only=caller == "root"):
                        call = sql.SQL("SELECT * FROM wb_private.{}({})").format(
                            sql.Identifier(name),
                            sql.SQL(", ").join(
                                sql.SQL("{}::{}").format(sql.Placeholder(), sql.SQL(t))
                                for t in types
                            ),
                        )
                        try:
                            rows = conn.execute(call, args).fetchall()
                        except psycopg.Error as exc:
                            # Refused: the call's transaction changed nothing. Never by a
                            # mistake of this test's (a call the database cannot parse).
                            if exc.sqlstate in MALFORMED:
                                problems.append(f"this test's call {signature}{args}: {exc}")
                            refused[caller] += 1
                            continue
                        answered.add((caller, name))
                        shown = set() if caller == "root" else _flat(rows) & place.forbidden
                        if caller == "dora":  # a disabled account gets nothing at all
                            shown |= _flat(rows) - {"None", "False", ""}
                        if shown:
                            problems.append(f"{caller}: {signature}{args} returned {shown}")
                        after = _state(service)
                        changed = sorted(k for k in after if after[k] != state.get(k))
                        if changed:
                            problems.append(f"{caller}: {signature}{args} changed {changed}")
                            state = after
    assert problems == []
    # Not a test that cannot fail: the calls ran, and the ones a role may make answered.
    assert {("alice", "readable_tables"), ("dora", "my_team_ids"), ("root", "is_admin")} <= (
        answered
    )
    assert min(refused.values()) > 0 and sum(refused.values()) > 1000, refused


def test_definers_pin_their_search_path_and_the_rest_are_the_services(place: Place) -> None:
    with services.admin_connect(place.dbname) as conn:
        rows = conn.execute(
            "SELECT p.oid::regprocedure::text, p.prosecdef, "
            "coalesce(array_to_string(p.proconfig, ','), ''), "
            "has_function_privilege('workbench_viewer', p.oid, 'EXECUTE') "
            "OR has_function_privilege('workbench_analyst', p.oid, 'EXECUTE') "
            "FROM pg_proc p WHERE p.pronamespace = 'wb_private'::regnamespace"
        ).fetchall()
    assert rows
    for signature, definer, config, granted in rows:
        if definer:
            assert config == "search_path=pg_catalog, pg_temp", signature
        else:  # runs with its caller's rights: the service's alone
            assert not granted, signature


def test_a_table_of_no_team_is_shared_and_keyed_by_admins_and_the_service_only(
    place: Place,
) -> None:
    _team_b_and_the_services_objects(place)
    alice, vera, root = place.benches["alice"], place.benches["vera"], place.benches["root"]
    with pytest.raises(rls.ShareError, match="only admins and the service may share it"):
        accounts.share("payroll", workbench=alice)
    with pytest.raises(rls.ShareError, match="only admins and the service may share it"):
        accounts.share("payroll", _team_name(place.world, "a"), workbench=alice)
    assert len(vera.read_table("payroll")) == 0
    assert len(alice.read_table("payroll")) == 0
    # The key, from alice's own login as a hostile cell would ask for it, and through wb.write.
    with (
        psycopg.connect(place.urls["alice"], autocommit=True) as conn,
        pytest.raises(psycopg.Error, match="only admins and the service"),
    ):
        conn.execute("SELECT wb_private.add_unique_key('payroll', 'ux_pay', ARRAY['id'])")
    pay = pd.DataFrame({"id": np.array([1], dtype="int64"), "salary": [1.0]})
    with pytest.raises(DataError, match="only admins and the service may share it, add a key"):
        alice.write(pay, "payroll", mode="upsert", key="id")
    with services.admin_connect(place.dbname) as conn:
        assert conn.execute("SELECT to_regclass('ux_pay')").fetchone() == (None,)
    # An admin's own login and the service may.
    with psycopg.connect(place.urls["root"], autocommit=True) as conn:
        conn.execute("SELECT wb_private.add_unique_key('payroll', 'ux_pay', ARRAY['id'])")
    accounts.share("payroll", _team_name(place.world, "a"), workbench=root)
    assert vera.read_table("payroll")["id"].tolist() == [1]
    assert len(place.benches["bob"].read_table("payroll")) == 0
    accounts.share("payroll", workbench=place.world.bench)
    assert len(place.benches["bob"].read_table("payroll")) == 1


def test_a_catalog_row_of_another_team_is_not_taken_over(place: Place) -> None:
    """A table of team B dropped, its catalog row and shares left: alice's new table of that
    name would have been given team B's row, and so its shares."""
    scene, alice = place.world, place.benches["alice"]
    scene.bench.write(frame(2), "ledger", team=_team_name(scene, "b"))
    with scene.bench.engine.begin() as conn:
        conn.execute(text("DROP TABLE ledger"))
    with pytest.raises(DataError, match="recorded for a table of another team"):
        alice.write(frame(2), "ledger")
    with scene.bench.session() as session:
        row = session.scalar(select(Dataset).where(Dataset.name == "ledger"))
        assert row is not None and row.team_id == scene.team_b
    place.benches["root"].write(frame(2), "ledger", team=_team_name(scene, "a"))  # an admin may


def test_replace_with_another_team_is_refused_naming_both(place: Place) -> None:
    scene = place.world
    service, red, blue = scene.bench, _team_name(scene, "a"), _team_name(scene, "b")
    service.write(frame(2), "forecast", team=red)
    for mode in ("replace", "append", "upsert"):
        with pytest.raises(TeamChoiceError) as refused:
            service.write(frame(3, start=5), "forecast", mode=mode, team=blue, key="id")
        message = str(refused.value)
        assert f"team {red!r}" in message and f"team {blue!r}" in message
        assert "nothing was changed" in message
    assert place.benches["alice"].read_table("forecast")["id"].tolist() == [0, 1]
    assert len(place.benches["bob"].read_table("forecast")) == 0
    service.write(frame(3, start=5), "forecast", mode="replace", team=red)
    assert place.benches["alice"].read_table("forecast")["id"].tolist() == [5, 6, 7]
    # From a user's own login: alice of both teams names the other one.
    accounts.add_member(blue, scene.users["alice"].username, workbench=service)
    with pytest.raises(TeamChoiceError, match=f"belongs to team {red!r}, not to team {blue!r}"):
        place.benches["alice"].write(frame(1), "forecast", mode="replace", team=blue)
    # A table of no team keeps having none.
    service.write(frame(1), "airlines", shared=True)
    with pytest.raises(TeamChoiceError, match="belongs to no team"):
        service.write(frame(1), "airlines", mode="replace", team=red)
    with pytest.raises(TeamChoiceError, match="belongs to no team"):
        place.benches["root"].write(frame(1), "airlines", mode="append", team=red)


def test_the_catalog_lists_only_the_tables_the_login_may_read(place: Place) -> None:
    scene, b = place.world, place.benches
    _team_b_and_the_services_objects(place)
    b["alice"].write(frame(2), "a_kpis")
    b["alice"].write(frame(2), "a_shared")
    accounts.share("a_shared", _team_name(scene, "b"), workbench=b["alice"])
    scene.bench.write(frame(2), "airlines", shared=True)
    common = {"airlines", "a_shared", "metrics"}  # metrics: team A's, with rows of team B
    expected = {
        "vera": common | {"a_kpis"},
        "bob": common | {"b_ledger"},
        "carl": {"airlines"},
        "root": common | {"a_kpis", "b_ledger", "payroll"},
    }
    for name, tables in expected.items():
        listed = b[name].tables()
        assert set(listed["name"]) == tables, name
        assert list(listed.columns) == [
            "name",
            "last_write_at",
            "last_write_mode",
            "last_write_rows",
        ]
    assert {"a_kpis", "b_ledger", "payroll"} <= set(scene.bench.tables()["name"])
    # describe: a table the login may not read is one that does not exist.
    for name, hidden in (("vera", "b_ledger"), ("bob", "a_kpis"), ("bob", "payroll")):
        with pytest.raises(TableNotFoundError) as refused:
            b[name].describe(hidden)
        assert str(refused.value) == (
            f"Table {hidden!r} does not exist; check the name with wb.tables()."
        )
    assert [c.name for c in b["bob"].describe("a_shared").columns] == ["id", "x"]
    # The query cache's stamps: the readable tables only.
    with psycopg.connect(place.urls["bob"], autocommit=True) as conn:
        names = ["a_kpis", "payroll", "b_ledger", "a_shared", "airlines", "metrics"]
        rows = conn.execute("SELECT name FROM wb_private.last_writes(%s)", [names]).fetchall()
    assert sorted(r[0] for r in rows) == ["a_shared", "airlines", "b_ledger", "metrics"]


def test_a_failed_read_names_the_read(place: Place) -> None:
    place.benches["alice"].write(frame(2), "a_kpis")
    for name in ("alice", "vera"):
        with pytest.raises(DataError) as refused:
            place.benches[name].read_table("a_kpis", where="id = 'not a number'")
        message = str(refused.value)
        assert "refused the read" in message and "write" not in message
        with pytest.raises(DataError, match="column") as missing:
            place.benches[name].read_table("a_kpis", where="no_such_column = 1")
        assert not isinstance(missing.value, TableNotFoundError)
    with pytest.raises(TableNotFoundError):
        place.benches["vera"].read_table("no_such_table")


def test_downgrade_restores_the_earlier_bodies(settings: Settings, pg_url: str) -> None:
    engine = create_workbench_engine(settings, pg_url)
    body = text("SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure(:f)")
    try:
        migrate.downgrade(engine, "0007")
        with engine.connect() as conn:
            restored = conn.execute(body, {"f": "wb_private.writable_dataset(text)"}).scalar()
            gone = conn.execute(text("SELECT to_regprocedure('wb_private.team_name(uuid)')"))
            assert gone.scalar() is None
        assert restored is not None and "belongs to no team" not in restored
        assert "owning = ANY (wb_private.my_team_ids())" in restored
        migrate.upgrade(engine)
        with engine.connect() as conn:
            again = conn.execute(body, {"f": "wb_private.writable_dataset(text)"}).scalar()
        assert again is not None and "belongs to no team" in again
    finally:
        engine.dispose()
