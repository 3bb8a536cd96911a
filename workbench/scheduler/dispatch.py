"""Dispatch: hand queued runs to an executor within the global and per-job limits.

A dispatched run stays ``queued`` until a worker claims it (``execute_run`` moves it to
``running``); meanwhile its ``worker`` column says ``dispatched:<executor>`` and
``heartbeat_at`` when. A dispatch that no worker took up within ``redispatch_after`` (a lost
broker message, a crashed pool) is sent again; claiming is conditional, so a duplicate
message is harmless. Several schedulers on PostgreSQL serialise dispatch with an advisory
lock, so the limits hold across all of them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select, text

from workbench.db.models import Job, Run, RunStatus
from workbench.db.types import utcnow
from workbench.runs.records import mark_dispatched

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["DISPATCHED_PREFIX", "dispatch_runs"]

DISPATCHED_PREFIX = "dispatched:"
_DISPATCH_LOCK = 0x5742_4450  # "WBDP"


def dispatch_runs(
    wb: Workbench,
    send: Callable[[uuid.UUID], None],
    *,
    executor: str,
    capacity: int,
    max_running: int,
    redispatch_after: timedelta = timedelta(seconds=60),
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Send up to ``capacity`` runnable runs to ``send``; returns the ids sent, oldest first."""
    if capacity <= 0:
        return []
    now = now or utcnow()
    stale = now - redispatch_after
    dispatched = Run.worker.startswith(DISPATCHED_PREFIX)
    active = or_(
        Run.status == RunStatus.RUNNING,
        and_(Run.status == RunStatus.QUEUED, dispatched, Run.heartbeat_at >= stale),
    )
    sent: list[uuid.UUID] = []
    with wb.engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _DISPATCH_LOCK})
        per_job = Counter(
            dict(
                conn.execute(
                    select(Run.job_id, func.count()).where(active).group_by(Run.job_id)
                ).all()
            )
        )
        running_total = sum(per_job.values())
        room = min(capacity, max_running - running_total)
        if room <= 0:
            return []
        candidates = conn.execute(
            select(Run.id, Run.job_id, Job.max_concurrency)
            .outerjoin(Job, Job.id == Run.job_id)
            .where(
                Run.status == RunStatus.QUEUED,
                or_(Run.not_before.is_(None), Run.not_before <= now),
                or_(Run.worker.is_(None), and_(dispatched, Run.heartbeat_at < stale)),
            )
            .order_by(Run.queued_at)
            .limit(max(room * 4, 20))
        ).all()
        chosen: list[uuid.UUID] = []
        for run_id, job_id, limit in candidates:
            if len(chosen) >= room:
                break
            if job_id is not None and per_job[job_id] >= (limit or 1):
                continue
            per_job[job_id] += 1
            chosen.append(run_id)
        if chosen:
            mark_dispatched(conn, chosen, worker=DISPATCHED_PREFIX + executor, now=now)
    for run_id in chosen:
        send(run_id)
        sent.append(run_id)
    return sent
