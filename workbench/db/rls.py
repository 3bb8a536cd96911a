"""Row-level security on PostgreSQL: protecting team tables, sharing them, checking the schema.

Migration 0003 installs the pieces: the group roles ``workbench_viewer``,
``workbench_analyst`` and ``workbench_admin``; the ``wb_private`` functions that map the
login (``session_user``) to its teams; and forced RLS with default deny on every Workbench
table. This module applies the same policies to tables analysts write (:func:`protect_table`,
run by the service as the owner role; :func:`create_team_table`, run from an analyst's own
session), shares them (:func:`share`, :func:`share_as_member`) and lists relations that
escape the rules (:func:`unprotected_relations`). ``wb.write`` protects the tables it creates
itself (:mod:`workbench.data.backends.governed`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.exc import DBAPIError

from workbench.db.errors import MultiUserError, ShareError, TeamTableError, UnknownTableError
from workbench.db.models import Dataset, DatasetShare
from workbench.db.types import utcnow

__all__ = [
    "ADMIN_GROUP",
    "ANALYST_GROUP",
    "IS_SERVICE_SQL",
    "TEAM_COLUMN",
    "VIEWER_GROUP",
    "create_team_table",
    "is_service",
    "protect_table",
    "require_postgresql",
    "share",
    "share_as_member",
    "unprotected_relations",
]

#: The column protected tables gain: the team each row belongs to.
TEAM_COLUMN = "team_id"
VIEWER_GROUP = "workbench_viewer"
ANALYST_GROUP = "workbench_analyst"
ADMIN_GROUP = "workbench_admin"
#: Tables without team data, read and written only by the owner role.
UNPROTECTED_TABLES = frozenset({"alembic_version"})


def require_postgresql(bind: Engine | Connection, what: str) -> None:
    """Refuse multi-user features on the embedded, single-user SQLite database."""
    if bind.dialect.name != "postgresql":
        raise MultiUserError(
            f"{what} needs team mode: the embedded SQLite database is single-user. Set "
            "WORKBENCH_DATABASE_URL (or WORKBENCH_DATABASE_URL_FILE) to a PostgreSQL database "
            "and run `workbench init`."
        )


def _regclass(connection: Connection, table: str, schema: str | None) -> str:
    """The table's quoted, resolved name; refuses a table that does not exist."""
    from psycopg import sql  # PostgreSQL only: the embedded database never loads the driver

    name = sql.Identifier(*([schema, table] if schema else [table]))
    raw: Any = connection.connection.driver_connection
    with raw.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)::text", [name.as_string(raw)])
        row = cursor.fetchone()
    if row is None or row[0] is None:
        shown = f"{schema}.{table}" if schema else table
        raise UnknownTableError(f"Table {shown!r} does not exist; create it first (`wb.write`).")
    return str(row[0])  # regclass output is already quoted where needed


def protect_table(
    connection: Connection,
    table: str,
    *,
    team_id: uuid.UUID,
    owner_id: uuid.UUID | None = None,
    shared: bool = False,
    schema: str | None = None,
) -> uuid.UUID:
    """Give ``table`` to ``team_id`` under forced RLS, with default deny; returns its dataset id.

    The table gains a ``team_id`` column (default: the team) if it has none, its rows without
    a team are given to the team, and it gets the policies of every team table: members read
    and write rows of their teams, admins all rows, other teams nothing unless
    :func:`share`-d. Analysts get SELECT/INSERT/UPDATE/DELETE, viewers SELECT. The dataset
    catalog row is created or updated. Idempotent; run it as the owner role, in the
    transaction that created the table so no one sees it unprotected. (The work is done by
    ``wb_private.protect_table``, which migrations can update for every table at once.)
    """
    require_postgresql(connection, "Protecting a table")
    target = _regclass(connection, table, schema)
    dataset = connection.execute(
        text("SELECT wb_private.protect_table(CAST(:t AS regclass), :team, :owner, :shared)"),
        {"t": target, "team": team_id, "owner": owner_id, "shared": shared},
    ).scalar_one()
    return uuid.UUID(str(dataset))


def create_team_table(
    connection: Connection,
    table: str,
    columns: Sequence[tuple[str, str]],
    *,
    team_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Create a protected table from an analyst's own session; returns its dataset id.

    ``columns`` are (name, PostgreSQL type) pairs; type modifiers such as ``varchar(20)`` are
    dropped. The table is created by the owner role (a ``SECURITY DEFINER`` function), so the
    analyst never owns it, and belongs to ``team_id`` (default: the analyst's only team).
    Viewers and users outside the team are refused.
    """
    require_postgresql(connection, "Creating a team table")
    try:
        with connection.begin_nested():
            dataset = connection.execute(
                text("SELECT wb_private.create_team_table(:t, :names, :types, :team)"),
                {
                    "t": table,
                    "names": [name for name, _ in columns],
                    "types": [kind for _, kind in columns],
                    "team": team_id,
                },
            ).scalar_one()
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise TeamTableError(f"Table {table!r} was not created: {reason}.") from None
    return uuid.UUID(str(dataset))


#: True for the service: a role with the rights of the owner of Workbench's tables.
IS_SERVICE_SQL = (
    "SELECT coalesce((SELECT pg_has_role(current_user, c.relowner, 'USAGE') "
    "FROM pg_class c WHERE c.oid = to_regclass('datasets')), false)"
)


def is_service(connection: Connection) -> bool:
    """Whether the connection is the service (the owner role) rather than a user's login."""
    require_postgresql(connection, "Team tables")
    return bool(connection.exec_driver_sql(IS_SERVICE_SQL).scalar())


def share_as_member(connection: Connection, table: str, team: str | None = None) -> None:
    """:func:`share` from a user's own login: the database checks that the user may.

    ``wb_private.share_table`` lets an active analyst or admin who is a member of the
    table's team (admins: any team) share it with the team named ``team`` (``None``: every
    user). The user's Python process is not trusted with the check.
    """
    require_postgresql(connection, "Sharing a table")
    try:
        with connection.begin_nested():
            connection.execute(
                text("SELECT wb_private.share_table(:t, :team)"), {"t": table, "team": team}
            )
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if "belongs to no team" in reason:
            reason = (
                "it belongs to no team, so only admins and the service may share it; ask an admin"
            )
        raise ShareError(f"Table {table!r} was not shared: {reason}.") from None


def share(connection: Connection, table: str, team_id: uuid.UUID | None = None) -> None:
    """Let ``team_id`` (``None``: every active user) read the rows of a protected table.

    Sharing is read-only: the owning team alone writes. Run it as the owner role (a user's
    own login uses :func:`share_as_member`).
    """
    require_postgresql(connection, "Sharing a table")
    dataset = connection.execute(select(Dataset).where(Dataset.name == table)).one_or_none()
    if dataset is None:
        raise UnknownTableError(
            f"Table {table!r} is not a protected dataset; write it with `wb.write` (or protect "
            "it) before sharing it."
        )
    dataset_id = dataset.id
    if team_id is None:
        connection.execute(update(Dataset).where(Dataset.id == dataset_id).values(shared=True))
        return
    from sqlalchemy.dialects.postgresql import insert

    connection.execute(
        insert(DatasetShare)
        .values(dataset_id=dataset_id, team_id=team_id, created_at=utcnow())
        .on_conflict_do_nothing()
    )


_UNPROTECTED = text(
    """
    SELECT n.nspname || '.' || c.relname AS name,
           CASE c.relkind WHEN 'v' THEN 'view without security_invoker'
                WHEN 'm' THEN 'materialized view (row-level security cannot apply)'
                ELSE 'table without forced row-level security' END AS problem
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
      AND (
        (c.relkind IN ('r', 'p')
         AND NOT (c.relname = ANY (:exempt) AND n.nspname = current_schema())
         AND NOT (c.relrowsecurity AND c.relforcerowsecurity))
        OR c.relkind = 'm'
        OR (c.relkind = 'v'
         AND NOT coalesce(lower(array_to_string(c.reloptions, ',')) ~
                          '(^|,)security_invoker=(true|on|yes|1)(,|$)', false))
      )
    ORDER BY 1
    """
)


def unprotected_relations(connection: Connection) -> list[tuple[str, str]]:
    """Tables lacking forced RLS and views lacking ``security_invoker``: should be empty."""
    require_postgresql(connection, "Checking row-level security")
    rows = connection.execute(_UNPROTECTED, {"exempt": sorted(UNPROTECTED_TABLES)})
    return [(str(name), str(problem)) for name, problem in rows]
