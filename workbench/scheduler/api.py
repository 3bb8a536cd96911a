"""``wb.jobs``: register and manage notebooks that run on a cron schedule or on demand.

These are the job functions, for Python callers and the command line alike. Each takes an
optional ``workbench=`` (default: the default workbench) for code that manages its own
connection; the job's definition and its checks are :class:`~workbench.scheduler.jobs.JobSpec`.

In team mode a job belongs to a user and a team, and its names are unique per team. From a
user's own login every change goes through the database's checked functions
(:mod:`workbench.runs.acts`): their teams' jobs only, another team's job is not found. The
service names the owner (``owner=``); moving a job to another owner is an admin act.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from workbench.app import resolve
from workbench.core.errors import WorkbenchError
from workbench.db.models import AuditEntry, CatchUp, Job, Run, Team
from workbench.db.types import utcnow
from workbench.runs import acts
from workbench.runs.errors import TeamChoiceError
from workbench.runs.records import announce_queued, queue_job_run
from workbench.runs.secrets import check_references, referenced_names, team_for_new_run
from workbench.scheduler.cron import next_slot
from workbench.scheduler.errors import JobNotFoundError, JobPermissionError
from workbench.scheduler.jobs import JobSpec, checked_parameters, coerce_catchup, seconds

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = [
    "delete",
    "get",
    "list_jobs",
    "owner_names",
    "pause",
    "register",
    "resume",
    "transfer",
    "trigger",
]


def register(
    name: str,
    notebook: str,
    *,
    schedule: str | None = None,
    timezone: str | None = None,
    parameters: dict[str, Any] | None = None,
    retries: int | None = None,
    retry_delay: timedelta | float | None = None,
    timeout: timedelta | float | None = None,
    max_concurrency: int | None = None,
    catchup: CatchUp | str | None = None,
    catchup_limit: int | None = None,
    now: datetime | None = None,
    owner: str | None = None,
    team: str | None = None,
    workbench: Workbench | None = None,
) -> Job:
    """Create or update the job ``name`` of its team; its next run is computed from ``now``.

    Saving an existing job again changes only what is given: an option left None keeps the
    job's current value (a new job gets UTC, no parameters, no retries, a minute's retry
    delay, no timeout, one run at a time, catch-up ``latest`` of at most 100). ``schedule``
    is the exception: None makes the job on demand. ``timeout=0`` removes a timeout.

    ``parameters`` are checked against the notebook's typed parameter schema now, with the
    errors `workbench run` gives, so a job cannot be registered to fail at every run; the job
    stores the notebook's absolute path and the typed values. Each option is described by
    `workbench jobs add --help`. From a user's own login the job is theirs, in ``team``
    (needed when they have several); whoever saves a job becomes its owner. The service
    names the ``owner`` (required in team mode but for Workbench's own notebooks).
    """
    wb = resolve(workbench)
    current = _current_job(wb, name, notebook, owner=owner, team=team)
    delay = _given(retry_delay, current, "retry_delay_seconds", 60)
    limit = _given(timeout, current, "timeout_seconds", None)
    spec = JobSpec(
        name=name,
        notebook=notebook,
        schedule=schedule,
        timezone=_given(timezone, current, "timezone", "UTC"),
        parameters=dict(_given(parameters, current, "parameters", {}) or {}),
        retries=_given(retries, current, "retries", 0),
        retry_delay=seconds(delay),
        timeout=None if limit is None or seconds(limit) == timedelta(0) else seconds(limit),
        max_concurrency=_given(max_concurrency, current, "max_concurrency", 1),
        catchup=coerce_catchup(_given(catchup, current, "catchup", CatchUp.LATEST)),
        catchup_limit=_given(catchup_limit, current, "catchup_limit", 100),
    )
    spec.validate()
    notebook, values = checked_parameters(spec.notebook, spec.parameters or {})
    spec = replace(spec, notebook=notebook, parameters=values)
    if referenced_names(values):  # each must be a secret the job's team may use, now
        job_team = team_for_new_run(wb, spec.notebook, owner=owner, team=team)
        check_references(wb, values, team_id=job_team)
    now = now or utcnow()
    next_run_at = next_slot(spec.schedule, spec.timezone, now) if spec.schedule else None
    doing = f"Saving job {name!r}"
    with _refusals(doing, name), wb.session(writing=True) as session, session.begin():
        connection = session.connection()
        if acts.acts_as_user(connection):
            acts.refuse_owner_from_a_login(
                owner, act="saves a job", yours="the jobs you save", error=JobPermissionError
            )
            job_id = acts.call(
                connection,
                "wb_private.save_job(:name, :notebook, :schedule, :tz, CAST(:params AS jsonb), "
                ":retries, :delay, :timeout, :concurrency, :catchup, :limit, :next, :team)",
                {
                    "name": name, "notebook": spec.notebook, "schedule": spec.schedule,
                    "tz": spec.timezone, "params": json.dumps(spec.parameters or {}),
                    "retries": spec.retries, "delay": int(spec.retry_delay.total_seconds()),
                    "timeout": _whole_seconds(spec.timeout),
                    "concurrency": spec.max_concurrency, "catchup": spec.catchup.value,
                    "limit": spec.catchup_limit, "next": next_run_at, "team": team,
                },
                doing=doing,
                not_found=_not_found(name),
                denied=JobPermissionError,
            )  # fmt: skip
            saved = session.get(Job, uuid.UUID(str(job_id)))
            assert saved is not None  # noqa: S101 (the function just saved it, visibly)
            return saved
        who = acts.resolve_owner(session, owner, team, notebook=spec.notebook, what=f"Job {name!r}")
        team_id = who.team_id if who else None
        job = session.scalar(
            select(Job).where(
                Job.name == name,
                Job.team_id.is_(None) if team_id is None else Job.team_id == team_id,
            )
        )
        created = job is None
        if job is None:
            job = Job(name=name, team_id=team_id)
            session.add(job)
        job.notebook = spec.notebook
        job.schedule = spec.schedule
        job.timezone = spec.timezone
        job.parameters = spec.parameters or {}
        job.retries = spec.retries
        job.retry_delay_seconds = int(spec.retry_delay.total_seconds())
        job.timeout_seconds = _whole_seconds(spec.timeout)
        job.max_concurrency = spec.max_concurrency
        job.catchup = spec.catchup
        job.catchup_limit = spec.catchup_limit
        job.next_run_at = next_run_at
        job.owner_id = who.user_id if who else None
        details = {"owner": who.username if who else None, "team": who.team if who else None}
        session.add(
            AuditEntry(
                action="job.create" if created else "job.update", target=name, details=details
            )
        )
    return job


def _given(value: Any, job: Job | None, field: str, default: Any) -> Any:
    """``value`` when given; else the saved job's ``field``, or ``default`` for a new job."""
    if value is not None:
        return value
    return default if job is None else getattr(job, field)


def _current_job(
    wb: Workbench, name: str, notebook: str, *, owner: str | None, team: str | None
) -> Job | None:
    """The job that saving ``name`` would update, as this login sees it; None for a new one.

    From a user's own login: their visible job of that name (in ``team`` if given; none
    when several teams have one, which the save then refuses). The service: the job of that
    name in the owner's team. A refusal here is left to the save itself, which says it.
    """
    try:
        with wb.session() as session:
            query = select(Job).where(Job.name == name)
            if acts.acts_as_user(session.connection()):
                if team is not None:
                    query = query.join(Team, Team.id == Job.team_id).where(Team.name == team)
                found = list(session.scalars(query.limit(2)))
                return found[0] if len(found) == 1 else None
            who = acts.resolve_owner(session, owner, team, notebook=notebook, what=f"Job {name!r}")
            team_id = who.team_id if who else None
            return session.scalar(
                query.where(Job.team_id.is_(None) if team_id is None else Job.team_id == team_id)
            )
    except (WorkbenchError, DBAPIError):
        return None


def _whole_seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def _not_found(name: str) -> JobNotFoundError:
    # The same words for a missing job and another team's, so names do not leak.
    return JobNotFoundError(f"No job named {name!r}; `workbench jobs list` shows the jobs.")


def _refusals(doing: str, name: str | None = None) -> AbstractContextManager[None]:
    """Database refusals of ``doing`` (a disabled login, no grant) as WorkbenchErrors."""
    missing = _not_found(name) if name else JobNotFoundError(f"{doing}: no such job.")
    return acts.refusals(doing, not_found=missing, denied=JobPermissionError)


def _job(session: Session, name: str, team: str | None = None, *, teamless: bool = False) -> Job:
    """The job ``name`` the login sees (of ``team`` when given), or JobNotFoundError.

    Names are unique per team: when several of the login's teams have a job of that name,
    TeamChoiceError asks for the team. ``teamless`` also finds a job of no team named so.
    """
    query = select(Job).where(Job.name == name)
    if team is not None:
        team_id = acts.team_id_named(session.connection(), team)
        if team_id is None:
            raise _not_found(name)
        query = query.where(
            or_(Job.team_id == team_id, Job.team_id.is_(None))
            if teamless
            else Job.team_id == team_id
        )
    found = list(session.scalars(query.limit(2)))
    if not found:
        raise _not_found(name)
    if len(found) > 1:
        raise TeamChoiceError(
            f"Several teams have a job named {name!r}: name the team with team='NAME' "
            "(CLI: --team NAME)."
        )
    return found[0]


def get(name: str, *, team: str | None = None, workbench: Workbench | None = None) -> Job:
    """The job called ``name`` (of ``team``, when several teams have one so named)."""
    with _refusals(f"Reading job {name!r}", name), resolve(workbench).session() as session:
        return _job(session, name, team)


def list_jobs(*, workbench: Workbench | None = None) -> list[Job]:
    """Every job the login sees (a user: their teams'), by name."""
    with _refusals("Listing jobs"), resolve(workbench).session() as session:
        return list(session.scalars(select(Job).order_by(Job.name, Job.team_id)))


def last_runs(jobs: Iterable[Job], *, workbench: Workbench | None = None) -> dict[uuid.UUID, Run]:
    """The newest run of each of ``jobs`` the login may see, by job id (one query)."""
    ids = [job.id for job in jobs]
    if not ids:
        return {}
    newest = (
        select(
            Run.id,
            func.row_number()
            .over(partition_by=Run.job_id, order_by=(Run.queued_at.desc(), Run.id.desc()))
            .label("rank"),
        )
        .where(Run.job_id.in_(ids))
        .subquery()
    )
    query = select(Run).join(newest, newest.c.id == Run.id).where(newest.c.rank == 1)
    with _refusals("Reading the jobs' last runs"), resolve(workbench).session() as session:
        return {run.job_id: run for run in session.scalars(query) if run.job_id is not None}


def owner_names(jobs: Iterable[Job], *, workbench: Workbench | None = None) -> dict[uuid.UUID, str]:
    """The usernames of the owners of ``jobs``, by user id (those the login may see)."""
    with _refusals("Reading job owners"), resolve(workbench).engine.connect() as connection:
        return acts.owner_names(connection, (job.owner_id for job in jobs))


def _act(
    session: Session, expression: str, parameters: dict[str, Any], doing: str, name: str
) -> Any:
    """A job act through the database's checked function, from a user's own login."""
    return acts.call(
        session.connection(),
        expression,
        parameters,
        doing=doing,
        not_found=_not_found(name),
        denied=JobPermissionError,
    )


def _set_paused(
    name: str, paused: bool, now: datetime | None, team: str | None, workbench: Workbench | None
) -> Job:
    verb = "Pausing" if paused else "Resuming"
    doing = f"{verb} job {name!r}"
    with (
        _refusals(doing, name),
        resolve(workbench).session(writing=True) as session,
        session.begin(),
    ):
        job = _job(session, name, team)
        # Resuming starts from now: slots missed while paused are not runs to catch up.
        next_run_at = (
            next_slot(job.schedule, job.timezone, now or utcnow())
            if not paused and job.schedule
            else None
        )
        if acts.acts_as_user(session.connection()):
            _act(
                session,
                "wb_private.set_job_paused(:job, :paused, :next)",
                {"job": job.id, "paused": paused, "next": next_run_at},
                doing,
                name,
            )
            session.refresh(job)
            return job
        job.paused = paused
        if next_run_at is not None:
            job.next_run_at = next_run_at
        session.add(AuditEntry(action="job.pause" if paused else "job.resume", target=name))
    return job


def pause(name: str, *, team: str | None = None, workbench: Workbench | None = None) -> Job:
    """Stop scheduling the job (runs already queued still run)."""
    return _set_paused(name, True, None, team, workbench)


def resume(
    name: str,
    *,
    now: datetime | None = None,
    team: str | None = None,
    workbench: Workbench | None = None,
) -> Job:
    """Schedule the job again from ``now`` on (slots missed while paused are not caught up)."""
    return _set_paused(name, False, now, team, workbench)


def delete(name: str, *, team: str | None = None, workbench: Workbench | None = None) -> None:
    """Delete the job; its past runs stay (their job link is cleared)."""
    doing = f"Deleting job {name!r}"
    with (
        _refusals(doing, name),
        resolve(workbench).session(writing=True) as session,
        session.begin(),
    ):
        job = _job(session, name, team)
        if acts.acts_as_user(session.connection()):
            _act(
                session,
                "wb_private.delete_job(:job)",
                {"job": job.id},
                doing,
                name,
            )
            return
        session.delete(job)
        session.add(AuditEntry(action="job.delete", target=name))


def trigger(
    name: str,
    *,
    triggered_by: str = "manual",
    team: str | None = None,
    workbench: Workbench | None = None,
) -> uuid.UUID:
    """Queue a run of the job now, outside its schedule; returns the run id.

    From a user's own login the run is theirs (they asked for it); the service's run belongs
    to the job's owner.
    """
    wb = resolve(workbench)
    doing = f"Triggering job {name!r}"
    with _refusals(doing, name), wb.session(writing=True) as session, session.begin():
        job = _job(session, name, team)
        if not acts.acts_as_user(session.connection()):
            session.add(AuditEntry(action="job.trigger", target=name))
            return queue_job_run(wb, session, job, triggered_by=triggered_by)
        run_id = uuid.UUID(
            str(
                _act(
                    session,
                    "wb_private.trigger_job(:job, :by)",
                    {"job": job.id, "by": triggered_by},
                    doing,
                    name,
                )
            )
        )
    announce_queued(wb, [run_id])
    return run_id


def transfer(
    name: str, owner: str, *, team: str | None = None, workbench: Workbench | None = None
) -> Job:
    """Give the job ``name`` to ``owner`` (a username): an admin act, audited.

    The new owner is an active analyst or admin of the job's team. ``team`` names the job's
    team when several have a job of that name; a job of no team (from before jobs had owners)
    moves to ``team``, or to the owner's only team. The service or an admin's own login only.
    """
    doing = f"Moving job {name!r} to {owner!r}"
    with (
        _refusals(doing, name),
        resolve(workbench).session(writing=True) as session,
        session.begin(),
    ):
        connection = session.connection()
        if acts.acts_as_user(connection):
            job = _job(session, name, team)
            _act(
                session,
                "wb_private.transfer_job(:job, :owner)",
                {"job": job.id, "owner": owner},
                doing,
                name,
            )
            session.refresh(job)
            return job
        job = _job(session, name, team, teamless=True)
        team_name = team
        if job.team_id is not None:
            team_name = session.scalar(select(Team.name).where(Team.id == job.team_id))
        who = acts.resolve_owner(
            session, owner, team_name, notebook=job.notebook, what=f"Job {name!r}"
        )
        assert who is not None  # noqa: S101 (an owner was named)
        before = job.owner_id
        job.owner_id = who.user_id
        job.team_id = who.team_id or job.team_id
        session.add(
            AuditEntry(
                action="job.transfer",
                target=name,
                details={"from": str(before) if before else None, "to": who.username},
            )
        )
    return job
