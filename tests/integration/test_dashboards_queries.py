"""A dashboard's queries are the data API's (``wb.sql``), on the viewer's own login.

PostgreSQL with row-level security: team A owns the flights from JFK and EWR, team B those
from LGA (tests.e2e.world). The viewer's queries run on the data API's pooled ADBC
connections of the viewer's login and are cached in the data API's query cache, whose entries
are that login's alone (sealed with its key); the tables' last writes are read through the
viewer's login too (``wb_private.last_writes``), so a write to a table whose ``datasets`` row
that login cannot see still refreshes the viewer's cached rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import select, text

from tests import services
from tests.e2e.world import World, build_world, drop_roles
from workbench.app import Workbench
from workbench.core.config import Settings, load_settings
from workbench.dashboards import viewer
from workbench.dashboards.tokens import VIEWER_ENV, identity_of
from workbench.data.cache import cache_for
from workbench.db.models import Team, User

pytestmark = pytest.mark.postgres

#: The same text for every viewer; ``at`` tells a cached result from a fresh one.
ORIGINS = (
    "SELECT (SELECT string_agg(DISTINCT origin, ',' ORDER BY origin) FROM flights) AS origins,"
    " (SELECT count(*) FROM flights) AS n, clock_timestamp() AS at"
)


@pytest.fixture(scope="module")
def world(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with services.temporary_database(template=pg_template) as name:
        built = build_world(services.sqlalchemy_url(name), tmp_path_factory.mktemp("home"))
        yield built
    drop_roles(built)


@pytest.fixture(params=["memory", "redis"])
def settings(request: pytest.FixtureRequest, world: World) -> Settings:
    """The dashboard kernel's settings, with each kind of query cache."""
    redis = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return load_settings(
        secret_key=world.env["WORKBENCH_SECRET_KEY"], database_url=world.url, redis_url=redis
    )


def as_viewer(
    settings: Settings, world: World, who: str, monkeypatch: pytest.MonkeyPatch
) -> viewer.Viewer:
    """What a dashboard kernel's ``viewer.connect()`` returns for ``who``'s page request."""
    with Workbench(settings, world.url) as bench, bench.session() as session:
        user = session.scalar(select(User).where(User.username == world.viewers[who][0]))
        assert user is not None
        handed = identity_of(bench, user)  # what the server hands the page's kernel
    monkeypatch.setenv(VIEWER_ENV, handed.dump())
    return viewer.connect(settings)


def login_of(world: World, who: str) -> str:
    with Workbench(load_settings(), world.url) as bench, bench.session() as session:
        role = session.scalar(select(User.db_role).where(User.username == world.viewers[who][0]))
    assert role is not None
    return role


def backend(pid: int) -> tuple[str, str] | None:
    """``(login, application name)`` of a server process, ``None`` once it is gone."""
    with services.admin_connect() as conn:
        row = conn.execute(
            "SELECT usename, application_name FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def test_a_viewers_queries_run_on_the_data_apis_connection_of_their_login(
    settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = as_viewer(settings, world, "b", monkeypatch)
    try:
        seen = me.sql("SELECT pg_backend_pid() AS pid, session_user AS who").iloc[0]
        pid = int(seen["pid"])
        assert seen["who"] == login_of(world, "b")
        # The data API's pool hands the same idle connection of that login to wb.sql.
        again = me.workbench.sql("SELECT pg_backend_pid() AS pid")
        assert int(again["pid"].iloc[0]) == pid
        assert backend(pid) == (login_of(world, "b"), "workbench")
        # A cached query is an entry of the data API's cache of the viewer's workbench.
        query = "SELECT count(*) AS n FROM flights WHERE origin = :origin"
        assert int(me.sql(query, cache=60, origin="LGA")["n"].iloc[0]) == len(world.rows_of("b"))
        assert cache_for(me.workbench).get(query, {"origin": "LGA"}) is not None
    finally:
        me.close()
    deadline = time.monotonic() + 10
    while backend(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backend(pid) is None  # closing the viewer closes their pooled connections


def test_viewers_of_two_teams_never_get_each_others_cached_rows(
    settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = {
        who: (",".join(sorted(set(world.rows_of(who)["origin"]))), len(world.rows_of(who)))
        for who in ("a", "b")
    }
    first: dict[str, pd.Series] = {}
    for who in ("a", "b", "a", "b"):  # each page anew, as each page has a kernel of its own
        me = as_viewer(settings, world, who, monkeypatch)
        try:
            row = me.sql(ORIGINS, cache=300).iloc[0]
            namespace = cache_for(me.workbench).namespace
        finally:
            me.close()
        assert (row["origins"], int(row["n"])) == expected[who]
        if who not in first:
            first[who] = pd.Series({"at": row["at"], "namespace": namespace})
            continue
        assert namespace == first[who]["namespace"]  # the login's entries, page after page
        if settings.effective_redis_url():  # Redis is shared by every kernel
            assert row["at"] == first[who]["at"]  # served from the cache
    assert first["a"]["namespace"] != first["b"]["namespace"]
    assert first["a"]["at"] != first["b"]["at"]


def test_a_write_the_viewers_login_cannot_see_refreshes_their_cached_rows(
    settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Team A's table with some of team B's rows: B's viewer reads the rows but not the
    table's ``datasets`` row, yet a service write to it reaches B's cached query (the stamps
    are read through B's login, by ``wb_private.last_writes``)."""
    service = Workbench(settings, world.url)
    with service.session() as session:
        prefix = world.viewers["a"][0].split("_viewer_")[0]
        teams = {
            t.name[-1]: t.id
            for t in session.scalars(select(Team).where(Team.name.like(f"{prefix}-%")))
        }
    table = f"legs_{'redis' if settings.effective_redis_url() else 'memory'}"
    legs = pd.DataFrame({"id": [1, 2, 3], "minutes": [10, 20, 30]})

    def give_team_b_the_odd_legs() -> None:
        with service.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE {table} SET team_id = :b WHERE id % 2 = 1"),
                {"b": teams["b"]},
            )

    service.write(legs, table, team=f"{prefix}-a")
    give_team_b_the_odd_legs()
    query = f"SELECT count(*) AS n, sum(minutes) AS minutes FROM {table}"
    me = as_viewer(settings, world, "b", monkeypatch)
    try:
        hidden = me.sql("SELECT count(*) AS n FROM datasets WHERE name = :t", t=table)
        assert int(hidden["n"].iloc[0]) == 0  # the viewer's login cannot see the last write
        assert me.sql(query, cache=300).iloc[0].tolist() == [2, 40]
        service.write(pd.DataFrame({"id": [5], "minutes": [50]}), table, mode="append")
        give_team_b_the_odd_legs()
        assert me.sql(query, cache=300).iloc[0].tolist() == [3, 90]
    finally:
        me.close()
        service.close()


def test_numbers_come_back_as_floats_as_pages_chart_them(
    settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = as_viewer(settings, world, "a", monkeypatch)
    try:
        query = (
            "SELECT count(*) AS n, avg(dep_delay) AS delay, round(avg(arr_delay), 1) AS arrival,"
            " carrier FROM flights GROUP BY carrier ORDER BY carrier"
        )
        for cache in (None, 60, 60):  # live, stored, served from the cache
            frame = me.sql(query, cache=cache)
            assert frame.dtypes.astype(str).tolist() == ["int64", "float64", "float64", "str"]
        rows = world.rows_of("a")
        by_carrier = rows.assign(dep_delay=rows["dep_delay"].astype("float64"))
        delays = by_carrier.groupby("carrier")["dep_delay"].mean()
        assert frame["delay"].tolist() == pytest.approx(delays.sort_index().tolist())
    finally:
        me.close()
