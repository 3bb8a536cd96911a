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
from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError
from workbench.scheduler.dispatch import dispatch_runs
from workbench.scheduler.reaper import reap_expired
from workbench.scheduler.tick import schedule_due

if TYPE_CHECKING:
    from workbench.api import Workbench
    from workbench.scheduler.executors import Executor

__all__ = ["SchedulerAlreadyRunningError", "SchedulerStats", "run_scheduler", "single_scheduler"]

log = logging.getLogger(__name__)


class SchedulerAlreadyRunningError(WorkbenchError):
    """Another scheduler already runs on this embedded database; stop it first."""


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
) -> SchedulerStats:
    """Run until ``stop`` is set (or ``max_ticks`` passes); errors are logged, not fatal."""
    poll = poll_seconds or wb.settings.scheduler_poll_seconds
    stats = SchedulerStats()
    with single_scheduler(wb):
        while not stop.is_set():
            started = time.monotonic()
            try:
                stats.queued += len(schedule_due(wb).created)
                reaped = reap_expired(wb)
                stats.requeued += len(reaped.requeued)
                stats.failed += len(reaped.failed)
                stats.dispatched += len(
                    dispatch_runs(
                        wb,
                        executor.send,
                        executor=executor.name,
                        capacity=executor.capacity(),
                        max_running=wb.settings.max_concurrent_runs,
                    )
                )
            except Exception as exc:  # keep scheduling; the next tick retries
                log.exception("scheduler tick failed")
                stats.errors.append(f"{type(exc).__name__}: {exc}")
            stats.ticks += 1
            if max_ticks is not None and stats.ticks >= max_ticks:
                break
            stop.wait(max(0.0, poll - (time.monotonic() - started)))
    return stats
