"""Throughput of the executors: N trivial runs through the local pool and through Celery.

    python benchmarks/scheduler.py [--runs 500] [--workers 2] [--executors local,celery]
                                   [--poll 0.05] [--scratch-kernels]

Needs PostgreSQL and Redis (the test defaults, or WORKBENCH_TEST_POSTGRES_URL and
WORKBENCH_TEST_REDIS_URL). Each executor gets a fresh database; the runs are queued up front
and the clock runs from the scheduler's start to the last run's end. Reports runs/s, lost
runs (not succeeded), the median execution time, and CPU seconds per run: this process (the
scheduler), its worker processes with their kernels (counted once they have exited), and
PostgreSQL (every server process on the machine, so other clients inflate it).
``--scratch-kernels`` starts every kernel from scratch (``WORKBENCH_FORK_KERNELS=false``)
instead of forking it from the pre-imported template (the default), for comparison.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from tests import services  # noqa: E402
from workbench.accounts import api as accounts  # noqa: E402
from workbench.api import init  # noqa: E402
from workbench.app import Workbench  # noqa: E402
from workbench.core.config import load_settings  # noqa: E402
from workbench.db.models import Run, RunStatus  # noqa: E402
from workbench.scheduler import api as jobs  # noqa: E402
from workbench.scheduler.executors import CeleryExecutor, Executor, LocalExecutor  # noqa: E402
from workbench.scheduler.service import run_scheduler  # noqa: E402

TRIVIAL = str(ROOT / "tests" / "notebooks" / "trivial.ipynb")


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _postgres_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL server process (Linux /proc)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if not f.read().startswith("postgres"):
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:13])
    return total / os.sysconf("SC_CLK_TCK")


def _bench(kind: str, runs: int, workers: int, poll: float) -> dict[str, float]:
    with services.temporary_database() as name, tempfile.TemporaryDirectory() as home:
        os.environ.update(
            WORKBENCH_HOME=home,
            WORKBENCH_DATABASE_URL=services.sqlalchemy_url(name),
            WORKBENCH_CELERY_BROKER_URL=services.REDIS_URL,
            WORKBENCH_CELERY_QUEUE=f"bench-{uuid.uuid4().hex[:8]}",
            WORKBENCH_MAX_CONCURRENT_RUNS=str(workers * 2),
        )
        init()
        wb = Workbench(load_settings())
        # In team mode a job belongs to a user: its runs execute with that user's own login.
        owner = f"bench_{uuid.uuid4().hex[:8]}"
        accounts.add_team(f"team-{owner}", workbench=wb)
        accounts.add_user(owner, role="analyst", teams_=(f"team-{owner}",), workbench=wb)
        jobs.register("trivial", TRIVIAL, max_concurrency=workers * 2, owner=owner, workbench=wb)
        for _ in range(runs):
            jobs.trigger("trivial", workbench=wb)
        worker = None
        executor: Executor
        if kind == "celery":
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "workbench",
                    "worker",
                    f"--concurrency={workers}",
                    "--loglevel=WARNING",
                ],
                start_new_session=True,
            )
            executor = CeleryExecutor(wb.settings)
        else:
            executor = LocalExecutor(workers)
        stop = threading.Event()
        cpu0 = (_cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), _postgres_cpu())
        started = time.perf_counter()
        thread = threading.Thread(
            target=run_scheduler, args=(wb, executor), kwargs={"stop": stop, "poll_seconds": poll}
        )
        thread.start()
        done = 0
        while done < runs:
            time.sleep(0.5)
            with wb.session() as s:
                done = (
                    s.scalar(
                        select(func.count()).select_from(Run).where(Run.finished_at.is_not(None))
                    )
                    or 0
                )
        elapsed = time.perf_counter() - started
        postgres = _postgres_cpu() - cpu0[2]
        stop.set()
        thread.join()
        scheduler = _cpu(resource.RUSAGE_SELF) - cpu0[0]
        executor.close()
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait()
        workers_cpu = _cpu(resource.RUSAGE_CHILDREN) - cpu0[1]
        with wb.session() as s:
            rows = list(s.scalars(select(Run)))
        wb.close()
    ok = [r for r in rows if r.status is RunStatus.SUCCEEDED]
    waits = [(r.started_at - r.queued_at).total_seconds() for r in ok if r.started_at]
    execs = [
        (r.finished_at - r.started_at).total_seconds() for r in ok if r.finished_at and r.started_at
    ]
    return {
        "runs/s": runs / elapsed,
        "elapsed_s": elapsed,
        "lost": runs - len(ok),
        "median_exec_s": statistics.median(execs) if execs else float("nan"),
        "median_wait_s": statistics.median(waits) if waits else float("nan"),
        "cpu_scheduler": scheduler / runs,
        "cpu_workers": workers_cpu / runs,
        "cpu_postgres": postgres / runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executors", default="local,celery")
    parser.add_argument("--poll", type=float, default=0.05, help="scheduler poll seconds")
    parser.add_argument("--scratch-kernels", action="store_true")
    args = parser.parse_args()
    os.environ["WORKBENCH_FORK_KERNELS"] = "false" if args.scratch_kernels else "true"
    load = os.getloadavg()[0]
    kernels = "started from scratch" if args.scratch_kernels else "forked from a template"
    print(
        f"{args.runs} trivial runs, {args.workers} workers, kernels {kernels}, "
        f"{os.cpu_count()} CPUs, load {load:.1f}"
    )
    for kind in args.executors.split(","):
        result = _bench(kind, args.runs, args.workers, args.poll)
        print(
            f"{kind:7s} {result['runs/s']:6.2f} runs/s  elapsed {result['elapsed_s']:7.1f} s  "
            f"lost {result['lost']}  median execution {result['median_exec_s']:.3f} s  "
            f"CPU-s/run: scheduler {result['cpu_scheduler']:.3f}, workers+kernels "
            f"{result['cpu_workers']:.3f}, postgres {result['cpu_postgres']:.3f}"
        )


if __name__ == "__main__":
    main()
