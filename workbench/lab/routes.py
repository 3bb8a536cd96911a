"""Every route of the API, under the server's base URL (``/workbench/api/...``)."""

from __future__ import annotations

from workbench.lab.dashboards import DASHBOARD_ROUTES
from workbench.lab.handlers import API, BASIC_ROUTES, WorkbenchHandler
from workbench.lab.jobs import JOB_ROUTES
from workbench.lab.runs import RUN_ROUTES

__all__ = ["API", "routes"]


def routes(base_url: str) -> list[tuple[str, type[WorkbenchHandler]]]:
    """The API's URL patterns under the server's ``base_url``."""
    prefix = base_url.rstrip("/") + API
    return [
        (prefix + pattern, handler)
        for pattern, handler in (*BASIC_ROUTES, *RUN_ROUTES, *JOB_ROUTES, *DASHBOARD_ROUTES)
    ]
