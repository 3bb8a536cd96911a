"""`workbench scheduler` and `workbench worker`: the long-running services."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from workbench.cli.common import console, settings_of, workbench_of


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
