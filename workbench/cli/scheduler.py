"""`workbench scheduler` and `workbench worker`: the long-running services."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from workbench.cli.common import console, settings_of, workbench_of

#: The Prometheus client's multiprocess mode: every process of a service writes its metrics
#: to this folder and the service's /metrics adds them up (workbench.ops.metrics).
METRICS_FOLDER_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_FOLDER_PREFIX = "workbench-metrics-"


def use_private_metrics_folder() -> None:
    """Keep this service's metrics, and its child processes', in a private folder removed at
    exit. Call it first, before anything records a metric (the metrics choose their mode when
    first used). An operator's own ``PROMETHEUS_MULTIPROC_DIR`` is kept as given."""
    if os.environ.get(METRICS_FOLDER_ENV):
        return
    _remove_abandoned_folders()
    folder = tempfile.mkdtemp(prefix=f"{METRICS_FOLDER_PREFIX}{os.getpid()}-")
    os.environ[METRICS_FOLDER_ENV] = folder
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # a forked worker process exiting leaves it alone
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)


def _remove_abandoned_folders() -> None:
    """Folders of services that were killed (no exit handler ran): their process is gone."""
    for path in Path(tempfile.gettempdir()).glob(f"{METRICS_FOLDER_PREFIX}*-*"):
        pid = path.name.removeprefix(METRICS_FOLDER_PREFIX).split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            continue  # another user's live process


MetricsPort = Annotated[
    int | None,
    typer.Option(
        help="Serve /livez, /readyz and /metrics on this port (default: no health port).",
        min=0,
        max=65535,
    ),
]
MetricsHost = Annotated[
    str, typer.Option(help="Address the health port listens on (0.0.0.0 for Kubernetes).")
]
LivenessSeconds = Annotated[
    float | None,
    typer.Option(
        help="/livez fails when the loop has not turned for this long "
        "(default: three polls, at least 5 s).",
        min=0.1,
    ),
]


def scheduler(
    ctx: typer.Context,
    workers: Annotated[
        int, typer.Option(help="Local worker processes (with WORKBENCH_EXECUTOR=local).")
    ] = 2,
    executor: Annotated[
        str | None, typer.Option(help="local or celery (default: WORKBENCH_EXECUTOR).")
    ] = None,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
    liveness_seconds: LivenessSeconds = None,
) -> None:
    """Queue scheduled runs, hand them to the executor, and recover runs whose worker died."""
    use_private_metrics_folder()  # first: the local pool's processes count runs there
    from workbench.core.errors import ConfigError
    from workbench.db.models import ServiceKind
    from workbench.ops.heartbeats import prune_dead, stale_after
    from workbench.ops.http import HealthServer
    from workbench.ops.probes import Liveness, service_readiness
    from workbench.scheduler.executors import CeleryExecutor, Executor, LocalExecutor
    from workbench.scheduler.service import run_scheduler

    settings = settings_of(ctx)
    kind = executor or settings.executor
    if kind not in ("local", "celery"):
        raise ConfigError(f"Unknown executor {kind!r}: use 'local' or 'celery'.")
    stop = threading.Event()
    liveness = Liveness(liveness_seconds or stale_after(settings.scheduler_poll_seconds))
    health: HealthServer | None = None
    if metrics_port is not None:
        broker = settings.effective_celery_broker_url() if kind == "celery" else None
        readiness = service_readiness(settings, broker_url=broker)
        health = HealthServer(metrics_host, metrics_port, liveness=liveness, readiness=readiness)

    def _stop(*_: Any) -> None:
        if health is not None:
            health.readiness.drain()  # not ready from now on, while runs in flight finish
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if health is not None:
        health.start()  # before any worker process starts: a taken port stops nothing half-way
    try:
        with workbench_of(ctx) as wb:  # a missing database stops it before any worker starts
            chosen: Executor = (
                LocalExecutor(workers) if kind == "local" else CeleryExecutor(settings)
            )
            console.print(f"scheduler started ({kind} executor); stop with Ctrl-C")
            try:
                stats = run_scheduler(wb, chosen, stop=stop, liveness=liveness)
            finally:
                chosen.close()
                prune_dead(wb.engine, ServiceKind.WORKER)  # pool processes it had to end
    finally:
        if health is not None:
            health.close()
    console.print(
        f"scheduler stopped after {stats.ticks} ticks: {stats.queued} queued, "
        f"{stats.dispatched} dispatched, {stats.requeued} re-queued, {stats.failed} failed"
    )


def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
    liveness_seconds: LivenessSeconds = None,
) -> None:
    """Start a Celery worker that executes runs (late ack, redelivered if it dies, prefetch 1)."""
    use_private_metrics_folder()  # first, before Celery forks its worker processes
    from workbench.runs.sandbox import require_boundary
    from workbench.scheduler.celery_app import check_visibility_timeout, create_app
    from workbench.scheduler.worker_health import WorkerHealth

    settings = settings_of(ctx)
    require_boundary(settings, "worker")  # its processes start kernels on this machine
    check_visibility_timeout(settings)
    app = create_app(settings)
    health = WorkerHealth(
        app,
        settings,
        concurrency=concurrency,
        port=metrics_port,
        host=metrics_host,
        liveness_seconds=liveness_seconds,
    )
    try:
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
    finally:
        health.close()
