"""Run records: create, claim with a lease, heartbeat, finish; fenced by attempt.

A run is claimed by moving it from ``queued`` to ``running`` in one conditional UPDATE, which
also increments ``attempt``. Every later write names that attempt and expects ``running``,
so a stale attempt, or one whose run was cancelled meanwhile, never overwrites newer state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update

from workbench.db.models import Run as RunRow
from workbench.db.models import RunStatus
from workbench.db.types import utcnow
from workbench.runs.errors import RunNotFoundError, RunStateError

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = [
    "FINISHED",
    "Run",
    "cancel_run",
    "claim_run",
    "create_run",
    "finish_run",
    "get_run",
    "heartbeat",
    "list_runs",
    "parse_run_id",
    "requeue_for_retry",
    "retry_delay",
]

FINISHED = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}
)


@dataclass(frozen=True)
class Run:
    """A snapshot of one run's record."""

    id: uuid.UUID
    notebook: str
    parameters: dict[str, Any]
    status: RunStatus
    attempt: int
    max_attempts: int
    triggered_by: str
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    kernel_started_at: datetime | None
    heartbeat_at: datetime | None
    worker: str | None
    timeout_seconds: int | None
    progress_cell: int
    progress_total: int
    error_name: str | None
    error_message: str | None
    error_cell: int | None
    output_uri: str | None
    job_id: uuid.UUID | None

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.SUCCEEDED

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @classmethod
    def from_row(cls, row: RunRow) -> Run:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


def parse_run_id(run_id: str | uuid.UUID) -> uuid.UUID:
    if isinstance(run_id, uuid.UUID):
        return run_id
    try:
        return uuid.UUID(run_id)
    except ValueError:
        raise RunNotFoundError(f"{run_id!r} is not a run id (a UUID).") from None


def create_run(
    wb: Workbench,
    notebook: str,
    parameters: dict[str, Any],
    *,
    output_base: str,
    timeout_seconds: int | None = None,
    triggered_by: str = "api",
    max_attempts: int = 1,
) -> uuid.UUID:
    """Insert a queued run; its output goes under ``output_base/<run id>``."""
    run_id = uuid.uuid4()
    row = RunRow(
        id=run_id,
        notebook=notebook,
        parameters=parameters,
        status=RunStatus.QUEUED,
        triggered_by=triggered_by,
        max_attempts=max_attempts,
        timeout_seconds=timeout_seconds,
        output_uri=f"{output_base.rstrip('/')}/{run_id}",
        queued_at=utcnow(),
        attempt=0,
        progress_cell=0,
        progress_total=0,
    )
    with wb.session() as session, session.begin():
        session.add(row)
    return run_id


def get_run(wb: Workbench, run_id: str | uuid.UUID) -> Run:
    rid = parse_run_id(run_id)
    with wb.session() as session:
        row = session.get(RunRow, rid)
        if row is None:
            raise RunNotFoundError(f"No run has the id {rid}; see `workbench runs list`.")
        return Run.from_row(row)


def list_runs(
    wb: Workbench, *, limit: int = 20, notebook: str | None = None, status: str | None = None
) -> list[Run]:
    query = select(RunRow).order_by(RunRow.queued_at.desc()).limit(limit)
    if notebook:
        query = query.where(RunRow.notebook == notebook)
    if status:
        query = query.where(RunRow.status == RunStatus(status))
    with wb.session() as session:
        return [Run.from_row(r) for r in session.scalars(query)]


def _fenced(run_id: uuid.UUID, attempt: int) -> Any:
    return (
        update(RunRow)
        .where(RunRow.id == run_id)
        .where(RunRow.attempt == attempt)
        .where(RunRow.status == RunStatus.RUNNING)
    )


def claim_run(wb: Workbench, run_id: uuid.UUID, *, worker: str, lease_seconds: float) -> int | None:
    """Move a queued run to running; the new attempt number, or None if not claimable."""
    now = utcnow()
    with wb.engine.begin() as conn:
        claimed = conn.execute(
            update(RunRow)
            .where(RunRow.id == run_id)
            .where(RunRow.status == RunStatus.QUEUED)
            .where(or_(RunRow.not_before.is_(None), RunRow.not_before <= now))
            .values(
                status=RunStatus.RUNNING,
                attempt=RunRow.attempt + 1,
                started_at=now,
                finished_at=None,
                heartbeat_at=now,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                worker=worker,
                progress_cell=0,
                error_name=None,
                error_message=None,
                error_cell=None,
            )
        ).rowcount
        if not claimed:
            return None
        attempt = conn.scalar(select(RunRow.attempt).where(RunRow.id == run_id))
    return int(attempt or 0)


def heartbeat(
    wb: Workbench, run_id: uuid.UUID, attempt: int, *, lease_seconds: float, **values: Any
) -> RunStatus | None:
    """Extend the lease and store ``values`` (progress); the run's status if it changed."""
    now = utcnow()
    with wb.engine.begin() as conn:
        done = conn.execute(
            _fenced(run_id, attempt).values(
                heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds), **values
            )
        ).rowcount
        if done:
            return None
        status = conn.scalar(select(RunRow.status).where(RunRow.id == run_id))
    return RunStatus(status) if status is not None else RunStatus.CANCELLED


def finish_run(
    wb: Workbench, run_id: uuid.UUID, attempt: int, status: RunStatus, **values: Any
) -> bool:
    """Record the outcome of ``attempt``; False if the run was cancelled or taken over.

    A cancelled run still gets its output location and progress from the attempt that was
    running when it was cancelled, but keeps its status and message.
    """
    now = utcnow()
    with wb.engine.begin() as conn:
        done = conn.execute(
            _fenced(run_id, attempt).values(
                status=status, finished_at=now, heartbeat_at=now, lease_expires_at=None, **values
            )
        ).rowcount
        if done:
            return True
        keep = {k: v for k, v in values.items() if k in {"progress_cell", "progress_total"}}
        conn.execute(
            update(RunRow)
            .where(RunRow.id == run_id)
            .where(RunRow.attempt == attempt)
            .where(RunRow.status == RunStatus.CANCELLED)
            .values(lease_expires_at=None, **keep)
        )
    return False


MAX_BACKOFF = timedelta(hours=1)


def retry_delay(base_seconds: float, attempt: int) -> timedelta:
    """Exponential backoff: base, 2*base, 4*base ... after attempts 1, 2, 3, capped at 1 h."""
    return min(timedelta(seconds=base_seconds * 2 ** max(attempt - 1, 0)), MAX_BACKOFF)


def requeue_for_retry(
    wb: Workbench, run_id: uuid.UUID, attempt: int, not_before: datetime, **values: Any
) -> bool:
    """Put a failed ``attempt`` back in the queue until ``not_before``; False if fenced off.

    The error of the failed attempt stays on the record, so the next attempt's reader can
    see why the run is being retried.
    """
    with wb.engine.begin() as conn:
        done = conn.execute(
            _fenced(run_id, attempt).values(
                status=RunStatus.QUEUED,
                not_before=not_before,
                worker=None,
                lease_expires_at=None,
                **values,
            )
        ).rowcount
    return bool(done)


def cancel_run(wb: Workbench, run_id: str | uuid.UUID) -> Run:
    """Cancel a queued or running run; a running one is stopped by its runner within a second."""
    run = get_run(wb, run_id)
    if run.finished:
        raise RunStateError(f"Run {run.id} already finished ({run.status.value}).")
    where_cell = f" while running cell {run.progress_cell}" if run.progress_cell else ""
    with wb.engine.begin() as conn:
        conn.execute(
            update(RunRow)
            .where(RunRow.id == run.id)
            .where(RunRow.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
            .values(
                status=RunStatus.CANCELLED,
                finished_at=utcnow(),
                error_name="Cancelled",
                error_message=f"Cancelled on request{where_cell}.",
            )
        )
    return get_run(wb, run.id)
