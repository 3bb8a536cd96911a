"""Scheduler heartbeats with a real `workbench scheduler` process: fresh, stale after kill -9,
removed on a clean stop, and readable by admins only (PostgreSQL row-level security)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import event

from tests import services
from tests.runs_helpers import wait_for
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.identity_connect import user_database_url
from workbench.db.models import ServiceKind
from workbench.ops.health import check_schedulers, run_checks
from workbench.ops.heartbeats import ServiceBeat, service_statuses, stale_after
from workbench.scheduler.executors import LocalExecutor
from workbench.scheduler.service import run_scheduler

POLL = 0.3
STALE = stale_after(POLL)


def _start_scheduler(db_url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["WORKBENCH_DATABASE_URL"] = db_url
    env["WORKBENCH_SCHEDULER_POLL_SECONDS"] = str(POLL)
    return subprocess.Popen(
        [sys.executable, "-m", "workbench", "scheduler", "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _schedulers(wb: Workbench) -> list[int]:
    statuses = service_statuses(wb.engine, ServiceKind.SCHEDULER, stale_seconds=STALE)
    return [s.pid for s in statuses if not s.stale]


def test_a_live_scheduler_beats_and_a_killed_one_goes_stale(
    workbench: Workbench, db_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    assert check_schedulers(workbench.engine, stale_seconds=STALE).detail == "no scheduler running"
    first = _start_scheduler(db_url)
    processes.append(first)
    wait_for(lambda: _schedulers(workbench) == [first.pid], 60, "the scheduler's heartbeat")
    before = service_statuses(workbench.engine, ServiceKind.SCHEDULER, stale_seconds=STALE)[0]
    wait_for(
        lambda: (
            service_statuses(workbench.engine, ServiceKind.SCHEDULER, stale_seconds=STALE)[
                0
            ].heartbeat_at
            > before.heartbeat_at
        ),
        10,
        "a later heartbeat",
    )
    check = check_schedulers(workbench.engine, stale_seconds=STALE)
    assert check.ok, check.detail
    assert "1 running" in check.detail
    assert before.details["executor"] == "local"

    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    wait_for(
        lambda: not check_schedulers(workbench.engine, stale_seconds=STALE).ok,
        STALE + 10,
        "the killed scheduler to be reported stale",
    )
    check = check_schedulers(workbench.engine, stale_seconds=STALE)
    assert "1 stale" in check.detail
    assert f"pid {first.pid}" in check.detail
    # `workbench doctor` runs the same check (poll 0.3 s here gives the same stale bound).
    settings = load_settings(database_url=db_url, scheduler_poll_seconds=POLL)
    by_name = {c.name: c for c in run_checks(settings, workbench.engine)}
    assert by_name["scheduler"].ok is False

    # A new scheduler on this host removes the dead one's row; a clean stop removes its own.
    second = _start_scheduler(db_url)
    processes.append(second)
    wait_for(lambda: _schedulers(workbench) == [second.pid], 60, "the second scheduler")
    assert check_schedulers(workbench.engine, stale_seconds=STALE).ok
    os.killpg(second.pid, signal.SIGTERM)
    assert second.wait(timeout=30) == 0, second.stderr.read() if second.stderr else ""
    statuses = service_statuses(workbench.engine, ServiceKind.SCHEDULER, stale_seconds=STALE)
    assert statuses == []


def test_doctor_reports_a_stale_scheduler(workbench: Workbench, db_url: str) -> None:
    beat = ServiceBeat(workbench, ServiceKind.SCHEDULER, "frozen")
    with workbench.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE service_heartbeats SET heartbeat_at = heartbeat_at - interval '1 hour'"
            if workbench.engine.dialect.name == "postgresql"
            else "UPDATE service_heartbeats SET heartbeat_at = datetime(heartbeat_at, '-1 hour')"
        )
    env = dict(os.environ, WORKBENCH_DATABASE_URL=db_url)
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "stale" in done.stdout
    assert "frozen" in done.stdout
    beat.close()


def test_only_admins_read_heartbeats(pg_url: str) -> None:
    settings = load_settings(secret_key=secrets.token_urlsafe(48))
    bench = Workbench(settings, pg_url)
    prefix = f"h{uuid.uuid4().hex[:6]}"
    made: list[str] = []
    try:
        accounts.add_team(f"{prefix}-a", workbench=bench)
        users = {}
        for name, role, teams in [
            ("ann", "analyst", (f"{prefix}-a",)),
            ("val", "viewer", (f"{prefix}-a",)),
            ("adm", "admin", ()),
        ]:
            account = accounts.add_user(
                f"{prefix}_{name}", role=role, teams_=teams, workbench=bench
            )
            assert account.user.db_role is not None
            made.append(account.user.db_role)
            users[name] = account.user
        beat = ServiceBeat(bench, ServiceKind.SCHEDULER, "visible-to-admins")

        def connect(name: str) -> psycopg.Connection:
            url = user_database_url(settings, users[name], pg_url)
            dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            return psycopg.connect(dsn, autocommit=True)

        with connect("adm") as conn:
            rows = conn.execute("SELECT name FROM service_heartbeats").fetchall()
            assert rows == [("visible-to-admins",)]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM service_heartbeats")
        for name in ("ann", "val"):
            with connect(name) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT name FROM service_heartbeats")
        beat.close()
    finally:
        bench.close()
        with services.admin_connect(pg_url.rsplit("/", 1)[1]) as conn:
            for role in made:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_beat_after_its_workbench_closed_leaves_no_connection_open(pg_url: str) -> None:
    # A scheduler may remove its row after the workbench was closed (and reopened on use):
    # the beat must use the workbench's current engine, which the next close() closes too.
    wb = Workbench(load_settings(), pg_url)
    beat = ServiceBeat(wb, ServiceKind.SCHEDULER, "closing")
    wb.close()
    beat.close()
    wb.close()
    dbname = pg_url.rsplit("/", 1)[1]
    with services.admin_connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [dbname],
        ).fetchone()
    assert row is not None
    assert row[0] == 0
    assert service_statuses(wb.engine, ServiceKind.SCHEDULER, stale_seconds=STALE) == []
    wb.close()


def test_a_short_poll_writes_the_heartbeat_at_most_once_a_second(workbench: Workbench) -> None:
    beats: list[float] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE SERVICE_HEARTBEATS"):
            beats.append(time.monotonic())

    event.listen(workbench.engine, "before_cursor_execute", count)
    executor = LocalExecutor(workers=1, warm_kernels=0)
    try:
        started = time.monotonic()
        stats = run_scheduler(
            workbench, executor, stop=threading.Event(), poll_seconds=0.05, max_ticks=40
        )
        elapsed = time.monotonic() - started
    finally:
        executor.close()
    assert stats.ticks == 40
    assert 1 <= len(beats) <= elapsed + 1, (len(beats), elapsed)
