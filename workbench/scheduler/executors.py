"""Executors run ``execute_run(run_id)``: in a local process pool, or on Celery workers.

Both run the very same function, so a run's record looks the same whichever ran it. Each
local worker process keeps a warm kernel ready (see workbench.runs.kernels); a worker that
dies is replaced, and the run it held is recovered by the reaper when its lease expires.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import uuid
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Protocol

from workbench.ops import metrics

if TYPE_CHECKING:
    from workbench.app import Workbench
    from workbench.core.config import Settings
    from workbench.runs.kernels import KernelPool

__all__ = ["CeleryExecutor", "Executor", "LocalExecutor"]

log = logging.getLogger(__name__)


class Executor(Protocol):
    name: str
    #: Set when the executor has room again (a run finished), so the scheduler dispatches at
    #: once instead of at its next poll; None when the executor cannot tell.
    wakeup: threading.Event | None

    def capacity(self) -> int:
        """How many more runs it can take now."""

    def send(self, run_id: uuid.UUID) -> None:
        """Start (or enqueue) the run."""

    def close(self) -> None:
        """Stop, waiting for nothing: runs in flight are recovered through their leases."""


# -- local process pool --------------------------------------------------------------------

_worker_bench: Workbench | None = None
_worker_kernels: KernelPool | None = None


def _init_worker(warm_kernels: int) -> None:
    global _worker_bench, _worker_kernels
    from workbench.app import Workbench
    from workbench.core.config import load_settings
    from workbench.ops.tracking import init_tracking
    from workbench.runs.kernels import KernelPool, kernel_env
    from workbench.runs.sandbox import kernel_user, require_boundary
    from workbench.scheduler.worker_health import start_local_worker_beat

    settings = load_settings()
    init_tracking(settings, service="worker")  # a spawned process: its own, with a DSN only
    _worker_bench = Workbench(settings)
    start_local_worker_beat(_worker_bench)
    require_boundary(settings, "local worker")  # the scheduler refused already; this warns
    _worker_kernels = KernelPool(
        warm_kernels,
        env=kernel_env(),
        fork=settings.fork_kernels,
        kernel_user=kernel_user(settings),
    )


def _run_in_worker(run_id: str) -> str:
    from workbench.runs.execute import execute_run

    run = execute_run(run_id, workbench=_worker_bench, kernels=_worker_kernels)
    return run.status.value


class LocalExecutor:
    """A pool of worker processes on this machine, each with a warm kernel."""

    name = "local"

    def __init__(self, workers: int = 2, *, warm_kernels: int = 1) -> None:
        self.workers = workers
        self.warm_kernels = warm_kernels
        self.wakeup: threading.Event | None = threading.Event()
        self._futures: dict[uuid.UUID, Future[str]] = {}
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.warm_kernels,),
        )

    def _collect(self) -> None:
        broken = False
        for run_id, future in list(self._futures.items()):
            if not future.done():
                continue
            del self._futures[run_id]
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                broken = True
            elif error is not None:
                log.error("run %s raised in its worker: %s", run_id, error)
        if broken:
            log.warning("a worker process died; starting a new pool (the reaper recovers its run)")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._futures.clear()
            self._pool = self._new_pool()

    def capacity(self) -> int:
        self._collect()
        busy = len(self._futures)
        metrics.executor_slots(self.name, busy=busy, free=self.workers - busy)
        return self.workers - busy

    def send(self, run_id: uuid.UUID) -> None:
        try:
            future = self._pool.submit(_run_in_worker, str(run_id))
        except BrokenProcessPool:
            self._collect()
            self._pool = self._new_pool()
            future = self._pool.submit(_run_in_worker, str(run_id))
        self._futures[run_id] = future
        future.add_done_callback(self._finished)

    def _finished(self, _future: Future[str]) -> None:
        if self.wakeup is not None:  # a worker is free: the scheduler dispatches at once
            self.wakeup.set()

    def worker_pids(self) -> list[int]:
        processes = getattr(self._pool, "_processes", None) or {}
        return [p.pid for p in processes.values() if p.pid]

    def close(self, grace: float = 10.0) -> None:
        """Let runs in flight finish for up to ``grace`` seconds, then stop the workers.

        A run cut short stays ``running`` until its lease expires; the reaper then retries
        or fails it, so stopping never loses a run.
        """
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        wait([f for f in self._futures.values() if not f.done()], timeout=grace)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
        self._futures.clear()


class CeleryExecutor:
    """Sends each run to the Celery workers (`workbench worker`) through the broker."""

    name = "celery"
    wakeup: threading.Event | None = None

    def __init__(self, settings: Settings, *, max_in_flight: int = 100) -> None:
        from workbench.scheduler.celery_app import create_app

        self.app = create_app(settings)
        self.max_in_flight = max_in_flight

    def capacity(self) -> int:
        # The dispatcher's global limit bounds what is in flight; workers pull at their pace.
        return self.max_in_flight

    def send(self, run_id: uuid.UUID) -> None:
        from workbench.scheduler.celery_app import TASK_NAME

        self.app.send_task(TASK_NAME, args=[str(run_id)])

    def close(self) -> None:
        self.app.close()
