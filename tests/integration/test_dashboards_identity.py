"""The viewer's identity from the server to the dashboard kernel, on both databases."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from tornado.web import create_signed_value

from tests import services
from tests.e2e.world import build_world, drop_roles
from workbench.accounts.users import create_user
from workbench.app import Workbench
from workbench.core.config import Settings, load_settings
from workbench.dashboards import viewer
from workbench.dashboards.errors import InvalidViewerError
from workbench.dashboards.tokens import (
    VIEWER_ENV,
    VIEWER_TOKEN_SECONDS,
    Claim,
    derive_key,
    sign_viewer,
    verify_viewer,
)
from workbench.db.models import User


@pytest.fixture
def keyed(isolated_env: Path) -> Settings:
    return load_settings(secret_key=secrets.token_urlsafe(48))


def test_a_signed_viewer_round_trips(keyed: Settings) -> None:
    claim = Claim(str(uuid.uuid4()), "vera")
    assert verify_viewer(keyed, sign_viewer(keyed, claim)) == claim


def test_forged_tampered_or_stale_tokens_are_refused(keyed: Settings) -> None:
    claim = Claim(str(uuid.uuid4()), "vera")
    token = sign_viewer(keyed, claim)
    other = load_settings(secret_key=secrets.token_urlsafe(48))
    stale = create_signed_value(
        derive_key(keyed, "viewer"),
        "viewer",
        claim.dump(),
        clock=lambda: 1_000_000.0 - VIEWER_TOKEN_SECONDS - 5,
    ).decode()
    session_key_token = create_signed_value(
        derive_key(keyed, "dashboard-session"), "viewer", claim.dump()
    ).decode()
    for bad in (None, "", token[:-2] + "00", sign_viewer(other, claim), stale, session_key_token):
        with pytest.raises(InvalidViewerError):
            verify_viewer(keyed, bad)


def test_without_a_served_page_there_is_no_viewer(
    keyed: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VIEWER_ENV, raising=False)
    with pytest.raises(InvalidViewerError, match="workbench dashboards serve"):
        viewer.connect(keyed)


def test_sqlite_viewer_is_the_single_user(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(secret_key=secrets.token_urlsafe(48), database_url=sqlite_url)
    bench = Workbench(settings, sqlite_url)
    with bench.session() as session, session.begin():
        user = create_user(session, "vera", password=secrets.token_urlsafe(16)).user
    bench.close()
    monkeypatch.setenv(VIEWER_ENV, sign_viewer(settings, Claim(str(user.id), "vera")))
    me = viewer.connect(settings)
    try:
        assert (me.username, me.teams) == ("vera", ())
        assert int(me.sql("SELECT count(*) AS n FROM users", cache=5)["n"][0]) == 1
    finally:
        me.close()


@pytest.mark.postgres
def test_postgres_viewer_sees_only_their_team_rows(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build_world(pg_url, tmp_path / "home")
    try:
        settings = load_settings(secret_key=world.env["WORKBENCH_SECRET_KEY"], database_url=pg_url)
        bench = Workbench(settings, pg_url)
        with bench.session() as session:
            users = {
                team: session.scalar(select(User).where(User.username == world.viewers[team][0]))
                for team in ("a", "b")
            }
        bench.close()
        for team, user in users.items():
            assert user is not None
            monkeypatch.setenv(
                VIEWER_ENV, sign_viewer(settings, Claim(str(user.id), user.username))
            )
            me = viewer.connect(settings)
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
