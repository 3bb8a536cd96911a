"""Errors of operations: backups, their verification and restores."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError

__all__ = [
    "BackupError",
    "BackupNotFoundError",
    "BackupToolError",
    "BackupVerificationError",
    "DatabaseNotReadyError",
    "HealthPortError",
    "RestoreError",
    "RestoreTargetNotEmptyError",
]


class BackupError(WorkbenchError):
    """The backup could not be made or read; see docs/operations.md, 'Backups'."""


class BackupNotFoundError(BackupError):
    """There is no Workbench backup there; `workbench backup list` shows the backups."""


class BackupToolError(BackupError):
    """pg_dump or pg_restore failed or is missing; install the server's PostgreSQL client."""


class BackupVerificationError(BackupError):
    """The backup failed verification and may not restore; make a new one and verify it."""


class RestoreTargetNotEmptyError(BackupError):
    """The restore target is not empty; choose an empty one, or pass --force to replace it."""


class RestoreError(BackupError):
    """The restore did not complete; fix the cause named above, then restore again with --force."""


class DatabaseNotReadyError(WorkbenchError):
    """The database did not answer at the newest migration in time; check it, or wait longer."""


class HealthPortError(WorkbenchError):
    """The health endpoints cannot listen on that address; choose another --metrics-port."""
