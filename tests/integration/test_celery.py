"""The Celery executor with a real Redis broker and real `workbench worker` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from tests.runs_helpers import run_row, wait_for
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.core.errors import ConfigError
from workbench.db.models import RunStatus
from workbench.scheduler import api as jobs
from workbench.scheduler.celery_app import check_visibility_timeout
from workbench.scheduler.executors import CeleryExecutor
from workbench.scheduler.service import run_scheduler

SLEEPS = str(Path(__file__).resolve().parents[1] / "notebooks" / "sleeps.ipynb")
LEASE = 3.0


@pytest.fixture(autouse=True)
def short_lease(celery_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_RUN_LEASE_SECONDS", str(LEASE))


@pytest.fixture
def worker(celery_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    from workbench.api import init

    init()  # the secret key the kernels use
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench",
            "worker",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
        ],
        env=dict(os.environ),
        start_new_session=True,
    )
    yield process
    services.stop(process, 20)


@pytest.fixture
def scheduler(celery_env: dict[str, str]) -> Iterator[Workbench]:
    wb = Workbench(load_settings())
    executor = CeleryExecutor(wb.settings)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_scheduler, args=(wb, executor), kwargs={"stop": stop, "poll_seconds": 0.2}
    )
    thread.start()
    yield wb
    stop.set()
    thread.join(timeout=30)
    executor.close()
    wb.close()


def test_runs_execute_on_celery_workers(
    pg_owner: str | None, worker: subprocess.Popen[bytes], scheduler: Workbench
) -> None:
    wb = scheduler
    jobs.register(
        "quick",
        SLEEPS,
        parameters={"seconds": 0.1},
        max_concurrency=3,
        owner=pg_owner,
        workbench=wb,
    )
    ids = [jobs.trigger("quick", workbench=wb) for _ in range(3)]
    wait_for(lambda: all(run_row(wb, i).status is RunStatus.SUCCEEDED for i in ids), 120, "3 runs")
    workers = {(run_row(wb, i).worker or "").split(":")[1] for i in ids}
    assert str(worker.pid) not in workers  # executed by the worker's child processes


def test_kill_9_of_a_celery_worker_process_mid_run(
    pg_owner: str | None, worker: subprocess.Popen[bytes], scheduler: Workbench
) -> None:
    wb = scheduler
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
        "lost", SLEEPS, parameters={"seconds": 60}, retries=0, owner=pg_owner, workbench=wb
    )
    retried, lost = jobs.trigger("retried", workbench=wb), jobs.trigger("lost", workbench=wb)
    wait_for(
        lambda: (
            run_row(wb, retried).status is RunStatus.RUNNING
            and run_row(wb, lost).status is RunStatus.RUNNING
        ),
        120,
        "both runs to start",
    )
    for run_id in (retried, lost):
        pid = int((run_row(wb, run_id).worker or "").split(":")[1])
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(
        lambda: run_row(wb, lost).status is RunStatus.FAILED, LEASE + 20, "the lost run to fail"
    )
    assert time.monotonic() - killed_at <= LEASE + 1.0 + 0.4 + 5
    assert run_row(wb, lost).error_name == "WorkerLost"
    wait_for(
        lambda: run_row(wb, retried).status is RunStatus.SUCCEEDED, 120, "the retry to succeed"
    )
    assert run_row(wb, retried).attempt == 2


def test_worker_refuses_a_visibility_timeout_shorter_than_a_job(
    pg_owner: str | None, celery_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.api import init

    init()
    wb = Workbench(load_settings())
    jobs.register("long", SLEEPS, timeout=7200, owner=pg_owner, workbench=wb)
    wb.close()
    monkeypatch.setenv("WORKBENCH_CELERY_VISIBILITY_TIMEOUT", "3600")
    with pytest.raises(ConfigError, match="at least 7260 s"):
        check_visibility_timeout(load_settings())
    monkeypatch.setenv("WORKBENCH_CELERY_VISIBILITY_TIMEOUT", "7300")
    check_visibility_timeout(load_settings())
