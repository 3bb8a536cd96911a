"""One scheduler tick: turn every due slot of every job into exactly one queued run.

Exactly-once per (job, scheduled time) rests on the database, not on timing: the runs table
has a unique constraint on (job_id, scheduled_for) and the run records' writer inserts with
ON CONFLICT DO NOTHING.
On PostgreSQL job rows are claimed with FOR UPDATE SKIP LOCKED, so several schedulers share
the work without waiting on each other; on SQLite the write lock is taken up front.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import CatchUp, Job
from workbench.db.types import utcnow
from workbench.runs.records import queue_slot_once
from workbench.scheduler.cron import next_slot, slots_between

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["DEFAULT_GRACE", "TickResult", "choose_slots", "schedule_due"]

#: A slot this recent still counts as "on time" for catchup="none".
DEFAULT_GRACE = timedelta(seconds=60)
#: Upper bound on slots examined per job per tick (a minutely job down for ~70 days).
MAX_SLOTS_SCANNED = 100_000


@dataclass
class TickResult:
    jobs: int = 0
    created: list[uuid.UUID] = field(default_factory=list)
    skipped: int = 0


def choose_slots(
    policy: CatchUp, slots: list[datetime], now: datetime, grace: timedelta, limit: int
) -> list[datetime]:
    """Which due slots get a run under the job's catch-up policy (earliest first).

    ``all``: every missed slot, but at most ``limit`` (the most recent ones);
    ``latest``: only the most recent slot; ``none``: only a slot within ``grace`` of now.
    """
    if not slots:
        return []
    if policy is CatchUp.ALL:
        return slots[-limit:]
    if policy is CatchUp.LATEST:
        return slots[-1:]
    return [s for s in slots[-1:] if s >= now - grace]


def schedule_due(
    wb: Workbench,
    now: datetime | None = None,
    *,
    grace: timedelta = DEFAULT_GRACE,
    batch: int = 100,
) -> TickResult:
    """Queue runs for every job whose next run time has come; returns what was done."""
    now = now or utcnow()
    result = TickResult()
    engine = wb.engine.execution_options(sqlite_begin="IMMEDIATE")
    with Session(engine, expire_on_commit=False) as session, session.begin():
        query = (
            select(Job)
            .where(Job.paused.is_(False), Job.schedule.is_not(None), Job.next_run_at <= now)
            .order_by(Job.next_run_at)
            .limit(batch)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for job in session.scalars(query):
            if job.schedule is None or job.next_run_at is None:  # excluded by the query
                continue
            result.jobs += 1
            slots = slots_between(
                job.schedule, job.timezone, job.next_run_at, now, limit=MAX_SLOTS_SCANNED
            )
            chosen = choose_slots(job.catchup, slots, now, grace, job.catchup_limit)
            result.skipped += len(slots) - len(chosen)
            for slot in chosen:
                run_id = queue_slot_once(wb, session, job, slot, now=now)
                if run_id is not None:
                    result.created.append(run_id)
            if slots:
                job.last_scheduled_for = slots[-1]
            job.next_run_at = next_slot(job.schedule, job.timezone, max(now, job.next_run_at))
    return result
