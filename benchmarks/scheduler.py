"""Throughput of the executors: N trivial runs through the local pool and through Celery.

    python benchmarks/scheduler.py [--runs 500] [--workers 2] [--executors local,celery]

Needs PostgreSQL and Redis (the test defaults, or WORKBENCH_TEST_POSTGRES_URL and
WORKBENCH_TEST_REDIS_URL). Each executor gets a fresh database; the runs are queued up front
and the clock runs from the scheduler's start to the last run's end. Reports runs/s, lost
runs (not succeeded) and where a run's time goes (queue wait, kernel, execution).
"""

from __future__ import annotations

import argparse
import os
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
from workbench.api import Workbench, init  # noqa: E402
from workbench.config import load_settings  # noqa: E402
from workbench.db.models import Run, RunStatus  # noqa: E402
from workbench.scheduler import jobs  # noqa: E402
from workbench.scheduler.executors import CeleryExecutor, Executor, LocalExecutor  # noqa: E402
from workbench.scheduler.service import run_scheduler  # noqa: E402

TRIVIAL = str(ROOT / "tests" / "notebooks" / "trivial.ipynb")


def _bench(kind: str, runs: int, workers: int) -> dict[str, float]:
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
        jobs.register(wb, "trivial", TRIVIAL, max_concurrency=workers * 2)
        for _ in range(runs):
            jobs.trigger(wb, "trivial")
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
        started = time.perf_counter()
        thread = threading.Thread(
            target=run_scheduler, args=(wb, executor), kwargs={"stop": stop, "poll_seconds": 0.05}
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
        stop.set()
        thread.join()
        executor.close()
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait()
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executors", default="local,celery")
    args = parser.parse_args()
    print(f"{args.runs} trivial runs, {args.workers} workers, {os.cpu_count()} CPUs")
    for kind in args.executors.split(","):
        result = _bench(kind, args.runs, args.workers)
        print(
            f"{kind:7s} {result['runs/s']:6.2f} runs/s  elapsed {result['elapsed_s']:7.1f} s  "
            f"lost {result['lost']}  median execution {result['median_exec_s']:.3f} s"
        )


if __name__ == "__main__":
    main()
