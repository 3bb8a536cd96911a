"""Failures of notebook runs a user can fix, each a :class:`WorkbenchError`."""

from __future__ import annotations

from workbench.errors import WorkbenchError

__all__ = [
    "NotebookError",
    "ParameterError",
    "RunNotFoundError",
    "RunStateError",
    "SecretNotFoundError",
]


class ParameterError(WorkbenchError):
    """A run parameter is unknown or has the wrong type; see `workbench notebooks params NB`."""

    exit_code = 2


class NotebookError(WorkbenchError):
    """The notebook cannot be read or its parameters cell cannot be understood."""

    exit_code = 2


class SecretNotFoundError(WorkbenchError):
    """A `secret:NAME` parameter names no stored secret; add it with `workbench secrets set`."""


class RunNotFoundError(WorkbenchError):
    """No run has this id; list runs with `workbench runs list`."""


class RunStateError(WorkbenchError):
    """The run is not in a state that allows this; check it with `workbench runs show ID`."""
