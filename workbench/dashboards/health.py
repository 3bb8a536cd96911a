"""`/livez` and `/readyz` of the dashboards server, reachable without signing in.

`/livez` is answered by the server's own event loop, so an answer at all means the loop turns:
it is 200 whenever it answers. `/readyz` runs the service checks
(:func:`workbench.ops.probes.service_readiness`) off the loop, and is 503 from the moment the
server is told to stop. Everyone learns ok or not and the names of failed checks;
``?verbose`` adds each check's detail for a signed-in admin only.

`/services` says whether a scheduler beats (a fresh heartbeat), for the service-health part of
the operations dashboard: the page's kernel has the viewer's login, which may not read the
heartbeats, so the server reads them with its own. Like `/readyz` it says only "running" or
"not running", never which host or process; it is not a readiness check (the dashboards serve
pages whether a scheduler runs or not).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler

from workbench.app import Workbench
from workbench.dashboards.auth import WorkbenchIdentityProvider
from workbench.db.models import Role, ServiceKind
from workbench.ops.health import Check
from workbench.ops.heartbeats import service_statuses, stale_after
from workbench.ops.http import wants_verbose
from workbench.ops.probes import ProbeAnswer, Readiness

__all__ = [
    "READINESS_SETTING",
    "SCHEDULER_SETTING",
    "LivezHandler",
    "ReadyzHandler",
    "SchedulerBeat",
    "ServicesHandler",
    "probe_handlers",
]

#: The tornado setting that holds the server's :class:`~workbench.ops.probes.Readiness`.
READINESS_SETTING = "workbench_readiness"
#: The tornado setting that holds the server's :class:`SchedulerBeat`.
SCHEDULER_SETTING = "workbench_scheduler_beat"
#: Seconds one reading of the heartbeats answers the `/services` requests that follow it.
BEAT_CACHE_SECONDS = 2.0


class SchedulerBeat:
    """Whether a scheduler's heartbeat is fresh, read with the server's own login and kept
    for :data:`BEAT_CACHE_SECONDS` (every operations page asks at each refresh)."""

    def __init__(self, workbench: Workbench) -> None:
        self.workbench = workbench
        self._lock = threading.Lock()
        self._read: tuple[float, bool | None] | None = None

    def beating(self) -> bool | None:
        """``True`` when a scheduler beats, ``False`` when none does, ``None`` when the
        heartbeats cannot be read (the database does not answer)."""
        with self._lock:
            if self._read is not None and time.monotonic() - self._read[0] < BEAT_CACHE_SECONDS:
                return self._read[1]
        stale = stale_after(self.workbench.settings.scheduler_poll_seconds)
        found: bool | None
        try:
            statuses = service_statuses(
                self.workbench.engine, ServiceKind.SCHEDULER, stale_seconds=stale
            )
            found = any(not s.stale for s in statuses)
        except Exception:  # a database that does not answer: unknown, and /readyz says why
            found = None
        with self._lock:
            self._read = (time.monotonic(), found)
        return found


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


class ServicesHandler(JupyterHandler):
    """``{"scheduler": "running" | "not running" | "unknown"}``: whether a scheduler beats."""

    @allow_unauthenticated
    async def get(self) -> None:
        beat: SchedulerBeat = self.settings[SCHEDULER_SETTING]
        beating = await asyncio.to_thread(beat.beating)
        state = "unknown" if beating is None else "running" if beating else "not running"
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"scheduler": state}) + "\n")


def probe_handlers(server_url: str) -> list[tuple[str, type[JupyterHandler]]]:
    """The probe routes (and `/services`) under the server's base URL."""
    base = server_url.rstrip("/")
    return [
        (f"{base}/livez", LivezHandler),
        (f"{base}/readyz", ReadyzHandler),
        (f"{base}/services", ServicesHandler),
    ]
