"""The reaper: runs whose lease expired are retried while attempts remain, otherwise failed.

A worker that dies (``kill -9``, a lost machine) stops heartbeating; once its lease has
expired the run is re-queued with a backoff, or failed when it has used all its attempts.
Each change is fenced on the attempt that expired (see workbench.runs.records), so a late
report from the dead attempt can never overwrite what happened next. A run failed here is
announced like any finished run (``run_failed``, the notifiers).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import Job, Run, RunStatus
from workbench.db.types import utcnow
from workbench.ops import metrics
from workbench.runs.execute import announce
from workbench.runs.records import expire_lease, get_run, retry_delay

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
    triggers: dict[uuid.UUID, str] = {}
    engine = wb.engine.execution_options(sqlite_begin="IMMEDIATE")
    with Session(engine, expire_on_commit=False) as session, session.begin():
        expired = session.execute(
            select(
                Run.id,
                Run.attempt,
                Run.max_attempts,
                Run.heartbeat_at,
                Job.retry_delay_seconds,
                Run.triggered_by,
            )
            .outerjoin(Job, Job.id == Run.job_id)
            .where(Run.status == RunStatus.RUNNING, Run.lease_expires_at < now)
        ).all()
        for run_id, attempt, max_attempts, heartbeat_at, delay, triggered_by in expired:
            triggers[run_id] = triggered_by
            last = heartbeat_at.isoformat() if heartbeat_at else "never"
            message = (
                f"The worker running attempt {attempt} stopped answering (last heartbeat: {last})."
            )
            retry = attempt < max_attempts
            done = expire_lease(
                wb, session, run_id, attempt, now=now,
                retry_at=now + retry_delay(delay or 0, attempt) if retry else None,
                error_message=message + (" Retrying." if retry else " No attempts left."),
            )  # fmt: skip
            if done:
                (result.requeued if retry else result.failed).append(run_id)
    # Counted once the transaction committed.
    metrics.lease_expired("requeued", len(result.requeued))
    metrics.lease_expired("failed", len(result.failed))
    for run_id in result.failed:
        metrics.run_finished(RunStatus.FAILED.value, triggers[run_id])
        # A run failed here, not by its worker: the hooks and notifiers hear of it from here.
        announce(wb, get_run(wb, run_id))
    return result
