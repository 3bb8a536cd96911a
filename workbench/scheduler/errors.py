"""Errors of jobs, schedules and the scheduler service."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError


class ScheduleError(WorkbenchError):
    """The schedule or time zone is not valid."""

    exit_code = 2


class JobError(WorkbenchError):
    """The job definition is not valid."""

    exit_code = 2


class JobNotFoundError(WorkbenchError):
    """No job has that name; `workbench jobs list` shows the registered ones."""


class SchedulerAlreadyRunningError(WorkbenchError):
    """Another scheduler already runs on this embedded database; stop it first."""


class JobPermissionError(WorkbenchError):
    """Refused: viewers read jobs; analysts and admins change their teams' jobs; see --help."""
