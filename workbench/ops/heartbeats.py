"""Service heartbeats: each service process (a scheduler, a worker) keeps one row fresh while
alive.

A process registers a row when it starts, refreshes ``heartbeat_at`` every poll and deletes the
row when it stops cleanly. A row whose heartbeat is older than the stale bound therefore means a
process that died or hung; `workbench doctor` reports it. A starting process removes the rows
left by dead processes on its own host, so a crash is reported only until the service is back.
A scheduler beats from its loop; a worker, whose main thread is busy with runs or with Celery,
beats from a :class:`BeatThread`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psutil
from sqlalchemy import Engine, delete, insert, select, update

from workbench.db.models import ServiceHeartbeat, ServiceKind
from workbench.db.types import utcnow
from workbench.ops.processes import end_leftovers

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = [
    "PROCESSES_KEY",
    "BeatThread",
    "ServiceBeat",
    "ServiceStatus",
    "beat_interval",
    "prune_dead",
    "service_statuses",
    "stale_after",
]

log = logging.getLogger(__name__)
#: The key of a heartbeat row's details listing the ``[pid, start time]`` of the processes
#: the service started (its pool workers), for the next instance to end after a crash.
PROCESSES_KEY = "processes"


def stale_after(poll_seconds: float) -> float:
    """Seconds without a heartbeat after which a service counts as stale: three missed polls,
    and never less than five seconds (a slow tick or a busy database is not a dead service)."""
    return max(5.0, 3.0 * poll_seconds)


def beat_interval(poll_seconds: float) -> float:
    """How often a beat thread writes: every poll, at most once a second, so that three
    beats always fit in :func:`stale_after` of the same poll."""
    return max(1.0, poll_seconds)


class ServiceBeat:
    """The heartbeat row of this process; ``beat()`` refreshes it, ``close()`` deletes it.

    It holds the workbench, not its engine: a workbench closed and used again gets a new
    engine, and a beat must not revive (and leak) the pool of the closed one.
    """

    def __init__(
        self,
        workbench: Workbench,
        kind: ServiceKind,
        name: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.workbench = workbench
        self.id = uuid.uuid4()
        self.kind = kind
        self.name = name
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started_at = utcnow()
        self.details: dict[str, Any] = dict(details or {})
        self._prune_dead_on_this_host()
        self.beat()

    def _prune_dead_on_this_host(self) -> None:
        prune_dead(self.workbench.engine, self.kind)

    def beat(self, details: dict[str, Any] | None = None) -> None:
        """Refresh the row (re-creating it if someone removed it)."""
        if details:
            self.details.update(details)
        now = utcnow()
        with self.workbench.engine.begin() as conn:
            updated = conn.execute(
                update(ServiceHeartbeat)
                .where(ServiceHeartbeat.id == self.id)
                .values(heartbeat_at=now, details=self.details)
            ).rowcount
            if not updated:
                conn.execute(
                    insert(ServiceHeartbeat).values(
                        id=self.id,
                        kind=self.kind,
                        name=self.name,
                        host=self.host,
                        pid=self.pid,
                        started_at=self.started_at,
                        heartbeat_at=now,
                        details=self.details,
                    )
                )

    def close(self) -> None:
        """Remove the row: a process that stopped cleanly is not a stale one."""
        with self.workbench.engine.begin() as conn:
            conn.execute(delete(ServiceHeartbeat).where(ServiceHeartbeat.id == self.id))


def prune_dead(engine: Engine, kind: ServiceKind) -> int:
    """Remove the rows of ``kind`` whose process on this host is gone; how many went.

    A process cut short (killed, or terminated by its parent) could not remove its own row.
    The processes such a row recorded under ``processes`` (PID and start time) are ended if
    they still run (:func:`workbench.ops.processes.end_leftovers`): nobody else's.
    """
    host, me = socket.gethostname(), os.getpid()
    with engine.begin() as conn:
        rows = conn.execute(
            select(ServiceHeartbeat.id, ServiceHeartbeat.pid, ServiceHeartbeat.details).where(
                ServiceHeartbeat.kind == kind, ServiceHeartbeat.host == host
            )
        ).all()
        dead = []
        for row_id, pid, details in rows:
            if pid != me and not psutil.pid_exists(pid):
                dead.append(row_id)
                # What the dead process recorded it had started, if any still runs.
                end_leftovers((details or {}).get(PROCESSES_KEY) or [])
        if dead:
            conn.execute(delete(ServiceHeartbeat).where(ServiceHeartbeat.id.in_(dead)))
    return len(dead)


class BeatThread:
    """A :class:`ServiceBeat` kept fresh from a daemon thread every ``interval`` seconds.

    For processes whose main thread cannot beat: a worker busy with a run, or Celery's loop.
    The row is written in the thread (a database that is down at start is retried, it does not
    stop the process). With ``alive``, a beat is skipped while it returns False, so a process
    whose loop hangs goes stale in `workbench doctor` as one that died does. ``close()`` stops
    the thread and removes the row.
    """

    def __init__(
        self,
        workbench: Workbench,
        kind: ServiceKind,
        name: str,
        details: dict[str, Any] | None = None,
        *,
        interval: float,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        self.workbench = workbench
        self.kind = kind
        self.name = name
        self.details = dict(details or {})
        self.interval = interval
        self.alive = alive
        self.beat: ServiceBeat | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"beat-{name}", daemon=True)

    def start(self) -> BeatThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                if self.beat is None:
                    self.beat = ServiceBeat(self.workbench, self.kind, self.name, self.details)
                elif self.alive is None or self.alive():
                    self.beat.beat()
            except Exception:  # the database is away: the next beat tries again
                log.warning("could not write the %s heartbeat", self.kind, exc_info=True)
            if self._stop.wait(self.interval):
                return

    def close(self, timeout: float = 5.0) -> None:
        """Stop beating and remove the row (left to go stale if the database does not answer)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                return
        if self.beat is not None:
            try:
                self.beat.close()
            except Exception:
                log.warning("could not remove the %s heartbeat row", self.kind, exc_info=True)
            self.beat = None


@dataclass(frozen=True)
class ServiceStatus:
    """One registered service process as health checks see it."""

    kind: str
    name: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    age_seconds: float
    stale: bool
    details: dict[str, Any]

    def describe(self) -> str:
        age = f"last heartbeat {self.age_seconds:.0f}s ago"
        return f"{self.name} on {self.host} pid {self.pid} ({age})"


def service_statuses(
    engine: Engine, kind: ServiceKind, *, stale_seconds: float, now: datetime | None = None
) -> list[ServiceStatus]:
    """Every registered process of ``kind``, oldest heartbeat first, marked stale or not."""
    now = now or utcnow()
    bound = now - timedelta(seconds=stale_seconds)
    with engine.connect() as conn:
        rows = conn.execute(
            select(ServiceHeartbeat.__table__)
            .where(ServiceHeartbeat.kind == kind)
            .order_by(ServiceHeartbeat.heartbeat_at)
        ).all()
    return [
        ServiceStatus(
            kind=str(r.kind),
            name=r.name,
            host=r.host,
            pid=r.pid,
            started_at=r.started_at,
            heartbeat_at=r.heartbeat_at,
            age_seconds=max(0.0, (now - r.heartbeat_at).total_seconds()),
            stale=r.heartbeat_at < bound,
            details=dict(r.details or {}),
        )
        for r in rows
    ]
