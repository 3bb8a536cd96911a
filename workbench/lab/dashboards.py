"""The dashboards route of the API: the dashboards of the server's ``dashboards/`` folder, for
JupyterLab's launcher tiles.

Each tile opens the dashboard on the dashboards server when its address is configured
(``WORKBENCH_DASHBOARDS_URL``: stakeholders' view, the analyst signs in there as a viewer
would), and otherwise opens the notebook itself. Only names, titles and descriptions leave:
nothing of the dashboards server's sign-in.
"""

from __future__ import annotations

from urllib.parse import quote

import tornado.web

from workbench.dashboards.catalog import list_dashboards
from workbench.lab.handlers import WorkbenchHandler

__all__ = ["DASHBOARD_ROUTES", "FOLDER"]

#: Where an analyst's project keeps its dashboards, relative to the server's folder.
FOLDER = "dashboards"


class DashboardsHandler(WorkbenchHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        root = self.root
        folder = (root / FOLDER).resolve()
        found = list_dashboards(folder) if folder.is_dir() and folder.is_relative_to(root) else []
        base = self.workbench.settings.dashboards_url
        if base and not base.endswith("/"):
            base += "/"
        self.reply(
            {
                "dashboards_url": base,
                "dashboards": [
                    {
                        "name": d.name,
                        "title": d.title,
                        "description": d.description,
                        "path": f"{FOLDER}/{d.name}",
                        "url": f"{base}voila/render/{quote(d.name)}" if base else None,
                    }
                    for d in found
                ],
            }
        )


DASHBOARD_ROUTES: list[tuple[str, type[WorkbenchHandler]]] = [("/dashboards", DashboardsHandler)]
