"""The cluster-wide roles of a backup: recorded by name and group, re-created on restore.

Workbench makes the group roles ``workbench_viewer``, ``workbench_analyst`` and
``workbench_admin`` and one ``wbu_...`` login per user (:mod:`workbench.db.roles`). A backup
records them without passwords; a restore creates the missing ones with the attributes
Workbench gives them, then sets each login's password again from the credentials stored,
encrypted, in ``users``. The ``wb_service`` policies name the role that ran the migrations;
:func:`adopt_policies` moves them to the role that restores when it is another one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from psycopg import sql
from sqlalchemy import Connection, Engine

from workbench.db.rls import ADMIN_GROUP, ANALYST_GROUP, VIEWER_GROUP
from workbench.db.roles import ROLE_PREFIX, set_login_allowed, set_role_password
from workbench.ops.backup.bundle import RoleDefinition
from workbench.ops.backup.database import autocommit
from workbench.ops.errors import RestoreError

__all__ = [
    "GROUPS",
    "adopt_policies",
    "capture_roles",
    "create_roles",
    "owner_stand_in",
    "reset_logins",
]

#: The group roles, parents first (workbench_admin is a member of workbench_analyst).
GROUPS = (VIEWER_GROUP, ANALYST_GROUP, ADMIN_GROUP)
_LOGIN_ROLE = re.compile(rf"^{ROLE_PREFIX}[a-z0-9_]{{1,59}}$")


def _raw(connection: Connection) -> Any:
    return connection.connection.driver_connection


def _role_exists(connection: Connection, name: str) -> bool:
    found = connection.exec_driver_sql(
        "SELECT 1 FROM pg_roles WHERE rolname = %(r)s", {"r": name}
    ).first()
    return found is not None


def _is_member(connection: Connection, role: str, group: str) -> bool:
    found = connection.exec_driver_sql(
        "SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
        "JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = %(r)s AND g.rolname = %(g)s",
        {"r": role, "g": group},
    ).first()
    return found is not None


def capture_roles(connection: Connection) -> tuple[RoleDefinition, ...]:
    """The group roles and the users' login roles, with their Workbench groups."""
    wanted = list(GROUPS)
    if connection.exec_driver_sql("SELECT to_regclass('users') IS NOT NULL").scalar():
        logins = connection.exec_driver_sql(
            "SELECT db_role FROM users WHERE db_role IS NOT NULL ORDER BY db_role"
        ).scalars()
        wanted.extend(str(role) for role in logins)
    rows = connection.exec_driver_sql(
        "SELECT r.rolname, r.rolcanlogin, coalesce(array_agg(g.rolname ORDER BY g.rolname) "
        "FILTER (WHERE g.rolname = ANY(%(groups)s)), '{}') "
        "FROM pg_roles r LEFT JOIN pg_auth_members m ON m.member = r.oid "
        "LEFT JOIN pg_roles g ON g.oid = m.roleid "
        "WHERE r.rolname = ANY(%(names)s) GROUP BY r.rolname, r.rolcanlogin",
        {"groups": list(GROUPS), "names": wanted},
    ).all()
    found = {
        str(name): RoleDefinition(str(name), bool(login), tuple(groups))
        for name, login, groups in rows
    }
    return tuple(found[name] for name in wanted if name in found)


def _checked(definition: RoleDefinition) -> RoleDefinition:
    """A role of a manifest, refused unless it is one Workbench could have made."""
    group = definition.name in GROUPS
    if not group and not _LOGIN_ROLE.match(definition.name):
        raise RestoreError(
            f"The manifest names a role {definition.name!r} Workbench does not make."
        )
    if any(parent not in GROUPS for parent in definition.member_of):
        raise RestoreError(f"The manifest gives role {definition.name!r} a group Workbench lacks.")
    if group and definition.login:
        raise RestoreError(f"The manifest makes group role {definition.name!r} a login.")
    return definition


def create_roles(
    connection: Connection, roles: Iterable[RoleDefinition], *, logins: bool
) -> list[str]:
    """Create the missing group roles (and, with ``logins``, login roles); returns those made.

    Made with the attributes Workbench gives them: no superuser, no bypass of row-level
    security. Login roles start ``NOLOGIN`` without a password; :func:`reset_logins` gives
    them their stored password. Existing roles keep their attributes and get the groups they
    lack (so a verify on a cluster that has them changes nothing).
    """
    made: list[str] = []
    checked = [_checked(r) for r in roles]
    groups = {r.name: r for r in checked if r.name in GROUPS}
    for name in GROUPS:
        groups.setdefault(
            name, RoleDefinition(name, False, (ANALYST_GROUP,) if name == ADMIN_GROUP else ())
        )
    ordered = [groups[name] for name in GROUPS] + (
        [r for r in checked if r.name not in GROUPS] if logins else []
    )
    with _raw(connection).cursor() as cursor:
        for role in ordered:
            ident = sql.Identifier(role.name)
            if not _role_exists(connection, role.name):
                cursor.execute(
                    sql.SQL(
                        "CREATE ROLE {} NOLOGIN INHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB "
                        "NOCREATEROLE NOREPLICATION"
                    ).format(ident)
                )
                made.append(role.name)
            for parent in role.member_of:
                if not _is_member(connection, role.name, parent):
                    cursor.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(parent), ident))
    return made


def reset_logins(connection: Connection, decrypt: Callable[[bytes], str]) -> tuple[int, list[str]]:
    """Give each user's login role its stored password, and LOGIN exactly when active.

    ``decrypt`` turns a stored credential into the password (raising DecryptionError for a
    wrong key). Returns how many roles were reset, and the users whose role is missing (it
    was already missing when the backup was made).
    """
    rows = connection.exec_driver_sql(
        "SELECT username, db_role, db_password_encrypted, is_active FROM users "
        "WHERE db_role IS NOT NULL AND db_password_encrypted IS NOT NULL ORDER BY db_role"
    ).all()
    missing: list[str] = []
    for username, role, sealed, active in rows:
        if not _role_exists(connection, str(role)):
            missing.append(str(username))
            continue
        set_role_password(connection, str(role), decrypt(bytes(sealed)))
        set_login_allowed(connection, str(role), bool(active))
    return len(rows) - len(missing), missing


def adopt_policies(connection: Connection, old_owner: str | None) -> int:
    """Point the service policies at the connecting role when it differs from the original owner.

    The ``wb_service`` policies name the role that ran the migrations; a restore by another
    role (``--no-owner`` made it the owner of everything) must see every row too.
    """
    me = connection.exec_driver_sql("SELECT current_user").scalar_one()
    if not old_owner or old_owner == me:
        return 0
    policies = connection.exec_driver_sql(
        "SELECT schemaname, tablename, policyname, roles FROM pg_policies "
        "WHERE %(old)s = ANY(roles)",
        {"old": old_owner},
    ).all()
    with _raw(connection).cursor() as cursor:
        for schema, table, policy, roles in policies:
            targets = [me if str(r) == old_owner else str(r) for r in roles]
            cursor.execute(
                sql.SQL("ALTER POLICY {} ON {} TO {}").format(
                    sql.Identifier(policy),
                    sql.Identifier(schema, table),
                    sql.SQL(", ").join(sql.Identifier(t) for t in dict.fromkeys(targets)),
                )
            )
    return len(policies)


@contextmanager
def owner_stand_in(engine: Engine, old_owner: str | None) -> Iterator[None]:
    """A ``NOLOGIN`` stand-in for a missing original owner while pg_restore names it.

    The dump's policies name the original owner; on a cluster without that role they could
    not be created. The stand-in is dropped once :func:`adopt_policies` has moved them.
    """
    needed = False
    if old_owner:
        with engine.connect() as connection:
            needed = not _role_exists(connection, old_owner)
    if needed:
        autocommit(engine, sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(str(old_owner))))
    try:
        yield
    finally:
        if needed:
            autocommit(
                engine, sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(str(old_owner)))
            )
