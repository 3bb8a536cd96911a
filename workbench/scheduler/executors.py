"""Executors run ``execute_run(run_id)``: in a local process pool, or on Celery workers.

Both run the very same function, so a run's record looks the same whichever ran it. Each
local worker process keeps a warm kernel ready (see workbench.runs.kernels); a worker that
dies is replaced alone, and the one run it held is recovered by the reaper when its lease
expires.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from workbench.ops import metrics
from workbench.ops.processes import die_with_parent, set_title

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from workbench.app import Workbench
    from workbench.core.config import Settings
    from workbench.runs.kernels import KernelPool

__all__ = ["CeleryExecutor", "Executor", "LocalExecutor"]

log = logging.getLogger(__name__)
WORKER_TITLE = "workbench-worker"


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
#: How long a stopping worker may take to close its kernels before it is terminated.
WORKER_EXIT_SECONDS = 10.0


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


def _worker_main(conn: Connection, parent: int, warm_kernels: int) -> None:
    """A local worker process: run the run ids it is sent, one at a time, until told to stop.

    It dies with the scheduler (``PR_SET_PDEATHSIG``), and so do its kernel template and
    kernels, which die with it.
    """
    die_with_parent(parent)
    set_title(f"{WORKER_TITLE} scheduler={parent}")
    _init_worker(warm_kernels)
    try:
        while (run_id := conn.recv()) is not None:
            try:
                status = _run_in_worker(run_id)
            except Exception as exc:  # a bug, not the run's failure: reported, worker stays
                log.error("run %s raised in its worker: %s", run_id, exc)
                status = "error"
            conn.send(status)
    except EOFError:  # the scheduler is gone
        pass
    finally:
        if _worker_kernels is not None:
            _worker_kernels.close()


class LocalExecutor:
    """Worker processes on this machine, one per run slot, each with a warm kernel.

    Each slot's thread starts its worker process, hands it one run at a time and watches it:
    a worker that dies costs only the run it held (the reaper retries it when its lease
    expires), and that slot alone gets a new worker. The workers die with this process.
    """

    name = "local"

    def __init__(self, workers: int = 2, *, warm_kernels: int = 1) -> None:
        self.workers = workers
        self.warm_kernels = warm_kernels
        self.wakeup: threading.Event | None = threading.Event()
        self._context = multiprocessing.get_context("spawn")
        self._queue: queue.SimpleQueue[uuid.UUID | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._assigned: set[uuid.UUID] = set()
        self._processes: dict[int, BaseProcess] = {}
        self._closing = False
        #: Worker processes that died while running a run, since this executor started.
        self.deaths = 0
        self._threads = [
            threading.Thread(target=self._supervise, args=(slot,), name=f"wb-slot-{slot}")
            for slot in range(workers)
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def _start_worker(self, slot: int) -> tuple[BaseProcess, Connection]:
        """A new worker for ``slot``, started from the slot's own thread (which outlives it:
        the parent-death signal fires when the starting thread exits)."""
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(theirs, os.getpid(), self.warm_kernels),
            name=f"{WORKER_TITLE}-{slot}",
            daemon=True,  # ended with this process even if close() is never called
        )
        process.start()
        theirs.close()  # so that recv() sees the end when the worker dies
        with self._lock:
            self._processes[slot] = process
        return process, ours

    def _supervise(self, slot: int) -> None:
        process, conn = self._start_worker(slot)
        while True:
            run_id = self._queue.get()
            if run_id is None:
                break
            if not process.is_alive():  # died while idle: nothing lost, start another
                conn.close()
                process, conn = self._start_worker(slot)
            try:
                conn.send(str(run_id))
                conn.recv()
            except (EOFError, OSError):
                with self._lock:
                    self.deaths += 1
                    closing = self._closing
                if not closing:
                    log.warning(
                        "the worker process running run %s died (exit code %s); starting a new "
                        "one for its slot, and the reaper retries the run when its lease expires",
                        run_id, process.exitcode,
                    )  # fmt: skip
                conn.close()
                process.join(timeout=5)
                if closing:
                    return
                process, conn = self._start_worker(slot)
            finally:
                with self._lock:
                    self._assigned.discard(run_id)
                if self.wakeup is not None:  # a slot is free: the scheduler dispatches at once
                    self.wakeup.set()
        self._stop_worker(process, conn)

    def _stop_worker(self, process: BaseProcess, conn: Connection) -> None:
        with contextlib.suppress(OSError):
            conn.send(None)
        process.join(timeout=WORKER_EXIT_SECONDS)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
        conn.close()

    def capacity(self) -> int:
        with self._lock:
            busy = len(self._assigned)
        metrics.executor_slots(self.name, busy=busy, free=self.workers - busy)
        return self.workers - busy

    def send(self, run_id: uuid.UUID) -> None:
        with self._lock:
            self._assigned.add(run_id)
        self._queue.put(run_id)

    def worker_pids(self) -> list[int]:
        """The live worker processes' PIDs."""
        with self._lock:
            processes = list(self._processes.values())
        return [p.pid for p in processes if p.pid and p.is_alive()]

    def close(self, grace: float = 10.0) -> None:
        """Let runs in flight finish for up to ``grace`` seconds, then stop the workers.

        A run cut short stays ``running`` until its lease expires; the reaper then retries
        or fails it, so stopping never loses a run.
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=WORKER_EXIT_SECONDS)


class CeleryExecutor:
    """Sends each run to the Celery workers (`workbench worker`) through the broker."""

    name = "celery"
    wakeup: threading.Event | None = None

    def __init__(self, settings: Settings, *, max_in_flight: int = 100) -> None:
        from workbench.scheduler.celery_app import broker_url, create_app

        self.app = create_app(settings)
        self.max_in_flight = max_in_flight
        url = broker_url(settings)
        self._redis: Any = None
        if url.startswith(("redis://", "rediss://")):
            import redis

            self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._broker_run: str | None = None
        self._broker_lost = False

    def broker_restarted(self) -> bool:
        """Whether the Redis broker restarted (or came back) since the last call: the runs
        sent into it before may be gone. Always False for other brokers."""
        if self._redis is None:
            return False
        try:
            run = str(self._redis.info("server").get("run_id", ""))
        except Exception:  # away: whatever it held may be lost when it returns
            self._broker_lost = True
            return False
        restarted = self._broker_lost or (self._broker_run is not None and run != self._broker_run)
        self._broker_run, self._broker_lost = run, False
        return restarted

    def capacity(self) -> int:
        # The dispatcher's global limit bounds what is in flight; workers pull at their pace.
        return self.max_in_flight

    def send(self, run_id: uuid.UUID) -> None:
        from workbench.scheduler.celery_app import TASK_NAME

        self.app.send_task(TASK_NAME, args=[str(run_id)])

    def close(self) -> None:
        self.app.close()
        if self._redis is not None:
            self._redis.close()
