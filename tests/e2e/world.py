"""A real dashboard world for browser tests and the benchmark: a PostgreSQL database with
flights owned by two teams, a viewer in each, and a running `workbench dashboards serve`.

Team A owns the flights from JFK and EWR, team B those from LGA (row-level security), so the
same dashboard shows each viewer different numbers.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
from psycopg import sql
from sqlalchemy import select, text

from tests import services
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.data.api import write
from workbench.db import rls
from workbench.db.models import Job, RunStatus, Team
from workbench.db.models import Run as RunRow
from workbench.runs.results import RUN_ID_ENV, record
from workbench.runs.storage import HTML_NAME, write_output
from workbench.sources.flights import load_table

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
KPI_NOTEBOOK = str(ROOT / "notebooks" / "flights_kpis.ipynb")
JOBS = ("daily_kpis", "ingest_flights", "data_quality")
TEAM_A_ORIGINS = ("JFK", "EWR")


@dataclass
class World:
    url: str
    env: dict[str, str]
    flights: pd.DataFrame
    """Every row written, with the owning team's letter in column ``team``."""
    viewers: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Team letter (or "analyst", in team a) -> (user name, password)."""
    roles: list[str] = field(default_factory=list)
    failed_runs: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    """Team letter -> its failed runs (each with a stored HTML rendering)."""

    def rows_of(self, team: str) -> pd.DataFrame:
        return self.flights[self.flights["team"] == team]


#: What the lead adds to migration 0006 for the query cache's stamps (workbench.data.cache:
#: LAST_WRITES_FUNCTION): an opaque digest of the last write of each named table the session's
#: login may SELECT, for an active user (or the owner itself), whether or not the table's
#: ``datasets`` row is visible to it. Installed here until the migration has it.
def build_world(pg_url: str, home: Path, *, months: tuple[int, ...] = (1,)) -> World:
    """Write the flights of ``months``, give them to two teams, create a viewer in each."""
    secret_key = secrets.token_urlsafe(48)
    settings = load_settings(secret_key=secret_key, home=home)
    bench = Workbench(settings, pg_url)
    prefix = f"d{uuid.uuid4().hex[:6]}"
    flights = load_table("flights")
    flights = flights[flights["month"].isin(months)].reset_index(drop=True)
    world = World(
        url=pg_url,
        env={
            "WORKBENCH_HOME": str(home),
            "WORKBENCH_DATABASE_URL": pg_url,
            "WORKBENCH_SECRET_KEY": secret_key,
            "WORKBENCH_PLUGINS": "",
        },
        flights=flights.assign(
            team=flights["origin"].isin(TEAM_A_ORIGINS).map({True: "a", False: "b"})
        ),
    )
    try:
        write(bench, flights, "flights")
        for letter in ("a", "b"):
            accounts.add_team(f"{prefix}-{letter}", workbench=bench)
            name, password = f"{prefix}_viewer_{letter}", secrets.token_urlsafe(16)
            account = accounts.add_user(
                name,
                role="viewer",
                password=password,
                teams_=(f"{prefix}-{letter}",),
                workbench=bench,
            )
            world.viewers[letter] = (name, password)
            world.roles.append(str(account.user.db_role))
        with bench.session() as session:
            teams = {
                t.name[-1]: t.id
                for t in session.scalars(select(Team).where(Team.name.like(f"{prefix}-%")))
            }
        name, password = f"{prefix}_analyst", secrets.token_urlsafe(16)
        account = accounts.add_user(
            name, role="analyst", password=password, teams_=(f"{prefix}-a",), workbench=bench
        )
        world.viewers["analyst"] = (name, password)
        world.roles.append(str(account.user.db_role))
        world.failed_runs["a"] = _seed_runs(bench, teams["a"], home)
        world.failed_runs["b"] = _seed_runs(bench, teams["b"], home, jobs=("b_only",))
        seed_kpi_run(bench, teams["a"], world.rows_of("a"), job_name=f"flights_kpis_{prefix}_a")
        with bench.engine.begin() as conn:
            rls.protect_table(conn, "flights", team_id=teams["a"])
            conn.execute(
                text("UPDATE flights SET team_id = :b WHERE origin NOT IN ('JFK', 'EWR')"),
                {"b": teams["b"]},
            )
    finally:
        bench.close()
    return world


def output_html(job: str, day: int) -> bytes:
    """The stored HTML rendering of a seeded run (what the output link must show)."""
    return f"<html><body><h1>Output of {job}, {day} days ago</h1></body></html>".encode()


def _seed_runs(
    bench: Workbench, team: uuid.UUID, home: Path, *, jobs: tuple[str, ...] = JOBS
) -> list[uuid.UUID]:
    """A few jobs and a week of their runs, some failed, for the operations dashboard; each
    run's HTML rendering is stored in its own output folder, as runs store theirs."""
    now = datetime.now(UTC)
    failures: list[uuid.UUID] = []
    with bench.session() as session, session.begin():
        for index, job_name in enumerate(jobs):
            job = Job(
                name=f"{job_name}_{team.hex[:6]}",
                notebook=f"notebooks/{job_name}.ipynb",
                schedule="0 6 * * *",
                next_run_at=now + timedelta(hours=index + 1),
                team_id=team,
            )
            session.add(job)
            session.flush()
            for day in range(7):
                failed = (day + index) % 5 == 0
                started = now - timedelta(days=day, minutes=10 * index)
                run_id = uuid.uuid4()
                folder = home / "runs" / str(run_id)
                write_output(str(folder), HTML_NAME, output_html(job.name, day))
                if failed:
                    failures.append(run_id)
                session.add(
                    RunRow(
                        id=run_id,
                        job_id=job.id,
                        notebook=job.notebook,
                        status=RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
                        queued_at=started,
                        started_at=started,
                        finished_at=started + timedelta(seconds=20 + 15 * index + day),
                        error_name="KeyError" if failed else None,
                        error_message="'carrier' is not a column" if failed else None,
                        error_cell=3 if failed else None,
                        output_uri=str(folder),
                        team_id=team,
                    )
                )
    return failures


def kpi_results(rows: pd.DataFrame) -> dict[str, Any]:
    """What a scheduled run of notebooks/flights_kpis.ipynb records for the flights dashboard,
    computed with pandas from ``rows`` (default parameters: all of 2013, 15 minutes)."""
    delays = rows[["dep_delay", "arr_delay"]].astype("float64")
    frame = rows.assign(dep_delay=delays["dep_delay"], arr_delay=delays["arr_delay"])

    def per(column: str) -> pd.DataFrame:
        grouped = frame.groupby(column).agg(avg_dep_delay=("dep_delay", "mean")).reset_index()
        return grouped.astype({column: "int64"})

    routes = (
        frame.groupby(["origin", "dest"])
        .agg(flights=("arr_delay", "size"), avg_arr_delay=("arr_delay", "mean"))
        .reset_index()
    )
    worst = routes[routes["flights"] >= 20].nlargest(8, "avg_arr_delay")
    arrived = frame["arr_delay"].dropna()
    return {
        "flights": len(frame),
        "on_time_rate": float((arrived < 15).mean()),
        "avg_dep_delay": float(frame["dep_delay"].mean()),
        "cancelled": int(frame["dep_time"].isna().sum()),
        "by_hour": per("hour"),
        "by_month": per("month"),
        "worst_routes": pd.DataFrame(
            {
                "route": (worst["origin"] + " → " + worst["dest"]).to_numpy(),
                "flights": worst["flights"].to_numpy(),
                "avg_arr_delay": worst["avg_arr_delay"].round(1).to_numpy(),
            }
        ),
    }


def seed_kpi_run(
    bench: Workbench,
    team: uuid.UUID,
    rows: pd.DataFrame,
    *,
    job_name: str,
    finished: datetime | None = None,
    parameters: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
) -> uuid.UUID:
    """A succeeded scheduled run of the KPI notebook for ``team``, with the results it would
    record for ``rows`` (or ``values``), as `wb.record` stores them."""
    finished = finished or datetime.now(UTC) - timedelta(minutes=5)
    with bench.session() as session, session.begin():
        job = session.scalar(select(Job).where(Job.name == job_name))
        if job is None:
            job = Job(name=job_name, notebook=KPI_NOTEBOOK, schedule="0 6 * * *", team_id=team)
            session.add(job)
            session.flush()
        run = RunRow(
            job_id=job.id,
            notebook=KPI_NOTEBOOK,
            parameters=parameters or {},
            status=RunStatus.SUCCEEDED,
            queued_at=finished - timedelta(seconds=30),
            started_at=finished - timedelta(seconds=30),
            finished_at=finished,
            team_id=team,
        )
        session.add(run)
        session.flush()
        run_id = run.id
    previous = os.environ.get(RUN_ID_ENV)
    os.environ[RUN_ID_ENV] = str(run_id)
    try:
        for name, value in (values if values is not None else kpi_results(rows)).items():
            record(name, value, workbench=bench)
    finally:
        if previous is None:
            del os.environ[RUN_ID_ENV]
        else:
            os.environ[RUN_ID_ENV] = previous
    return run_id


def drop_roles(world: World) -> None:
    """Login roles are cluster-wide: drop the world's after its database is gone."""
    with services.admin_connect() as conn:
        for role in world.roles:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log: Path
    started: float
    ready_after: float = 0.0

    def kernels(self) -> list[psutil.Process]:
        """The kernel processes the server has started and not stopped."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [p for p in children if _is_kernel(p)]

    def stop(self) -> list[int]:
        """SIGTERM, wait, and the pids of kernels still alive afterwards (should be none)."""
        kernels = self.kernels()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        time.sleep(0.2)
        alive = [k.pid for k in kernels if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
        for pid in alive:  # never leave them behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
        return alive


def _is_kernel(process: psutil.Process) -> bool:
    try:
        # The first kernel runs in the server's spare process (workbench.dashboards.spare).
        return any("ipykernel" in part or "dashboards.spare" in part for part in process.cmdline())
    except psutil.Error:
        return False


def start_server(
    world: World, workdir: Path, *, pool_size: int = 2, folder: Path = DASHBOARDS
) -> Server:
    """`workbench dashboards serve` in a subprocess; returns once the login page answers."""
    port = free_port()
    log = workdir / f"server-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(world.env)
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench", "dashboards", "serve", "--port", str(port),
             "--pool-size", str(pool_size), "--folder", str(folder)],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}/", log, started)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the dashboard server exited:\n" + log.read_text())
        try:
            with urllib.request.urlopen(server.base + "login", timeout=2) as reply:  # noqa: S310
                if reply.status == 200:
                    server.ready_after = time.perf_counter() - started
                    return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("the dashboard server did not answer:\n" + log.read_text())
