"""Run records: the one writer of the ``runs`` table; every change of a run's state is here.

The fencing rule: a run is claimed by moving it from ``queued`` to ``running`` in one
conditional UPDATE, which also increments ``attempt``. Every later write of that attempt (a
heartbeat, its outcome, a retry, an expired lease) names the attempt and expects ``running``
(see :func:`_fenced`), so a stale attempt, or one whose run was cancelled meanwhile, never
overwrites newer state.

Writes that belong to a caller's transaction (the scheduler tick's slots, a job trigger, the
reaper, the dispatcher) take that session or connection; the others open their own.

Who may queue or cancel a run: in team mode a user's own login goes through the database's
checked functions (:mod:`workbench.runs.acts`), and the service names the run's owner; either
way the run records ``created_by`` and ``team_id`` and the act is audited.

Every run that becomes ``queued`` (a new run, a job's run, a schedule slot, a retry) is
announced to the plugins' ``run_queued`` hook once its transaction has committed; a run
queued inside a caller's session is announced when that session commits, never on rollback.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from workbench.db import display
from workbench.db.models import AuditEntry, Job, RunStatus, User
from workbench.db.models import Run as RunRow
from workbench.db.types import utcnow
from workbench.ops import metrics
from workbench.plugins.events import RunEvent
from workbench.runs import acts
from workbench.runs.errors import RunNotFoundError, RunPermissionError, RunStateError
from workbench.runs.lookup import run_id_in

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

    from workbench.app import Workbench

__all__ = [
    "FINISHED",
    "Run",
    "announce_queued",
    "cancel_run",
    "claim_run",
    "create_run",
    "expire_lease",
    "finish_run",
    "get_run",
    "heartbeat",
    "job_name_of",
    "job_run_values",
    "list_runs",
    "mark_dispatched",
    "parse_run_id",
    "queue_job_run",
    "queue_slot_once",
    "requeue_for_retry",
    "retry_delay",
    "run_event",
    "run_owner",
]

log = logging.getLogger(__name__)

FINISHED = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.TIMED_OUT,
        RunStatus.REFUSED,
    }
)


@dataclass(frozen=True)
class Run:
    """A snapshot of one run's record, shown as its database row is (:mod:`.db.display`)."""

    __repr__ = display.run_repr
    _repr_html_ = display.run_repr_html

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
    created_by: uuid.UUID | None
    team_id: uuid.UUID | None

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


# -- reading ----------------------------------------------------------------------------------


def parse_run_id(run_id: str | uuid.UUID) -> uuid.UUID:
    if isinstance(run_id, uuid.UUID):
        return run_id
    try:
        return uuid.UUID(run_id)
    except ValueError:
        raise RunNotFoundError(f"{run_id!r} is not a run id (a UUID).") from None


def _not_found(run_id: uuid.UUID) -> RunNotFoundError:
    # The same words for a missing run and another team's, so ids do not leak.
    return RunNotFoundError(f"No run has the id {run_id}; see `workbench runs list`.")


def get_run(wb: Workbench, run_id: str | uuid.UUID) -> Run:
    """The run ``run_id`` (a full id or a unique prefix, see :mod:`workbench.runs.lookup`);
    a run the login may not see (another team's) is not found."""
    with _refusals(f"Reading run {run_id}"), wb.session() as session:
        rid = run_id_in(session, run_id)
        row = session.get(RunRow, rid)
        if row is None:
            raise _not_found(rid)
        return Run.from_row(row)


def _refusals(doing: str, run_id: uuid.UUID | None = None) -> AbstractContextManager[None]:
    """Database refusals of ``doing`` (a disabled login, no grant) as WorkbenchErrors."""
    missing = _not_found(run_id) if run_id else RunNotFoundError(f"{doing}: no such run.")
    return acts.refusals(doing, not_found=missing, denied=RunPermissionError)


def run_owner(wb: Workbench, run: Run) -> User | None:
    """The service side: the user ``run`` belongs to (its ``created_by``), or None."""
    if run.created_by is None:
        return None
    with wb.session() as session:
        return session.get(User, run.created_by)


def list_runs(
    wb: Workbench, *, limit: int = 20, notebook: str | None = None, status: str | None = None
) -> list[Run]:
    query = select(RunRow).order_by(RunRow.queued_at.desc()).limit(limit)
    if notebook:
        query = query.where(RunRow.notebook == notebook)
    if status:
        query = query.where(RunRow.status == RunStatus(status))
    with _refusals("Listing runs"), wb.session() as session:
        return [Run.from_row(r) for r in session.scalars(query)]


def job_name_of(wb: Workbench, run: Run) -> str | None:
    """The name of the job ``run`` belongs to; None for a run of no (or a deleted) job."""
    if run.job_id is None:
        return None
    with wb.session() as session:
        return session.scalar(select(Job.name).where(Job.id == run.job_id))


def run_event(run: Run, *, job_name: str | None = None) -> RunEvent:
    """What the lifecycle hooks and notifiers are told about ``run``."""
    return RunEvent(
        run_id=run.id, notebook=run.notebook, status=run.status.value, attempt=run.attempt,
        job_name=job_name, triggered_by=run.triggered_by, parameters=dict(run.parameters),
        queued_at=run.queued_at, started_at=run.started_at, finished_at=run.finished_at,
        error_name=run.error_name, error_message=run.error_message, output_uri=run.output_uri,
    )  # fmt: skip


# -- announcing queued runs -------------------------------------------------------------------

_PENDING = "workbench.runs.records.queued"


def announce_queued(wb: Workbench, run_ids: Iterable[uuid.UUID]) -> None:
    """Call ``run_queued`` for each of ``run_ids`` (oldest first); never fails the caller.

    Call it only once the runs' transaction committed: a plugin must not hear of a run that a
    rollback then removes. The writers below do so themselves.
    """
    ids = list(run_ids)
    if not ids:
        return
    try:
        with wb.session() as session:
            rows = session.execute(
                select(RunRow, Job.name)
                .outerjoin(Job, Job.id == RunRow.job_id)
                .where(RunRow.id.in_(ids))
                .order_by(RunRow.queued_at, RunRow.scheduled_for)
            ).all()
            events = [run_event(Run.from_row(row), job_name=name) for row, name in rows]
        for queued in events:
            wb.plugins.call("run_queued", event=queued)
    except Exception:  # a plugin's failure is logged by the plugin manager, not fatal here
        log.exception("announcing queued runs %s failed", ", ".join(map(str, ids)))


def _announce_on_commit(wb: Workbench, session: Session, run_id: uuid.UUID) -> None:
    """Announce ``run_id`` once ``session``'s transaction commits; forget it on rollback."""
    pending: list[uuid.UUID] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        queued = pending

        def committed(_session: Session) -> None:
            ids = list(queued)
            queued.clear()
            announce_queued(wb, ids)

        def rolled_back(_session: Session) -> None:
            queued.clear()

        event.listen(session, "after_commit", committed)
        event.listen(session, "after_rollback", rolled_back)
    pending.append(run_id)


# -- queuing ----------------------------------------------------------------------------------


def create_run(
    wb: Workbench,
    notebook: str,
    parameters: dict[str, Any],
    *,
    output_base: str,
    timeout_seconds: int | None = None,
    triggered_by: str = "api",
    max_attempts: int = 1,
    owner: str | None = None,
    team: str | None = None,
) -> uuid.UUID:
    """Record a queued run of ``notebook`` for its owner and team; its id.

    From a user's own login the database queues it (``wb_private.queue_run``) as that user,
    in ``team`` (default: their only team). The service (and SQLite) inserts it itself, for
    ``owner`` (a username, required in team mode but for Workbench's own notebooks) in
    ``team``; its output goes under ``output_base/<run id>``.
    """
    doing = f"Queuing a run of {notebook}"
    with _refusals(doing), wb.session(writing=True) as session, session.begin():
        connection = session.connection()
        if acts.acts_as_user(connection):
            acts.refuse_owner_from_a_login(
                owner, act="queues a run", yours="the runs you queue", error=RunPermissionError
            )
            run_id = acts.call(
                connection,
                "wb_private.queue_run(:notebook, CAST(:parameters AS jsonb), :team, :timeout, "
                ":attempts, :by)",
                {
                    "notebook": notebook,
                    "parameters": json.dumps(parameters),
                    "team": team,
                    "timeout": timeout_seconds,
                    "attempts": max_attempts,
                    "by": triggered_by,
                },
                doing=doing,
                not_found=RunNotFoundError(f"{doing}: no such run."),
                denied=RunPermissionError,
            )
            run_id = uuid.UUID(str(run_id))
        else:
            run_id = _insert_run(
                session, notebook, parameters, output_base=output_base,
                timeout_seconds=timeout_seconds, triggered_by=triggered_by,
                max_attempts=max_attempts, owner=owner, team=team,
            )  # fmt: skip
    announce_queued(wb, [run_id])
    return run_id


def _insert_run(
    session: Session,
    notebook: str,
    parameters: dict[str, Any],
    *,
    output_base: str,
    timeout_seconds: int | None,
    triggered_by: str,
    max_attempts: int,
    owner: str | None,
    team: str | None,
) -> uuid.UUID:
    """The service's (and SQLite's) insert of a queued run, with its owner and audit entry."""
    who = acts.resolve_owner(session, owner, team, notebook=notebook, what="A run")
    run_id = uuid.uuid4()
    values = {
        "id": run_id,
        "notebook": notebook,
        "parameters": parameters,
        "status": RunStatus.QUEUED,
        "triggered_by": triggered_by,
        "max_attempts": max_attempts,
        "timeout_seconds": timeout_seconds,
        "output_uri": f"{output_base.rstrip('/')}/{run_id}",
        "queued_at": utcnow(),
        "attempt": 0,
        "progress_cell": 0,
        "progress_total": 0,
        "created_by": who.user_id if who else None,
        "team_id": who.team_id if who else None,
    }
    session.execute(insert(RunRow).values(**values))
    details = {"notebook": notebook, "owner": who.username if who else None}
    session.add(AuditEntry(action="run.queue", target=str(run_id), details=details))
    return run_id


def job_run_values(
    job: Job, *, scheduled_for: datetime | None, triggered_by: str, now: datetime | None = None
) -> dict[str, Any]:
    """The columns of a queued run of ``job``: its parameters, attempts, timeout and owner."""
    return {
        "id": uuid.uuid4(),
        "job_id": job.id,
        "notebook": job.notebook,
        "parameters": dict(job.parameters or {}),
        "status": RunStatus.QUEUED,
        "scheduled_for": scheduled_for,
        "attempt": 0,
        "max_attempts": job.retries + 1,
        "timeout_seconds": job.timeout_seconds,
        "triggered_by": triggered_by,
        "queued_at": now or utcnow(),
        "team_id": job.team_id,
        "created_by": job.owner_id,
    }


def queue_job_run(
    wb: Workbench, session: Session, job: Job, *, triggered_by: str, now: datetime | None = None
) -> uuid.UUID:
    """Insert a queued run of ``job`` outside its schedule, in ``session``'s transaction."""
    values = job_run_values(job, scheduled_for=None, triggered_by=triggered_by, now=now)
    session.execute(insert(RunRow).values(**values))
    _announce_on_commit(wb, session, values["id"])
    run_id: uuid.UUID = values["id"]
    return run_id


def queue_slot_once(
    wb: Workbench, session: Session, job: Job, slot: datetime, *, now: datetime
) -> uuid.UUID | None:
    """Queue the run of ``job``'s schedule slot ``slot`` unless it exists; its id, or None.

    Exactly once per (job, slot) rests on the unique constraint on (job_id, scheduled_for):
    the insert does nothing on conflict, so two schedulers cannot both queue a slot.
    """
    values = job_run_values(job, scheduled_for=slot, triggered_by="schedule", now=now)
    dialect_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        dialect_insert(RunRow)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["job_id", "scheduled_for"])
        .returning(RunRow.id)
    )
    run_id: uuid.UUID | None = session.execute(statement).scalar_one_or_none()
    if run_id is not None:
        _announce_on_commit(wb, session, run_id)
    return run_id


def mark_dispatched(
    conn: Connection | Session, run_ids: list[uuid.UUID], *, worker: str, now: datetime
) -> None:
    """Note that the still-queued ``run_ids`` were handed to an executor (``worker``), ``now``."""
    conn.execute(
        update(RunRow)
        .where(RunRow.id.in_(run_ids), RunRow.status == RunStatus.QUEUED)
        .values(worker=worker, heartbeat_at=now)
    )


# -- the attempts: claim, heartbeat, outcome, retry (fenced) ----------------------------------


def _fenced(run_id: uuid.UUID, attempt: int) -> Any:
    """The one fencing rule: an UPDATE of ``attempt`` only while that attempt is running."""
    return (
        update(RunRow)
        .where(RunRow.id == run_id)
        .where(RunRow.attempt == attempt)
        .where(RunRow.status == RunStatus.RUNNING)
    )


def claim_run(
    wb: Workbench,
    run_id: uuid.UUID,
    *,
    worker: str,
    lease_seconds: float,
    run_token_hash: str | None = None,
) -> int | None:
    """Move a queued run to running; the new attempt number, or None if not claimable.

    ``run_token_hash`` (sha256 hex of the token handed to the run's kernel) is stored with the
    claim: the owner's login writes results only for its running run presenting that token.
    """
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
                run_token_hash=run_token_hash,
            )
        ).rowcount
        if not claimed:
            return None
        attempt, queued_at, not_before, triggered_by = conn.execute(
            select(RunRow.attempt, RunRow.queued_at, RunRow.not_before, RunRow.triggered_by).where(
                RunRow.id == run_id
            )
        ).one()
    due = max(queued_at, not_before) if not_before is not None else queued_at
    metrics.run_claimed(triggered_by, (now - due).total_seconds())
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
            _fenced(run_id, attempt)
            .values(
                status=status, finished_at=now, heartbeat_at=now, lease_expires_at=None, **values
            )
            .returning(RunRow.triggered_by, RunRow.started_at)
        ).first()
        if done is None:
            keep = {k: v for k, v in values.items() if k in {"progress_cell", "progress_total"}}
            conn.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .where(RunRow.attempt == attempt)
                .where(RunRow.status == RunStatus.CANCELLED)
                .values(lease_expires_at=None, **keep)
            )
    if done is None:
        return False
    triggered_by, started_at = done
    took = (now - started_at).total_seconds() if started_at is not None else None
    metrics.run_finished(status.value, triggered_by, took)
    return True


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
    if done:
        announce_queued(wb, [run_id])
    return bool(done)


def expire_lease(
    wb: Workbench,
    session: Session,
    run_id: uuid.UUID,
    attempt: int,
    *,
    now: datetime,
    retry_at: datetime | None,
    error_message: str,
) -> bool:
    """End ``attempt``, whose lease expired before ``now``, as ``WorkerLost``; False if fenced.

    With ``retry_at`` the run is queued again until then, otherwise it fails. The write is
    part of ``session``'s transaction; a re-queued run is announced when it commits.
    """
    fenced = _fenced(run_id, attempt).where(RunRow.lease_expires_at < now)
    lost = {"lease_expires_at": None, "error_name": "WorkerLost", "error_message": error_message}
    if retry_at is not None:
        values = {"status": RunStatus.QUEUED, "not_before": retry_at, "worker": None, **lost}
    else:
        values = {"status": RunStatus.FAILED, "finished_at": now, **lost}
    done = bool(session.connection().execute(fenced.values(**values)).rowcount)
    if done and retry_at is not None:
        _announce_on_commit(wb, session, run_id)
    return done


def cancel_run(wb: Workbench, run_id: str | uuid.UUID) -> Run:
    """Cancel a queued or running run; a running one is stopped by its runner within a second.

    From a user's own login the database cancels it (``wb_private.cancel_run``): only a run of
    their teams (admins: any), and another team's is not found. The act is audited.
    """
    run = get_run(wb, run_id)
    if run.finished:
        raise RunStateError(f"Run {run.id} already finished ({run.status.value}).")
    where_cell = f" while running cell {run.progress_cell}" if run.progress_cell else ""
    with (
        _refusals(f"Cancelling run {run.id}", run.id),
        wb.session(writing=True) as session,
        session.begin(),
    ):
        connection = session.connection()
        if acts.acts_as_user(connection):
            acts.call(
                connection,
                "wb_private.cancel_run(:run)",
                {"run": run.id},
                doing=f"Cancelling run {run.id}",
                not_found=_not_found(run.id),
                denied=RunPermissionError,
            )
            cancelled = 1
        else:
            cancelled = connection.execute(
                update(RunRow)
                .where(RunRow.id == run.id)
                .where(RunRow.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
                .values(
                    status=RunStatus.CANCELLED,
                    finished_at=utcnow(),
                    error_name="Cancelled",
                    error_message=f"Cancelled on request{where_cell}.",
                )
            ).rowcount
            if cancelled:
                session.add(AuditEntry(action="run.cancel", target=str(run.id), details={}))
    if cancelled:
        metrics.run_finished(RunStatus.CANCELLED.value, run.triggered_by)
    return get_run(wb, run.id)
