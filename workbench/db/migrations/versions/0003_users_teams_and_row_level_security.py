"""users, teams and row-level security

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

On PostgreSQL: group roles for the per-user login roles, the identity functions the
policies read (``wb_private``), and forced row-level security on every Workbench table.
Identity is the login (``session_user``), which a session cannot change; see docs/security.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import workbench.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GROUPS = ("workbench_viewer", "workbench_analyst", "workbench_admin")
# Tables with a team_id column: members of the team see and change their rows.
TEAM_TABLES = ("jobs", "runs", "sources", "secrets", "datasets")
# Tables only the service (the owner role) reads and writes.
SERVICE_TABLES = ("users", "teams", "memberships", "audit_log", "dataset_shares")
VIEWER_READS = ("jobs", "runs", "run_results", "datasets", "sources")
ANALYST_WRITES = ("jobs", "runs", "run_results", "sources")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _functions(schema: str) -> list[str]:
    """The wb_private functions; tables are named with their schema, the search_path pinned."""
    statements = [
        "CREATE SCHEMA wb_private",
        "REVOKE ALL ON SCHEMA wb_private FROM PUBLIC",
        # The teams of the logged-in user. session_user is the login and cannot be changed by
        # SET ROLE, RESET ROLE or set_config; only a superuser can change it.
        """CREATE FUNCTION wb_private.my_team_ids() RETURNS uuid[] @DEFINER@ AS $$
            SELECT coalesce(array_agg(m.team_id), '{}')
            FROM @S@.memberships m JOIN @S@.users u ON u.id = m.user_id
            WHERE u.db_role = session_user AND u.is_active $$""",
        """CREATE FUNCTION wb_private.is_admin() RETURNS boolean @DEFINER@ AS $$
            SELECT EXISTS (SELECT 1 FROM @S@.users u
                           WHERE u.db_role = session_user AND u.is_active AND u.role = 'admin') $$""",
        # The dataset's team when the dataset is shared with the logged-in user, else NULL.
        """CREATE FUNCTION wb_private.shared_team(dataset uuid) RETURNS uuid @DEFINER@ AS $$
            SELECT d.team_id FROM @S@.datasets d
            WHERE d.id = dataset
              AND EXISTS (SELECT 1 FROM @S@.users u WHERE u.db_role = session_user AND u.is_active)
              AND (d.shared OR EXISTS (
                   SELECT 1 FROM @S@.dataset_shares x
                   WHERE x.dataset_id = d.id AND x.team_id = ANY (wb_private.my_team_ids()))) $$""",
        # Applies the standard policies to a table with a team_id column; run by the owner.
        """CREATE FUNCTION wb_private.apply_team_policies(tbl regclass, dataset uuid DEFAULT NULL)
           RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
           DECLARE
             member text := '(SELECT wb_private.is_admin()) OR '
                            'team_id IN (SELECT unnest(wb_private.my_team_ids()))';
           BEGIN
             EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
             EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
             EXECUTE format('DROP POLICY IF EXISTS wb_service ON %s', tbl);
             EXECUTE format('CREATE POLICY wb_service ON %s TO %I USING (true) WITH CHECK (true)',
                            tbl, current_user);
             EXECUTE format('DROP POLICY IF EXISTS wb_team ON %s', tbl);
             EXECUTE format('CREATE POLICY wb_team ON %s USING (%s) WITH CHECK (%s)',
                            tbl, member, member);
             EXECUTE format('DROP POLICY IF EXISTS wb_shared ON %s', tbl);
             IF dataset IS NOT NULL THEN
               EXECUTE format('CREATE POLICY wb_shared ON %s FOR SELECT '
                              'USING (team_id = (SELECT wb_private.shared_team(%L::uuid)))',
                              tbl, dataset);
             END IF;
           END $$""",
        # Gives an existing table to a team: team_id column, policies, grants, catalog row.
        """CREATE FUNCTION wb_private.protect_table(
               tbl regclass, team uuid, owner uuid DEFAULT NULL, is_shared boolean DEFAULT false)
           RETURNS uuid LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
           DECLARE
             ds uuid;
             seq text;
           BEGIN
             EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS team_id uuid', tbl);
             EXECUTE format('UPDATE %s SET team_id = %L WHERE team_id IS NULL', tbl, team);
             EXECUTE format('ALTER TABLE %s ALTER COLUMN team_id SET DEFAULT %L::uuid, '
                            'ALTER COLUMN team_id SET NOT NULL', tbl, team);
             INSERT INTO @S@.datasets AS d (id, name, owner_id, team_id, shared, created_at, columns)
             VALUES (gen_random_uuid(), (SELECT c.relname FROM pg_class c WHERE c.oid = tbl),
                     owner, team, is_shared, now(), '{}')
             ON CONFLICT (name) DO UPDATE SET team_id = excluded.team_id,
                 shared = excluded.shared, owner_id = coalesce(excluded.owner_id, d.owner_id)
             RETURNING d.id INTO ds;
             PERFORM wb_private.apply_team_policies(tbl, ds);
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
             RETURN ds;
           END $$""",
        # How an analyst's own session creates a table: the owner creates and protects it, so
        # the analyst never owns a table (and so can never turn its policies off).
        """CREATE FUNCTION wb_private.create_team_table(
               tbl text, column_names text[], column_types text[], team uuid DEFAULT NULL)
           RETURNS uuid LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
           AS $$
           DECLARE
             me uuid;
             mine uuid[] := wb_private.my_team_ids();
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
               IF cardinality(mine) <> 1 THEN
                 RAISE EXCEPTION 'you belong to % teams: name the team the table belongs to',
                   cardinality(mine) USING ERRCODE = 'invalid_parameter_value';
               END IF;
               chosen := mine[1];
             ELSIF NOT (chosen = ANY (mine) OR wb_private.is_admin()) THEN
               RAISE EXCEPTION 'you are not a member of the team you named'
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
        "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA wb_private FROM PUBLIC",
    ]
    definer = "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
    return [st.replace("@DEFINER@", definer).replace("@S@", _q(schema)) for st in statements]


def _service_only(table: str) -> list[str]:
    t = _q(table)
    return [
        f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {t} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY wb_service ON {t} TO CURRENT_USER USING (true) WITH CHECK (true)",
    ]


def _postgresql_upgrade() -> None:
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one()
    for group in GROUPS:
        # Roles are cluster-wide: another database may have created them already.
        op.execute(
            f"DO $$ BEGIN CREATE ROLE {group} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB "
            "NOCREATEROLE; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
    op.execute("GRANT workbench_analyst TO workbench_admin")
    for statement in _functions(schema):
        op.execute(statement)
    op.execute("GRANT USAGE ON SCHEMA wb_private TO workbench_viewer, workbench_analyst")
    for fn in ("my_team_ids()", "is_admin()", "shared_team(uuid)"):
        op.execute(
            f"GRANT EXECUTE ON FUNCTION wb_private.{fn} TO workbench_viewer, workbench_analyst"
        )
    op.execute(
        "GRANT EXECUTE ON FUNCTION wb_private.create_team_table(text, text[], text[], uuid) "
        "TO workbench_analyst"
    )
    for table in SERVICE_TABLES:
        for statement in _service_only(table):
            op.execute(statement)
    for table in TEAM_TABLES:
        op.execute(f"SELECT wb_private.apply_team_policies({_q(table)!r}::regclass)")
    op.execute(
        "CREATE POLICY wb_shared ON datasets FOR SELECT USING (team_id = wb_private.shared_team(id))"
    )
    for statement in _service_only("run_results"):
        op.execute(statement)
    # A result is visible and writable exactly when its run is (the runs policies apply).
    op.execute(
        "CREATE POLICY wb_team ON run_results USING (run_id IN (SELECT id FROM runs)) "
        "WITH CHECK (run_id IN (SELECT id FROM runs))"
    )
    op.execute(f"GRANT SELECT ON {', '.join(VIEWER_READS)} TO workbench_viewer, workbench_analyst")
    op.execute(f"GRANT INSERT, UPDATE, DELETE ON {', '.join(ANALYST_WRITES)} TO workbench_analyst")


def _postgresql_downgrade() -> None:
    op.execute("DROP SCHEMA wb_private CASCADE")  # also drops the policies that call it
    for table in (*SERVICE_TABLES, *TEAM_TABLES, "run_results"):
        t = _q(table)
        op.execute(f"DROP POLICY IF EXISTS wb_service ON {t}")
        op.execute(f"DROP POLICY IF EXISTS wb_team ON {t}")
        op.execute(f"DROP POLICY IF EXISTS wb_shared ON {t}")
        op.execute(f"ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {t} DISABLE ROW LEVEL SECURITY")
        op.execute(f"REVOKE ALL ON {t} FROM {', '.join(GROUPS)}")
    # The group roles stay: roles are cluster-wide and other databases may use them.


def upgrade() -> None:
    op.create_table(
        "dataset_shares",
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", workbench.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_shares_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_dataset_shares_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "team_id", name=op.f("pk_dataset_shares")),
    )
    with op.batch_alter_table("dataset_shares", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dataset_shares_team_id"), ["team_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_downgrade()
    with op.batch_alter_table("dataset_shares", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_shares_team_id"))
    op.drop_table("dataset_shares")
