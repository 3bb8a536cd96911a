"""`/livez` and `/readyz` of the dashboards server, reachable without signing in.

`/livez` is answered by the server's own event loop, so an answer at all means the loop turns:
it is 200 whenever it answers. `/readyz` runs the service checks
(:func:`workbench.ops.probes.service_readiness`) off the loop, and is 503 from the moment the
server is told to stop. Everyone learns ok or not and the names of failed checks;
``?verbose`` adds each check's detail for a signed-in admin only.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler

from workbench.dashboards.auth import WorkbenchIdentityProvider
from workbench.db.models import Role
from workbench.ops.health import Check
from workbench.ops.http import wants_verbose
from workbench.ops.probes import ProbeAnswer, Readiness

__all__ = ["READINESS_SETTING", "LivezHandler", "ReadyzHandler", "probe_handlers"]

#: The tornado setting that holds the server's :class:`~workbench.ops.probes.Readiness`.
READINESS_SETTING = "workbench_readiness"


class _ProbeHandler(JupyterHandler):
    def _verbose(self) -> bool:
        """``?verbose`` from a signed-in admin; anyone else gets the plain answer."""
        if not wants_verbose(self.request.query):
            return False
        provider = self.identity_provider
        if not isinstance(provider, WorkbenchIdentityProvider):  # pragma: no cover - wiring
            return False
        account = provider.account(self)
        return account is not None and account.role is Role.ADMIN

    def _reply(self, answer: ProbeAnswer) -> None:
        self.set_status(answer.status_code)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        body: dict[str, Any] = answer.body(verbose=self._verbose())
        self.finish(json.dumps(body) + "\n")


class LivezHandler(_ProbeHandler):
    """200 while the server's loop answers (a hung loop answers nothing: the probe times out)."""

    @allow_unauthenticated
    def get(self) -> None:
        self._reply(ProbeAnswer(True, [Check("loop", True, "the server's event loop answers")]))


class ReadyzHandler(_ProbeHandler):
    """200 when the database answers at the newest migration (and Redis, when configured)."""

    @allow_unauthenticated
    async def get(self) -> None:
        readiness: Readiness = self.settings[READINESS_SETTING]
        self._reply(await asyncio.to_thread(readiness.answer))


def probe_handlers(server_url: str) -> list[tuple[str, type[JupyterHandler]]]:
    """The probe routes under the server's base URL."""
    base = server_url.rstrip("/")
    return [(f"{base}/livez", LivezHandler), (f"{base}/readyz", ReadyzHandler)]
