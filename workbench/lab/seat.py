"""Who a JupyterLab server with Workbench acts as, and the refusal of one that would act as
the service.

A kernel runs whatever its notebook says, so it gets exactly the rights of the server that
started it (the server's environment and files). On the embedded database that is the
analyst's own workbench. In team mode it must be one analyst's own database login: a server
holding the master key (``WORKBENCH_SECRET_KEY``, its file, or ``$WORKBENCH_HOME/secret_key``)
or the service's login would hand it to every kernel, so such a server is refused before it
starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from workbench.db.engine import is_postgresql
from workbench.db.rls import is_service
from workbench.lab.errors import ServiceLoginError

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["KERNEL_ARGS", "Seat", "check_seat"]

#: Server options of every analyst's server (`workbench lab`, `workbench hub singleuser`): its
#: kernels' channels are encrypted with CurveZMQ keys the server provisions for each kernel
#: whose kernelspec supports it (ipykernel's does), not plain text on TCP ports any local user
#: can reach. (IPC sockets would do too, but their paths under a runtime folder such as
#: ``~/.local/share/jupyter/runtime`` can pass the 107-byte limit of a socket's name.)
KERNEL_ARGS = ("--KernelManager.transport_encryption=auto",)


@dataclass(frozen=True)
class Seat:
    """What the server acts as: the database's mode and, in team mode, the login's name."""

    mode: str  # "embedded" or "team"
    dialect: str
    login: str | None


def _holds_master_key(workbench: Workbench) -> bool:
    settings = workbench.settings
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return True
    return settings.secret_key_path.exists()


def check_seat(workbench: Workbench) -> Seat:
    """The server's seat; refuses (:class:`ServiceLoginError`) a team-mode server holding
    the master key or the service's database login."""
    engine = workbench.engine
    if not is_postgresql(engine):
        return Seat("embedded", engine.dialect.name, None)
    if _holds_master_key(workbench):
        raise ServiceLoginError(
            "JupyterLab would hold the master secret key (WORKBENCH_SECRET_KEY, its _FILE, or "
            f"{workbench.settings.secret_key_path}), and so would every kernel it starts. In "
            "team mode start it with your own login only: an admin writes it with `workbench "
            "users connection-url`, and you point WORKBENCH_DATABASE_URL_FILE at that file, "
            "on a machine or account without the service's key."
        )
    with engine.connect() as conn:
        if is_service(conn):
            raise ServiceLoginError(
                "WORKBENCH_DATABASE_URL is the service's login, which reads every team's rows; "
                "JupyterLab's kernels would get it. Start it with your own login (an admin "
                "writes it with `workbench users connection-url`)."
            )
        login = conn.scalar(sa.text("SELECT current_user"))
    return Seat("team", engine.dialect.name, str(login))
