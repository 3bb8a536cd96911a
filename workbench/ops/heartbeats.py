"""Service heartbeats: each service process (today a scheduler) keeps one row fresh while alive.

A process registers a row when it starts, refreshes ``heartbeat_at`` every poll and deletes the
row when it stops cleanly. A row whose heartbeat is older than the stale bound therefore means a
process that died or hung; `workbench doctor` reports it. A starting process removes the rows
left by dead processes on its own host, so a crash is reported only until the service is back.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, insert, select, update

from workbench.db.models import ServiceHeartbeat, ServiceKind
from workbench.db.types import utcnow

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["ServiceBeat", "ServiceStatus", "service_statuses", "stale_after"]


def stale_after(poll_seconds: float) -> float:
    """Seconds without a heartbeat after which a service counts as stale: three missed polls,
    and never less than five seconds (a slow tick or a busy database is not a dead service)."""
    return max(5.0, 3.0 * poll_seconds)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        with self.workbench.engine.begin() as conn:
            rows = conn.execute(
                select(ServiceHeartbeat.id, ServiceHeartbeat.pid).where(
                    ServiceHeartbeat.kind == self.kind, ServiceHeartbeat.host == self.host
                )
            ).all()
            dead = [row_id for row_id, pid in rows if pid != self.pid and not _pid_alive(pid)]
            if dead:
                conn.execute(delete(ServiceHeartbeat).where(ServiceHeartbeat.id.in_(dead)))

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
