"""Reaper, dispatch limits and the local executor, with real processes and kernels."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.runs_helpers import run_row, wait_for
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.models import Run, RunStatus
from workbench.runs import records
from workbench.scheduler import api as jobs
from workbench.scheduler.dispatch import dispatch_runs
from workbench.scheduler.errors import SchedulerAlreadyRunningError
from workbench.scheduler.executors import LocalExecutor
from workbench.scheduler.reaper import reap_expired, retry_delay
from workbench.scheduler.service import run_scheduler, single_scheduler

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SLEEPS = str(NOTEBOOKS / "sleeps.ipynb")
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _running(wb: Workbench, run_id: uuid.UUID, attempt: int, lease_left: timedelta) -> None:
    with wb.engine.begin() as conn:
        conn.execute(
            update(Run).where(Run.id == run_id).values(
                status=RunStatus.RUNNING, attempt=attempt, worker="host:1:main",
                heartbeat_at=T0 - timedelta(minutes=5), lease_expires_at=T0 + lease_left,
            )
        )  # fmt: skip


def test_reaper_retries_then_fails_and_fences(pg_owner: str | None, workbench: Workbench) -> None:
    jobs.register("j", SLEEPS, retries=1, retry_delay=30, owner=pg_owner, workbench=workbench)
    run_id = jobs.trigger("j", workbench=workbench)
    live = jobs.trigger("j", workbench=workbench)
    _running(workbench, run_id, attempt=1, lease_left=timedelta(seconds=-1))
    _running(workbench, live, attempt=1, lease_left=timedelta(seconds=30))

    result = reap_expired(workbench, now=T0)
    assert result.requeued == [run_id]
    assert result.failed == []
    row = run_row(workbench, run_id)
    assert row.status is RunStatus.QUEUED
    assert row.not_before == T0 + timedelta(seconds=30)
    assert row.error_name == "WorkerLost"
    assert "Retrying" in (row.error_message or "")
    assert run_row(workbench, live).status is RunStatus.RUNNING

    # The second attempt's worker dies too: no attempts left.
    _running(workbench, run_id, attempt=2, lease_left=timedelta(seconds=-1))
    result = reap_expired(workbench, now=T0)
    assert result.failed == [run_id]
    row = run_row(workbench, run_id)
    assert row.status is RunStatus.FAILED
    assert "No attempts left" in (row.error_message or "")

    # A late report from the first attempt changes nothing.
    assert records.finish_run(workbench, run_id, 1, RunStatus.SUCCEEDED) is False
    assert run_row(workbench, run_id).status is RunStatus.FAILED


def test_backoff_doubles_and_is_capped() -> None:
    assert [retry_delay(10, a).total_seconds() for a in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert retry_delay(3000, 5) == timedelta(hours=1)


def test_dispatch_respects_per_job_and_global_limits(
    pg_owner: str | None, workbench: Workbench
) -> None:
    jobs.register("one-at-a-time", SLEEPS, max_concurrency=1, owner=pg_owner, workbench=workbench)
    jobs.register("two-at-a-time", SLEEPS, max_concurrency=2, owner=pg_owner, workbench=workbench)
    for _ in range(3):
        jobs.trigger("one-at-a-time", workbench=workbench)
        jobs.trigger("two-at-a-time", workbench=workbench)
    sent: list[uuid.UUID] = []
    first = dispatch_runs(workbench, sent.append, executor="test", capacity=10, max_running=10)
    assert sent == first
    assert len(first) == 3  # 1 + 2
    # Dispatched runs count against the limits until a worker takes them up.
    assert dispatch_runs(workbench, sent.append, executor="test", capacity=10, max_running=10) == []
    # A dispatch nobody took up is sent again once stale.
    later = dispatch_runs(
        workbench, sent.append, executor="test", capacity=10, max_running=10,
        now=datetime.now(UTC) + timedelta(minutes=5),
    )  # fmt: skip
    assert sorted(later) == sorted(first)


def test_dispatch_global_limit_and_not_before(pg_owner: str | None, workbench: Workbench) -> None:
    jobs.register("wide", SLEEPS, max_concurrency=10, owner=pg_owner, workbench=workbench)
    ids = [jobs.trigger("wide", workbench=workbench) for _ in range(5)]
    with workbench.engine.begin() as conn:
        conn.execute(
            update(Run)
            .where(Run.id == ids[0])
            .values(not_before=datetime.now(UTC) + timedelta(hours=1))
        )
    sent = dispatch_runs(workbench, lambda _: None, executor="t", capacity=10, max_running=2)
    assert len(sent) == 2
    assert ids[0] not in sent
    assert sent == ids[1:3]  # oldest first


def test_one_scheduler_on_sqlite(settings: object, sqlite_url: str) -> None:
    wb = Workbench(load_settings(), sqlite_url)
    try:
        with (
            single_scheduler(wb),
            pytest.raises(SchedulerAlreadyRunningError, match="one"),
            single_scheduler(wb),
        ):
            pass
        with single_scheduler(wb):  # released when the first one stopped
            pass
    finally:
        wb.close()


@pytest.fixture
def scheduler_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[Workbench, LocalExecutor], None]]:
    stops: list[tuple[threading.Event, threading.Thread, LocalExecutor, Workbench]] = []

    def start(wb: Workbench, executor: LocalExecutor, poll: float = 0.2) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=run_scheduler, args=(wb, executor), kwargs={"stop": stop, "poll_seconds": poll}
        )
        thread.start()
        stops.append((stop, thread, executor, wb))

    yield start
    for stop, thread, executor, wb in stops:
        stop.set()
        thread.join(timeout=30)
        executor.close()
        wb.close()  # after the scheduler stopped: it removes its heartbeat row on the way out


def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _alive(int(entry)):
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            tree.setdefault(parent, []).append(int(entry))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, found, todo = _children_of(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting for its reaper counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _local_workbench(monkeypatch: pytest.MonkeyPatch, db_url: str, lease: float) -> Workbench:
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", db_url)
    monkeypatch.setenv("WORKBENCH_RUN_LEASE_SECONDS", str(lease))
    monkeypatch.setenv("WORKBENCH_MAX_CONCURRENT_RUNS", "2")
    return Workbench(load_settings())


def test_local_executor_runs_jobs_to_completion(
    pg_owner: str | None,
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
    scheduler_thread: Callable[..., None],
) -> None:
    wb = _local_workbench(monkeypatch, db_url, lease=10)
    jobs.register(
        "quick",
        SLEEPS,
        parameters={"seconds": 0.1},
        max_concurrency=2,
        owner=pg_owner,
        workbench=wb,
    )
    ids = [jobs.trigger("quick", workbench=wb) for _ in range(3)]
    scheduler_thread(wb, LocalExecutor(2))
    wait_for(lambda: all(run_row(wb, i).status is RunStatus.SUCCEEDED for i in ids), 90, "3 runs")
    rows = [run_row(wb, i) for i in ids]
    assert all(r.attempt == 1 for r in rows)
    assert all(r.finished_at is not None and r.started_at is not None for r in rows)


def test_a_finished_run_frees_its_worker_at_once_not_at_the_next_poll(
    pg_owner: str | None,
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
    scheduler_thread: Callable[..., None],
) -> None:
    poll = 120.0  # the scheduler's full tick: only the executor's wake-up dispatches sooner
    wb = _local_workbench(monkeypatch, pg_url, lease=30)
    jobs.register(
        "quick",
        SLEEPS,
        parameters={"seconds": 0.1},
        max_concurrency=2,
        owner=pg_owner,
        workbench=wb,
    )
    first, second = jobs.trigger("quick", workbench=wb), jobs.trigger("quick", workbench=wb)
    scheduler_thread(wb, LocalExecutor(1), poll)
    wait_for(lambda: run_row(wb, second).status is RunStatus.SUCCEEDED, poll - 10, "the second run")
    done, started = run_row(wb, first).finished_at, run_row(wb, second).started_at
    assert done is not None and started is not None
    assert (started - done).total_seconds() < 10


def test_kill_9_of_a_local_worker_mid_run(
    pg_owner: str | None,
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
    scheduler_thread: Callable[..., None],
) -> None:
    lease = 3.0
    wb = _local_workbench(monkeypatch, pg_url, lease=lease)
    jobs.register(
        "retried",
        SLEEPS,
        parameters={"seconds": 4},
        retries=1,
        retry_delay=0,
        owner=pg_owner,
        workbench=wb,
    )
    jobs.register(
        "lost", SLEEPS, parameters={"seconds": 30}, retries=0, owner=pg_owner, workbench=wb
    )
    retried, lost = jobs.trigger("retried", workbench=wb), jobs.trigger("lost", workbench=wb)
    executor = LocalExecutor(2)
    scheduler_thread(wb, executor)
    wait_for(
        lambda: (
            run_row(wb, retried).status is RunStatus.RUNNING
            and run_row(wb, lost).status is RunStatus.RUNNING
        ),
        60,
        "both runs to start",
    )
    # The workers' kernel templates and their (forked) kernels must die with the workers.
    descendants = [d for pid in executor.worker_pids() for d in _descendants(pid)]
    assert descendants, "each worker has a kernel template with kernels"
    for pid in executor.worker_pids():
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(
        lambda: run_row(wb, lost).status is RunStatus.FAILED, lease + 15, "the lost run to fail"
    )
    bound = lease + 1.0 + 2 * 0.2  # lease + heartbeat gap + poll interval
    assert time.monotonic() - killed_at <= bound + 5  # generous for a loaded CI machine
    row = run_row(wb, lost)
    assert row.error_name == "WorkerLost"
    wait_for(lambda: not any(_alive(p) for p in descendants), 15, "no orphaned kernel")
    wait_for(lambda: run_row(wb, retried).status is RunStatus.SUCCEEDED, 90, "the retry to succeed")
    assert run_row(wb, retried).attempt == 2
    with wb.session() as s:
        statuses = set(s.scalars(select(Run.status)))
    assert RunStatus.RUNNING not in statuses


def test_failed_attempts_are_retried_with_backoff_then_fail_once(
    pg_owner: str | None, db_url: str
) -> None:
    from workbench.plugins.events import RunEvent
    from workbench.plugins.hookspecs import hookimpl
    from workbench.plugins.manager import Plugins
    from workbench.runs.execute import execute_run

    events: list[tuple[str, int]] = []

    class Recorder:
        @hookimpl
        def run_failed(self, event: RunEvent) -> None:
            events.append((event.status, event.attempt))

    settings = load_settings()
    plugins = Plugins(settings)
    plugins._register(Recorder(), "recorder", "1", builtin=False)
    wb = Workbench(settings, db_url, plugins=plugins)
    failing = str(NOTEBOOKS / "fails_in_cell_2.ipynb")
    jobs.register("flaky", failing, retries=2, retry_delay=10, owner=pg_owner, workbench=wb)
    run_id = jobs.trigger("flaky", workbench=wb)

    first = execute_run(run_id, workbench=wb)
    assert first.status is RunStatus.QUEUED
    assert first.attempt == 1
    assert first.error_name == "ValueError"
    row = run_row(wb, run_id)
    assert row.not_before is not None
    delay = (row.not_before - datetime.now(UTC)).total_seconds()
    assert 5 < delay <= 10
    # Not runnable before its backoff: a worker that gets it early leaves it queued.
    assert execute_run(run_id, workbench=wb).attempt == 1

    for attempt, backoff in ((2, 20), (3, None)):
        with wb.engine.begin() as conn:  # let the backoff pass
            conn.execute(update(Run).where(Run.id == run_id).values(not_before=None))
        result = execute_run(run_id, workbench=wb)
        assert result.attempt == attempt
        if backoff is not None:
            assert result.status is RunStatus.QUEUED
            left = (run_row(wb, run_id).not_before - datetime.now(UTC)).total_seconds()  # type: ignore[operator]
            assert backoff - 5 < left <= backoff
    assert result.status is RunStatus.FAILED
    assert events == [("failed", 3)]
    wb.close()
