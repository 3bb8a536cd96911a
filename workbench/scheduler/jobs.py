"""A job's definition and its checks: what `wb.jobs.register` validates before it stores a job.

The job functions themselves are in :mod:`workbench.scheduler.api` (``wb.jobs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from workbench.db.models import CatchUp
from workbench.scheduler.cron import validate_schedule, zone
from workbench.scheduler.errors import JobError

__all__ = ["MAX_CATCHUP_LIMIT", "JobSpec", "checked_parameters", "coerce_catchup", "seconds"]

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


def coerce_catchup(value: CatchUp | str) -> CatchUp:
    """The catch-up policy ``value`` names, or JobError listing the policies."""
    try:
        return CatchUp(value)
    except ValueError:
        choices = ", ".join(c.value for c in CatchUp)
        raise JobError(f"catchup must be one of {choices}, not {value!r}.") from None


def checked_parameters(notebook: str, parameters: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The notebook's absolute path and ``parameters`` validated against its schema, as JSON.

    Raises the errors `workbench run` raises: NotebookError (missing or unreadable notebook)
    and ParameterError (unknown name, wrong type, missing required parameter).
    """
    from workbench.runs.notebook import load_notebook, locate_notebook, notebook_schema
    from workbench.runs.params import ParameterSchema

    path = locate_notebook(notebook)
    values = notebook_schema(load_notebook(path)).validate(parameters)
    return path, ParameterSchema.to_json(values)


def seconds(value: timedelta | float) -> timedelta:
    """A duration given as a timedelta or as a number of seconds."""
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))
