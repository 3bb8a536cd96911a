"""runs and jobs belong to a user and a team: acts through checked functions, audited

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Both databases: the ``refused`` run status, ``runs.run_token_hash``, job and secret names
unique per team (a name with no team is unique among the team-less ones).

On PostgreSQL: analysts lose INSERT/UPDATE/DELETE on ``runs`` and ``jobs`` (they keep
SELECT under the team policies); their acts (queue and cancel a run; save, pause, resume,
delete, trigger a job; an admin moves a job to another owner) go through ``SECURITY
DEFINER`` functions with a pinned search_path that check the caller, fill ``created_by``,
``team_id`` and ``owner_id`` from the session's own user and write the audit entry. A user's
login writes ``run_results`` only for its own running run whose token it holds. Analysts and
viewers read the names (never the values) of their teams' and the global secrets.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PINNED = "SET search_path = pg_catalog, pg_temp"
OLD_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")
STATUSES = (*OLD_STATUSES, "refused")
ANALYSTS = ("workbench_analyst",)
USERS = ("workbench_viewer", "workbench_analyst")
# (signature, granted to) of the functions this migration adds, in creation order.
FUNCTIONS = (
    ("my_user_id()", USERS),
    ("audit(text, text, jsonb)", USERS),
    ("actor()", ()),
    ("acting_team(text)", ()),
    ("visible_job(uuid)", ()),
    ("queue_run(text, jsonb, text, integer, integer, text)", ANALYSTS),
    ("cancel_run(uuid)", ANALYSTS),
    (
        "save_job(text, text, text, text, jsonb, integer, integer, integer, integer, text, "
        "integer, timestamptz, text)",
        ANALYSTS,
    ),
    ("set_job_paused(uuid, boolean, timestamptz)", ANALYSTS),
    ("delete_job(uuid)", ANALYSTS),
    ("trigger_job(uuid, text)", ANALYSTS),
    ("transfer_job(uuid, text)", ANALYSTS),
    ("owner_names(uuid[])", USERS),
    ("last_writes(text[])", USERS),
)
NAME_COLUMNS = "id, name, team_id, created_at, updated_at"
# The run whose results a user's login may write: its own, running, token presented.
OWN_RUNNING_RUN = (
    "run_id IN (SELECT r.id FROM runs r WHERE r.status = 'running' "
    "AND r.created_by = (SELECT wb_private.my_user_id()) "
    "AND r.run_token_hash = encode(sha256(convert_to(coalesce("
    "current_setting('workbench.run_token', true), ''), 'UTF8')), 'hex'))"
)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _functions(schema: str) -> list[str]:
    statements = [
        # The session's own user (active), else NULL.
        """CREATE FUNCTION wb_private.my_user_id() RETURNS uuid
           LANGUAGE sql STABLE SECURITY DEFINER @PINNED@ AS $$
             SELECT u.id FROM @S@.users u WHERE u.db_role = session_user AND u.is_active $$""",
        # An audit entry by the session's own user, of a user's act, and by no one else.
        """CREATE FUNCTION wb_private.audit(action text, target text, details jsonb DEFAULT '{}')
           RETURNS void LANGUAGE plpgsql SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             me uuid := wb_private.my_user_id();
           BEGIN
             IF me IS NULL THEN
               RAISE EXCEPTION 'only active Workbench users write the audit log'
                 USING ERRCODE = 'insufficient_privilege';
             END IF;
             IF audit.action IS NULL OR length(audit.action) NOT BETWEEN 1 AND 100 THEN
               RAISE EXCEPTION 'an audit action is 1 to 100 characters'
                 USING ERRCODE = 'invalid_parameter_value';
             END IF;
             -- Users record their own acts only: never the service's (backups, accounts),
             -- which health checks and metrics read from the log.
             IF split_part(audit.action, '.', 1) NOT IN ('run', 'job', 'secret', 'dataset',
                                                          'dashboard', 'result') THEN
               RAISE EXCEPTION 'a user''s login records only its own acts, not %', audit.action
                 USING ERRCODE = 'insufficient_privilege';
             END IF;
             INSERT INTO @S@.audit_log (id, at, actor_id, action, target, details)
             VALUES (gen_random_uuid(), now(), me, audit.action, left(audit.target, 500),
                     coalesce(audit.details, '{}'::jsonb));
           END $$""",
        # The session's user when it may act (an active analyst or admin); raises otherwise.
        """CREATE FUNCTION wb_private.actor() RETURNS uuid
           LANGUAGE plpgsql STABLE SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             me uuid;
             active boolean;
             kind text;
           BEGIN
             SELECT u.id, u.is_active, u.role INTO me, active, kind
             FROM @S@.users u WHERE u.db_role = session_user;
             IF me IS NULL THEN
               RAISE EXCEPTION 'this database login is not a Workbench account'
                 USING ERRCODE = 'invalid_authorization_specification';
             ELSIF NOT active THEN
               RAISE EXCEPTION 'your Workbench account is disabled'
                 USING ERRCODE = 'invalid_authorization_specification';
             ELSIF kind NOT IN ('analyst', 'admin') THEN
               RAISE EXCEPTION 'viewers read runs and jobs but do not create or change them'
                 USING ERRCODE = 'insufficient_privilege';
             END IF;
             RETURN me;
           END $$""",
        # The team an act is for: the named one (a member's, or any for admins), else the
        # caller's only team.
        """CREATE FUNCTION wb_private.acting_team(team_name text) RETURNS uuid
           LANGUAGE plpgsql STABLE SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             mine uuid[] := wb_private.my_team_ids();
             chosen uuid;
           BEGIN
             IF team_name IS NULL THEN
               IF cardinality(mine) = 0 AND wb_private.is_admin() THEN
                 RAISE EXCEPTION 'admins act for any team: name the team'
                   USING ERRCODE = 'invalid_parameter_value';
               ELSIF cardinality(mine) = 0 THEN
                 RAISE EXCEPTION 'you are a member of no team; an admin adds you to one'
                   USING ERRCODE = 'invalid_parameter_value';
               ELSIF cardinality(mine) > 1 THEN
                 RAISE EXCEPTION 'you are a member of % teams: name the team', cardinality(mine)
                   USING ERRCODE = 'invalid_parameter_value';
               END IF;
               RETURN mine[1];
             END IF;
             SELECT t.id INTO chosen FROM @S@.teams t
             WHERE t.name = team_name AND (t.id = ANY (mine) OR wb_private.is_admin());
             IF chosen IS NULL THEN
               RAISE EXCEPTION 'you are not a member of a team named %', team_name
                 USING ERRCODE = 'invalid_parameter_value';
             END IF;
             RETURN chosen;
           END $$""",
        # The job ``job`` when the caller may act on it (its team's member, or an admin).
        """CREATE FUNCTION wb_private.visible_job(job uuid) RETURNS @S@.jobs
           LANGUAGE plpgsql SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             picked @S@.jobs;
           BEGIN
             SELECT j.* INTO picked FROM @S@.jobs j
             WHERE j.id = job AND (wb_private.is_admin() OR j.team_id = ANY (wb_private.my_team_ids()))
             FOR UPDATE;
             IF NOT FOUND THEN
               RAISE EXCEPTION 'no such job' USING ERRCODE = 'no_data_found';
             END IF;
             RETURN picked;
           END $$""",
        """CREATE FUNCTION wb_private.queue_run(
               notebook text, parameters jsonb, team text, timeout_seconds integer,
               max_attempts integer, triggered_by text) RETURNS uuid
           LANGUAGE plpgsql SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             me uuid := wb_private.actor();
             chosen uuid := wb_private.acting_team(team);
             run uuid := gen_random_uuid();
           BEGIN
             IF queue_run.timeout_seconds IS NOT NULL AND queue_run.timeout_seconds <= 0 THEN
               RAISE EXCEPTION 'the run timeout must be a positive number of seconds'
                 USING ERRCODE = 'numeric_value_out_of_range';
             END IF;
             IF coalesce(queue_run.max_attempts, 0) NOT BETWEEN 1 AND 101 THEN
               RAISE EXCEPTION 'max_attempts must be between 1 and 101'
                 USING ERRCODE = 'numeric_value_out_of_range';
             END IF;
             INSERT INTO @S@.runs (id, notebook, parameters, status, attempt, max_attempts,
                                   triggered_by, queued_at, timeout_seconds, progress_cell,
                                   progress_total, created_by, team_id)
             VALUES (run, queue_run.notebook, coalesce(queue_run.parameters, '{}'::jsonb),
                     'queued', 0, queue_run.max_attempts,
                     coalesce(queue_run.triggered_by, 'api'), now(), queue_run.timeout_seconds,
                     0, 0, me, chosen);
             PERFORM wb_private.audit('run.queue', run::text,
                 jsonb_build_object('notebook', queue_run.notebook, 'team', chosen));
             RETURN run;
           END $$""",
        """CREATE FUNCTION wb_private.cancel_run(run uuid) RETURNS void
           LANGUAGE plpgsql SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             me uuid := wb_private.actor();
             was text;
             cell integer;
           BEGIN
             SELECT r.status, r.progress_cell INTO was, cell FROM @S@.runs r
             WHERE r.id = run AND (wb_private.is_admin() OR r.team_id = ANY (wb_private.my_team_ids()))
             FOR UPDATE;
             IF NOT FOUND THEN
               RAISE EXCEPTION 'no such run' USING ERRCODE = 'no_data_found';
             END IF;
             IF was NOT IN ('queued', 'running') THEN
               RAISE EXCEPTION 'the run already finished (%)', was
                 USING ERRCODE = 'object_not_in_prerequisite_state';
             END IF;
             UPDATE @S@.runs SET status = 'cancelled', finished_at = now(),
                 error_name = 'Cancelled',
                 error_message = 'Cancelled on request'
                     || CASE WHEN cell > 0 THEN format(' while running cell %s', cell) ELSE '' END
                     || '.'
             WHERE id = run;
             PERFORM wb_private.audit('run.cancel', run::text, '{}'::jsonb);
           END $$""",
        # Create or update the caller's team's job ``job_name``; the caller becomes its owner.
        """CREATE FUNCTION wb_private.save_job(
               job_name text, notebook text, schedule text, timezone text, parameters jsonb,
               retries integer, retry_delay_seconds integer, timeout_seconds integer,
               max_concurrency integer, catchup text, catchup_limit integer,
               next_run_at timestamptz, team text) RETURNS uuid
           LANGUAGE plpgsql SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             me uuid := wb_private.actor();
             chosen uuid := wb_private.acting_team(team);
             job uuid;
           BEGIN
             SELECT j.id INTO job FROM @S@.jobs j
             WHERE j.team_id = chosen AND j.name = job_name FOR UPDATE;
             IF job IS NULL THEN
               job := gen_random_uuid();
               INSERT INTO @S@.jobs (id, name, notebook, schedule, timezone, parameters, retries,
                   retry_delay_seconds, timeout_seconds, max_concurrency, catchup, catchup_limit,
                   paused, next_run_at, owner_id, team_id, created_at, updated_at)
               VALUES (job, job_name, save_job.notebook, save_job.schedule, save_job.timezone,
                   coalesce(save_job.parameters, '{}'::jsonb), save_job.retries,
                   save_job.retry_delay_seconds, save_job.timeout_seconds,
                   save_job.max_concurrency, save_job.catchup, save_job.catchup_limit, false,
                   save_job.next_run_at, me, chosen, now(), now());
               PERFORM wb_private.audit('job.create', job_name,
                   jsonb_build_object('team', chosen, 'notebook', save_job.notebook));
             ELSE
               UPDATE @S@.jobs j SET notebook = save_job.notebook, schedule = save_job.schedule,
                   timezone = save_job.timezone,
                   parameters = coalesce(save_job.parameters, '{}'::jsonb),
                   retries = save_job.retries, retry_delay_seconds = save_job.retry_delay_seconds,
                   timeout_seconds = save_job.timeout_seconds,
                   max_concurrency = save_job.max_concurrency, catchup = save_job.catchup,
                   catchup_limit = save_job.catchup_limit, next_run_at = save_job.next_run_at,
                   owner_id = me, updated_at = now()
               WHERE j.id = job;
               PERFORM wb_private.audit('job.update', job_name,
                   jsonb_build_object('team', chosen, 'notebook', save_job.notebook));
             END IF;
             RETURN job;
           END $$""",
        """CREATE FUNCTION wb_private.set_job_paused(
               job uuid, pause boolean, resume_at timestamptz) RETURNS void
           LANGUAGE plpgsql SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             me uuid := wb_private.actor();
             picked @S@.jobs := wb_private.visible_job(job);
           BEGIN
             UPDATE @S@.jobs j SET paused = pause,
                 next_run_at = CASE WHEN NOT pause AND resume_at IS NOT NULL
                                    THEN resume_at ELSE j.next_run_at END,
                 updated_at = now()
             WHERE j.id = picked.id;
             PERFORM wb_private.audit(CASE WHEN pause THEN 'job.pause' ELSE 'job.resume' END,
                                      picked.name, jsonb_build_object('team', picked.team_id));
           END $$""",
        """CREATE FUNCTION wb_private.delete_job(job uuid) RETURNS void
           LANGUAGE plpgsql SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             me uuid := wb_private.actor();
             picked @S@.jobs := wb_private.visible_job(job);
           BEGIN
             DELETE FROM @S@.jobs j WHERE j.id = picked.id;
             PERFORM wb_private.audit('job.delete', picked.name,
                 jsonb_build_object('team', picked.team_id));
           END $$""",
        # A run of the job now; it runs as the caller (who asked for it), in the job's team.
        """CREATE FUNCTION wb_private.trigger_job(job uuid, triggered_by text) RETURNS uuid
           LANGUAGE plpgsql SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             me uuid := wb_private.actor();
             picked @S@.jobs := wb_private.visible_job(job);
             run uuid := gen_random_uuid();
           BEGIN
             INSERT INTO @S@.runs (id, job_id, notebook, parameters, status, attempt,
                                   max_attempts, triggered_by, queued_at, timeout_seconds,
                                   progress_cell, progress_total, created_by, team_id)
             VALUES (run, picked.id, picked.notebook, picked.parameters, 'queued', 0,
                     picked.retries + 1, coalesce(trigger_job.triggered_by, 'manual'), now(),
                     picked.timeout_seconds, 0, 0, me, picked.team_id);
             PERFORM wb_private.audit('job.trigger', picked.name,
                 jsonb_build_object('team', picked.team_id, 'run', run));
             RETURN run;
           END $$""",
        # An admin gives the job to another active analyst or admin (a member of its team).
        """CREATE FUNCTION wb_private.transfer_job(job uuid, new_owner text) RETURNS void
           LANGUAGE plpgsql SECURITY DEFINER @PINNED@ AS $$
           DECLARE
             me uuid := wb_private.actor();
             picked @S@.jobs;
             target uuid;
           BEGIN
             IF NOT wb_private.is_admin() THEN
               RAISE EXCEPTION 'only admins move a job to another owner'
                 USING ERRCODE = 'insufficient_privilege';
             END IF;
             picked := wb_private.visible_job(job);
             SELECT u.id INTO target FROM @S@.users u
             WHERE u.username = new_owner AND u.is_active AND u.role IN ('analyst', 'admin')
               AND (u.role = 'admin' OR EXISTS (SELECT 1 FROM @S@.memberships m
                                              WHERE m.user_id = u.id AND m.team_id = picked.team_id));
             IF target IS NULL THEN
               RAISE EXCEPTION 'there is no active analyst or admin % in the job''s team', new_owner
                 USING ERRCODE = 'WB001';
             END IF;
             UPDATE @S@.jobs j SET owner_id = target, updated_at = now() WHERE j.id = picked.id;
             PERFORM wb_private.audit('job.transfer', picked.name,
                 jsonb_build_object('team', picked.team_id, 'from', picked.owner_id, 'to', target));
           END $$""",
        # The usernames of the owners of jobs and runs the caller sees (and of no one else).
        """CREATE FUNCTION wb_private.owner_names(ids uuid[])
           RETURNS TABLE (id uuid, username text)
           LANGUAGE sql STABLE SECURITY DEFINER @PINNED@ AS $$
             SELECT u.id, u.username::text FROM @S@.users u
             WHERE u.id = ANY (ids) AND wb_private.my_user_id() IS NOT NULL
               AND (wb_private.is_admin()
                    OR EXISTS (SELECT 1 FROM @S@.jobs j WHERE j.owner_id = u.id
                               AND j.team_id = ANY (wb_private.my_team_ids()))
                    OR EXISTS (SELECT 1 FROM @S@.runs r WHERE r.created_by = u.id
                               AND r.team_id = ANY (wb_private.my_team_ids()))) $$""",
        # The query cache's freshness: a stamp of the last wb.write of each named table the
        # login may read (when, how and how many rows: never a row), for dashboards whose
        # viewer cannot see another team's datasets row but reads some of that table's rows.
        """CREATE FUNCTION wb_private.last_writes(names text[])
           RETURNS TABLE (name text, stamp text)
           LANGUAGE sql STABLE SECURITY DEFINER @PINNED@ AS $$
             SELECT d.name::text,
                    md5(concat_ws('|', extract(epoch FROM d.last_write_at), d.last_write_mode,
                                  d.last_write_rows))
             FROM @S@.datasets d
             WHERE d.name = ANY (names)
               AND (session_user = current_user OR wb_private.my_user_id() IS NOT NULL)
               AND to_regclass(format('%I.%I', @R@, d.name)) IS NOT NULL
               AND has_table_privilege(session_user, to_regclass(format('%I.%I', @R@, d.name)),
                                       'SELECT') $$""",
    ]
    literal = "'" + schema.replace("'", "''") + "'"
    return [
        st.replace("@PINNED@", PINNED).replace("@S@", _q(schema)).replace("@R@", literal)
        for st in statements
    ]


def _postgresql_upgrade() -> None:
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one()
    for statement in _functions(schema):
        op.execute(statement)
    for signature, grantees in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION wb_private.{signature} FROM PUBLIC")
        if grantees:
            op.execute(f"GRANT EXECUTE ON FUNCTION wb_private.{signature} TO {', '.join(grantees)}")
    op.execute("GRANT EXECUTE ON FUNCTION wb_private.team_named(text) TO workbench_viewer")
    # Runs and jobs change only through the functions above (and the service).
    op.execute("REVOKE INSERT, UPDATE, DELETE ON runs, jobs FROM workbench_analyst")
    # Results: read when the run is visible; written by the run's own, running kernel.
    op.execute("DROP POLICY wb_team ON run_results")
    op.execute(
        "CREATE POLICY wb_team ON run_results FOR SELECT USING (run_id IN (SELECT id FROM runs))"
    )
    op.execute(
        f"CREATE POLICY wb_run_insert ON run_results FOR INSERT WITH CHECK ({OWN_RUNNING_RUN})"
    )
    op.execute(
        f"CREATE POLICY wb_run_update ON run_results FOR UPDATE USING ({OWN_RUNNING_RUN}) "
        f"WITH CHECK ({OWN_RUNNING_RUN})"
    )
    op.execute(f"CREATE POLICY wb_run_delete ON run_results FOR DELETE USING ({OWN_RUNNING_RUN})")
    # Secrets: the names of the team's and the global ones, never the values.
    op.execute(f"GRANT SELECT ({NAME_COLUMNS}) ON secrets TO {', '.join(USERS)}")
    op.execute(
        "CREATE POLICY wb_global ON secrets FOR SELECT "
        "USING (team_id IS NULL AND (SELECT wb_private.my_user_id()) IS NOT NULL)"
    )


def _postgresql_downgrade() -> None:
    op.execute("DROP POLICY wb_global ON secrets")
    revoke = f"REVOKE SELECT ({NAME_COLUMNS}) ON secrets FROM {', '.join(USERS)}"  # noqa: S608
    op.execute(revoke)
    for policy in ("wb_run_insert", "wb_run_update", "wb_run_delete", "wb_team"):
        op.execute(f"DROP POLICY {policy} ON run_results")
    op.execute(
        "CREATE POLICY wb_team ON run_results USING (run_id IN (SELECT id FROM runs)) "
        "WITH CHECK (run_id IN (SELECT id FROM runs))"
    )
    op.execute("GRANT INSERT, UPDATE, DELETE ON runs, jobs TO workbench_analyst")
    op.execute("REVOKE EXECUTE ON FUNCTION wb_private.team_named(text) FROM workbench_viewer")
    for signature, _ in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION wb_private.{signature}")


def _status_check(batch_op: BatchOperations, statuses: Sequence[str]) -> None:
    listed = ", ".join(f"'{s}'" for s in statuses)
    batch_op.create_check_constraint(op.f("ck_runs_run_status"), sa.text(f"status IN ({listed})"))


def _unique_per_team(table: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(op.f(f"uq_{table}_name"), type_="unique")
        batch_op.create_unique_constraint(
            op.f(f"uq_{table}_team_id_name"),
            ["team_id", "name"],
            postgresql_nulls_not_distinct=True,
        )
        batch_op.create_index(
            op.f(f"ix_{table}_name_of_no_team"),
            ["name"],
            unique=True,
            sqlite_where=sa.text("team_id IS NULL"),
            postgresql_where=sa.text("team_id IS NULL"),
        )


def _unique_by_name(table: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_index(op.f(f"ix_{table}_name_of_no_team"))
        batch_op.drop_constraint(op.f(f"uq_{table}_team_id_name"), type_="unique")
        batch_op.create_unique_constraint(op.f(f"uq_{table}_name"), ["name"])


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_token_hash", sa.Text(), nullable=True))
        batch_op.drop_constraint(op.f("ck_runs_run_status"), type_="check")
        _status_check(batch_op, STATUSES)
    for table in ("jobs", "secrets"):
        _unique_per_team(table)
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_downgrade()
    for table in ("jobs", "secrets"):
        _unique_by_name(table)
    op.execute("UPDATE runs SET status = 'failed' WHERE status = 'refused'")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_runs_run_status"), type_="check")
        _status_check(batch_op, OLD_STATUSES)
        batch_op.drop_column("run_token_hash")
