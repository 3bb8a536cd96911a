"""The Jupyter server extension: Workbench's REST API inside a JupyterLab (or any Jupyter
server) process, acting as that server's own workbench (see :mod:`workbench.lab.seat`)."""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp

from workbench.db.display import LAB_BASE_URL_VARIABLE
from workbench.lab.routes import routes

__all__ = ["WorkbenchLab"]


class WorkbenchLab(ExtensionApp):
    """Adds ``/workbench/api/`` to the server; opens the workbench once, closes it on stop."""

    name = "workbench.lab"
    load_other_extensions = True

    def initialize_settings(self) -> None:
        from workbench.app import Workbench
        from workbench.core.config import load_settings
        from workbench.core.errors import WorkbenchError
        from workbench.db.failures import require_existing
        from workbench.lab.seat import check_seat

        try:
            settings = load_settings()
            require_existing(settings)  # never create an empty database by starting a server
            workbench = Workbench(settings)
        except WorkbenchError as exc:
            self._unavailable(str(exc))
            return
        try:
            seat = check_seat(workbench)
        except WorkbenchError as exc:
            workbench.close()
            self._unavailable(str(exc))
            return
        self.settings.update({"workbench": workbench, "workbench_seat": seat})
        # Kernels inherit the server's environment: a run's display links to its output here.
        base_url = self.serverapp.base_url if self.serverapp is not None else "/"
        os.environ[LAB_BASE_URL_VARIABLE] = base_url
        self.log.info("Workbench API at %sworkbench/api/ (%s database)", base_url, seat.mode)

    def _unavailable(self, reason: str) -> None:
        """The API answers 503 with ``reason`` to signed-in clients; the server runs on."""
        self.settings["workbench_unavailable"] = reason
        self.log.error("Workbench API off: %s", reason)

    def initialize_handlers(self) -> None:
        # The extension machinery puts the server's base URL in front of each pattern (a hub's
        # /user/<name>/): the patterns start at the root.
        self.handlers.extend(routes("/"))

    async def stop_extension(self) -> None:
        workbench: Any = self.settings.get("workbench")
        if workbench is not None:
            workbench.close()
