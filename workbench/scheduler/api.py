"""``wb.jobs``: register and manage scheduled notebooks on the default workbench.

Each function takes an optional ``workbench=`` for code that manages its own connection.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from workbench.app import resolve
from workbench.scheduler import jobs as _jobs

if TYPE_CHECKING:
    from workbench.app import Workbench
    from workbench.db.models import CatchUp, Job

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
    catchup: CatchUp | str = "latest",
    catchup_limit: int = 100,
    workbench: Workbench | None = None,
) -> Job:
    """Create or update the job ``name`` (see `workbench jobs add --help` for each option)."""
    return _jobs.register(
        resolve(workbench),
        name,
        notebook,
        schedule=schedule,
        timezone=timezone,
        parameters=parameters,
        retries=retries,
        retry_delay=retry_delay,
        timeout=timeout,
        max_concurrency=max_concurrency,
        catchup=catchup,
        catchup_limit=catchup_limit,
    )


def get(name: str, *, workbench: Workbench | None = None) -> Job:
    return _jobs.get(resolve(workbench), name)


def list_jobs(*, workbench: Workbench | None = None) -> list[Job]:
    return _jobs.list_jobs(resolve(workbench))


def pause(name: str, *, workbench: Workbench | None = None) -> Job:
    return _jobs.pause(resolve(workbench), name)


def resume(name: str, *, workbench: Workbench | None = None) -> Job:
    return _jobs.resume(resolve(workbench), name)


def trigger(name: str, *, workbench: Workbench | None = None) -> uuid.UUID:
    return _jobs.trigger(resolve(workbench), name)


def delete(name: str, *, workbench: Workbench | None = None) -> None:
    _jobs.delete(resolve(workbench), name)
