"""A real `workbench worker` (Celery, Redis broker): its health port, its heartbeat row, and
`workbench doctor --json` about workers: none (a warning), live (ok), killed (stale: failed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.cli import run_cli
from tests.e2e.world import free_port
from tests.integration.test_health_probes import (
    assert_drained,
    probe,
    probe_until_gone,
    report,
)
from tests.runs_helpers import run_row, wait_for
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.models import RunStatus, ServiceKind
from workbench.ops.heartbeats import ServiceStatus, service_statuses, stale_after
from workbench.scheduler import api as jobs
from workbench.scheduler.executors import CeleryExecutor
from workbench.scheduler.service import run_scheduler

SLEEPS = str(Path(__file__).resolve().parents[1] / "notebooks" / "sleeps.ipynb")
POLL = 0.3
STALE = stale_after(POLL)


@pytest.fixture(autouse=True)
def initialised(celery_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.api import init

    monkeypatch.setenv("WORKBENCH_SCHEDULER_POLL_SECONDS", str(POLL))
    init()  # the secret key the kernels use


def start_worker(
    started: list[subprocess.Popen[bytes]], *args: str, **env: str
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench", "worker", "--concurrency", "1",
         "--loglevel", "WARNING", *args],
        env={**os.environ, **env}, start_new_session=True,
    )  # fmt: skip
    started.append(process)
    return process


def rows(wb: Workbench) -> list[ServiceStatus]:
    return service_statuses(wb.engine, ServiceKind.WORKER, stale_seconds=STALE)


def test_celery_worker_probes_heartbeat_and_drain(
    pg_owner: str | None, celery_env: dict[str, str], processes: list[subprocess.Popen[bytes]]
) -> None:
    port, redis_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    worker = start_worker(
        processes,
        "--metrics-port",
        str(port),
        WORKBENCH_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
    )
    wb = Workbench(load_settings())
    executor = CeleryExecutor(wb.settings)
    stop = threading.Event()
    scheduler = threading.Thread(
        target=run_scheduler, args=(wb, executor), kwargs={"stop": stop, "poll_seconds": POLL}
    )
    try:
        wait_for(lambda: [r.pid for r in rows(wb)] == [worker.pid], 60, "the worker's row")
        row = rows(wb)[0]
        assert (row.name, row.details["executor"]) == ("celery-worker", "celery")
        wait_for(lambda: probe(base + "/livez")[0] == 200, 30, "the worker's /livez")

        # Redis (WORKBENCH_REDIS_URL) is down; the broker (another Redis) is not. Each check
        # has a budget of 80 ms: on a loaded machine a first round may time one out, so the
        # answer is awaited (it must come, and stay: the loop below probes again).
        expected = {
            "status": "fail",
            "checks": {"database": "ok", "migrations": "ok", "redis": "fail", "broker": "ok"},
        }
        wait_for(lambda: probe(base + "/readyz")[:2] == (503, expected), 20, "readyz's checks")
        report("worker /readyz (Redis down)", [probe(base + "/readyz")[2] for _ in range(20)])
        # Celery's loop touches the liveness every second: it stays fresh past its bound.
        for _ in range(12):
            code, body, _ = probe(base + "/livez?verbose")
            assert code == 200, body
            time.sleep(0.5)
        report("worker /livez", [probe(base + "/livez")[2] for _ in range(20)])
        first_beat = row.heartbeat_at
        assert rows(wb)[0].heartbeat_at > first_beat

        # SIGTERM while a run executes: not ready at once, and the run still finishes.
        jobs.register("sleepy", SLEEPS, parameters={"seconds": 4}, owner=pg_owner, workbench=wb)
        scheduler.start()
        run_id = jobs.trigger("sleepy", workbench=wb)
        wait_for(lambda: run_row(wb, run_id).status is RunStatus.RUNNING, 120, "the run")
        worker.send_signal(signal.SIGTERM)
        answers = probe_until_gone(base + "/readyz", worker)
        assert worker.wait(timeout=60) == 0
        assert_drained(answers, "worker")
        assert run_row(wb, run_id).status is RunStatus.SUCCEEDED
        assert rows(wb) == []  # a worker that stopped removed its row
    finally:
        stop.set()
        if scheduler.is_alive():
            scheduler.join(timeout=30)
        executor.close()
        wb.close()


def doctor(**env: str) -> tuple[int, dict[str, object]]:
    result = run_cli("doctor", "--json", env=env)
    return result.code, json.loads(result.stdout)


def workers_check(report: dict[str, object]) -> dict[str, str]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return next(c for c in checks if c["name"] == "workers")


def test_doctor_json_on_no_live_and_stale_workers(
    celery_env: dict[str, str], processes: list[subprocess.Popen[bytes]]
) -> None:
    code, found = doctor()
    assert (code, found["status"]) == (2, "warning")
    assert workers_check(found)["status"] == "warning"

    worker = start_worker(processes)
    wb = Workbench(load_settings())
    try:
        wait_for(lambda: [r.pid for r in rows(wb)] == [worker.pid], 60, "the worker's row")
        code, found = doctor()
        assert (code, found["status"]) == (0, "ok"), found
        assert workers_check(found)["detail"] == "1 running, heartbeats fresh"

        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        wait_for(lambda: all(r.stale for r in rows(wb)), STALE + 10, "the row to go stale")
        code, found = doctor()
        assert (code, found["status"]) == (1, "failed")
        check = workers_check(found)
        assert check["status"] == "failed"
        assert f"pid {worker.pid}" in check["detail"]
    finally:
        wb.close()
