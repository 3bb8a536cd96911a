"""The Celery side of scale-out: one task, ``execute_run``, with at-least-once delivery.

Messages are acknowledged only after the run finished (``acks_late``) and are redelivered
when the worker process dies (``reject_on_worker_lost``); each worker prefetches one message
at a time. A redelivered message is harmless: claiming a run is conditional and fenced. The
worker refuses to start when the broker's visibility timeout (Redis) is shorter than the
longest job timeout, since the broker would then hand a still-running message to a second
worker.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy import func, select

from workbench.core.config import Settings, load_settings
from workbench.core.errors import ConfigError
from workbench.ops import metrics

__all__ = ["TASK_NAME", "check_visibility_timeout", "create_app"]

log = logging.getLogger(__name__)
TASK_NAME = "workbench.execute_run"
# Two, so a run never waits for the kernel the previous run's start-up replaced.
WARM_KERNELS = 2

_process_state: dict[str, Any] = {}


def broker_url(settings: Settings) -> str:
    url = settings.effective_celery_broker_url()
    if not url:
        raise ConfigError(
            "The Celery executor needs a broker: set WORKBENCH_CELERY_BROKER_URL "
            "(redis://... or amqp://...) or WORKBENCH_REDIS_URL."
        )
    return url


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured for at-least-once execution of runs."""
    settings = settings or load_settings()
    app = Celery("workbench", broker=broker_url(settings))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.celery_queue,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout},
        worker_hijack_root_logger=False,
    )

    @app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)
    def execute_run_task(run_id: str) -> str:
        from workbench.runs.execute import execute_run

        with metrics.slot_in_use("celery"):
            run = execute_run(
                run_id,
                workbench=_process_state.get("workbench"),
                kernels=_process_state.get("kernels"),
            )
        return run.status.value

    return app


@worker_process_init.connect
def _warm_worker_process(**_: Any) -> None:
    """Each worker child keeps its own database pool and warm (forked) kernels, and dies with
    the worker's main process."""
    from workbench.app import Workbench
    from workbench.ops.processes import die_with_parent
    from workbench.ops.tracking import init_tracking
    from workbench.runs.kernels import KernelPool, kernel_env
    from workbench.runs.sandbox import kernel_user, require_boundary

    # Dies with the main worker process (and its kernels with it), even after a kill -9.
    die_with_parent(os.getppid())
    settings = load_settings()
    require_boundary(settings, "celery worker")
    init_tracking(settings, service="worker")  # a forked child: its own, with a DSN only
    _process_state["workbench"] = Workbench(settings)
    # `workbench worker` refused a missing boundary before forking (a signal handler's
    # exception would only be logged).
    _process_state["kernels"] = KernelPool(
        WARM_KERNELS,
        env=kernel_env(),
        fork=settings.fork_kernels,
        kernel_user=kernel_user(settings),
    )
    metrics.executor_slots("celery", busy=0, free=1)  # each worker process is one slot


@worker_process_shutdown.connect
def _forget_worker_process(**_: Any) -> None:
    """A worker process that exits takes its slot and warm kernels out of the metrics."""
    metrics.mark_process_dead(os.getpid())


def check_visibility_timeout(settings: Settings) -> None:
    """Refuse a Redis visibility timeout shorter than the longest job timeout (plus margin)."""
    from workbench.app import Workbench
    from workbench.db.models import Job

    if not broker_url(settings).startswith(("redis://", "rediss://")):
        return
    with Workbench(settings) as wb, wb.session() as session:
        longest = session.scalar(select(func.max(Job.timeout_seconds))) or 0
    needed = longest + 60
    if settings.celery_visibility_timeout < needed:
        raise ConfigError(
            f"WORKBENCH_CELERY_VISIBILITY_TIMEOUT is {settings.celery_visibility_timeout} s but "
            f"the longest job may run {needed - 60} s: the broker would hand a running job to a "
            f"second worker. Set it to at least {needed} s, or give jobs shorter timeouts."
        )
