"""``wb.jobs``: register and manage notebooks that run on a cron schedule or on demand.

These are the job functions, for Python callers and the command line alike. Each takes an
optional ``workbench=`` (default: the default workbench) for code that manages its own
connection; the job's definition and its checks are :class:`~workbench.scheduler.jobs.JobSpec`.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.app import resolve
from workbench.db.models import AuditEntry, CatchUp, Job
from workbench.db.types import utcnow
from workbench.runs.records import queue_job_run
from workbench.scheduler.cron import next_slot
from workbench.scheduler.errors import JobNotFoundError
from workbench.scheduler.jobs import JobSpec, checked_parameters, coerce_catchup, seconds

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["delete", "get", "list_jobs", "pause", "register", "resume", "trigger"]


def register(
    name: str,
    notebook: str,
    *,
    schedule: str | None = None,
    timezone: str = "UTC",
    parameters: dict[str, Any] | None = None,
    retries: int = 0,
    retry_delay: timedelta | float = timedelta(minutes=1),
    timeout: timedelta | float | None = None,
    max_concurrency: int = 1,
    catchup: CatchUp | str = CatchUp.LATEST,
    catchup_limit: int = 100,
    now: datetime | None = None,
    workbench: Workbench | None = None,
) -> Job:
    """Create or update the job ``name``; its next run is computed from ``now``.

    ``parameters`` are checked against the notebook's typed parameter schema now, with the
    errors `workbench run` gives, so a job cannot be registered to fail at every run; the job
    stores the notebook's absolute path and the typed values. Each option is described by
    `workbench jobs add --help`.
    """
    spec = JobSpec(
        name=name,
        notebook=notebook,
        schedule=schedule,
        timezone=timezone,
        parameters=dict(parameters or {}),
        retries=retries,
        retry_delay=seconds(retry_delay),
        timeout=None if timeout is None else seconds(timeout),
        max_concurrency=max_concurrency,
        catchup=coerce_catchup(catchup),
        catchup_limit=catchup_limit,
    )
    spec.validate()
    notebook, values = checked_parameters(spec.notebook, spec.parameters or {})
    spec = replace(spec, notebook=notebook, parameters=values)
    now = now or utcnow()
    with resolve(workbench).session() as session, session.begin():
        job = session.scalar(select(Job).where(Job.name == name))
        created = job is None
        if job is None:
            job = Job(name=name)
            session.add(job)
        job.notebook = spec.notebook
        job.schedule = spec.schedule
        job.timezone = spec.timezone
        job.parameters = spec.parameters or {}
        job.retries = spec.retries
        job.retry_delay_seconds = int(spec.retry_delay.total_seconds())
        job.timeout_seconds = None if spec.timeout is None else int(spec.timeout.total_seconds())
        job.max_concurrency = spec.max_concurrency
        job.catchup = spec.catchup
        job.catchup_limit = spec.catchup_limit
        job.next_run_at = next_slot(spec.schedule, spec.timezone, now) if spec.schedule else None
        session.add(
            AuditEntry(action="job.create" if created else "job.update", target=name, details={})
        )
    return job


def _job(session: Session, name: str) -> Job:
    """The job called ``name``, or JobNotFoundError saying how to list the jobs."""
    job = session.scalar(select(Job).where(Job.name == name))
    if job is None:
        raise JobNotFoundError(f"No job named {name!r}; `workbench jobs list` shows the jobs.")
    return job


def get(name: str, *, workbench: Workbench | None = None) -> Job:
    """The job called ``name``."""
    with resolve(workbench).session() as session:
        return _job(session, name)


def list_jobs(*, workbench: Workbench | None = None) -> list[Job]:
    """Every job, by name."""
    with resolve(workbench).session() as session:
        return list(session.scalars(select(Job).order_by(Job.name)))


def _set_paused(name: str, paused: bool, now: datetime | None, workbench: Workbench | None) -> Job:
    with resolve(workbench).session() as session, session.begin():
        job = _job(session, name)
        job.paused = paused
        if not paused and job.schedule:
            # Resuming starts from now: slots missed while paused are not runs to catch up.
            job.next_run_at = next_slot(job.schedule, job.timezone, now or utcnow())
        session.add(AuditEntry(action="job.pause" if paused else "job.resume", target=name))
    return job


def pause(name: str, *, workbench: Workbench | None = None) -> Job:
    """Stop scheduling the job (runs already queued still run)."""
    return _set_paused(name, True, None, workbench)


def resume(name: str, *, now: datetime | None = None, workbench: Workbench | None = None) -> Job:
    """Schedule the job again from ``now`` on (slots missed while paused are not caught up)."""
    return _set_paused(name, False, now, workbench)


def delete(name: str, *, workbench: Workbench | None = None) -> None:
    """Delete the job; its past runs stay (their job link is cleared)."""
    with resolve(workbench).session() as session, session.begin():
        job = _job(session, name)
        session.delete(job)
        session.add(AuditEntry(action="job.delete", target=name))


def trigger(
    name: str, *, triggered_by: str = "manual", workbench: Workbench | None = None
) -> uuid.UUID:
    """Queue a run of the job now, outside its schedule; returns the run id."""
    wb = resolve(workbench)
    with wb.session() as session, session.begin():
        return queue_job_run(wb, session, _job(session, name), triggered_by=triggered_by)
