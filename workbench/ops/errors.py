"""Errors of operations."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError

__all__ = ["DatabaseNotReadyError", "HealthPortError"]


class DatabaseNotReadyError(WorkbenchError):
    """The database did not answer at the newest migration in time; check it, or wait longer."""


class HealthPortError(WorkbenchError):
    """The health endpoints cannot listen on that address; choose another --metrics-port."""
