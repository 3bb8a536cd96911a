"""Metrics from real runs: in this process on both databases, and scraped from a real
`workbench scheduler` whose local worker processes run the notebooks (PostgreSQL).

Every scrape is parsed with the Prometheus client's own parser; runs that succeed, fail and are
reaped after a ``kill -9`` of their worker move the counters by exactly that many.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from tests import services
from tests.e2e.world import free_port
from tests.runs_helpers import run_row, wait_for
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.models import AuditEntry, Job, Run, RunStatus
from workbench.db.types import utcnow
from workbench.ops import metrics
from workbench.ops.backup.api import CREATED_ACTION, VERIFIED_ACTION
from workbench.runs import records
from workbench.runs.api import queue_run
from workbench.runs.execute import execute_run
from workbench.scheduler import api as jobs
from workbench.scheduler.reaper import reap_expired

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SLEEPS = str(NOTEBOOKS / "sleeps.ipynb")
FAILS = str(NOTEBOOKS / "fails_in_cell_2.ipynb")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(body: bytes | str) -> Samples:
    """Every sample of a scrape, keyed by (sample name, labels)."""
    text = body.decode() if isinstance(body, bytes) else body
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_here() -> Samples:
    body, _ = metrics.exposition()
    return parse(body)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_finished_failed_reaped_and_cancelled_runs_move_the_counters_by_one_each(
    pg_owner: str | None,
    workbench: Workbench,
) -> None:
    before = scrape_here()
    ok = queue_run(SLEEPS, {"seconds": 0.1}, owner=pg_owner, workbench=workbench)
    bad = queue_run(FAILS, owner=pg_owner, workbench=workbench)
    assert execute_run(ok, workbench=workbench).status is RunStatus.SUCCEEDED
    assert execute_run(bad, workbench=workbench).status is RunStatus.FAILED

    # A run whose worker died: running, its lease expired, no attempts left.
    lost = queue_run(SLEEPS, {"seconds": 0.1}, owner=pg_owner, workbench=workbench)
    with workbench.engine.begin() as conn:
        conn.execute(
            update(Run).where(Run.id == lost).values(
                status=RunStatus.RUNNING, attempt=1, worker="host:1:main",
                lease_expires_at=utcnow() - timedelta(seconds=1),
            )
        )  # fmt: skip
    assert reap_expired(workbench).failed == [lost]
    cancelled = queue_run(
        SLEEPS, {"seconds": 0.1}, triggered_by="nightly-batch", owner=pg_owner, workbench=workbench
    )
    records.cancel_run(workbench, cancelled)
    # A late report of the reaped attempt is fenced off and counts nothing.
    assert records.finish_run(workbench, lost, 1, RunStatus.SUCCEEDED) is False
    after = scrape_here()

    runs = "workbench_runs_total"
    assert delta(before, after, runs, status="succeeded", trigger="api") == 1
    assert delta(before, after, runs, status="failed", trigger="api") == 2  # failed and reaped
    assert delta(before, after, runs, status="cancelled", trigger="other") == 1
    assert delta(before, after, "workbench_lease_expiries_total", outcome="failed") == 1
    assert delta(before, after, "workbench_lease_expiries_total", outcome="requeued") == 0
    for status in ("succeeded", "failed"):
        count = "workbench_run_duration_seconds_count"
        assert delta(before, after, count, status=status) == 1
    assert delta(before, after, "workbench_run_queue_wait_seconds_count", trigger="api") == 2
    took = delta(before, after, "workbench_run_duration_seconds_sum", status="succeeded")
    assert 0 < took < 120
    assert (
        delta(before, after, "workbench_kernel_start_duration_seconds_count", mode="spawned") >= 2
    )


def test_the_queue_is_read_from_the_database_when_scraped(
    pg_owner: str | None, workbench: Workbench
) -> None:
    now = utcnow()
    waiting = [
        queue_run(SLEEPS, {"seconds": 0.1}, owner=pg_owner, workbench=workbench) for _ in range(3)
    ]
    with workbench.engine.begin() as conn:
        conn.execute(
            update(Run).where(Run.id == waiting[0]).values(queued_at=now - timedelta(minutes=10))
        )
        # A retry waiting for its backoff is queued, not due: it ages only once due.
        conn.execute(
            update(Run)
            .where(Run.id == waiting[1])
            .values(queued_at=now - timedelta(hours=1), not_before=now + timedelta(minutes=5))
        )
        conn.execute(update(Run).where(Run.id == waiting[2]).values(status=RunStatus.RUNNING))
    jobs.register("hourly", SLEEPS, schedule="0 * * * *", owner=pg_owner, workbench=workbench)
    with workbench.session() as session, session.begin():
        session.execute(update(Job).where(Job.name == "hourly").values(
            next_run_at=now - timedelta(minutes=5)))  # fmt: skip

    assert value(scrape_here(), "workbench_runs_queued") == 0  # nothing watched: not exposed
    unwatch = metrics.watch_database(workbench)
    try:
        seen = scrape_here()
    finally:
        unwatch()
    assert value(seen, "workbench_database_up") == 1
    assert value(seen, "workbench_runs_queued") == 2
    assert value(seen, "workbench_runs_running") == 1
    assert 600 <= value(seen, "workbench_oldest_queued_run_age_seconds") < 660
    assert 300 <= value(seen, "workbench_schedule_lag_seconds") < 360
    assert ("workbench_runs_queued", frozenset()) not in scrape_here()


@pytest.mark.postgres
def test_an_unreachable_database_is_reported_not_raised(
    settings: object, postgres_available: None
) -> None:
    gone = services.sqlalchemy_url(services.new_database_name("wbgone"))
    bench = Workbench(load_settings(), gone)
    unwatch = metrics.watch_database(bench)
    try:
        seen = scrape_here()
    finally:
        unwatch()
        bench.close()
    assert value(seen, "workbench_database_up") == 0
    assert ("workbench_runs_queued", frozenset()) not in seen


# -- a real scheduler with local worker processes ---------------------------------------------


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(reply.read())


@pytest.fixture
def abandoned_folder() -> Iterator[Path]:
    """The metrics folder of a service that was killed (its process is gone)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    folder = Path(tempfile.mkdtemp(prefix=f"workbench-metrics-{gone.pid}-"))
    (folder / "counter_1.db").write_bytes(b"")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def scheduler_process(
    pg_url: str, isolated_env: Path, tmp_path: Path, abandoned_folder: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != metrics.MULTIPROC_ENV},
        "WORKBENCH_DATABASE_URL": pg_url,
        "WORKBENCH_RUN_LEASE_SECONDS": "3",
        "WORKBENCH_SCHEDULER_POLL_SECONDS": "0.2",
        "WORKBENCH_MAX_CONCURRENT_RUNS": "3",
    }
    log = (tmp_path / "scheduler.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench", "scheduler", "--workers", "3",
         "--metrics-port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: _answers(port), 60, "the scheduler's metrics port")
        yield process, port
    finally:
        if process.poll() is None:
            services.stop(process)
        log.close()


def _answers(port: int) -> bool:
    """True once the port answers and the scheduler loop watches the database."""
    try:
        return value(scrape(port), "workbench_database_up") == 1
    except OSError:
        return False


def _metrics_folder_of(pid: int) -> str | None:
    """The metrics folder a process was started with (its initial environment)."""
    try:
        return psutil.Process(pid).environ().get(metrics.MULTIPROC_ENV)
    except psutil.Error:
        return None


@pytest.mark.postgres
def test_a_scheduler_scrape_counts_its_worker_processes_runs_and_reaps(
    pg_owner: str | None,
    scheduler_process: tuple[subprocess.Popen[bytes], int],
    pg_url: str,
    tmp_path: Path,
    abandoned_folder: Path,
) -> None:
    process, port = scheduler_process
    wb = Workbench(load_settings(), pg_url)
    try:
        first = scrape(port)
        assert not abandoned_folder.exists()  # a killed service's folder is cleared at start
        assert value(first, "workbench_build_info", version=_version()) == 1
        assert value(first, "workbench_database_up") == 1
        assert value(first, "workbench_backup_last_success_timestamp_seconds") == 0  # none yet
        for status in ("succeeded", "failed"):
            assert value(first, "workbench_runs_total", status=status, trigger="manual") == 0

        jobs.register("ok", SLEEPS, parameters={"seconds": 0.1}, owner=pg_owner, workbench=wb)
        jobs.register("bad", FAILS, owner=pg_owner, workbench=wb)
        jobs.register(
            "lost", SLEEPS, parameters={"seconds": 120}, retries=0, owner=pg_owner, workbench=wb
        )
        ok, bad, lost = (jobs.trigger(name, workbench=wb) for name in ("ok", "bad", "lost"))
        wait_for(
            lambda: (
                run_row(wb, ok).status is RunStatus.SUCCEEDED
                and run_row(wb, bad).status is RunStatus.FAILED
                and run_row(wb, lost).status is RunStatus.RUNNING
            ),
            120,
            "one run to succeed, one to fail and one to run",
        )
        busy = scrape(port)
        assert value(busy, "workbench_runs_running") == 1
        assert value(busy, "workbench_executor_slots", executor="local", state="busy") >= 1, [
            k for k in busy if "slots" in k[0]
        ]
        assert value(busy, "workbench_scheduler_tick_duration_seconds_count") > 0

        worker_pid = int((run_row(wb, lost).worker or "").split(":")[1])
        folder = _metrics_folder_of(worker_pid)
        assert folder and os.path.isdir(folder)  # a private folder the command made
        kernels = psutil.Process(worker_pid).children(recursive=True)
        # Its kernels run notebook code: they never get the service's metrics folder.
        assert kernels and all(_metrics_folder_of(k.pid) is None for k in kernels)
        os.kill(worker_pid, signal.SIGKILL)
        wait_for(lambda: run_row(wb, lost).status is RunStatus.FAILED, 30, "the reaper")
        assert run_row(wb, lost).error_name == "WorkerLost"

        last = scrape(port)
        runs = "workbench_runs_total"
        assert value(last, runs, status="succeeded", trigger="manual") == 1
        assert value(last, runs, status="failed", trigger="manual") == 2  # bad, and lost
        assert value(last, "workbench_lease_expiries_total", outcome="failed") == 1
        assert value(last, "workbench_lease_expiries_total", outcome="requeued") == 0
        assert value(last, "workbench_run_duration_seconds_count", status="succeeded") == 1
        assert value(last, "workbench_run_queue_wait_seconds_count", trigger="manual") == 3
        assert value(last, "workbench_runs_running") == 0
        assert value(last, "workbench_warm_kernels") >= 0

        # The backup gauges are read from the audit log when scraped, whichever process
        # made or verified the backup (here: rows as the backup code writes them).
        made = datetime(2026, 5, 1, tzinfo=UTC)
        with wb.session() as session, session.begin():
            session.add(AuditEntry(action=CREATED_ACTION, target="b1", details={}, at=made))
            session.add(AuditEntry(action=VERIFIED_ACTION, target="b1", details={}, at=made))
        jobs.register("ok-again", SLEEPS, parameters={"seconds": 0.1}, owner=pg_owner, workbench=wb)
        again = jobs.trigger("ok-again", workbench=wb)
        wait_for(lambda: run_row(wb, again).finished_at is not None, 120, "another run")
        seen = scrape(port)
        assert value(seen, "workbench_backup_last_success_timestamp_seconds") == made.timestamp()
        assert value(seen, "workbench_backup_last_verified_timestamp_seconds") == made.timestamp()
        assert value(seen, "workbench_runs_total", status="succeeded", trigger="manual") == 2
        assert not [k for k in last if "pid" in dict(k[1])]  # processes are summed, not listed
    finally:
        wb.close()
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not os.path.exists(folder)  # removed when the scheduler stopped


def _version() -> str:
    from workbench.core.version import __version__

    return __version__


def test_a_kernel_cannot_write_the_services_metrics(tmp_path: Path) -> None:
    from workbench.runs.kernels import KernelPool

    # The pool is given the service's environment, metrics folder included ...
    env = {**os.environ, metrics.MULTIPROC_ENV: str(tmp_path)}
    with KernelPool(0, env=env) as pool:
        kernel = pool.call(pool.acquire())
        try:
            pid = kernel.manager.provisioner.pid  # type: ignore[union-attr]
            # ... but its kernel never sees it, so notebook code that records a metric ...
            assert _metrics_folder_of(pid) is None
            pool.call(
                kernel.run_silently(
                    "from workbench.ops import metrics\n"
                    "metrics.notification(sent=False)\n"
                    "metrics.run_finished('failed', 'api')"
                )
            )
        finally:
            pool.call(kernel.discard())
    # ... leaves the service's metrics as they were.
    assert list(tmp_path.iterdir()) == []
