"""Errors of the dashboards server and its sign-in."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError


class NoDashboardsError(WorkbenchError):
    """No dashboard folder exists; create ./dashboards or $WORKBENCH_HOME/dashboards."""


class InvalidViewerError(WorkbenchError):
    """This dashboard was not opened through `workbench dashboards serve`; sign in there."""
