"""Errors of the dashboards server and its sign-in."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError


class NoDashboardsError(WorkbenchError):
    """No dashboard folder exists; create ./dashboards or $WORKBENCH_HOME/dashboards."""


class InvalidViewerError(WorkbenchError):
    """This dashboard was not opened through `workbench dashboards serve`; sign in there."""


class SignInThrottledError(WorkbenchError):
    """Too many failed sign-ins came from your address; wait a few minutes and try again."""

    def __init__(self, message: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds until this address may try again
