"""Faults leave nothing behind: real schedulers, workers and kernels, killed with ``kill -9``.

No orphans after the scheduler dies, one dead pool worker costs one run, a previous
instance's recorded leftovers (and nothing else) are ended at start-up, and a tick that
cannot reach the database says so in one line and counts in the metrics.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, insert, text

from tests.runs_helpers import family, run_row, still_alive, wait_for
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.models import RunStatus, ServiceHeartbeat, ServiceKind
from workbench.db.types import utcnow
from workbench.ops import metrics
from workbench.ops.heartbeats import PROCESSES_KEY, prune_dead
from workbench.ops.processes import KERNEL_TITLE, record
from workbench.scheduler import api as jobs
from workbench.scheduler.executors import Executor, LocalExecutor
from workbench.scheduler.service import run_scheduler

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SLEEPS = str(NOTEBOOKS / "sleeps.ipynb")


def _named(fragment: str) -> list[int]:
    """Live processes whose command line contains ``fragment``."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if fragment in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process.pid)
    return found


def _worker_pid(wb: Workbench, run_id: uuid.UUID) -> int:
    """The pid of the worker process that claimed ``run_id`` (its ``worker`` column)."""
    worker = run_row(wb, run_id).worker or ""
    return int(worker.split(":")[1])


def _bench(monkeypatch: pytest.MonkeyPatch, url: str, lease: float) -> Workbench:
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", url)
    monkeypatch.setenv("WORKBENCH_RUN_LEASE_SECONDS", str(lease))
    monkeypatch.setenv("WORKBENCH_MAX_CONCURRENT_RUNS", "2")
    return Workbench(load_settings())


@pytest.fixture
def scheduler_in_thread() -> Iterator[Callable[[Workbench, Executor], None]]:
    """Start a scheduler in a thread on a workbench and executor, both closed after."""
    started: list[tuple[threading.Event, threading.Thread, Executor, Workbench]] = []

    def start(wb: Workbench, executor: Executor) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=run_scheduler, args=(wb, executor), kwargs={"stop": stop, "poll_seconds": 0.2}
        )
        thread.start()
        started.append((stop, thread, executor, wb))

    yield start
    for stop, thread, executor, wb in started:
        stop.set()
        thread.join(timeout=30)
        executor.close()
        wb.close()


def test_kill_9_of_the_scheduler_leaves_no_descendant(
    pg_owner: str | None,
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    wb = _bench(monkeypatch, pg_url, lease=30)
    jobs.register(
        "long", SLEEPS, parameters={"seconds": 120}, max_concurrency=2, owner=pg_owner, workbench=wb
    )
    runs = [jobs.trigger("long", workbench=wb) for _ in range(2)]
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "workbench", "scheduler", "--workers", "2"],
        env={**os.environ, "WORKBENCH_SCHEDULER_POLL_SECONDS": "0.2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    processes.append(scheduler)
    wait_for(lambda: all(run_row(wb, r).status is RunStatus.RUNNING for r in runs), 90, "both runs")
    # Each running kernel carries the run's id in its name, whether forked or not.
    for run_id in runs:
        wait_for(lambda r=run_id: bool(_named(f"{KERNEL_TITLE} run={r}")), 30, f"kernel {run_id}")
    descendants = family(scheduler.pid)
    # Two workers, their kernel templates, the running and the warm kernels at least.
    assert len(descendants) >= 6, descendants
    assert len(_named(f"scheduler={scheduler.pid}")) >= 2  # the workers, by name

    os.kill(scheduler.pid, signal.SIGKILL)
    scheduler.wait()
    killed = time.monotonic()
    wait_for(lambda: not still_alive(descendants), 10, "every descendant to die")
    assert time.monotonic() - killed < 10
    assert not _named(f"scheduler={scheduler.pid}")
    assert not any(_named(f"{KERNEL_TITLE} run={r}") for r in runs)
    wb.close()


def test_one_dead_worker_costs_one_run(
    pg_owner: str | None,
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
    scheduler_in_thread: Callable[[Workbench, LocalExecutor], None],
) -> None:
    wb = _bench(monkeypatch, pg_url, lease=10)  # a loaded machine must not expire the other
    jobs.register(
        "work", SLEEPS, parameters={"seconds": 8}, max_concurrency=2, retries=1, retry_delay=0,
        owner=pg_owner, workbench=wb,
    )  # fmt: skip
    victim, survivor = jobs.trigger("work", workbench=wb), jobs.trigger("work", workbench=wb)
    executor = LocalExecutor(2)
    scheduler_in_thread(wb, executor)
    wait_for(
        lambda: all(run_row(wb, r).status is RunStatus.RUNNING for r in (victim, survivor)),
        90,
        "both runs to start",
    )
    dead, other = _worker_pid(wb, victim), _worker_pid(wb, survivor)
    assert dead != other
    os.kill(dead, signal.SIGKILL)
    wait_for(lambda: run_row(wb, survivor).status is RunStatus.SUCCEEDED, 60, "the other run")
    wait_for(lambda: run_row(wb, victim).status is RunStatus.SUCCEEDED, 90, "the re-run")
    assert run_row(wb, survivor).attempt == 1  # the other worker's run was not lost
    assert run_row(wb, victim).attempt == 2  # exactly one re-run
    assert psutil.pid_exists(other) and other in executor.worker_pids()
    wait_for(lambda: len(executor.worker_pids()) == 2, 30, "the slot's new worker")
    assert dead not in executor.worker_pids()


def test_start_up_ends_what_a_dead_instance_recorded_and_nothing_else(
    workbench: Workbench, processes: list[subprocess.Popen[bytes]]
) -> None:
    def sleeper() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(["sleep", "300"], start_new_session=True)
        processes.append(process)
        return process

    leftover, stranger = sleeper(), sleeper()
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs: the previous scheduler
    recorded = record([leftover.pid])
    # The stranger's pid with another start time: a pid reused by somebody else.
    reused = [[stranger.pid, psutil.Process(stranger.pid).create_time() - 5.0]]
    with workbench.engine.begin() as conn:
        conn.execute(
            insert(ServiceHeartbeat).values(
                id=uuid.uuid4(), kind=ServiceKind.SCHEDULER, name="scheduler",
                host=socket.gethostname(), pid=dead.pid, started_at=utcnow(),
                heartbeat_at=utcnow(), details={PROCESSES_KEY: recorded + reused},
            )
        )  # fmt: skip
    assert prune_dead(workbench.engine, ServiceKind.SCHEDULER) == 1
    wait_for(lambda: leftover.poll() is not None, 5, "the recorded leftover to end")
    assert leftover.returncode == -signal.SIGKILL
    assert stranger.poll() is None  # somebody else's process is never touched


def _failures(stage: str, cause: str) -> float:
    body = metrics.exposition()[0].decode()
    prefix = f'workbench_scheduler_tick_failures_total{{cause="{cause}",stage="{stage}"}} '
    lines = [line for line in body.splitlines() if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_a_tick_without_its_database_logs_one_line_and_counts(
    pg_owner: str | None,
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wb = _bench(monkeypatch, pg_url, lease=30)
    name = wb.engine.url.database
    admin = create_engine(wb.engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    before = _failures("tick", "database")
    stop = threading.Event()
    executor = LocalExecutor(1, warm_kernels=0)
    thread = threading.Thread(
        target=run_scheduler, args=(wb, executor), kwargs={"stop": stop, "poll_seconds": 0.2}
    )
    caplog.set_level(logging.INFO, logger="workbench.scheduler")
    try:
        thread.start()
        time.sleep(2)  # a few good ticks first
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                {"d": name},
            )
        wait_for(lambda: _failures("tick", "database") >= before + 3, 30, "three failed ticks")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    finally:
        stop.set()
        thread.join(timeout=30)
        executor.close()
        wb.close()
        admin.dispose()
    failed = [r for r in caplog.records if "scheduler tick failed" in r.getMessage()]
    assert len(failed) >= 3
    for entry in failed:
        message = entry.getMessage()
        assert entry.levelno == logging.WARNING and entry.exc_info is None, message
        assert "\n" not in message
        assert "the database is unreachable" in message and "next try in" in message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_server(port: int, processes: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """A Redis of this test's own, without persistence: a restart loses what it held."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    processes.append(process)

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_for(answers, 10, "the test's Redis")
    return process


def test_runs_lost_with_the_broker_are_sent_again_at_once(
    pg_owner: str | None,
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
    processes: list[subprocess.Popen[bytes]],
    scheduler_in_thread: Callable[[Workbench, Executor], None],
) -> None:
    from workbench.scheduler.executors import CeleryExecutor

    lease = 40.0  # longer than this test waits: only the restart's re-send can save the runs
    port = _free_port()
    broker = _redis_server(port, processes)
    monkeypatch.setenv("WORKBENCH_CELERY_BROKER_URL", f"redis://127.0.0.1:{port}/0")
    monkeypatch.setenv("WORKBENCH_CELERY_QUEUE", f"wbtest-{uuid.uuid4().hex[:8]}")
    wb = _bench(monkeypatch, pg_url, lease=lease)
    jobs.register(
        "quick", SLEEPS, parameters={"seconds": 0.1}, max_concurrency=2, owner=pg_owner,
        workbench=wb,
    )  # fmt: skip
    runs = [jobs.trigger("quick", workbench=wb) for _ in range(2)]
    scheduler_in_thread(wb, CeleryExecutor(wb.settings))
    # No worker yet: the runs sit in the broker, dispatched and unclaimed.
    wait_for(
        lambda: all((run_row(wb, r).worker or "").startswith("dispatched:") for r in runs),
        30,
        "both runs in the broker",
    )
    os.kill(broker.pid, signal.SIGKILL)
    broker.wait()
    time.sleep(1.0)  # a tick or more without a broker
    _redis_server(port, processes)
    restarted = time.monotonic()
    worker = subprocess.Popen(
        [sys.executable, "-m", "workbench", "worker", "--concurrency", "1",
         "--loglevel", "WARNING"],
        env=dict(os.environ), stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    processes.append(worker)
    wait_for(
        lambda: all(run_row(wb, r).status is RunStatus.SUCCEEDED for r in runs),
        lease - 10,
        "both runs, sent again after the broker's restart",
    )
    assert time.monotonic() - restarted < lease - 10


def test_a_celery_worker_outlives_its_broker_while_a_slot_waits_for_work(
    pg_owner: str | None,
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
    processes: list[subprocess.Popen[bytes]],
    scheduler_in_thread: Callable[[Workbench, Executor], None],
    tmp_path: Path,
) -> None:
    """One slot runs a run while the other waits on the broker (BRPOP): losing the broker then
    made Celery 5.7.0's worker exit ("Unrecoverable error", its second close of the lost
    connection), so nothing ran until somebody restarted it. The worker must reconnect."""
    from workbench.scheduler.executors import CeleryExecutor

    port = _free_port()
    broker = _redis_server(port, processes)
    monkeypatch.setenv("WORKBENCH_CELERY_BROKER_URL", f"redis://127.0.0.1:{port}/0")
    monkeypatch.setenv("WORKBENCH_CELERY_QUEUE", f"wbtest-{uuid.uuid4().hex[:8]}")
    wb = _bench(monkeypatch, pg_url, lease=5.0)
    for name, seconds in (("long", 6.0), ("quick", 0.1)):
        jobs.register(
            name, SLEEPS, parameters={"seconds": seconds}, owner=pg_owner, workbench=wb,
        )  # fmt: skip
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = subprocess.Popen(
            [sys.executable, "-m", "workbench", "worker", "--concurrency", "2",
             "--loglevel", "WARNING"],
            env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=sink,
            start_new_session=True,
        )  # fmt: skip
    processes.append(worker)
    scheduler_in_thread(wb, CeleryExecutor(wb.settings))
    long = jobs.trigger("long", workbench=wb)
    wait_for(lambda: run_row(wb, long).status is RunStatus.RUNNING, 60, "the long run")
    time.sleep(0.5)  # the free slot is back to waiting on the broker
    os.kill(broker.pid, signal.SIGKILL)
    broker.wait()
    time.sleep(2.0)
    said = log.read_text(errors="replace")
    assert worker.poll() is None and "Unrecoverable error" not in said, said[-3000:]
    _redis_server(port, processes)
    quick = jobs.trigger("quick", workbench=wb)
    wait_for(
        lambda: run_row(wb, quick).status is RunStatus.SUCCEEDED,
        30,
        "a run sent after the broker came back",
    )
    assert worker.poll() is None
    assert "Unrecoverable error" not in log.read_text(errors="replace")


HOSTILE = """\
import os, psycopg
url = os.environ["WORKBENCH_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
refused = {}
for statement in (
    "UPDATE service_heartbeats SET details = '{\\"processes\\": [[1, 0]]}'",
    "INSERT INTO service_heartbeats SELECT * FROM service_heartbeats",
    "DELETE FROM service_heartbeats",
):
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement)
        refused[statement] = "done"
    except psycopg.Error as exc:
        refused[statement] = type(exc).__name__
assert set(refused.values()) == {"InsufficientPrivilege"}, refused
"""


def test_a_kernel_cannot_name_processes_for_the_scheduler_to_end(
    pg_owner: str | None, monkeypatch: pytest.MonkeyPatch, pg_url: str, tmp_path: Path
) -> None:
    """The recorded PIDs are the service's: a run's kernel (its owner's login) can neither
    write nor remove heartbeat rows, so it cannot make a starting scheduler kill anything."""
    import nbformat

    from workbench.runs.execute import execute_run

    notebook = tmp_path / "hostile.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(HOSTILE)]
    nbformat.write(nb, notebook)
    wb = _bench(monkeypatch, pg_url, lease=30)
    try:
        jobs.register("hostile", str(notebook), owner=pg_owner, workbench=wb)
        run = execute_run(jobs.trigger("hostile", workbench=wb), workbench=wb)
        assert run.status is RunStatus.SUCCEEDED, run.error_message
    finally:
        wb.close()
