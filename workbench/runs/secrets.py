"""The notebook secret store: named values, encrypted with the workbench key, global or a team's.

A stored secret belongs to one team or, set by an admin without a team, is global. A run
parameter ``secret:NAME`` stays a reference everywhere (the injected cell calls
:func:`resolve` with the name; the run record and the notebook's metadata keep the
reference). The service decrypts exactly the referenced secrets the run's team may use
(:func:`values_for_run`: the team's own NAME, else a global NAME) and hands the values to the
kernel out of band (:func:`hand_over_code`, run silently before the notebook); inside the
kernel :func:`resolve` reads only those handed values, with no key and no database. Setting
and deleting need the key, so they are the service's acts; a user's own login lists the names
(never the values) of its teams' and the global secrets, as row-level security lets it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, or_, select, text

from workbench.db.models import Secret, Team
from workbench.db.types import utcnow
from workbench.runs.errors import SecretError, SecretNotFoundError
from workbench.runs.params import SECRET_NAME, SECRET_PREFIX, is_secret_reference

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from workbench.app import Workbench
    from workbench.core.crypto import Encryptor

__all__ = [
    "PURPOSE",
    "SecretInfo",
    "check_references",
    "delete_secret",
    "hand_over_code",
    "list_secrets",
    "read_secret",
    "receive",
    "referenced_names",
    "resolve",
    "set_secret",
    "team_for_new_run",
    "values_for_run",
]

PURPOSE = "notebook-secrets"

#: The values handed to this kernel for its run (see :func:`receive`); empty elsewhere.
_handed: dict[str, str] = {}


@dataclass(frozen=True)
class SecretInfo:
    """A stored secret as `workbench secrets list` shows it: never its value."""

    name: str
    team_id: uuid.UUID | None
    """``None`` for a global secret."""
    team: str | None
    """The team's name; ``None`` for a global secret, or when the login may not read it."""


# -- the service: set, delete, decrypt ------------------------------------------------------


def _encryptor(wb: Workbench) -> Encryptor:
    from workbench.core.crypto import encryptor

    return encryptor(wb.settings, PURPOSE)


def _is_service(session: Session) -> bool:
    """The embedded database (one user) or the owner role: who may set and decrypt secrets."""
    from workbench.runs.acts import acts_as_user

    return not acts_as_user(session.connection())


def _require_service(session: Session, act: str) -> None:
    if not _is_service(session):
        raise SecretError(
            f"{act} is an admin's act on the server (it needs the workbench key): run it "
            "with the service's configuration, not from your own login."
        )


def _team_id(session: Session, team: str | None) -> uuid.UUID | None:
    """The id of the team named ``team`` (``None``: global) as this login may name it."""
    from workbench.runs.acts import team_id_named

    if team is None:
        return None
    found = team_id_named(session.connection(), team)
    if found is not None:
        return found
    if session.connection().dialect.name != "postgresql":
        raise SecretError(
            f"There is no team {team!r}: teams exist in team mode (PostgreSQL) only; on the "
            "embedded database leave out the team and the secret is global."
        )
    if not _is_service(session):
        raise SecretError(f"You are not a member of a team named {team!r}.")
    raise SecretError(f"There is no team {team!r}; see `workbench teams list`.")


def _scope(team_id: uuid.UUID | None) -> ColumnElement[bool]:
    return Secret.team_id.is_(None) if team_id is None else Secret.team_id == team_id


def _described(name: str, team: str | None) -> str:
    return f"{name!r} of team {team!r}" if team else f"global secret {name!r}"


def set_secret(wb: Workbench, name: str, value: str, *, team: str | None = None) -> None:
    """Store (or replace) the secret ``name`` of the team named ``team`` (``None``: global).

    A service act: it encrypts with the workbench key.
    """
    if not SECRET_NAME.match(name):
        raise SecretError(
            f"{name!r} is not a secret name: use letters, digits, '_', '.' or '-' (at most "
            "200), starting with a letter or '_'."
        )
    if not value:
        raise SecretError("The secret's value is empty; nothing stored.")
    with wb.session(writing=True) as session, session.begin():
        _require_service(session, "Setting a secret")
        team_id = _team_id(session, team)
        token = _encryptor(wb).encrypt(value)
        row = session.scalar(select(Secret).where(Secret.name == name, _scope(team_id)))
        if row is None:
            session.add(Secret(name=name, value_encrypted=token, team_id=team_id))
        else:
            row.value_encrypted = token
            row.updated_at = utcnow()


def delete_secret(wb: Workbench, name: str, *, team: str | None = None) -> None:
    """Remove the secret ``name`` of ``team`` (``None``: the global one); unknown is an error."""
    with wb.session(writing=True) as session, session.begin():
        _require_service(session, "Deleting a secret")
        team_id = _team_id(session, team)
        result = session.execute(delete(Secret).where(Secret.name == name, _scope(team_id)))
        if not getattr(result, "rowcount", 0):
            raise SecretNotFoundError(
                f"No {_described(name, team)} is stored; see `workbench secrets list`."
            )


def read_secret(wb: Workbench, name: str, *, team_id: uuid.UUID | None = None) -> str:
    """The value of secret ``name`` for ``team_id`` (its own, else the global one).

    Service side (ingestion reads source options with it); a name the team may not use is
    :class:`SecretNotFoundError`.
    """
    return values_for_run(wb, {"value": SECRET_PREFIX + name}, team_id=team_id)[name]


def referenced_names(parameters: Mapping[str, Any]) -> list[str]:
    """The secret names ``secret:NAME`` values in ``parameters`` (lists too) refer to, once each."""

    def walk(value: Any) -> Iterator[str]:
        if isinstance(value, list | tuple):
            for item in value:
                yield from walk(item)
        elif is_secret_reference(value):
            yield value[len(SECRET_PREFIX) :]

    return list(dict.fromkeys(n for value in parameters.values() for n in walk(value)))


def _unavailable(name: str) -> SecretNotFoundError:
    """The one error for a secret that is missing and for one the run's team may not use."""
    return SecretNotFoundError(
        f"No secret named {name!r} is stored for this team or globally: an admin stores it with "
        f"`workbench secrets set {name} --team TEAM` (or without --team for every team); "
        "`workbench secrets list` shows the ones you may use."
    )


def _usable(team_id: uuid.UUID | None, names: Iterable[str]) -> ColumnElement[bool]:
    """Rows named ``names`` a run of ``team_id`` may use: the team's own and the global ones."""
    scope: ColumnElement[bool] = Secret.team_id.is_(None)
    if team_id is not None:
        scope = or_(scope, Secret.team_id == team_id)
    return Secret.name.in_(list(names)) & scope


def team_for_new_run(
    wb: Workbench, notebook: str, *, owner: str | None, team: str | None
) -> uuid.UUID | None:
    """The team a run about to be queued will belong to (``None``: no team, global secrets).

    The same choice as queuing makes (:mod:`workbench.runs.acts`): from a user's own login
    ``team`` (one of theirs) or their only team; from the service the ``owner``'s team.
    """
    from workbench.runs import acts
    from workbench.runs.errors import TeamChoiceError

    with wb.session() as session:
        connection = session.connection()
        if not acts.acts_as_user(connection):
            who = acts.resolve_owner(session, owner, team, notebook=notebook, what="A run")
            return None if who is None else who.team_id
        if team is not None:
            chosen = acts.team_id_named(connection, team)
            if chosen is None:
                raise TeamChoiceError(
                    f"Queuing a run was refused: you are not a member of a team named {team!r}. "
                    "Name one of your teams with team='NAME' (CLI: --team NAME)."
                )
            return chosen
        mine = list(connection.execute(text("SELECT wb_private.my_team_ids()")).scalar() or [])
    if len(mine) != 1:
        raise TeamChoiceError(
            f"Queuing a run was refused: you are a member of {len(mine)} teams. Name one of "
            "your teams with team='NAME' (CLI: --team NAME)."
        )
    return uuid.UUID(str(mine[0]))


def check_references(
    wb: Workbench, parameters: Mapping[str, Any], *, team_id: uuid.UUID | None
) -> None:
    """Refuse a run whose ``secret:NAME`` parameters name a secret its team may not use.

    Reads names only, so it works from a user's own login (row-level security shows it its
    teams' and the global secrets) as from the service. Missing and forbidden look the same.
    """
    names = referenced_names(parameters)
    if not names:
        return
    with wb.session() as session:
        found = set(session.scalars(select(Secret.name).where(_usable(team_id, names))))
    for name in names:
        if name not in found:
            raise _unavailable(name)


def values_for_run(
    wb: Workbench, parameters: Mapping[str, Any], *, team_id: uuid.UUID | None
) -> dict[str, str]:
    """Service side: the values of exactly the secrets ``parameters`` reference, by name.

    Each is the team's own secret of that name, else the global one; a name with neither is
    :class:`SecretNotFoundError` (the same message whether missing or another team's).
    """
    names = referenced_names(parameters)
    if not names:
        return {}
    with wb.session() as session:
        rows = session.execute(
            select(Secret.name, Secret.team_id, Secret.value_encrypted).where(
                _usable(team_id, names)
            )
        ).all()
    chosen: dict[str, bytes] = {}
    for row in sorted(rows, key=lambda r: r.team_id is not None):
        chosen[row.name] = row.value_encrypted  # a team's own row, sorted last, wins
    for name in names:
        if name not in chosen:
            raise _unavailable(name)
    decrypt = _encryptor(wb).decrypt
    return {name: decrypt(chosen[name]) for name in names}


# -- listing (the service, or a user's own login) -------------------------------------------


def list_secrets(wb: Workbench, *, team: str | None = None) -> list[SecretInfo]:
    """The secrets this login may see, by name (never their values).

    From the service: every secret with its team; ``team`` narrows to those a run of that
    team may use (its own and the global ones). From a user's own login: its teams' and the
    global secrets (row-level security decides), narrowed the same way by ``team``.
    """
    with wb.session() as session:
        service = _is_service(session)
        query = select(Secret.name, Secret.team_id).order_by(Secret.name)
        if team is not None:
            team_id = _team_id(session, team)
            query = query.where(or_(Secret.team_id.is_(None), Secret.team_id == team_id))
        rows = session.execute(query).all()
        names: dict[uuid.UUID, str] = {}
        ids = {r.team_id for r in rows if r.team_id is not None}
        if service and ids:
            names = dict(session.execute(select(Team.id, Team.name).where(Team.id.in_(ids))).all())
        elif team is not None:
            names = {tid: team for tid in ids}
    infos = [
        SecretInfo(r.name, r.team_id, None if r.team_id is None else names.get(r.team_id))
        for r in rows
    ]
    return sorted(infos, key=lambda s: (s.name, s.team is not None, s.team or ""))


# -- inside the kernel -----------------------------------------------------------------------


def hand_over_code(values: Mapping[str, str]) -> str:
    """Python source the executor runs silently in the run's kernel before the notebook.

    It stores ``values`` (secret name to value) in this module inside the kernel process,
    where :func:`resolve` reads them: not in ``os.environ`` (child processes would inherit
    them), not in the user namespace, and no key or database URL goes with them.
    """
    clean = {str(k): str(v) for k, v in values.items()}
    for name in clean:
        if not SECRET_NAME.match(name):
            raise SecretError(f"{name!r} is not a secret name; nothing handed over.")
    return f"__import__({__name__!r}, fromlist=['receive']).receive({clean!r})\n"


def receive(values: Mapping[str, str]) -> None:
    """Keep the values handed to this kernel for its run (called by :func:`hand_over_code`)."""
    _handed.clear()
    _handed.update(values)


def resolve(name: str) -> str:
    """The value of secret ``name`` handed to this kernel for its run.

    Called by the injected parameters cell. Only the secrets the run's ``secret:NAME``
    parameters reference (and its team may use) are handed; any other name is refused.
    """
    try:
        return _handed[name]
    except KeyError:
        raise SecretNotFoundError(
            f"Secret {name!r} was not handed to this kernel: a run receives only the secrets "
            f"its parameters reference; pass it as a parameter, e.g. `-p token secret:{name}`."
        ) from None
