"""Errors of the analyst's seat in JupyterLab."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError


class LabError(WorkbenchError):
    """JupyterLab cannot start with Workbench as configured; see docs/lab.md."""


class ServiceLoginError(LabError):
    """In team mode JupyterLab runs with an analyst's own login, never the service's: its
    kernels would hold the master key or the login that reads every team's rows."""


class RequestError(LabError):
    """The request to the Workbench API is not valid; its message says why."""

    status = 400


class RequestNotFoundError(RequestError):
    """What the request names is not here, or this login may not see it."""

    status = 404
