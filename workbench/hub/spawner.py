"""Each analyst's JupyterLab server as a local process of their own system user.

:class:`WorkbenchSpawner` (``c.JupyterHub.spawner_class = "workbench"``) is JupyterHub's
``LocalProcessSpawner`` with the system user named by a template (``wb-{username}``, say), so
hub names need not be system names; the hub runs as root to switch to it. The server then
cannot open the hub's files (its state, the secret key file) nor another analyst's login file,
and starts JupyterLab with the Workbench server extension through `workbench hub singleuser`
(``jupyterhub-singleuser`` once the server's seat is checked).
"""

from __future__ import annotations

import pwd
import sys
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Unicode, default

__all__ = ["WorkbenchSpawner"]


class WorkbenchSpawner(LocalProcessSpawner):  # type: ignore[misc]
    """``LocalProcessSpawner`` running the server as :attr:`system_user`."""

    system_user_template = Unicode(
        "{username}",
        config=True,
        help="The system user an analyst's server runs as; {username} is their hub name.",
    )

    @default("cmd")
    def _cmd(self) -> list[str]:
        # `workbench hub singleuser` of the hub's own environment, whatever the servers' PATH:
        # it refuses the master key and the service's login, then starts jupyterhub-singleuser.
        workbench = str(Path(sys.executable).with_name("workbench"))
        return [workbench, "hub", "singleuser"]

    @default("args")
    def _args(self) -> list[str]:
        # As `workbench lab`: no calls out of the analyst's seat (news feed, update check).
        return [
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]

    @default("default_url")
    def _default_url(self) -> str:
        return "/lab"

    @property
    def system_user(self) -> str:
        """The system account of this server (see :attr:`system_user_template`)."""
        return str(self.system_user_template.format(username=self.user.name))

    def make_preexec_fn(self, name: str) -> Any:
        return set_user_setuid(self.system_user)

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        account = pwd.getpwnam(self.system_user)
        env["USER"] = account.pw_name
        if account.pw_dir:
            env["HOME"] = account.pw_dir
        if account.pw_shell:
            env["SHELL"] = account.pw_shell
        return env
