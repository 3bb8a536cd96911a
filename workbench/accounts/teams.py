"""Teams and memberships: who belongs to which team, and so which rows they see.

Teams exist in team mode only (PostgreSQL): the row-level policies read memberships through
``wb_private.my_team_ids()``, so a change here applies to every open session at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.accounts.errors import TeamError
from workbench.accounts.users import get_user
from workbench.db.models import AuditEntry, Membership, Team, User
from workbench.db.rls import require_postgresql

__all__ = [
    "TeamInfo",
    "add_member",
    "create_team",
    "get_team",
    "list_teams",
    "remove_member",
    "teams_of",
]

_TEAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class TeamInfo:
    name: str
    description: str | None
    members: tuple[str, ...]


def _require_teams(session: Session) -> None:
    require_postgresql(session.connection(), "Teams")


def get_team(session: Session, name: str) -> Team:
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        raise TeamError(f"There is no team {name!r}; see `workbench teams list`.")
    return team


def create_team(session: Session, name: str, description: str | None = None) -> Team:
    _require_teams(session)
    if not _TEAM_NAME.match(name):
        raise TeamError(
            f"Team name {name!r} is not valid: use up to 64 letters, digits, '.', '-' and '_'."
        )
    if session.scalar(select(Team.id).where(Team.name == name)) is not None:
        raise TeamError(f"Team {name!r} already exists; choose another name.")
    team = Team(name=name, description=description)
    session.add(team)
    session.flush()
    session.add(AuditEntry(action="team.create", target=name))
    return team


def add_member(session: Session, team_name: str, username: str) -> None:
    """Add ``username`` to the team (no-op if already a member)."""
    _require_teams(session)
    team, user = get_team(session, team_name), get_user(session, username)
    if session.get(Membership, (user.id, team.id)) is None:
        session.add(Membership(user_id=user.id, team_id=team.id))
        session.add(AuditEntry(action="team.add_member", target=f"{team_name}:{username}"))
        session.flush()


def remove_member(session: Session, team_name: str, username: str) -> None:
    _require_teams(session)
    team, user = get_team(session, team_name), get_user(session, username)
    membership = session.get(Membership, (user.id, team.id))
    if membership is None:
        raise TeamError(f"User {username!r} is not a member of team {team_name!r}.")
    session.delete(membership)
    session.add(AuditEntry(action="team.remove_member", target=f"{team_name}:{username}"))
    session.flush()


def teams_of(session: Session, user: User) -> list[str]:
    rows = session.scalars(
        select(Team.name)
        .join(Membership, Membership.team_id == Team.id)
        .where(Membership.user_id == user.id)
        .order_by(Team.name)
    )
    return list(rows)


def list_teams(session: Session) -> list[TeamInfo]:
    _require_teams(session)
    members: dict[str, list[str]] = {}
    rows = session.execute(
        select(Team.name, User.username)
        .join(Membership, Membership.team_id == Team.id)
        .join(User, User.id == Membership.user_id)
        .order_by(User.username)
    )
    for team_name, username in rows:
        members.setdefault(team_name, []).append(username)
    return [
        TeamInfo(t.name, t.description, tuple(members.get(t.name, ())))
        for t in session.scalars(select(Team).order_by(Team.name))
    ]
