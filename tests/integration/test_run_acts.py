"""Runs and jobs belong to a user and a team (real PostgreSQL, team mode).

From an analyst's own login the acts go through the database's checked functions: their
team's runs and jobs work, another team's are not found, a viewer reads and creates nothing,
an admin acts for any team, and every act is audited. Plain SQL from an analyst's login cannot
create, queue, re-queue or re-point a run or a job. The service names the owner. No notebook
is executed: queuing and reading the records is what is checked here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from tests.cli import run_cli
from tests.integration.test_rls_policies import World, world  # noqa: F401 (fixture)
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.db.identity_connect import user_database_url
from workbench.db.models import AuditEntry, Job, RunStatus, Team
from workbench.runs import api as runs
from workbench.runs.errors import (
    AccountDisabledError,
    OwnerError,
    OwnerRequiredError,
    RunNotFoundError,
    RunPermissionError,
    RunStateError,
    TeamChoiceError,
)
from workbench.scheduler import api as jobs
from workbench.scheduler.errors import JobNotFoundError, JobPermissionError

NOTEBOOK = str(Path(__file__).parents[1] / "notebooks" / "trivial.ipynb")
SERVICE_NOTEBOOK = str(
    Path(__file__).parents[2] / "workbench" / "ops" / "backup" / "notebooks" / "backup.ipynb"
)


def _url(w: World, name: str) -> str:
    url = user_database_url(w.settings, w.users[name], w.url)
    return url.render_as_string(hide_password=False)


@pytest.fixture
def benches(world: World) -> Iterator[dict[str, Workbench]]:  # noqa: F811
    """Each user's own Workbench: their login, no service rights."""
    made = {name: Workbench(world.settings, _url(world, name)) for name in world.users}
    yield made
    for bench in made.values():
        bench.close()


def _team_name(w: World, team: uuid.UUID) -> str:
    with w.bench.session() as session:
        return str(session.scalar(select(Team.name).where(Team.id == team)))


def _audit(w: World, action: str, actor: str | None = None) -> list[AuditEntry]:
    with w.bench.session() as session:
        query = select(AuditEntry).where(AuditEntry.action == action)
        if actor is not None:
            query = query.where(AuditEntry.actor_id == w.users[actor].id)
        return list(session.scalars(query))


# -- plain SQL from an analyst's login --------------------------------------------------------


def test_plain_sql_from_an_analyst_cannot_create_queue_or_repoint_runs_and_jobs(
    world: World,  # noqa: F811
) -> None:
    team_a = _team_name(world, world.team_a)
    alice = world.users["alice"]
    run_id = runs.queue_run(NOTEBOOK, owner=alice.username, workbench=world.bench)
    runs.cancel(run_id, workbench=world.bench)
    job = jobs.register(
        "nightly", NOTEBOOK, owner=alice.username, team=team_a, workbench=world.bench
    )
    attempts = [
        "INSERT INTO runs (id, notebook, parameters, status, attempt, max_attempts, "
        "triggered_by, queued_at, progress_cell, progress_total, created_by, team_id) VALUES "
        f"(gen_random_uuid(), '/tmp/x.ipynb', '{{}}', 'queued', 0, 1, 'sql', now(), 0, 0, "
        f"'{alice.id}', '{world.team_a}')",
        "INSERT INTO jobs (id, name, notebook, timezone, parameters, retries, "
        "retry_delay_seconds, max_concurrency, catchup, catchup_limit, paused, created_at, "
        f"updated_at, team_id) VALUES (gen_random_uuid(), 'forged', '/tmp/x.ipynb', 'UTC', "
        f"'{{}}', 0, 60, 1, 'latest', 100, false, now(), now(), '{world.team_a}')",
        f"UPDATE runs SET status = 'queued' WHERE id = '{run_id}'",
        f"UPDATE runs SET notebook = '/tmp/evil.ipynb' WHERE id = '{run_id}'",
        f"UPDATE runs SET output_uri = '/' WHERE id = '{run_id}'",
        f"UPDATE runs SET created_by = '{world.users['bob'].id}' WHERE id = '{run_id}'",
        f"UPDATE runs SET team_id = '{world.team_b}' WHERE id = '{run_id}'",
        f"DELETE FROM runs WHERE id = '{run_id}'",
        f"UPDATE jobs SET notebook = '/tmp/evil.ipynb' WHERE id = '{job.id}'",
        f"UPDATE jobs SET owner_id = '{world.users['bob'].id}' WHERE id = '{job.id}'",
        f"DELETE FROM jobs WHERE id = '{job.id}'",
        "INSERT INTO audit_log (id, at, action, details) "
        "VALUES (gen_random_uuid(), now(), 'forged', '{}')",
        "SELECT wb_private.actor()",
        # The audit function records the user's own acts, never the service's.
        "SELECT wb_private.audit('backup.verified', 'forged', '{}')",
        "SELECT wb_private.audit('user.create', 'forged', '{}')",
        f"SELECT wb_private.visible_job('{job.id}')",
        "SELECT value_encrypted FROM secrets",
    ]
    with psycopg.connect(world.psycopg_url("alice"), autocommit=True) as conn:
        for statement in attempts:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # Results only from the run's own kernel while it runs (this one is cancelled).
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO run_results (id, run_id, name, kind, created_at) "
                "VALUES (gen_random_uuid(), %s, 'x', 'json', now())",
                [run_id],
            )
        conn.execute("SELECT wb_private.audit('run.note', 'mine', '{}')")
    [note] = _audit(world, "run.note")
    assert (note.actor_id, note.target) == (alice.id, "mine")
    assert _audit(world, "backup.verified") == _audit(world, "user.create", "alice") == []
    run = runs.show(run_id, workbench=world.bench)
    assert (run.status, run.notebook, run.created_by) == (RunStatus.CANCELLED, NOTEBOOK, alice.id)
    assert jobs.get("nightly", workbench=world.bench).notebook == NOTEBOOK


# -- runs from the users' own logins ----------------------------------------------------------


def test_runs_from_the_users_own_logins(world: World, benches: dict[str, Workbench]) -> None:  # noqa: F811
    alice, bob, vera, root = (benches[n] for n in ("alice", "bob", "vera", "root"))
    mine = runs.queue_run(NOTEBOOK, {"x": 3}, triggered_by="cli", workbench=alice)
    run = runs.show(mine, workbench=alice)
    assert (run.created_by, run.team_id, run.status) == (
        world.users["alice"].id,
        world.team_a,
        RunStatus.QUEUED,
    )
    assert run.parameters == {"x": 3}
    [entry] = _audit(world, "run.queue", "alice")
    assert entry.target == str(mine)
    theirs = runs.queue_run(NOTEBOOK, workbench=bob)

    # Another team's run is exactly as missing as a run that does not exist.
    missing = uuid.uuid4()
    with pytest.raises(RunNotFoundError) as absent:
        runs.show(missing, workbench=bob)
    with pytest.raises(RunNotFoundError) as foreign:
        runs.show(mine, workbench=bob)
    assert str(foreign.value) == str(absent.value).replace(str(missing), str(mine))
    with pytest.raises(RunNotFoundError):
        runs.cancel(mine, workbench=bob)
    assert [r.id for r in runs.runs(workbench=bob)] == [theirs]
    assert [r.id for r in runs.runs(workbench=alice)] == [mine]

    # A viewer reads the team's runs and creates or cancels nothing.
    assert runs.show(mine, workbench=vera).id == mine
    assert [r.id for r in runs.runs(workbench=vera)] == [mine]
    with pytest.raises(RunPermissionError, match="refused"):
        runs.queue_run(NOTEBOOK, workbench=vera)
    with pytest.raises(RunPermissionError, match="refused"):
        runs.cancel(mine, workbench=vera)

    cancelled = runs.cancel(mine, workbench=alice)
    assert cancelled.status == RunStatus.CANCELLED
    assert [e.target for e in _audit(world, "run.cancel", "alice")] == [str(mine)]

    # An admin of no team names the team, and acts on any team's run.
    with pytest.raises(TeamChoiceError, match="name the team"):
        runs.queue_run(NOTEBOOK, workbench=root)
    by_admin = runs.queue_run(NOTEBOOK, team=_team_name(world, world.team_b), workbench=root)
    assert runs.show(by_admin, workbench=bob).created_by == world.users["root"].id
    assert runs.cancel(theirs, workbench=root).status == RunStatus.CANCELLED
    with pytest.raises(TeamChoiceError, match="not a member"):
        runs.queue_run(NOTEBOOK, team=_team_name(world, world.team_b), workbench=alice)
    with pytest.raises(RunPermissionError, match="owner="):
        runs.queue_run(NOTEBOOK, owner="someone", workbench=alice)


def test_a_disabled_account_is_refused_with_a_clear_error(
    world: World,  # noqa: F811
    benches: dict[str, Workbench],
) -> None:
    alice = benches["alice"]
    run_id = runs.queue_run(NOTEBOOK, workbench=alice)
    accounts.disable_user(world.users["alice"].username, workbench=world.bench)
    # A pooled connection: the function refuses, and the policies show nothing any more.
    with pytest.raises(AccountDisabledError, match="refused: your Workbench account is disabled"):
        runs.queue_run(NOTEBOOK, workbench=alice)
    with pytest.raises(RunNotFoundError):
        runs.cancel(run_id, workbench=alice)
    alice.close()
    # A new connection: the login itself is refused.
    with pytest.raises(AccountDisabledError, match="login is disabled"):
        runs.runs(workbench=alice)
    assert runs.show(run_id, workbench=world.bench).status == RunStatus.QUEUED


# -- jobs from the users' own logins ----------------------------------------------------------


def test_jobs_from_the_users_own_logins(world: World, benches: dict[str, Workbench]) -> None:  # noqa: F811
    alice, bob, vera, root = (benches[n] for n in ("alice", "bob", "vera", "root"))
    team_a, team_b = _team_name(world, world.team_a), _team_name(world, world.team_b)
    job = jobs.register(
        "nightly", NOTEBOOK, schedule="0 6 * * *", parameters={"x": 2}, workbench=alice
    )
    assert (job.owner_id, job.team_id, job.parameters) == (
        world.users["alice"].id,
        world.team_a,
        {"x": 2},
    )
    assert job.next_run_at is not None
    with pytest.raises(JobPermissionError, match="owner= saves a job for another user"):
        jobs.register("theirs", NOTEBOOK, owner=world.users["bob"].username, workbench=alice)
    # Names are unique per team: B's job of the same name is another job, and leaks nothing.
    other = jobs.register("nightly", NOTEBOOK, team=team_b, workbench=bob)
    assert other.id != job.id
    jobs.register("only-b", NOTEBOOK, workbench=bob)
    assert [(j.name, j.team_id) for j in jobs.list_jobs(workbench=alice)] == [
        ("nightly", world.team_a)
    ]
    assert jobs.owner_names(jobs.list_jobs(workbench=alice), workbench=alice) == {
        world.users["alice"].id: world.users["alice"].username
    }
    for act in (jobs.pause, jobs.resume, jobs.trigger, jobs.delete, jobs.get):
        with pytest.raises(JobNotFoundError, match="No job named 'only-b'"):
            act("only-b", workbench=alice)

    assert jobs.pause("nightly", workbench=alice).paused
    assert jobs.pause("nightly", workbench=bob).id == other.id  # bob's own job
    resumed = jobs.resume("nightly", workbench=alice)
    assert not resumed.paused and resumed.next_run_at is not None
    run_id = jobs.trigger("nightly", workbench=alice)
    run = runs.show(run_id, workbench=alice)
    assert (run.job_id, run.created_by, run.team_id) == (
        job.id,
        world.users["alice"].id,
        world.team_a,
    )
    assert jobs.get("nightly", workbench=bob).id == other.id

    # A viewer reads the team's jobs, changes nothing.
    assert [j.id for j in jobs.list_jobs(workbench=vera)] == [job.id]
    for act in (jobs.pause, jobs.trigger, jobs.delete):
        with pytest.raises(JobPermissionError, match="refused"):
            act("nightly", workbench=vera)
    with pytest.raises(JobPermissionError, match="refused"):
        jobs.register("viewer-job", NOTEBOOK, workbench=vera)

    # Moving a job is an admin act; the admin sees every team's jobs.
    with pytest.raises(JobPermissionError, match="only admins"):
        jobs.transfer("nightly", world.users["bob"].username, workbench=alice)
    with pytest.raises(TeamChoiceError, match="Several teams"):
        jobs.get("nightly", workbench=root)
    assert jobs.pause("nightly", team=team_b, workbench=root).id == other.id
    moved = jobs.transfer("nightly", world.users["root"].username, team=team_a, workbench=root)
    assert moved.owner_id == world.users["root"].id
    jobs.delete("nightly", workbench=alice)
    assert [j.id for j in jobs.list_jobs(workbench=alice)] == []

    for action, actor, count in [
        ("job.create", "alice", 1),
        ("job.pause", "alice", 1),
        ("job.resume", "alice", 1),
        ("job.trigger", "alice", 1),
        ("job.delete", "alice", 1),
        ("job.create", "bob", 2),
        ("job.pause", "root", 1),
        ("job.transfer", "root", 1),
    ]:
        assert len(_audit(world, action, actor)) == count, (action, actor)


# -- the service in team mode -----------------------------------------------------------------


def test_the_service_names_the_owner_in_team_mode(world: World) -> None:  # noqa: F811
    service = world.bench
    alice, vera, root = (world.users[n].username for n in ("alice", "vera", "root"))
    team_b = _team_name(world, world.team_b)
    with pytest.raises(OwnerRequiredError, match="owner="):
        runs.queue_run(NOTEBOOK, workbench=service)
    with pytest.raises(OwnerRequiredError, match="owner="):
        jobs.register("nightly", NOTEBOOK, workbench=service)
    with pytest.raises(OwnerError, match="viewer"):
        runs.queue_run(NOTEBOOK, owner=vera, workbench=service)
    with pytest.raises(TeamChoiceError, match="name the team"):
        runs.queue_run(NOTEBOOK, owner=root, workbench=service)
    with pytest.raises(TeamChoiceError, match="not a member"):
        runs.queue_run(NOTEBOOK, owner=alice, team=team_b, workbench=service)

    run = runs.show(runs.queue_run(NOTEBOOK, owner=alice, workbench=service), workbench=service)
    assert (run.created_by, run.team_id) == (world.users["alice"].id, world.team_a)
    by_admin = runs.queue_run(NOTEBOOK, owner=root, team=team_b, workbench=service)
    assert runs.show(by_admin, workbench=service).team_id == world.team_b
    job = jobs.register("nightly", NOTEBOOK, owner=alice, workbench=service)
    assert (job.owner_id, job.team_id) == (world.users["alice"].id, world.team_a)
    triggered = runs.show(jobs.trigger("nightly", workbench=service), workbench=service)
    assert triggered.created_by == world.users["alice"].id
    moved = jobs.transfer("nightly", root, workbench=service)
    assert (moved.owner_id, moved.team_id) == (world.users["root"].id, world.team_a)
    # Workbench's own notebooks may be the service's, unowned.
    backup = jobs.register("backup", SERVICE_NOTEBOOK, workbench=service)
    assert (backup.owner_id, backup.team_id) == (None, None)
    assert len(_audit(world, "run.queue")) == 2
    assert {e.action for e in _audit(world, "job.transfer")} == {"job.transfer"}


# -- the command line from an analyst's environment -------------------------------------------


def test_cli_from_an_analysts_environment(world: World, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    team_a = _team_name(world, world.team_a)
    alice = {"WORKBENCH_DATABASE_URL": _url(world, "alice")}
    added = run_cli("jobs", "add", "nightly", NOTEBOOK, "--team", team_a, "-p", "x=4", env=alice)
    assert added.code == 0, added.output
    listed = run_cli("jobs", "list", env=alice)
    assert listed.code == 0, listed.output
    assert "nightly" in listed.stdout and world.users["alice"].username in listed.stdout
    triggered = run_cli("jobs", "trigger", "nightly", env=alice)
    assert triggered.code == 0, triggered.output
    shown = run_cli("runs", "list", env=alice)
    assert shown.code == 0 and "trivial.ipynb" in shown.stdout, shown.output

    bob = {"WORKBENCH_DATABASE_URL": _url(world, "bob")}
    for args in (["jobs", "pause", "nightly"], ["jobs", "show", "nightly"]):
        refused = run_cli(*args, env=bob)
        assert refused.code != 0
        assert "No job named 'nightly'" in refused.output and "Traceback" not in refused.output
    vera = {"WORKBENCH_DATABASE_URL": _url(world, "vera")}
    refused = run_cli("jobs", "add", "mine", NOTEBOOK, env=vera)
    assert refused.code != 0 and "refused" in refused.output, refused.output
    assert "Traceback" not in refused.output and "psycopg" not in refused.output

    # The service's CLI names the owner.
    service = {"WORKBENCH_DATABASE_URL": world.url}
    unowned = run_cli("jobs", "add", "svc", NOTEBOOK, env=service)
    assert unowned.code != 0 and "--owner" in unowned.output, unowned.output
    owned = run_cli(
        "jobs", "add", "svc", NOTEBOOK, "--owner", world.users["bob"].username, env=service
    )
    assert owned.code == 0, owned.output
    with world.bench.session() as session:
        job = session.scalar(select(Job).where(Job.name == "svc"))
        assert job is not None and job.team_id == world.team_b
    moved = run_cli("jobs", "transfer", "svc", "--owner", world.users["root"].username, env=service)
    assert moved.code == 0, moved.output


def test_a_users_run_is_executed_by_the_service_and_waited_for(
    world: World,  # noqa: F811
    benches: dict[str, Workbench],
) -> None:
    alice = benches["alice"]
    assert runs.executed_by_service(alice) and not runs.executed_by_service(world.bench)
    run_id = runs.queue_run(NOTEBOOK, workbench=alice)
    with pytest.raises(RunStateError, match="still queued"):
        runs.wait(run_id, pickup_timeout=0.5, workbench=alice)
    runs.cancel(run_id, workbench=world.bench)
    assert runs.wait(run_id, workbench=alice).status == RunStatus.CANCELLED
