"""The Python API for users, teams and sharing: ``wb.add_user(...)``, ``wb.share(...)``.

Each function runs in one transaction on a :class:`~workbench.app.Workbench` (default: the
configured one) connected as the owner role, the way the CLI and the services do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from workbench.accounts import teams
from workbench.accounts import users as identity
from workbench.app import resolve
from workbench.db import rls
from workbench.db.models import Role, User

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = [
    "UserInfo",
    "add_member",
    "add_team",
    "add_user",
    "disable_user",
    "list_teams",
    "list_users",
    "login",
    "remove_member",
    "rotate_credentials",
    "set_password",
    "share",
]


@dataclass(frozen=True)
class UserInfo:
    username: str
    role: Role
    is_active: bool
    teams: tuple[str, ...]
    has_database_login: bool
    last_login_at: datetime | None
    locked_until: datetime | None


def add_user(
    username: str,
    *,
    role: Role | str = Role.ANALYST,
    password: str | None = None,
    teams_: tuple[str, ...] = (),
    workbench: Workbench | None = None,
) -> identity.NewAccount:
    """Create an account (and, in team mode, its database login); returns a generated password.

    ``teams_`` adds the user to those teams (team mode only).
    """
    wb = resolve(workbench)
    with wb.session(writing=True) as session, session.begin():
        if teams_:
            rls.require_postgresql(session.connection(), "Teams")
        account = identity.create_user(
            session, username, role=Role(role), password=password, settings=wb.settings
        )
        for team in teams_:
            teams.add_member(session, team, username)
    return account


def list_users(*, workbench: Workbench | None = None) -> list[UserInfo]:
    wb = resolve(workbench)
    postgres = wb.engine.dialect.name == "postgresql"
    with wb.session() as session:
        return [
            UserInfo(
                username=u.username,
                role=u.role,
                is_active=u.is_active,
                teams=tuple(teams.teams_of(session, u)) if postgres else (),
                has_database_login=u.db_role is not None,
                last_login_at=u.last_login_at,
                locked_until=u.locked_until,
            )
            for u in session.scalars(select(User).order_by(User.username))
        ]


def disable_user(username: str, *, workbench: Workbench | None = None) -> None:
    """Disable sign-in and the database login; the user's dashboard sessions end at once."""
    wb = resolve(workbench)
    with wb.session(writing=True) as session, session.begin():
        identity.disable_user(session, username)


def set_password(
    username: str, password: str | None = None, *, workbench: Workbench | None = None
) -> str | None:
    """Set (or, with ``None``, generate and return once) a user's sign-in password; the user's
    dashboard sessions end."""
    wb = resolve(workbench)
    with wb.session(writing=True) as session, session.begin():
        return identity.set_password(session, username, password)


def rotate_credentials(username: str, *, workbench: Workbench | None = None) -> None:
    """Give the user's database login a new random password (creating the login if missing);
    the user's dashboard sessions end."""
    wb = resolve(workbench)
    with wb.session(writing=True) as session, session.begin():
        rls.require_postgresql(session.connection(), "Rotating database credentials")
        identity.provision_database_login(
            session, wb.settings, identity.get_user(session, username)
        )


def connection_url(username: str, *, workbench: Workbench | None = None) -> str:
    """The database URL that logs in as ``username``'s own login, password included (team
    mode; the service decrypts it). Hand it to that user only: their notebooks' one URL."""
    from workbench.db.identity_connect import user_database_url

    wb = resolve(workbench)
    with wb.session() as session:
        rls.require_postgresql(session.connection(), "Per-user connection URLs")
        user = identity.get_user(session, username)
        url = user_database_url(wb.settings, user, wb.database_url)
    return url.render_as_string(hide_password=False)


def login(username: str, password: str, *, workbench: Workbench | None = None) -> User:
    """The signed-in user, or :class:`~workbench.accounts.users.AuthenticationError`."""
    with resolve(workbench).session() as session:
        return identity.authenticate(session, username, password)


def add_team(
    name: str, description: str | None = None, *, workbench: Workbench | None = None
) -> None:
    wb = resolve(workbench)
    with wb.session(writing=True) as session, session.begin():
        teams.create_team(session, name, description)


def list_teams(*, workbench: Workbench | None = None) -> list[teams.TeamInfo]:
    with resolve(workbench).session() as session:
        return teams.list_teams(session)


def add_member(team: str, username: str, *, workbench: Workbench | None = None) -> None:
    wb = resolve(workbench)
    with wb.session(writing=True) as session, session.begin():
        teams.add_member(session, team, username)


def remove_member(team: str, username: str, *, workbench: Workbench | None = None) -> None:
    wb = resolve(workbench)
    with wb.session(writing=True) as session, session.begin():
        teams.remove_member(session, team, username)


def share(table: str, team: str | None = None, *, workbench: Workbench | None = None) -> None:
    """Let ``team`` (``None``: everyone) read the protected ``table``; read-only.

    The service shares any table; an analyst's own login shares the tables of their teams
    (the database checks the membership).
    """
    wb = resolve(workbench)
    with wb.session(writing=True) as session, session.begin():
        connection = session.connection()
        if not rls.is_service(connection):
            rls.share_as_member(connection, table, team)
            return
        team_id: uuid.UUID | None = None if team is None else teams.get_team(session, team).id
        rls.share(connection, table, team_id)
