"""The health of workers: heartbeat rows for Celery and local-pool workers, and the Celery
worker's `/livez`, `/readyz` and `/metrics` port.

A Celery worker's main process runs Celery's event loop (the prefork children run the runs).
A consumer bootstep puts a repeating timer on that loop's own timer, which fires only while the
loop turns, and the timer touches the worker's :class:`~workbench.ops.probes.Liveness`. The
heartbeat row is written by a thread that skips its beat while the loop is not live, so a hung
worker goes stale in `workbench doctor` too. SIGTERM (Celery's warm shutdown) makes `/readyz`
answer 503 at once, while the runs in flight finish.

A local-pool worker (a process of the scheduler's pool) beats from a thread of its own, and
removes its row when it exits; the scheduler removes the rows of pool processes it had to
terminate (:func:`workbench.ops.heartbeats.prune_dead`).
"""

from __future__ import annotations

import atexit
import logging
from typing import TYPE_CHECKING, Any

from celery import bootsteps
from celery.signals import worker_shutting_down

from workbench.db.models import ServiceKind
from workbench.ops.heartbeats import BeatThread, beat_interval, stale_after
from workbench.ops.http import HealthServer
from workbench.ops.probes import Liveness, forget_after_fork, service_readiness

if TYPE_CHECKING:
    from celery import Celery

    from workbench.app import Workbench
    from workbench.core.config import Settings

__all__ = [
    "LOOP_TOUCH_SECONDS",
    "WorkerHealth",
    "start_local_worker_beat",
    "worker_liveness_after",
]

log = logging.getLogger(__name__)

#: How often the Celery loop's timer touches the worker's liveness.
LOOP_TOUCH_SECONDS = 1.0


def worker_liveness_after() -> float:
    """The default liveness bound of a Celery worker: three missed touches of its loop's
    timer, at least five seconds (:func:`workbench.ops.heartbeats.stale_after`)."""
    return stale_after(LOOP_TOUCH_SECONDS)


def start_local_worker_beat(workbench: Workbench) -> BeatThread:
    """The heartbeat row of a local-pool worker process, removed when the process exits."""
    beat = BeatThread(
        workbench,
        ServiceKind.WORKER,
        "local-worker",
        {"executor": "local"},
        interval=beat_interval(workbench.settings.scheduler_poll_seconds),
    ).start()
    atexit.register(beat.close)
    return beat


class WorkerHealth:
    """What a `workbench worker` reports while Celery runs: liveness from the loop's timer, a
    heartbeat row, draining on shutdown, and the health port when ``port`` is given."""

    def __init__(
        self,
        app: Celery,
        settings: Settings,
        *,
        concurrency: int,
        port: int | None = None,
        host: str = "127.0.0.1",
        liveness_seconds: float | None = None,
    ) -> None:
        from workbench.app import Workbench

        self.liveness = Liveness(liveness_seconds or worker_liveness_after())
        app.steps["consumer"].add(_loop_step(self.liveness))
        self.server: HealthServer | None = None
        if port is not None:
            readiness = service_readiness(
                settings, broker_url=settings.effective_celery_broker_url()
            )
            self.server = HealthServer(
                host, port, liveness=self.liveness, readiness=readiness
            ).start()
            worker_shutting_down.connect(self._draining, weak=False)
        self._workbench = Workbench(settings)
        forget_after_fork(self._workbench.engine)  # the prefork children fork from here
        self.beat = BeatThread(
            self._workbench,
            ServiceKind.WORKER,
            "celery-worker",
            {"executor": "celery", "queue": settings.celery_queue, "concurrency": concurrency},
            interval=beat_interval(settings.scheduler_poll_seconds),
            alive=self.liveness.alive,
        ).start()

    def _draining(self, **_: Any) -> None:
        if self.server is not None:
            self.server.readiness.drain()

    def close(self) -> None:
        """The worker stopped: remove the heartbeat row and stop answering probes."""
        worker_shutting_down.disconnect(self._draining)
        self.beat.close()
        self._workbench.close()
        if self.server is not None:
            self.server.close()


def _loop_step(liveness: Liveness) -> type[bootsteps.StartStopStep]:
    class LoopLiveness(bootsteps.StartStopStep):  # type: ignore[misc]
        """Touches the worker's liveness from the consumer's timer, i.e. from its loop."""

        requires = ("celery.worker.consumer.tasks:Tasks",)

        def __init__(self, consumer: Any, **kwargs: Any) -> None:
            super().__init__(consumer, **kwargs)
            self.tref: Any = None

        def start(self, consumer: Any) -> None:
            liveness.touch()
            self.tref = consumer.timer.call_repeatedly(LOOP_TOUCH_SECONDS, liveness.touch)

        def stop(self, consumer: Any) -> None:
            if self.tref is not None:
                self.tref.cancel()
                self.tref = None

        shutdown = stop

    return LoopLiveness
