"""Chaos: runs through injected faults, counting what is lost, doubled, stuck or left behind.

    python benchmarks/chaos.py [--runs 200] [--only NAME[,NAME]] [--quick]
                               [--lease 5] [--poll 0.5]

Each experiment gets a PostgreSQL database of its own (created and dropped here) and, for
Celery, a Redis of its own (``redis-server`` on a free port, without persistence, started and
stopped here): the shared servers are never stopped, only this harness's own database's
backends are terminated. The runs execute a notebook that takes a lock per run id (a
PostgreSQL advisory lock, on the kernel's own connection) and logs whether it got it: a run
executing twice at once logs a refusal, which is the exact double-run count.

The table: queued, succeeded, failed, lost (not succeeded), doubled, stuck (``running`` at
the end), re-runs (attempts beyond the first), recovery seconds (from the fault's end to the
next run claimed) and leftover processes (a killed scheduler's descendants still alive 5 s
later, and any process named after the experiment's runs or schedulers once it is over).
Exits 1 when anything is lost, doubled, stuck or left behind, when a killed pool worker costs
other than exactly one re-run, when the Celery worker exits with its broker, or when recovery
from a broker loss takes longer than the lease. ``--quick`` runs fewer runs per experiment, for
CI.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from sqlalchemy import create_engine, func, select, text, update  # noqa: E402

from tests import services  # noqa: E402
from tests.runs_helpers import family, still_alive  # noqa: E402
from workbench.accounts import api as accounts  # noqa: E402
from workbench.api import init  # noqa: E402
from workbench.app import Workbench  # noqa: E402
from workbench.core.config import load_settings  # noqa: E402
from workbench.db.models import Job, Run, RunStatus  # noqa: E402
from workbench.ops.processes import KERNEL_TITLE  # noqa: E402
from workbench.scheduler import api as jobs  # noqa: E402

LOG_TABLE = "chaos_log"
CELL = f"""\
import os, time, psycopg
url = os.environ["WORKBENCH_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
run_id = os.environ["WORKBENCH_RUN_ID"]
_chaos = psycopg.connect(url, autocommit=True)
lock = "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))"
got = _chaos.execute(lock, (run_id,)).fetchone()[0]
_chaos.execute("INSERT INTO {LOG_TABLE} (run_id, locked) VALUES (%s, %s)", (run_id, got))
time.sleep(seconds)
"""


def _notebook(folder: Path) -> str:
    def cell(name: str, source: str, tags: list[str]) -> dict[str, object]:
        return {"cell_type": "code", "execution_count": None, "id": name,
                "metadata": {"tags": tags}, "outputs": [], "source": source}  # fmt: skip

    cells = [cell("p", "seconds: float = 0.5", ["parameters"]), cell("c", CELL, [])]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
          "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
    path = folder / "chaos.ipynb"
    path.write_text(json.dumps(nb))
    return str(path)


@dataclass
class Outcome:
    name: str
    queued: int = 0
    succeeded: int = 0
    failed: int = 0
    lost: int = 0
    doubled: int = 0
    stuck: int = 0
    reruns: int = 0
    recovery: float | None = None
    leftover: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class World:
    """One experiment's database, home, job and service processes."""

    def __init__(self, db: str, home: str, runs: int, lease: float, poll: float) -> None:
        self.url = services.sqlalchemy_url(db)
        self.db = db
        self.env = {
            **os.environ,
            "WORKBENCH_HOME": home,
            "WORKBENCH_DATABASE_URL": self.url,
            "WORKBENCH_RUN_LEASE_SECONDS": str(lease),
            "WORKBENCH_SCHEDULER_POLL_SECONDS": str(poll),
            "WORKBENCH_MAX_CONCURRENT_RUNS": "2",
            "WORKBENCH_CELERY_QUEUE": f"chaos-{uuid.uuid4().hex[:8]}",
        }
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("WORKBENCH_")})
        init()
        self.wb = Workbench(load_settings())
        admin = create_engine(services.sqlalchemy_url(db), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE TABLE {LOG_TABLE} (run_id text, locked boolean)"))
            conn.execute(text(f"GRANT INSERT ON {LOG_TABLE} TO PUBLIC"))
        admin.dispose()
        owner = f"chaos_{uuid.uuid4().hex[:8]}"
        accounts.add_team(f"team-{owner}", workbench=self.wb)
        accounts.add_user(owner, role="analyst", teams_=(f"team-{owner}",), workbench=self.wb)
        notebook = _notebook(Path(home))
        self.notebook, self.owner = notebook, owner
        jobs.register("chaos", notebook, max_concurrency=2, retries=3, retry_delay=0,
                      owner=owner, workbench=self.wb)  # fmt: skip
        self.runs = {str(jobs.trigger("chaos", workbench=self.wb)) for _ in range(runs)}
        self.services: list[subprocess.Popen[bytes]] = []
        # The services' own logs, printed when an experiment goes wrong.
        self.log = open(Path(home) / "services.log", "wb")  # noqa: SIM115
        self.scheduler_pids: list[int] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench", *args],
            env={**self.env, **env}, stdout=subprocess.DEVNULL, stderr=self.log,
            start_new_session=True,
        )  # fmt: skip
        self.services.append(process)
        if args[0] == "scheduler":
            self.scheduler_pids.append(process.pid)
        return process

    def scheduler(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        return self.start("scheduler", "--workers", "2", *args, **env)

    def counts(self) -> dict[str, int]:
        with self.wb.session() as s:
            rows = dict(s.execute(select(Run.status, func.count()).group_by(Run.status)).all())
        return {str(k.value): int(v) for k, v in rows.items()}

    def done(self) -> bool:
        counts = self.counts()
        return counts.get("succeeded", 0) + counts.get("failed", 0) == len(self.runs)

    def running(self) -> list[tuple[str, str]]:
        """(run id, worker) of the runs a worker is executing now."""
        with self.wb.session() as s:
            rows = s.execute(
                select(Run.id, Run.worker).where(Run.status == RunStatus.RUNNING)
            ).all()
        return [(str(r), w or "") for r, w in rows]

    def last_claim(self) -> float:
        with self.wb.session() as s:
            started = s.scalar(select(func.max(Run.started_at)))
        return started.timestamp() if started else 0.0

    def stop(self) -> None:
        for process in reversed(self.services):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.services:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def terminate_backends(self) -> int:
        admin = create_engine(services.sqlalchemy_url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            ended = conn.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE datname = :d AND pid <> pg_backend_pid()"),
                {"d": self.db},
            ).scalar()  # fmt: skip
        admin.dispose()
        return int(ended or 0)

    def outcome(self, name: str) -> Outcome:
        counts = self.counts()
        result = Outcome(name, queued=len(self.runs))
        result.succeeded = counts.get("succeeded", 0)
        result.failed = counts.get("failed", 0)
        result.stuck = counts.get("running", 0)
        result.lost = result.queued - result.succeeded
        with self.wb.session() as s:
            attempts = s.scalar(select(func.sum(Run.attempt - 1)).where(Run.attempt > 1)) or 0
            result.reruns = int(attempts)
            result.doubled = int(
                s.scalar(text(f"SELECT count(*) FROM {LOG_TABLE} WHERE NOT locked")) or 0
            )
        result.leftover += len(self.named_leftovers())
        return result

    def named_leftovers(self) -> list[int]:
        marks = [f"scheduler={pid}" for pid in self.scheduler_pids]
        marks += [f"{KERNEL_TITLE} run={run}" for run in self.runs]
        found = []
        for process in psutil.process_iter(["cmdline", "status"]):
            line = " ".join(process.info["cmdline"] or [])
            if process.info["status"] != psutil.STATUS_ZOMBIE and any(m in line for m in marks):
                found.append(process.pid)
        return found

    def close(self) -> None:
        self.stop()
        self.wb.close()
        self.log.flush()


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@contextmanager
def own_redis() -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A Redis of the harness's own: its URL, and functions to kill it and to start it again."""
    port = _free_port()
    holder: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        holder.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, start_new_session=True,
        ))  # fmt: skip
        _wait(lambda: _answers(port), 10)

    def kill() -> None:
        holder[-1].kill()
        holder[-1].wait()

    start()
    try:
        yield f"redis://127.0.0.1:{port}/0", kill, start
    finally:
        for process in holder:
            if process.poll() is None:
                process.kill()
                process.wait()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# -- the experiments -------------------------------------------------------------------------
# Each gets a fresh world with its runs queued, injects its fault once a share of the runs is
# done, and returns after every run reached a final status (or the deadline passed).


def _finish(world: World, result: Outcome, budget: float) -> None:
    if not _wait(world.done, budget):
        result.problems.append(f"not finished within {budget:.0f} s")


def _after(world: World, share: float, budget: float) -> None:
    """Wait until ``share`` of the runs succeeded and one is running (a fault then hits work)."""
    goal = int(len(world.runs) * share)
    _wait(lambda: world.counts().get("succeeded", 0) >= goal and bool(world.running()), budget)


def scheduler_kill(world: World, result: Outcome, budget: float) -> None:
    first = world.scheduler()
    _after(world, 0.3, budget)
    descendants = family(first.pid)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = time.monotonic()
    time.sleep(5)
    result.leftover += len(still_alive(descendants))
    world.scheduler()  # a new instance: ends recorded leftovers, its reaper requeues the runs
    claimed = world.last_claim()
    _wait(lambda: world.last_claim() > claimed, budget)
    result.recovery = time.monotonic() - killed
    _finish(world, result, budget)


def worker_kill(world: World, result: Outcome, budget: float) -> None:
    scheduler = world.scheduler()
    _after(world, 0.3, budget)
    workers = {p.pid for p in psutil.Process(scheduler.pid).children()}
    busy = [(r, w) for r, w in world.running() if int(w.split(":")[1]) in workers]
    if not busy:
        result.problems.append("no pool worker was running a run")
        return
    os.kill(int(busy[0][1].split(":")[1]), signal.SIGKILL)
    killed = time.monotonic()
    claimed = world.last_claim()
    _wait(lambda: world.last_claim() > claimed, budget)
    result.recovery = time.monotonic() - killed
    _finish(world, result, budget)
    if world.outcome(result.name).reruns != 1:
        result.problems.append("a killed pool worker must cost exactly one re-run")


def kernel_kill(world: World, result: Outcome, budget: float) -> None:
    world.scheduler()
    _after(world, 0.3, budget)
    killed_any = _wait(lambda: _kill_a_running_kernel(world), 15)
    if not killed_any:
        result.problems.append("no running run's kernel was found to kill")
    killed = time.monotonic()
    claimed = world.last_claim()
    _wait(lambda: world.last_claim() > claimed, budget)
    result.recovery = time.monotonic() - killed
    _finish(world, result, budget)


def _kill_a_running_kernel(world: World) -> bool:
    """Kill the kernel of a running run (found by its name); whether there was one."""
    names = [f"{KERNEL_TITLE} run={run_id}" for run_id, _ in world.running()]
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if any(name in line for name in names):
            process.kill()
            return True
    return False


def database_terminate(world: World, result: Outcome, budget: float) -> None:
    world.scheduler()
    for share in (0.2, 0.4, 0.6):
        _after(world, share, budget)
        world.terminate_backends()
    killed = time.monotonic()
    claimed = world.last_claim()
    _wait(lambda: world.last_claim() > claimed, budget)
    result.recovery = time.monotonic() - killed
    _finish(world, result, budget)


def broker_loss(world: World, result: Outcome, budget: float, lease: float) -> None:
    with own_redis() as (url, kill, start):
        env = {"WORKBENCH_CELERY_BROKER_URL": url, "WORKBENCH_EXECUTOR": "celery"}
        world.env.update(env)
        worker = world.start("worker", "--concurrency", "2", "--loglevel", "WARNING")
        world.scheduler("--executor", "celery")
        _after(world, 0.3, budget)
        kill()
        time.sleep(5)
        start()
        back = time.monotonic()
        claimed = world.last_claim()
        _wait(lambda: world.last_claim() > claimed, budget)
        result.recovery = time.monotonic() - back
        _finish(world, result, budget)
        if worker.poll() is not None:
            result.problems.append(f"the Celery worker exited ({worker.returncode}) on the loss")
        world.stop()
    if result.recovery > lease:
        result.problems.append(f"recovery from the broker loss took over the lease ({lease} s)")


def celery_worker_kill(world: World, result: Outcome, budget: float) -> None:
    with own_redis() as (url, _kill, _start):
        world.env.update({"WORKBENCH_CELERY_BROKER_URL": url, "WORKBENCH_EXECUTOR": "celery"})
        worker = world.start("worker", "--concurrency", "2", "--loglevel", "WARNING")
        world.scheduler("--executor", "celery")
        _after(world, 0.3, budget)
        descendants = family(worker.pid)
        worker.kill()
        worker.wait()
        killed = time.monotonic()
        time.sleep(5)
        result.leftover += len(still_alive(descendants))
        world.start("worker", "--concurrency", "2", "--loglevel", "WARNING")
        claimed = world.last_claim()
        _wait(lambda: world.last_claim() > claimed, budget)
        result.recovery = time.monotonic() - killed
        _finish(world, result, budget)
        world.stop()


#: Missed slots of the catch-up job in the two-schedulers experiment.
CATCH_UP_SLOTS = 60


def two_schedulers(world: World, result: Outcome, budget: float) -> None:
    """Two schedulers on one database start together while a job has missed an hour of
    minutely slots (catch-up all, 60 at most): each slot is queued once and run once."""
    jobs.register("catch-up", world.notebook, schedule="* * * * *", catchup="all",
                  catchup_limit=CATCH_UP_SLOTS, max_concurrency=2, retries=3, retry_delay=0,
                  parameters={"seconds": 0.1}, owner=world.owner, workbench=world.wb)  # fmt: skip
    hour_ago = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=60)
    with world.wb.session() as s, s.begin():
        s.execute(update(Job).where(Job.name == "catch-up").values(next_run_at=hour_ago))
    started = time.monotonic()
    world.scheduler()
    world.scheduler()

    def caught_up() -> list[tuple[str, datetime | None]]:
        with world.wb.session() as s:
            rows = s.execute(
                select(Run.id, Run.scheduled_for).join(Job, Job.id == Run.job_id)
                .where(Job.name == "catch-up")
            ).all()  # fmt: skip
        return [(str(r), when) for r, when in rows]

    if not _wait(lambda: len(caught_up()) >= CATCH_UP_SLOTS, budget):
        result.problems.append(f"fewer than {CATCH_UP_SLOTS} catch-up runs were queued")
    jobs.pause("catch-up", workbench=world.wb)  # no new minute's slot from here on
    queued = caught_up()
    slots = [when for _, when in queued]
    if len(set(slots)) != len(slots):
        result.problems.append(f"{len(slots) - len(set(slots))} slots were queued twice")
    world.runs |= {run_id for run_id, _ in queued}
    result.recovery = time.monotonic() - started  # until the hour's slots were queued
    _finish(world, result, budget)


EXPERIMENTS: dict[str, Callable[..., None]] = {
    "scheduler-kill": scheduler_kill,
    "worker-kill": worker_kill,
    "kernel-kill": kernel_kill,
    "database-terminate": database_terminate,
    "broker-loss": broker_loss,
    "celery-worker-kill": celery_worker_kill,
    "two-schedulers": two_schedulers,
}
QUICK = ("scheduler-kill", "worker-kill", "database-terminate", "broker-loss")


def experiment(name: str, runs: int, lease: float, poll: float) -> Outcome:
    result = Outcome(name)
    began = time.monotonic()
    budget = 60 + runs * 2.0
    with services.temporary_database() as db, tempfile.TemporaryDirectory() as home:
        world = World(db, home, runs, lease, poll)
        try:
            run = EXPERIMENTS[name]
            if name == "broker-loss":
                run(world, result, budget, lease)
            else:
                run(world, result, budget)
        finally:
            world.stop()
        final = world.outcome(name)
        final.leftover += result.leftover
        final.recovery, final.problems = result.recovery, result.problems
        _wait(lambda: not world.named_leftovers(), 5)
        final.leftover = result.leftover + len(world.named_leftovers())
        world.close()
        if final.problems or final.lost or final.doubled or final.stuck or final.leftover:
            world.log.close()
            tail = (Path(home) / "services.log").read_text(errors="replace").splitlines()[-40:]
            print("\n".join([f"chaos: {name}: the services' last log lines:", *tail]),
                  file=sys.stderr)  # fmt: skip
    final.seconds = time.monotonic() - began
    return final


def _table(outcomes: list[Outcome]) -> str:
    head = ("experiment", "queued", "succeeded", "failed", "lost", "doubled", "stuck", "re-runs",
            "recovery s", "leftover", "took s")  # fmt: skip
    rows = [head]
    for o in outcomes:
        recovery = "-" if o.recovery is None else f"{o.recovery:.1f}"
        rows.append((o.name, str(o.queued), str(o.succeeded), str(o.failed), str(o.lost),
                     str(o.doubled), str(o.stuck), str(o.reruns), recovery, str(o.leftover),
                     f"{o.seconds:.0f}"))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per experiment")
    parser.add_argument("--only", default="", help="comma-separated experiment names")
    parser.add_argument("--quick", action="store_true", help="the short version for CI")
    parser.add_argument("--lease", type=float, default=5.0, help="WORKBENCH_RUN_LEASE_SECONDS")
    parser.add_argument("--poll", type=float, default=0.5, help="the scheduler's poll seconds")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(QUICK if args.quick else EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiment(s) {unknown}; choose from {sorted(EXPERIMENTS)}")
    runs = 8 if args.quick and args.runs == 200 else args.runs
    for problem in (services.check_postgres(),):
        if problem:
            print(f"chaos: PostgreSQL is needed: {problem}", file=sys.stderr)
            return 2
    started = time.monotonic()
    outcomes = []
    for name in names:
        outcomes.append(experiment(name, runs, args.lease, args.poll))
        print(f"chaos: {name} done in {outcomes[-1].seconds:.0f} s", file=sys.stderr, flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"chaos: {runs} runs per experiment, lease {args.lease} s, poll {args.poll} s; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load}")  # fmt: skip
    print(_table(outcomes))
    bad = []
    for o in outcomes:
        for what in ("lost", "doubled", "stuck", "leftover"):
            if getattr(o, what):
                bad.append(f"{o.name}: {getattr(o, what)} {what}")
        bad.extend(f"{o.name}: {p}" for p in o.problems)
    print(f"chaos: took {time.monotonic() - started:.0f} s")
    for line in bad:
        print(f"chaos: FAIL {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
