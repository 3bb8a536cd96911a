"""Metrics of the other real services: a `workbench worker` (Celery, Redis broker), whose
forked processes run the notebooks, and the dashboards server's `/metrics`, for admins only."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests import services
from tests.e2e.world import DASHBOARDS, World, free_port, start_server
from tests.integration.test_metrics import Samples, parse, value
from tests.runs_helpers import run_row, wait_for
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.models import Role, RunStatus
from workbench.scheduler import api as jobs
from workbench.scheduler.executors import CeleryExecutor
from workbench.scheduler.service import run_scheduler

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SLEEPS = str(NOTEBOOKS / "sleeps.ipynb")
FAILS = str(NOTEBOOKS / "fails_in_cell_2.ipynb")

pytestmark = pytest.mark.postgres


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - a local test URL
        return parse(reply.read())


def _answers(url: str) -> bool:
    try:
        return value(scrape(url), "workbench_executor_slots", executor="celery", state="free") == 1
    except OSError:
        return False


@pytest.fixture
def initialised(celery_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.api import init

    monkeypatch.setenv("WORKBENCH_RUN_LEASE_SECONDS", "3")
    init()  # the secret key the kernels use


@pytest.fixture
def worker_port(initialised: None, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench", "worker", "--concurrency", "1",
         "--loglevel", "WARNING", "--metrics-port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: process.poll() is None and _answers(url), 90, "the worker's /metrics")
        yield port
    finally:
        services.stop(process)
        log.close()


def test_a_worker_scrape_adds_up_its_forked_processes(
    pg_owner: str | None, celery_env: dict[str, str], worker_port: int
) -> None:
    url = f"http://127.0.0.1:{worker_port}/metrics"
    wb = Workbench(load_settings())
    executor = CeleryExecutor(wb.settings)
    stop = threading.Event()
    scheduler = threading.Thread(
        target=run_scheduler, args=(wb, executor), kwargs={"stop": stop, "poll_seconds": 0.3}
    )
    scheduler.start()
    try:
        jobs.register("ok", SLEEPS, parameters={"seconds": 0.1}, owner=pg_owner, workbench=wb)
        jobs.register("bad", FAILS, owner=pg_owner, workbench=wb)
        jobs.register(
            "lost", SLEEPS, parameters={"seconds": 120}, retries=0, owner=pg_owner, workbench=wb
        )
        ok, bad = jobs.trigger("ok", workbench=wb), jobs.trigger("bad", workbench=wb)
        wait_for(
            lambda: (
                run_row(wb, ok).status is RunStatus.SUCCEEDED
                and run_row(wb, bad).status is RunStatus.FAILED
            ),
            120,
            "one run to succeed and one to fail",
        )
        seen = scrape(url)
        assert value(seen, "workbench_runs_total", status="succeeded", trigger="manual") == 1
        assert value(seen, "workbench_runs_total", status="failed", trigger="manual") == 1
        assert value(seen, "workbench_run_queue_wait_seconds_count", trigger="manual") == 2
        assert value(seen, "workbench_executor_slots", executor="celery", state="busy") == 0

        # A worker process killed mid-run: the scheduler reaps the run (and counts it there);
        # the dead process's slot leaves the worker's metrics, its counts stay.
        lost = jobs.trigger("lost", workbench=wb)
        wait_for(lambda: run_row(wb, lost).status is RunStatus.RUNNING, 120, "the lost run")
        assert value(scrape(url), "workbench_executor_slots", executor="celery", state="busy") == 1
        os.kill(int((run_row(wb, lost).worker or "").split(":")[1]), signal.SIGKILL)
        wait_for(lambda: run_row(wb, lost).status is RunStatus.FAILED, 60, "the reaper")
        wait_for(lambda: _answers(url), 60, "a replacement worker process")
        last = scrape(url)
        assert value(last, "workbench_executor_slots", executor="celery", state="busy") == 0
        assert value(last, "workbench_runs_total", status="failed", trigger="manual") == 1
        assert value(last, "workbench_runs_total", status="succeeded", trigger="manual") == 1
    finally:
        stop.set()
        scheduler.join(timeout=30)
        executor.close()
        wb.close()


# -- the dashboards server --------------------------------------------------------------------


def _sign_in(
    clients: list[httpx.Client], base: str, username: str, password: str
) -> tuple[httpx.Client, int]:
    client = httpx.Client(base_url=base, timeout=20, follow_redirects=False)
    clients.append(client)
    client.get("login")  # sets the XSRF cookie
    reply = client.post(
        "login",
        data={"username": username, "password": password, "_xsrf": client.cookies["_xsrf"]},
    )
    return client, reply.status_code


def test_the_dashboards_serve_metrics_to_admins_only(
    pg_url: str, isolated_env: Path, tmp_path: Path
) -> None:
    key = secrets.token_urlsafe(48)
    home = tmp_path / "serve-home"
    env = {
        "WORKBENCH_HOME": str(home),
        "WORKBENCH_DATABASE_URL": pg_url,
        "WORKBENCH_SECRET_KEY": key,
        "WORKBENCH_PLUGINS": "",
    }
    names = {"admin": f"ada{uuid.uuid4().hex[:6]}", "viewer": f"vic{uuid.uuid4().hex[:6]}"}
    passwords = {who: secrets.token_urlsafe(16) for who in names}
    with Workbench(load_settings(secret_key=key, home=home), pg_url) as bench:
        accounts.add_user(
            names["admin"], role=Role.ADMIN, password=passwords["admin"], workbench=bench
        )
        accounts.add_user(
            names["viewer"], role=Role.VIEWER, password=passwords["viewer"], workbench=bench
        )
    world = World(url=pg_url, env=env, flights=pd.DataFrame())
    server = start_server(world, tmp_path, pool_size=0, folder=DASHBOARDS)
    clients: list[httpx.Client] = []
    try:
        with httpx.Client(base_url=server.base, timeout=20) as anonymous:
            reply = anonymous.get("metrics", follow_redirects=False)
        assert reply.status_code == 404
        assert "workbench_" not in reply.text

        viewer, code = _sign_in(clients, server.base, names["viewer"], passwords["viewer"])
        assert code == 302
        reply = viewer.get("metrics")
        assert reply.status_code == 404
        assert "workbench_" not in reply.text

        _, code = _sign_in(clients, server.base, names["admin"], "not the password")
        assert code == 401
        admin, code = _sign_in(clients, server.base, names["admin"], passwords["admin"])
        assert code == 302
        reply = admin.get("metrics")
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert reply.headers["cache-control"] == "no-store"
        seen = parse(reply.text)
    finally:
        for client in clients:
            client.close()
        server.stop()

    assert value(seen, "workbench_sign_in_attempts_total", result="success") == 2
    assert value(seen, "workbench_sign_in_attempts_total", result="failure") == 1
    requests = "workbench_dashboard_request_duration_seconds_count"
    assert value(seen, requests, handler="LoginHandler", status="401") == 1
    assert value(seen, requests, handler="LoginHandler", status="302") == 2
    assert value(seen, requests, handler="MetricsHandler", status="404") == 2
    assert value(seen, "workbench_database_up") == 1
    assert value(seen, "workbench_runs_queued") == 0
    # Labels name handler classes and results, never who signed in.
    assert not any(name in reply.text for name in names.values())
