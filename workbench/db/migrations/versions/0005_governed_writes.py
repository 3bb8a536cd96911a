"""governed writes: analysts share, key and record their team's tables; team-less tables

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

On PostgreSQL only (SQLite is single-user): ``SECURITY DEFINER`` functions with a pinned
search_path through which an analyst's own login shares a table of their team, adds a unique
key to it and resolves a team name, each checking the membership in the database; a column
grant so an analyst records their writes in ``datasets``; and ``protect_service_table`` for
tables the service writes for no team (admins read them, everyone when shared).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PINNED = "SET search_path = pg_catalog, pg_temp"
# (signature, granted to) of the functions this migration adds, in creation order.
FUNCTIONS = (
    ("writable_dataset(text)", ()),
    ("team_named(text)", ("workbench_analyst",)),
    ("share_table(text, text)", ("workbench_analyst",)),
    ("add_unique_key(text, text, text[])", ("workbench_analyst",)),
    ("shared_with_me(uuid)", ("workbench_viewer", "workbench_analyst")),
    ("grant_team_table(regclass)", ()),
    ("protect_service_table(regclass, uuid, boolean)", ()),
)
RECORDED = "last_write_at, last_write_mode, last_write_rows, columns"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _functions(schema: str) -> list[str]:
    statements = [
        # The dataset id of ``tbl`` when the login may change it: an active analyst or admin,
        # member of the table's team (admins: any table). Raises otherwise.
        """CREATE FUNCTION wb_private.writable_dataset(tbl text) RETURNS uuid
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
             IF ds IS NULL THEN
               RAISE EXCEPTION 'table % is not a team table', tbl USING ERRCODE = 'undefined_table';
             END IF;
             IF NOT (wb_private.is_admin() OR owning = ANY (wb_private.my_team_ids())) THEN
               RAISE EXCEPTION 'table % belongs to a team you are not a member of', tbl
                 USING ERRCODE = 'insufficient_privilege';
             END IF;
             RETURN ds;
           END $$""",
        # The id of one of the login's teams (admins: any team) by name, else NULL.
        """CREATE FUNCTION wb_private.team_named(team_name text) RETURNS uuid
           LANGUAGE sql STABLE SECURITY DEFINER @PINNED@ AS $$
             SELECT t.id FROM @S@.teams t
             WHERE t.name = team_name
               AND (t.id = ANY (wb_private.my_team_ids()) OR wb_private.is_admin()) $$""",
        # Read access to a table of the login's team for another team (NULL: every user).
        """CREATE FUNCTION wb_private.share_table(tbl text, team_name text DEFAULT NULL)
           RETURNS void LANGUAGE plpgsql SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             ds uuid := wb_private.writable_dataset(tbl);
             target uuid;
           BEGIN
             IF team_name IS NULL THEN
               UPDATE @S@.datasets SET shared = true WHERE id = ds;
             ELSE
               SELECT t.id INTO target FROM @S@.teams t WHERE t.name = team_name;
               IF target IS NULL THEN
                 RAISE EXCEPTION 'there is no team %', team_name
                   USING ERRCODE = 'invalid_parameter_value';
               END IF;
               INSERT INTO @S@.dataset_shares (dataset_id, team_id, created_at)
               VALUES (ds, target, now()) ON CONFLICT DO NOTHING;
             END IF;
             INSERT INTO @S@.audit_log (id, at, actor_id, action, target, details)
             VALUES (gen_random_uuid(), now(),
                     (SELECT u.id FROM @S@.users u WHERE u.db_role = session_user),
                     'dataset.share', tbl,
                     jsonb_build_object('team', coalesce(team_name, '*')));
           END $$""",
        # A unique index on a table of the login's team (upsert matches rows on it).
        """CREATE FUNCTION wb_private.add_unique_key(
               tbl text, index_name text, key_columns text[]) RETURNS void
           LANGUAGE plpgsql SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             cols text;
           BEGIN
             PERFORM wb_private.writable_dataset(tbl);
             SELECT string_agg(format('%I', c), ', ') INTO cols FROM unnest(key_columns) c;
             IF cols IS NULL THEN
               RAISE EXCEPTION 'name the key columns' USING ERRCODE = 'invalid_parameter_value';
             END IF;
             EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON @S@.%I (%s)',
                            index_name, tbl, cols);
           END $$""",
        # True when the dataset is shared with the login (every user, or one of its teams).
        """CREATE FUNCTION wb_private.shared_with_me(dataset uuid) RETURNS boolean
           LANGUAGE sql STABLE SECURITY DEFINER @PINNED@ AS $$
             SELECT EXISTS (
               SELECT 1 FROM @S@.datasets d
               WHERE d.id = dataset
                 AND EXISTS (SELECT 1 FROM @S@.users u
                             WHERE u.db_role = session_user AND u.is_active)
                 AND (d.shared OR EXISTS (
                      SELECT 1 FROM @S@.dataset_shares x
                      WHERE x.dataset_id = d.id AND x.team_id = ANY (wb_private.my_team_ids())))) $$""",
        # The grants of every team table: analysts write (under the policies), viewers read.
        """CREATE FUNCTION wb_private.grant_team_table(tbl regclass) RETURNS void
           LANGUAGE plpgsql @PINNED@ AS $$
           DECLARE
             seq text;
           BEGIN
             EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', tbl);
             EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO workbench_analyst', tbl);
             EXECUTE format('GRANT SELECT ON %s TO workbench_viewer', tbl);
             FOR seq IN
               SELECT s.oid::regclass::text FROM pg_class s JOIN pg_depend dep ON dep.objid = s.oid
               WHERE s.relkind = 'S' AND dep.classid = 'pg_class'::regclass
                 AND dep.refclassid = 'pg_class'::regclass AND dep.refobjid = tbl
                 AND dep.deptype IN ('a', 'i')
             LOOP
               EXECUTE format('GRANT USAGE ON SEQUENCE %s TO workbench_analyst', seq);
             END LOOP;
           END $$""",
        # A table the service writes for no team: forced RLS; the owner role and admins read
        # and write it, everyone reads it once shared (wb.share). Run by the owner role.
        """CREATE FUNCTION wb_private.protect_service_table(
               tbl regclass, owner uuid DEFAULT NULL, is_shared boolean DEFAULT false)
           RETURNS uuid LANGUAGE plpgsql @PINNED@ AS $$
           DECLARE
             ds uuid;
           BEGIN
             EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS team_id uuid', tbl);
             INSERT INTO @S@.datasets AS d (id, name, owner_id, team_id, shared, created_at, columns)
             VALUES (gen_random_uuid(), (SELECT c.relname FROM pg_class c WHERE c.oid = tbl),
                     owner, NULL, is_shared, now(), '{}')
             ON CONFLICT (name) DO UPDATE SET team_id = NULL, shared = excluded.shared,
                 owner_id = coalesce(excluded.owner_id, d.owner_id)
             RETURNING d.id INTO ds;
             -- wb_service for the owner, wb_team: admins, and members of a row's team.
             PERFORM wb_private.apply_team_policies(tbl, NULL);
             EXECUTE format('CREATE POLICY wb_shared ON %s FOR SELECT USING (team_id IS NULL '
                            'AND (SELECT wb_private.shared_with_me(%L::uuid)))', tbl, ds);
             PERFORM wb_private.grant_team_table(tbl);
             RETURN ds;
           END $$""",
    ]
    return [st.replace("@PINNED@", PINNED).replace("@S@", _q(schema)) for st in statements]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one()
    for statement in _functions(schema):
        op.execute(statement)
    for signature, grantees in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION wb_private.{signature} FROM PUBLIC")
        if grantees:
            op.execute(f"GRANT EXECUTE ON FUNCTION wb_private.{signature} TO {', '.join(grantees)}")
    # Analysts record their own writes (the policies limit them to their teams' rows).
    op.execute(f"GRANT UPDATE ({RECORDED}) ON datasets TO workbench_analyst")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"REVOKE UPDATE ({RECORDED}) ON datasets FROM workbench_analyst")
    for signature, _ in reversed(FUNCTIONS):
        # CASCADE: the wb_shared policies of team-less tables call shared_with_me; those
        # tables keep forced RLS and their other policies (default deny for everyone else).
        op.execute(f"DROP FUNCTION wb_private.{signature} CASCADE")
