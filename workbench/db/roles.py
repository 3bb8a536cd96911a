"""Per-user PostgreSQL login roles: created, re-passworded, disabled and dropped.

Each user gets a ``NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE`` login role that is a
member of the group role for their Workbench role and owns nothing. Passwords are turned
into SCRAM-SHA-256 verifiers by libpq before they are sent, so the server (and its statement
log) never sees them in clear.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from psycopg import sql
from sqlalchemy import Connection

from workbench.core.roles import Role
from workbench.db.rls import ADMIN_GROUP, ANALYST_GROUP, VIEWER_GROUP

__all__ = [
    "GROUP_FOR_ROLE",
    "create_login_role",
    "drop_login_role",
    "login_role_name",
    "set_login_allowed",
    "set_role_password",
]

GROUP_FOR_ROLE = {Role.ADMIN: ADMIN_GROUP, Role.ANALYST: ANALYST_GROUP, Role.VIEWER: VIEWER_GROUP}
ROLE_PREFIX = "wbu_"


def login_role_name(username: str) -> str:
    """A role name for ``username``, unique across the cluster thanks to a random suffix."""
    base = re.sub(r"[^a-z0-9_]", "_", username.lower())[:40]
    return f"{ROLE_PREFIX}{base}_{secrets.token_hex(4)}"


def _raw(connection: Connection) -> Any:
    return connection.connection.driver_connection


def _verifier(connection: Connection, role: str, password: str) -> str:
    raw = _raw(connection)
    hashed: bytes = raw.pgconn.encrypt_password(
        password.encode("utf-8"), role.encode("utf-8"), b"scram-sha-256"
    )
    return hashed.decode("ascii")


def _run(connection: Connection, query: sql.Composable) -> None:
    with _raw(connection).cursor() as cursor:
        cursor.execute(query)


def create_login_role(connection: Connection, role: str, password: str, user_role: Role) -> None:
    """Create the login role, a member of the group for ``user_role`` (in this transaction)."""
    _run(
        connection,
        sql.SQL(
            "CREATE ROLE {role} LOGIN INHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE "
            "NOREPLICATION PASSWORD {verifier} IN ROLE {group}"
        ).format(
            role=sql.Identifier(role),
            verifier=sql.Literal(_verifier(connection, role, password)),
            group=sql.Identifier(GROUP_FOR_ROLE[user_role]),
        ),
    )


def set_role_password(connection: Connection, role: str, password: str) -> None:
    _run(
        connection,
        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(_verifier(connection, role, password))
        ),
    )


def set_login_allowed(connection: Connection, role: str, allowed: bool) -> None:
    """``LOGIN`` or ``NOLOGIN``: a disabled user's role cannot open new connections."""
    keyword = sql.SQL("LOGIN" if allowed else "NOLOGIN")
    _run(connection, sql.SQL("ALTER ROLE {} {}").format(sql.Identifier(role), keyword))


def drop_login_role(connection: Connection, role: str) -> None:
    """Drop the role after revoking its privileges in this database (it owns nothing)."""
    exists = connection.exec_driver_sql(
        "SELECT 1 FROM pg_roles WHERE rolname = %(r)s", {"r": role}
    ).first()
    if exists is None:
        return
    _run(connection, sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    _run(connection, sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
