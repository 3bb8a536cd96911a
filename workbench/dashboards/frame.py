"""What the server puts around every dashboard: its page template and its page header.

Workbench's template (``templates/index.html.j2``, found before Voila's own) is Voila's lab
page without the links to Font Awesome on a CDN (no dashboard uses the icons; the CSP refuses
other sites anyway), with a layout that fits from phone width up, and a marker where the page
header goes. The header (:func:`.pages.page_header`: a link to the index, the dashboard's
title, the viewer and sign-out, a form posted with the XSRF token) is written in place of the
marker for each request: a pre-heated kernel's page is rendered before anyone asks, so the
viewer cannot be in the rendered page itself. It is written by the server, never by the
page's kernel, so a dashboard cannot hide or change it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from workbench.dashboards import catalog, lockdown, pages
from workbench.dashboards.auth import WorkbenchIdentityProvider

__all__ = [
    "HEADER_MARKER",
    "TEMPLATES",
    "FramedDashboardHandler",
    "TrustNoise",
    "first_template_paths",
]

#: The folder of Workbench's page template, searched before Voila's template folders.
TEMPLATES = Path(__file__).with_name("templates")
#: Where the template wants the page header (replaced once, per request).
HEADER_MARKER = "<!-- workbench:page-header -->"


class FramedDashboardHandler(lockdown.DashboardHandler):
    """A dashboard page with the server's header for the signed-in viewer in it."""

    async def get_generator(self, path: str | None = None) -> AsyncIterator[str]:
        header: str | None = self._header(path or "")
        async for chunk in super().get_generator(path=path):
            if header is not None and HEADER_MARKER in chunk:
                chunk = chunk.replace(HEADER_MARKER, header, 1)
                header = None
            yield chunk

    def _header(self, path: str) -> str:
        provider = self.identity_provider
        account = None
        if isinstance(provider, WorkbenchIdentityProvider):
            account = provider.account(self)
        dashboard = catalog.find(Path(self.settings["workbench_dashboards_root"]), path)
        return pages.page_header(
            title=dashboard.title if dashboard is not None else "",
            username=account.username if account is not None else "",
            base_url=self.base_url,
            xsrf=self.xsrf_form_html() if account is not None else "",
        )


class TrustNoise(logging.Filter):
    """Drops jupyter_server's "Notebook ... is not trusted" warnings, logged on every load of
    a dashboard (six per page).

    Notebook trust decides whether a notebook's *stored* outputs may run their HTML and
    scripts in a notebook editor. Voila never shows stored outputs: it runs the notebook and
    marks the outputs its kernel produces trusted itself. So trust changes nothing on a
    dashboard page, and signing the notebooks would only add a signature store and a key to
    keep for a warning without meaning here.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno == logging.WARNING and record.msg == "Notebook %s is not trusted"
        )


def first_template_paths(paths: list[Any]) -> list[str]:
    """Voila's template search path with Workbench's template folder first."""
    return [str(TEMPLATES), *[str(p) for p in paths if str(p) != str(TEMPLATES)]]
