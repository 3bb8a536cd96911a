"""Recorded results of scheduled runs on the flights dashboard: each viewer sees only their
team's runs (row-level security on runs and run_results), and only at the default filters.

PostgreSQL only by nature: teams, per-viewer logins and row-level security live there.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.e2e.world import World, build_world, drop_roles, seed_kpi_run
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import Settings, load_settings
from workbench.dashboards import viewer
from workbench.dashboards.tokens import VIEWER_ENV, identity_of
from workbench.db.models import Team, User
from workbench.runs.params import ParameterSchema
from workbench.runs.results import latest_scheduled_results

pytestmark = pytest.mark.postgres

NAMES = ("flights", "on_time_rate", "worst_routes")
DEFAULTS = {"start": date(2013, 1, 1), "end": date(2013, 12, 31), "carrier": None}


@dataclass
class Scene:
    world: World
    settings: Settings
    url: str
    teams: dict[str, uuid.UUID]


@pytest.fixture
def scene(pg_url: str, tmp_path: Path) -> Iterator[Scene]:
    world = build_world(pg_url, tmp_path / "home")
    settings = load_settings(secret_key=world.env["WORKBENCH_SECRET_KEY"], database_url=pg_url)
    try:
        with Workbench(settings, pg_url) as bench, bench.session() as session:
            prefix = world.viewers["a"][0].split("_viewer_")[0]
            teams = {
                t.name[-1]: t.id
                for t in session.scalars(select(Team).where(Team.name.like(f"{prefix}-%")))
            }
        yield Scene(world, settings, pg_url, teams)
    finally:
        drop_roles(world)


def seed(scene: Scene, team: str, flights: int, *, minutes_ago: int, **params: object) -> None:
    """A succeeded run of team ``team``'s KPI job that recorded ``flights`` flights."""
    values = {"flights": flights, "on_time_rate": 0.5, "worst_routes": []}
    finished = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    with Workbench(scene.settings, scene.url) as bench:
        seed_kpi_run(
            bench,
            scene.teams[team],
            scene.world.rows_of(team),
            job_name=f"kpis_{team}",
            finished=finished,
            parameters=ParameterSchema.to_json(params),
            values=values,
        )


def as_viewer(scene: Scene, who: str, monkeypatch: pytest.MonkeyPatch) -> viewer.Viewer:
    name = scene.world.viewers[who][0]
    with Workbench(scene.settings, scene.url) as bench, bench.session() as session:
        user = session.scalar(select(User).where(User.username == name))
        assert user is not None
        handed = identity_of(bench, user)  # what the server hands the page's kernel
    monkeypatch.setenv(VIEWER_ENV, handed.dump())
    return viewer.connect(scene.settings)


def flights_seen(scene: Scene, who: str, monkeypatch: pytest.MonkeyPatch) -> int | None:
    me = as_viewer(scene, who, monkeypatch)
    try:
        run = me.recorded("flights_kpis.ipynb", NAMES, **DEFAULTS)
        return None if run is None else int(run.values["flights"])
    finally:
        me.close()


def test_each_viewer_sees_only_their_teams_recorded_results(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    # build_world recorded team a's real numbers; b's newer run must stay b's.
    seed(scene, "a", 111, minutes_ago=2)
    seed(scene, "b", 222, minutes_ago=1)
    assert flights_seen(scene, "a", monkeypatch) == 111
    assert flights_seen(scene, "analyst", monkeypatch) == 111  # an analyst of team a
    assert flights_seen(scene, "b", monkeypatch) == 222


def test_a_team_without_runs_gets_none_not_another_teams(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(scene, "a", 111, minutes_ago=1)
    assert flights_seen(scene, "b", monkeypatch) is None  # team b has no run: live queries
    # The service itself sees every run: the viewer's login is what keeps them apart.
    with Workbench(scene.settings, scene.url) as bench:
        found = latest_scheduled_results("flights_kpis.ipynb", NAMES, workbench=bench, **DEFAULTS)
    assert found is not None and found.values["flights"] == 111


def test_runs_with_other_parameters_are_not_used(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(scene, "b", 333, minutes_ago=3)
    seed(scene, "b", 999, minutes_ago=1, carrier="UA")  # newer, but one carrier only
    assert flights_seen(scene, "b", monkeypatch) == 333


def test_admins_and_multi_team_viewers_query_live(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their live rows span teams, which no single team's run computed."""
    prefix = scene.world.viewers["a"][0].split("_viewer_")[0]
    password = secrets.token_urlsafe(16)
    with Workbench(scene.settings, scene.url) as bench:
        for name, role, teams in (
            (f"{prefix}_admin", "admin", (f"{prefix}-a",)),
            (f"{prefix}_both", "viewer", (f"{prefix}-a", f"{prefix}-b")),
        ):
            account = accounts.add_user(
                name, role=role, password=password, teams_=teams, workbench=bench
            )
            scene.world.viewers[name] = (name, password)
            scene.world.roles.append(str(account.user.db_role))
    seed(scene, "a", 111, minutes_ago=1)
    assert flights_seen(scene, "a", monkeypatch) == 111
    assert flights_seen(scene, f"{prefix}_admin", monkeypatch) is None
    assert flights_seen(scene, f"{prefix}_both", monkeypatch) is None
