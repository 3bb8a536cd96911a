"""The `workbench scheduler` loop: queue due runs, reap expired leases, dispatch, repeat.

On PostgreSQL any number of schedulers may run side by side (work is shared through row
locks and an advisory lock). On the embedded SQLite database exactly one may run: a second
one finds the lock file held and refuses to start.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from workbench.db.failures import driver_message
from workbench.db.models import ServiceKind
from workbench.ops import metrics
from workbench.ops.heartbeats import PROCESSES_KEY, ServiceBeat, beat_interval
from workbench.ops.processes import record
from workbench.runs.sandbox import require_boundary
from workbench.scheduler.dispatch import dispatch_runs
from workbench.scheduler.errors import SchedulerAlreadyRunningError
from workbench.scheduler.reaper import reap_expired
from workbench.scheduler.tick import schedule_due

if TYPE_CHECKING:
    from workbench.app import Workbench
    from workbench.ops.probes import Liveness
    from workbench.scheduler.executors import Executor

__all__ = ["SchedulerStats", "failure_cause", "run_scheduler", "single_scheduler"]

log = logging.getLogger(__name__)
WAKE_CHECK_SECONDS = 0.1  # how often a scheduler waiting for a wake-up looks at its stop flag
#: Top-level packages whose errors mean the broker is away (Celery's transports, Redis).
_BROKER_MODULES = frozenset({"kombu", "amqp", "redis", "celery"})


@dataclass
class SchedulerStats:
    ticks: int = 0
    queued: int = 0
    dispatched: int = 0
    requeued: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@contextmanager
def single_scheduler(wb: Workbench) -> Iterator[None]:
    """On SQLite, hold an exclusive lock file next to the database for the scheduler's life."""
    if wb.engine.dialect.name != "sqlite":
        yield
        return
    path = wb.settings.home_path / "scheduler.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise SchedulerAlreadyRunningError(
                f"A scheduler is already running on this embedded database ({holder}); the "
                "embedded mode allows one. Stop it first, or use PostgreSQL for several."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)


def run_scheduler(
    wb: Workbench,
    executor: Executor,
    *,
    stop: threading.Event,
    poll_seconds: float | None = None,
    max_ticks: int | None = None,
    name: str = "scheduler",
    liveness: Liveness | None = None,
) -> SchedulerStats:
    """Run until ``stop`` is set (or ``max_ticks`` passes); errors are logged, not fatal.

    Every poll also refreshes this scheduler's row in ``service_heartbeats``, so health checks
    can tell a live scheduler from one that died or hung, and every turn of the loop touches
    ``liveness`` (what `/livez` answers from).
    """
    if executor.name == "local":  # its worker processes start kernels on this machine
        require_boundary(wb.settings, name)
    poll = poll_seconds or wb.settings.scheduler_poll_seconds
    stats = SchedulerStats()
    with single_scheduler(wb):
        beat = ServiceBeat(
            wb,
            ServiceKind.SCHEDULER,
            name,
            {"executor": executor.name, "poll_seconds": poll},
        )
        unwatch = metrics.watch_database(wb)  # the queue's gauges, read when scraped
        try:
            _loop(
                wb,
                executor,
                beat,
                stop=stop,
                poll=poll,
                max_ticks=max_ticks,
                stats=stats,
                liveness=liveness,
            )
        finally:
            unwatch()
            try:
                beat.close()
            except Exception:  # the database may be gone; the row then just goes stale
                log.exception("could not remove the scheduler heartbeat row")
    return stats


def _loop(
    wb: Workbench,
    executor: Executor,
    beat: ServiceBeat,
    *,
    stop: threading.Event,
    poll: float,
    max_ticks: int | None,
    stats: SchedulerStats,
    liveness: Liveness | None = None,
) -> None:
    """A full tick every ``poll`` seconds; between ticks, dispatch only when the executor wakes
    us because it has room (so throughput does not depend on the poll interval)."""
    wakeup = executor.wakeup
    last_beat = time.monotonic()
    touch = liveness.touch if liveness is not None else _untouched
    while not stop.is_set():
        started = time.monotonic()
        touch()
        try:
            if started - last_beat >= beat_interval(poll):
                beat.beat(
                    {
                        "ticks": stats.ticks,
                        "dispatched": stats.dispatched,
                        PROCESSES_KEY: record(_worker_pids(executor)),
                    }
                )
                last_beat = started
            stats.queued += len(schedule_due(wb).created)
            reaped = reap_expired(wb)
            stats.requeued += len(reaped.requeued)
            stats.failed += len(reaped.failed)
            stats.dispatched += _dispatch(wb, executor)
        except Exception as exc:  # keep scheduling; the next tick retries
            _failed("tick", exc, poll)
            stats.errors.append(f"{type(exc).__name__}: {exc}")
        metrics.tick_finished(time.monotonic() - started)
        stats.ticks += 1
        if max_ticks is not None and stats.ticks >= max_ticks:
            break
        next_tick = started + poll
        while not stop.is_set() and (left := next_tick - time.monotonic()) > 0:
            touch()
            if wakeup is None:
                stop.wait(left)
            elif wakeup.wait(min(left, WAKE_CHECK_SECONDS)):
                wakeup.clear()
                try:
                    stats.dispatched += _dispatch(wb, executor)
                except Exception as exc:
                    _failed("dispatch", exc, max(0.0, next_tick - time.monotonic()))
                    stats.errors.append(f"{type(exc).__name__}: {exc}")


def _worker_pids(executor: Executor) -> list[int]:
    """The executor's own worker processes on this machine (none for Celery)."""
    pids = getattr(executor, "worker_pids", None)
    return list(pids()) if callable(pids) else []


def failure_cause(exc: BaseException) -> str:
    """``database``, ``broker`` or ``other``: what a failed tick could not reach, from the
    exception and its causes (a lost connection is transient, anything else is a bug)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OperationalError) or (
            isinstance(seen, DBAPIError) and seen.connection_invalidated
        ):
            return "database"
        module = type(seen).__module__.split(".")[0]
        if module in ("psycopg", "psycopg2", "sqlite3") and "Operational" in type(seen).__name__:
            return "database"
        if module in _BROKER_MODULES:
            return "broker"
        seen = seen.__cause__ or seen.__context__
    return "other"


def _failed(stage: str, exc: BaseException, retry_in: float) -> None:
    """One line for a database or broker that is away (the traceback at debug); the full
    traceback for anything else, which is a bug. Counted in the metrics either way."""
    cause = failure_cause(exc)
    metrics.tick_failed(stage, cause)
    if cause == "other":
        log.exception("scheduler %s failed; next try in %.1f s", stage, retry_in)
        return
    name, message = type(getattr(exc, "orig", None) or exc).__name__, driver_message(exc)
    reason = f"{name}: {message}" if message else name
    log.warning(
        "scheduler %s failed: the %s is unreachable (%s); next try in %.1f s",
        stage, cause, reason, retry_in,
    )  # fmt: skip
    log.debug("the failed %s's traceback", stage, exc_info=exc)


def _untouched() -> None:
    """No liveness to touch (the scheduler runs without health endpoints)."""


def _dispatch(wb: Workbench, executor: Executor) -> int:
    """Dispatch what the executor has room for; re-send what no worker claimed within the
    run lease (``WORKBENCH_RUN_LEASE_SECONDS``), and everything unclaimed at once after the
    executor's broker lost its messages."""
    settings = wb.settings
    after = timedelta(seconds=settings.run_lease_seconds)
    lost = getattr(executor, "broker_restarted", None)
    if callable(lost) and lost():
        log.warning("the broker restarted and lost what it held: sending unclaimed runs again")
        after = timedelta(0)
    return len(
        dispatch_runs(
            wb,
            executor.send,
            executor=executor.name,
            capacity=executor.capacity(),
            max_running=settings.max_concurrent_runs,
            redispatch_after=after,
        )
    )
