"""The viewer's identity from the server to the dashboard kernel, on both databases."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from sqlalchemy import select

from tests import services
from tests.e2e.world import build_world, drop_roles
from workbench.accounts.users import create_user
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.dashboards import viewer
from workbench.dashboards.errors import InvalidViewerError
from workbench.dashboards.tokens import VIEWER_ENV, ViewerIdentity, identity_of
from workbench.db.models import Role, User


def test_an_identity_round_trips_and_never_shows_its_login() -> None:
    identity = ViewerIdentity(
        "vera",
        Role.VIEWER,
        ("team-a",),
        database_url="postgresql+psycopg://wbu_vera_1:s3cr3t-pw@db/workbench",
        redis_url="redis://:redis-pw@cache:6379/0",
        cache_key="a2V5",
    )
    assert ViewerIdentity.load(identity.dump()) == identity
    assert "s3cr3t-pw" not in repr(identity) and "redis-pw" not in repr(identity)
    assert "\n" not in identity.dump() and identity.dump().isascii()  # one header line


@pytest.mark.parametrize("bad", [None, "", "not base64 at all!", "e30=", "W10="])
def test_a_missing_or_malformed_identity_is_refused(bad: str | None) -> None:
    with pytest.raises(InvalidViewerError):
        ViewerIdentity.load(bad)


def test_without_a_served_page_there_is_no_viewer(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VIEWER_ENV, raising=False)
    with pytest.raises(InvalidViewerError, match="workbench dashboards serve"):
        viewer.connect()


def test_sqlite_viewer_is_the_single_user(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(secret_key=secrets.token_urlsafe(48), database_url=sqlite_url)
    bench = Workbench(settings, sqlite_url)
    with bench.session() as session, session.begin():
        user = create_user(session, "vera", password=secrets.token_urlsafe(16)).user
    handed = identity_of(bench, user)
    bench.close()
    monkeypatch.setenv(VIEWER_ENV, handed.dump())
    for name in ("WORKBENCH_SECRET_KEY", "WORKBENCH_DATABASE_URL", "WORKBENCH_HOME"):
        monkeypatch.delenv(name, raising=False)  # a dashboard kernel has none of them
    me = viewer.connect()
    try:
        assert (me.username, me.teams) == ("vera", ())
        assert int(me.sql("SELECT count(*) AS n FROM users", cache=5)["n"][0]) == 1
        assert me.workbench.settings.effective_secret_key()[0] is None
    finally:
        me.close()
    assert VIEWER_ENV not in __import__("os").environ  # read once, then gone from the kernel


@pytest.mark.postgres
def test_postgres_viewer_sees_only_their_team_rows(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build_world(pg_url, tmp_path / "home")
    try:
        settings = load_settings(secret_key=world.env["WORKBENCH_SECRET_KEY"], database_url=pg_url)
        bench = Workbench(settings, pg_url)
        handed = {}
        with bench.session() as session:
            for team in ("a", "b"):
                user = session.scalar(select(User).where(User.username == world.viewers[team][0]))
                assert user is not None
                handed[team] = identity_of(bench, user)
        bench.close()
        for team, identity in handed.items():
            assert pg_url.split("@")[0] not in identity.database_url  # not the service's login
            monkeypatch.setenv(VIEWER_ENV, identity.dump())
            me = viewer.connect()
            try:
                seen = me.sql("SELECT origin, count(*) AS n FROM flights GROUP BY origin")
                expected = world.rows_of(team)["origin"].value_counts()
                assert dict(zip(seen["origin"], seen["n"], strict=True)) == expected.to_dict()
                assert len(me.teams) == 1 and me.teams[0].endswith(f"-{team}")
            finally:
                me.close()
    finally:
        services.drop_database(pg_url.rsplit("/", 1)[1])
        drop_roles(world)
