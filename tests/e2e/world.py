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

import pandas as pd
import psutil
from psycopg import sql
from sqlalchemy import select, text

from tests import services
from workbench import accounts
from workbench.api import Workbench
from workbench.config import load_settings
from workbench.data import write
from workbench.db import rls
from workbench.db.models import Job, RunStatus, Team
from workbench.db.models import Run as RunRow
from workbench.sources.flights import load_table

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
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

    def rows_of(self, team: str) -> pd.DataFrame:
        return self.flights[self.flights["team"] == team]


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
            accounts.add_team(f"{prefix}-{letter}", bench=bench)
            name, password = f"{prefix}_viewer_{letter}", secrets.token_urlsafe(16)
            account = accounts.add_user(
                name, role="viewer", password=password, teams_=(f"{prefix}-{letter}",), bench=bench
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
            name, role="analyst", password=password, teams_=(f"{prefix}-a",), bench=bench
        )
        world.viewers["analyst"] = (name, password)
        world.roles.append(str(account.user.db_role))
        _seed_runs(bench, teams["a"])
        with bench.engine.begin() as conn:
            rls.protect_table(conn, "flights", team_id=teams["a"])
            conn.execute(
                text("UPDATE flights SET team_id = :b WHERE origin NOT IN ('JFK', 'EWR')"),
                {"b": teams["b"]},
            )
    finally:
        bench.close()
    return world


def _seed_runs(bench: Workbench, team: uuid.UUID) -> None:
    """A few jobs and a week of their runs, some failed, for the operations dashboard."""
    now = datetime.now(UTC)
    with bench.session() as session, session.begin():
        for index, job_name in enumerate(("daily_kpis", "ingest_flights", "data_quality")):
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
                session.add(
                    RunRow(
                        job_id=job.id,
                        notebook=job.notebook,
                        status=RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
                        queued_at=started,
                        started_at=started,
                        finished_at=started + timedelta(seconds=20 + 15 * index + day),
                        error_name="KeyError" if failed else None,
                        error_message="'carrier' is not a column" if failed else None,
                        output_uri=f"runs/{job_name}/{day}.ipynb",
                        team_id=team,
                    )
                )


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
        return any("ipykernel" in part for part in process.cmdline())
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
