"""The reaper: runs whose lease expired are retried while attempts remain, otherwise failed.

A worker that dies (``kill -9``, a lost machine) stops heartbeating; once its lease has
expired the run is re-queued with a backoff, or failed when it has used all its attempts.
Each change is fenced on the attempt that expired, so a late report from the dead attempt
can never overwrite what happened next.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, select, update

from workbench.db.models import Job, Run, RunStatus
from workbench.db.types import utcnow
from workbench.runs.records import retry_delay

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["ReapResult", "reap_expired", "retry_delay"]


@dataclass
class ReapResult:
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)


def reap_expired(wb: Workbench, now: datetime | None = None) -> ReapResult:
    """Re-queue or fail every running run whose lease expired before ``now``."""
    now = now or utcnow()
    result = ReapResult()
    with wb.engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        expired = conn.execute(
            select(Run.id, Run.attempt, Run.max_attempts, Run.heartbeat_at, Job.retry_delay_seconds)
            .outerjoin(Job, Job.id == Run.job_id)
            .where(Run.status == RunStatus.RUNNING, Run.lease_expires_at < now)
        ).all()
        for run_id, attempt, max_attempts, heartbeat_at, delay in expired:
            fenced = and_(
                Run.id == run_id,
                Run.attempt == attempt,
                Run.status == RunStatus.RUNNING,
                Run.lease_expires_at < now,
            )
            last = heartbeat_at.isoformat() if heartbeat_at else "never"
            message = (
                f"The worker running attempt {attempt} stopped answering (last heartbeat: {last})."
            )
            if attempt < max_attempts:
                values = {
                    "status": RunStatus.QUEUED,
                    "not_before": now + retry_delay(delay or 0, attempt),
                    "worker": None,
                    "lease_expires_at": None,
                    "error_name": "WorkerLost",
                    "error_message": message + " Retrying.",
                }
                bucket = result.requeued
            else:
                values = {
                    "status": RunStatus.FAILED,
                    "finished_at": now,
                    "lease_expires_at": None,
                    "error_name": "WorkerLost",
                    "error_message": message + " No attempts left.",
                }
                bucket = result.failed
            if conn.execute(update(Run).where(fenced).values(**values)).rowcount:
                bucket.append(run_id)
    return result
