"""definers fail closed: no team, no user or no row never passes a check; readable names only

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

On PostgreSQL only (SQLite is single-user). Every ``SECURITY DEFINER`` function of 0003,
0005 and 0006 was audited for checks that a NULL lets through (``IF NOT x`` with ``x``
NULL, ``= ANY`` of NULL, ``NOT IN`` with NULLs, a missing ``FOUND`` check, a NULL argument);
this migration replaces the ones that needed it, with the pinned search_path of 0005/0006:

- ``writable_dataset`` (behind ``share_table`` and ``add_unique_key``): a table of no team
  was writable by every analyst, as ``NOT (false OR NULL)`` is NULL; now only admins (and
  the service, which does not call it) share or key such a table.
- ``create_team_table``: a catalog row of another team (or of no team) left by a dropped
  table was given to the creator's team with its old shares; now only admins re-team it.
- ``last_writes``: stamped every table the login had the SELECT grant on, which every
  protected table gives to every user; now only the tables it may read.

It adds ``readable_tables`` (the protected tables a login may read, for ``wb.tables`` and
``wb.describe``) and ``team_name`` (the name of one of the login's teams, for messages).
Downgrade restores the earlier bodies from their own migrations.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PINNED = "SET search_path = pg_catalog, pg_temp"
VERSIONS = "workbench.db.migrations.versions"
USERS = ("workbench_viewer", "workbench_analyst")
# (signature, granted to) of the functions this migration adds, in creation order.
ADDED = (
    ("readable_tables(text[])", USERS),
    ("team_name(uuid)", USERS),
)
# (function, the migration whose body the downgrade restores), in the order to restore.
REPLACED = (
    ("last_writes", "0006_runs_and_jobs_belong_to_users"),
    ("writable_dataset", "0005_governed_writes"),
    ("create_team_table", "0003_users_teams_and_row_level_security"),
)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _functions(schema: str) -> list[str]:
    statements = [
        # The dataset id of ``tbl`` when the login may change it: an active analyst or admin,
        # a member of the table's team; a table of no team only for admins. Raises otherwise.
        """CREATE OR REPLACE FUNCTION wb_private.writable_dataset(tbl text) RETURNS uuid
           LANGUAGE plpgsql STABLE SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             ds uuid;
             owning uuid;
           BEGIN
             IF NOT EXISTS (SELECT 1 FROM @S@.users u WHERE u.db_role = session_user
                            AND u.is_active AND u.role IN ('analyst', 'admin')) THEN
               RAISE EXCEPTION 'only active analysts and admins may change tables'
                 USING ERRCODE = 'insufficient_privilege';
             END IF;
             SELECT d.id, d.team_id INTO ds, owning FROM @S@.datasets d WHERE d.name = tbl;
             IF NOT FOUND OR ds IS NULL THEN
               RAISE EXCEPTION 'table % is not a team table', tbl USING ERRCODE = 'undefined_table';
             END IF;
             IF wb_private.is_admin() IS TRUE THEN
               RETURN ds;
             END IF;
             IF owning IS NULL THEN
               RAISE EXCEPTION 'table % belongs to no team: only admins and the service may '
                 'share it, add a key to it or give it to a team', tbl
                 USING ERRCODE = 'insufficient_privilege';
             END IF;
             IF (owning = ANY (wb_private.my_team_ids())) IS NOT TRUE THEN
               RAISE EXCEPTION 'table % belongs to a team you are not a member of', tbl
                 USING ERRCODE = 'insufficient_privilege';
             END IF;
             RETURN ds;
           END $$""",
        # As 0003's, and a catalog row of the same name that is another team's or no team's
        # (its table dropped) is not taken over with its shares, except by an admin.
        """CREATE OR REPLACE FUNCTION wb_private.create_team_table(
               tbl text, column_names text[], column_types text[], team uuid DEFAULT NULL)
           RETURNS uuid LANGUAGE plpgsql SECURITY DEFINER @PINNED@
           AS $$
           DECLARE
             me uuid;
             mine uuid[] := wb_private.my_team_ids();
             admin boolean := wb_private.is_admin() IS TRUE;
             chosen uuid := team;
             cols text := '';
           BEGIN
             SELECT u.id INTO me FROM @S@.users u
             WHERE u.db_role = session_user AND u.is_active AND u.role IN ('analyst', 'admin');
             IF me IS NULL THEN
               RAISE EXCEPTION 'only active analysts and admins may create tables'
                 USING ERRCODE = 'insufficient_privilege';
             END IF;
             IF chosen IS NULL THEN
               IF coalesce(cardinality(mine), 0) <> 1 THEN
                 RAISE EXCEPTION 'you belong to % teams: name the team the table belongs to',
                   coalesce(cardinality(mine), 0) USING ERRCODE = 'invalid_parameter_value';
               END IF;
               chosen := mine[1];
             ELSIF (chosen = ANY (mine) OR admin) IS NOT TRUE THEN
               RAISE EXCEPTION 'you are not a member of the team you named'
                 USING ERRCODE = 'insufficient_privilege';
             END IF;
             IF NOT EXISTS (SELECT 1 FROM @S@.teams t WHERE t.id = chosen) THEN
               RAISE EXCEPTION 'there is no such team' USING ERRCODE = 'invalid_parameter_value';
             END IF;
             IF NOT admin AND EXISTS (SELECT 1 FROM @S@.datasets d WHERE d.name = tbl
                                      AND d.team_id IS DISTINCT FROM chosen) THEN
               RAISE EXCEPTION 'the name % is recorded for a table of another team or of no '
                 'team: choose another name, or ask an admin', tbl
                 USING ERRCODE = 'insufficient_privilege';
             END IF;
             IF coalesce(cardinality(column_names), 0) = 0
                OR cardinality(column_names) <> coalesce(cardinality(column_types), 0) THEN
               RAISE EXCEPTION 'give one type for each column'
                 USING ERRCODE = 'invalid_parameter_value';
             END IF;
             FOR i IN 1 .. cardinality(column_names) LOOP
               cols := cols || format('%I %s, ', column_names[i], column_types[i]::regtype);
             END LOOP;
             EXECUTE format('CREATE TABLE @S@.%I (%s team_id uuid)', tbl, cols);
             RETURN wb_private.protect_table(format('@S@.%I', tbl)::regclass, chosen, me, false);
           END $$""",
        # The protected tables (named in ``names``; NULL: all) the login may read: the
        # service and admins all; a user those of their teams, those shared with them, and
        # those holding rows of their teams. Names only, in order; nothing for anyone else.
        """CREATE FUNCTION wb_private.readable_tables(names text[] DEFAULT NULL)
           RETURNS SETOF text LANGUAGE plpgsql STABLE SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             service boolean := session_user = current_user;
             everything boolean := service OR wb_private.is_admin() IS TRUE;
             mine uuid[] := wb_private.my_team_ids();
             d record;
             holds boolean;
           BEGIN
             IF NOT service AND wb_private.my_user_id() IS NULL THEN
               RETURN;
             END IF;
             FOR d IN
               SELECT x.id, x.name::text AS name, x.team_id,
                      to_regclass(format('%I.%I', @R@, x.name)) AS reg
               FROM @S@.datasets x
               WHERE readable_tables.names IS NULL OR x.name = ANY (readable_tables.names)
               ORDER BY x.name
             LOOP
               CONTINUE WHEN d.reg IS NULL;
               IF everything OR coalesce(d.team_id = ANY (mine), false)
                  OR wb_private.shared_with_me(d.id) THEN
                 RETURN NEXT d.name;
               ELSIF coalesce(cardinality(mine), 0) > 0 AND EXISTS (
                   SELECT 1 FROM pg_attribute a WHERE a.attrelid = d.reg
                   AND a.attname = 'team_id' AND NOT a.attisdropped) THEN
                 EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE team_id = ANY ($1))',
                                d.reg) INTO holds USING mine;
                 IF holds THEN
                   RETURN NEXT d.name;
                 END IF;
               END IF;
             END LOOP;
           END $$""",
        # As 0006's, for the tables the login may read only (not every table it has the
        # SELECT grant on, which is every protected table).
        """CREATE OR REPLACE FUNCTION wb_private.last_writes(names text[])
           RETURNS TABLE (name text, stamp text)
           LANGUAGE sql STABLE SECURITY DEFINER @PINNED@ AS $$
             SELECT d.name::text,
                    md5(concat_ws('|', extract(epoch FROM d.last_write_at), d.last_write_mode,
                                  d.last_write_rows))
             FROM @S@.datasets d
             WHERE names IS NOT NULL
               AND d.name IN (SELECT wb_private.readable_tables(names)) $$""",
        # The name of ``team`` when it is one of the login's teams (admins and the service:
        # any), else NULL.
        """CREATE FUNCTION wb_private.team_name(team uuid) RETURNS text
           LANGUAGE sql STABLE SECURITY DEFINER @PINNED@ AS $$
             SELECT t.name::text FROM @S@.teams t
             WHERE t.id = team
               AND (session_user = current_user
                    OR (wb_private.my_user_id() IS NOT NULL
                        AND (t.id = ANY (wb_private.my_team_ids()) OR wb_private.is_admin()))) $$""",
    ]
    literal = "'" + schema.replace("'", "''") + "'"
    return [
        st.replace("@PINNED@", PINNED).replace("@S@", _q(schema)).replace("@R@", literal)
        for st in statements
    ]


def _earlier_body(function: str, migration: str, schema: str) -> str:
    """The ``CREATE OR REPLACE`` of ``function`` as migration ``migration`` created it."""
    module = importlib.import_module(f"{VERSIONS}.{migration}")
    head = f"CREATE FUNCTION wb_private.{function}("
    earlier: list[str] = module._functions(schema)
    (statement,) = [s for s in earlier if s.startswith(head)]
    return "CREATE OR REPLACE" + statement.removeprefix("CREATE")


def _schema() -> str:
    return str(op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one())


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _functions(_schema()):
        op.execute(statement)
    for signature, grantees in ADDED:
        op.execute(f"REVOKE ALL ON FUNCTION wb_private.{signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION wb_private.{signature} TO {', '.join(grantees)}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = _schema()
    for function, migration in REPLACED:
        op.execute(_earlier_body(function, migration, schema))
    for signature, _ in reversed(ADDED):
        op.execute(f"DROP FUNCTION wb_private.{signature}")
