"""`workbench scheduler` and `workbench worker`: the long-running services."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
from typing import Annotated, Any

import typer

from workbench.cli.common import console, settings_of, workbench_of

#: The Prometheus client's multiprocess mode: every process of a service writes its metrics
#: to this folder and the service's /metrics adds them up (workbench.ops.metrics).
METRICS_FOLDER_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_private_metrics_folder() -> None:
    """Keep this service's metrics, and its child processes', in a private folder removed at
    exit. Call it before anything imports the metrics: the client reads the setting once per
    process. An operator's own ``PROMETHEUS_MULTIPROC_DIR`` is kept as given."""
    if os.environ.get(METRICS_FOLDER_ENV):
        return
    folder = tempfile.mkdtemp(prefix="workbench-metrics-")
    os.environ[METRICS_FOLDER_ENV] = folder
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # a forked worker process exiting leaves it alone
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)


def scheduler(
    ctx: typer.Context,
    workers: Annotated[
        int, typer.Option(help="Local worker processes (with WORKBENCH_EXECUTOR=local).")
    ] = 2,
    executor: Annotated[
        str | None, typer.Option(help="local or celery (default: WORKBENCH_EXECUTOR).")
    ] = None,
) -> None:
    """Queue scheduled runs, hand them to the executor, and recover runs whose worker died."""
    use_private_metrics_folder()  # first: the local pool's processes count runs there
    from workbench.core.errors import ConfigError
    from workbench.scheduler.executors import CeleryExecutor, Executor, LocalExecutor
    from workbench.scheduler.service import run_scheduler

    settings = settings_of(ctx)
    kind = executor or settings.executor
    chosen: Executor
    if kind == "local":
        chosen = LocalExecutor(workers)
    elif kind == "celery":
        chosen = CeleryExecutor(settings)
    else:
        raise ConfigError(f"Unknown executor {kind!r}: use 'local' or 'celery'.")
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console.print(f"scheduler started ({kind} executor); stop with Ctrl-C")
    try:
        with workbench_of(ctx) as wb:
            stats = run_scheduler(wb, chosen, stop=stop)
    finally:
        chosen.close()
    console.print(
        f"scheduler stopped after {stats.ticks} ticks: {stats.queued} queued, "
        f"{stats.dispatched} dispatched, {stats.requeued} re-queued, {stats.failed} failed"
    )


def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Start a Celery worker that executes runs (late ack, redelivered if it dies, prefetch 1)."""
    use_private_metrics_folder()  # first, before Celery forks its worker processes
    from workbench.scheduler.celery_app import check_visibility_timeout, create_app

    settings = settings_of(ctx)
    check_visibility_timeout(settings)
    app = create_app(settings)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            f"--queues={settings.celery_queue}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
            "--prefetch-multiplier=1",
        ]
    )
