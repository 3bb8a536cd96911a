"""Whose run or job it is, and acts on them through the database's checked functions.

In team mode (PostgreSQL) a user's own login has no INSERT or UPDATE on ``runs`` and
``jobs``: what it does to them is a call of a ``wb_private`` function (migration 0006) that
checks the caller, fills the owner and team from the session's own user and writes the audit
entry (:func:`call`). The service writes the rows itself and must say whose they are
(:func:`resolve_owner`), except for Workbench's own notebooks. A refusal by the database
becomes a :class:`~workbench.core.errors.WorkbenchError` saying what was refused and what to
do (:func:`refusal`): no driver traceback reaches the user.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from workbench.core.errors import WorkbenchError
from workbench.db import rls
from workbench.db.failures import driver_message
from workbench.db.models import Membership, Role, Team, User
from workbench.runs.errors import (
    AccountDisabledError,
    OwnerError,
    OwnerRequiredError,
    ParameterError,
    RunStateError,
    TeamChoiceError,
)

__all__ = [
    "PACKAGE_DIR",
    "Owner",
    "acts_as_user",
    "call",
    "is_service_notebook",
    "owner_names",
    "refusal",
    "refusals",
    "refuse_owner_from_a_login",
    "resolve_owner",
    "team_id_named",
]

#: The installed ``workbench`` package: notebooks in it are Workbench's own (backups, ...).
PACKAGE_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Owner:
    """The user a run or job belongs to, and its team (``None`` on SQLite)."""

    user_id: uuid.UUID
    username: str
    team_id: uuid.UUID | None
    team: str | None


def acts_as_user(connection: Connection) -> bool:
    """Whether ``connection`` is a user's own login (acts go through the functions)."""
    return connection.dialect.name == "postgresql" and not rls.is_service(connection)


def refuse_owner_from_a_login(
    owner: str | None, *, act: str, yours: str, error: type[WorkbenchError]
) -> None:
    """Refuse ``owner=`` on a user's own login: only the service acts for another user.

    ``act`` says what ``owner=`` would do ("queues a run"), ``yours`` whose the result is
    ("the runs you queue").
    """
    if owner is not None:
        raise error(
            f"owner= {act} for another user, which only the service does; {yours} are yours "
            "(leave owner= out)."
        )


def is_service_notebook(notebook: str | Path) -> bool:
    """Whether ``notebook`` lies inside the installed workbench package (a service notebook)."""
    try:
        return Path(notebook).resolve().is_relative_to(PACKAGE_DIR)
    except (OSError, ValueError):
        return False


def resolve_owner(
    session: Session, owner: str | None, team: str | None, *, notebook: str, what: str
) -> Owner | None:
    """The service side: who the new run or job ``what`` belongs to, checked.

    In team mode an owner is required (but for Workbench's own notebooks): an active analyst
    or admin; the team is ``team`` (one of the owner's, any for an admin owner) or the owner's
    only team. On SQLite, single-user, the owner is optional and there are no teams.
    """
    team_mode = session.get_bind().dialect.name == "postgresql"
    if owner is None:
        if team_mode and not is_service_notebook(notebook):
            raise OwnerRequiredError(
                f"{what} needs an owner in team mode: the service runs it as that user. Pass "
                "owner='USERNAME' (CLI: `workbench run --as USERNAME`, `workbench jobs add "
                "--owner USERNAME`), and team='NAME' when the owner has several teams."
            )
        if team is not None:
            raise OwnerRequiredError(f"{what}: team={team!r} needs an owner (owner='USERNAME').")
        return None
    user = session.scalar(select(User).where(User.username == owner))
    if user is None or not user.is_active or user.role == Role.VIEWER:
        state = (
            "no such user"
            if user is None
            else "disabled"
            if not user.is_active
            else "a viewer (viewers own no runs or jobs)"
        )
        raise OwnerError(
            f"{what} cannot belong to {owner!r}: {state}. Name an active analyst or admin "
            "(`workbench users list`)."
        )
    if not team_mode:
        return Owner(user.id, user.username, None, None)
    teams = {
        name: tid
        for tid, name in session.execute(
            select(Team.id, Team.name).join(Membership).where(Membership.user_id == user.id)
        )
    }
    if team is not None:
        chosen = teams.get(team)
        if chosen is None and user.role == Role.ADMIN:
            chosen = session.scalar(select(Team.id).where(Team.name == team))
        if chosen is None:
            raise TeamChoiceError(
                f"{what} cannot belong to team {team!r}: {owner!r} is not a member of a team "
                f"of that name (`workbench teams list`)."
            )
        return Owner(user.id, user.username, chosen, team)
    if len(teams) != 1:
        listed = ", ".join(sorted(teams)) or "none"
        raise TeamChoiceError(
            f"{what}: name the team with team='NAME' (CLI: --team NAME); {owner!r} is a member "
            f"of {len(teams)} teams ({listed})."
        )
    ((name, tid),) = teams.items()
    return Owner(user.id, user.username, tid, name)


def _reason(exc: DBAPIError) -> str:
    """The first line of the database's message, without a trailing full stop."""
    return driver_message(exc, "refused").rstrip(".")


def refusal(
    exc: DBAPIError,
    doing: str,
    *,
    not_found: WorkbenchError,
    denied: type[WorkbenchError],
) -> WorkbenchError | None:
    """The WorkbenchError for a database refusal of ``doing``; None for another failure.

    A row of another team is ``not_found`` exactly like a missing one, so names do not leak.
    """
    state = str(getattr(exc.orig, "sqlstate", "") or "")
    reason = _reason(exc)
    if not state and "is not permitted to log in" in str(exc.orig):
        # A disabled user's login is NOLOGIN: refused before any statement runs.
        return AccountDisabledError(
            f"{doing} was refused: your database login is disabled (so is your Workbench "
            "account). Ask an admin to enable your account."
        )
    if state == "P0002":  # no_data_found: missing, or another team's
        return not_found
    if state == "28000":  # invalid_authorization_specification: disabled, or no account
        return AccountDisabledError(
            f"{doing} was refused: {reason}. Ask an admin to enable your account."
        )
    if state == "22023":  # invalid_parameter_value: the team
        return TeamChoiceError(
            f"{doing} was refused: {reason}. Name one of your teams with team='NAME' "
            "(CLI: --team NAME)."
        )
    if state == "22003":  # numeric_value_out_of_range
        return ParameterError(f"{doing} was refused: {reason}.")
    if state == "55000":  # object_not_in_prerequisite_state
        return RunStateError(f"{doing} was refused: {reason}.")
    if state == "WB001":
        return OwnerError(f"{doing} was refused: {reason}.")
    if state == "23505":
        return denied(f"{doing} was refused: {reason}; choose another name.")
    if state == "42501":  # insufficient privilege, a row-level policy
        return denied(
            f"{doing} was refused: {reason}. Viewers read runs and jobs; analysts and admins "
            "queue, schedule and cancel their own teams' (ask an admin for the analyst role)."
        )
    return None


@contextmanager
def refusals(
    doing: str, *, not_found: WorkbenchError, denied: type[WorkbenchError]
) -> Iterator[None]:
    """Turn a database refusal inside the block into the WorkbenchError :func:`refusal` gives."""
    try:
        yield
    except DBAPIError as exc:
        mapped = refusal(exc, doing, not_found=not_found, denied=denied)
        if mapped is None:
            raise
        raise mapped from None


def call(
    connection: Connection,
    expression: str,
    parameters: Mapping[str, Any],
    *,
    doing: str,
    not_found: WorkbenchError,
    denied: type[WorkbenchError],
) -> Any:
    """``SELECT expression`` (a ``wb_private`` function) on a user's login; its value.

    Runs in a savepoint, so a refusal leaves the caller's transaction usable.
    """
    with refusals(doing, not_found=not_found, denied=denied), connection.begin_nested():
        return connection.execute(text(f"SELECT {expression}"), dict(parameters)).scalar()


def team_id_named(connection: Connection, team: str) -> uuid.UUID | None:
    """The id of team ``team`` as the login may name it (a user: one of theirs), else None."""
    if acts_as_user(connection):
        found = connection.execute(text("SELECT wb_private.team_named(:t)"), {"t": team}).scalar()
    else:
        found = connection.execute(select(Team.id).where(Team.name == team)).scalar()
    return None if found is None else uuid.UUID(str(found))


def owner_names(connection: Connection, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """Usernames of ``ids`` the login may see (a user: owners of their teams' jobs and runs)."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    if acts_as_user(connection):
        rows = connection.execute(
            text("SELECT id, username FROM wb_private.owner_names(CAST(:ids AS uuid[]))"),
            {"ids": [str(i) for i in wanted]},
        )
    else:
        rows = connection.execute(select(User.id, User.username).where(User.id.in_(wanted)))
    return {uuid.UUID(str(uid)): str(name) for uid, name in rows}
