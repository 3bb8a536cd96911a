"""Jobs: notebooks registered to run on a cron schedule or on demand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import AuditEntry, CatchUp, Job
from workbench.db.types import utcnow
from workbench.runs.records import queue_job_run
from workbench.scheduler.cron import next_slot, validate_schedule, zone
from workbench.scheduler.errors import JobError, JobNotFoundError

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = [
    "JobSpec",
    "checked_parameters",
    "delete",
    "get",
    "list_jobs",
    "pause",
    "register",
    "resume",
    "trigger",
]

MAX_CATCHUP_LIMIT = 1000


@dataclass(frozen=True)
class JobSpec:
    """A job's definition as registered, independent of its scheduling state."""

    name: str
    notebook: str
    schedule: str | None = None
    timezone: str = "UTC"
    parameters: dict[str, Any] | None = None
    retries: int = 0
    retry_delay: timedelta = timedelta(minutes=1)
    timeout: timedelta | None = None
    max_concurrency: int = 1
    catchup: CatchUp = CatchUp.LATEST
    catchup_limit: int = 100

    def validate(self) -> None:
        if not self.name or len(self.name) > 200 or not self.name.isprintable():
            raise JobError("A job name must be 1-200 printable characters.")
        if self.schedule is not None:
            validate_schedule(self.schedule, self.timezone)
        else:
            zone(self.timezone)
        if self.retries < 0 or self.retries > 100:
            raise JobError(f"retries must be between 0 and 100, not {self.retries}.")
        if self.retry_delay < timedelta(0):
            raise JobError("retry_delay must not be negative.")
        if self.timeout is not None and self.timeout <= timedelta(0):
            raise JobError("timeout must be positive (or None for no timeout).")
        if self.max_concurrency < 1:
            raise JobError("max_concurrency must be at least 1.")
        if not 1 <= self.catchup_limit <= MAX_CATCHUP_LIMIT:
            raise JobError(f"catchup_limit must be between 1 and {MAX_CATCHUP_LIMIT}.")


def _coerce_catchup(value: CatchUp | str) -> CatchUp:
    try:
        return CatchUp(value)
    except ValueError:
        choices = ", ".join(c.value for c in CatchUp)
        raise JobError(f"catchup must be one of {choices}, not {value!r}.") from None


def register(
    wb: Workbench,
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
    from_cli: bool = False,
) -> Job:
    """Create or update the job ``name``; its next run is computed from ``now``.

    ``parameters`` are checked against the notebook's typed parameter schema now, with the
    errors `workbench run` gives, so a job cannot be registered to fail at every run; the job
    stores the notebook's absolute path and the typed values. ``from_cli`` means the values are
    strings typed by a person, converted by type as `workbench run -p` does.
    """
    spec = JobSpec(
        name=name,
        notebook=notebook,
        schedule=schedule,
        timezone=timezone,
        parameters=dict(parameters or {}),
        retries=retries,
        retry_delay=_seconds(retry_delay),
        timeout=None if timeout is None else _seconds(timeout),
        max_concurrency=max_concurrency,
        catchup=_coerce_catchup(catchup),
        catchup_limit=catchup_limit,
    )
    spec.validate()
    notebook, values = checked_parameters(spec.notebook, spec.parameters or {}, from_cli=from_cli)
    spec = replace(spec, notebook=notebook, parameters=values)
    now = now or utcnow()
    with wb.session() as session, session.begin():
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


def checked_parameters(
    notebook: str, parameters: dict[str, Any], *, from_cli: bool = False
) -> tuple[str, dict[str, Any]]:
    """The notebook's absolute path and ``parameters`` validated against its schema, as JSON.

    Raises the errors `workbench run` raises: NotebookError (missing or unreadable notebook)
    and ParameterError (unknown name, wrong type, missing required parameter).
    """
    from workbench.runs.notebook import load_notebook, locate_notebook, notebook_schema
    from workbench.runs.params import ParameterSchema

    path = locate_notebook(notebook)
    values = notebook_schema(load_notebook(path)).validate(parameters, from_cli=from_cli)
    return path, ParameterSchema.to_json(values)


def _seconds(value: timedelta | float) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


def _job(session: Session, name: str) -> Job:
    """The job called ``name``, or JobNotFoundError saying how to list the jobs."""
    job = session.scalar(select(Job).where(Job.name == name))
    if job is None:
        raise JobNotFoundError(f"No job named {name!r}; `workbench jobs list` shows the jobs.")
    return job


def get(wb: Workbench, name: str) -> Job:
    with wb.session() as session:
        return _job(session, name)


def list_jobs(wb: Workbench) -> list[Job]:
    with wb.session() as session:
        return list(session.scalars(select(Job).order_by(Job.name)))


def _set_paused(wb: Workbench, name: str, paused: bool, now: datetime | None) -> Job:
    with wb.session() as session, session.begin():
        job = _job(session, name)
        job.paused = paused
        if not paused and job.schedule:
            # Resuming starts from now: slots missed while paused are not runs to catch up.
            job.next_run_at = next_slot(job.schedule, job.timezone, now or utcnow())
        session.add(AuditEntry(action="job.pause" if paused else "job.resume", target=name))
    return job


def pause(wb: Workbench, name: str) -> Job:
    return _set_paused(wb, name, True, None)


def resume(wb: Workbench, name: str, *, now: datetime | None = None) -> Job:
    return _set_paused(wb, name, False, now)


def delete(wb: Workbench, name: str) -> None:
    """Delete the job; its past runs stay (their job link is cleared)."""
    with wb.session() as session, session.begin():
        job = _job(session, name)
        session.delete(job)
        session.add(AuditEntry(action="job.delete", target=name))


def trigger(wb: Workbench, name: str, *, triggered_by: str = "manual") -> uuid.UUID:
    """Queue a run of the job now, outside its schedule; returns the run id."""
    with wb.session() as session, session.begin():
        return queue_job_run(wb, session, _job(session, name), triggered_by=triggered_by)
