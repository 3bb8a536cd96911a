"""Prometheus metrics: every Workbench metric is defined once here, and ``exposition()`` renders
them for a `/metrics` endpoint.

Counters, histograms and gauges of work done are updated in memory by the code path that does
the work, through the small functions below (cheap: never a database call). The state of the
queue (queued and running runs, the oldest queued run, schedule lag) is read from the database
only when scraped, by the collector :func:`watch_database` installs for a service's lifetime.

A service that runs work in child processes (`workbench scheduler`'s local pool, the Celery
prefork pool of `workbench worker`) sets ``PROMETHEUS_MULTIPROC_DIR`` to a private folder
before the first import of this module; every process then writes its values there and
``exposition()`` merges them. Labels take a few known values only, never a user name, a
notebook path or a run id (``tests/unit/test_metrics.py`` holds them to the rules).
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from workbench.core.version import __version__
from workbench.db.models import Job, Run, RunStatus
from workbench.db.types import utcnow

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = [
    "ALLOWED_LABELS",
    "DEFINITIONS",
    "MULTIPROC_ENV",
    "TRIGGERS",
    "Definition",
    "dashboard_request",
    "executor_slots",
    "exposition",
    "kernel_started",
    "lease_expired",
    "mark_process_dead",
    "notification",
    "record_backup",
    "run_claimed",
    "run_finished",
    "sign_in",
    "slot_in_use",
    "tick_finished",
    "trigger_label",
    "warm_kernels",
    "watch_database",
]

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Every label any Workbench metric may carry; each takes a small, known set of values.
ALLOWED_LABELS = frozenset(
    {"status", "trigger", "outcome", "result", "handler", "executor", "state", "mode", "version"}
)
#: What started a run, as a label; any other ``triggered_by`` counts as "other".
TRIGGERS = frozenset({"api", "cli", "manual", "schedule"})

# No ``*_created`` series beside every counter and histogram: they double what is stored and
# no query here needs them (restarts show as counter resets).
disable_created_metrics()  # type: ignore[no-untyped-call]

_RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
_WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_KERNEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


@dataclass(frozen=True)
class Definition:
    """A metric as exposed: its name, type, help text and label names."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    scraped: bool = False
    """Computed when scraped (from the database) rather than kept in memory."""


#: Every Workbench metric by exposed name; the naming test reads this.
DEFINITIONS: dict[str, Definition] = {}


def _define(kind: str, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
    if name in DEFINITIONS:
        raise ValueError(f"metric {name} is defined twice")
    DEFINITIONS[name] = Definition(name, kind, help, labels, scraped=kind == "scraped gauge")


def _counter(name: str, help: str, labels: tuple[str, ...] = ()) -> Counter:
    _define("counter", name, help, labels)
    return Counter(name, help, labels)


def _histogram(
    name: str, help: str, labels: tuple[str, ...] = (), *, buckets: tuple[float, ...]
) -> Histogram:
    _define("histogram", name, help, labels)
    return Histogram(name, help, labels, buckets=buckets)


def _gauge(name: str, help: str, labels: tuple[str, ...] = (), *, mode: str) -> Gauge:
    """``mode``: how the values of several processes combine (``livesum``, ``max``)."""
    _define("gauge", name, help, labels)
    return Gauge(name, help, labels, multiprocess_mode=mode)  # type: ignore[arg-type]


def _scraped(name: str, help: str, labels: tuple[str, ...] = ()) -> None:
    _define("scraped gauge", name, help, labels)


# -- runs -------------------------------------------------------------------------------------

RUNS = _counter(
    "workbench_runs_total",
    "Runs that reached a final status, counted by the process that wrote it.",
    ("status", "trigger"),
)
RUN_DURATION = _histogram(
    "workbench_run_duration_seconds",
    "Seconds from a run's claim to its final status, for runs a worker finished.",
    ("status",),
    buckets=_RUN_BUCKETS,
)
QUEUE_WAIT = _histogram(
    "workbench_run_queue_wait_seconds",
    "Seconds a run waited in the queue (since it became due) before a worker claimed it.",
    ("trigger",),
    buckets=_WAIT_BUCKETS,
)
LEASE_EXPIRIES = _counter(
    "workbench_lease_expiries_total",
    "Runs whose worker stopped heartbeating, by what the reaper did: requeued or failed.",
    ("outcome",),
)
_scraped("workbench_runs_queued", "Runs waiting in the queue (retries included).")
_scraped("workbench_runs_running", "Runs a worker has claimed and not finished.")
_scraped(
    "workbench_oldest_queued_run_age_seconds",
    "Seconds the oldest due queued run has waited since it became due (0 when none).",
)
_scraped(
    "workbench_schedule_lag_seconds",
    "Seconds the most overdue scheduled job is past its next run time (0 when on time).",
)

# -- scheduler, executors, kernels -------------------------------------------------------------

TICK_DURATION = _histogram(
    "workbench_scheduler_tick_duration_seconds",
    "Seconds one scheduler tick took (queue due slots, reap expired leases, dispatch).",
    buckets=_FAST_BUCKETS,
)
EXECUTOR_SLOTS = _gauge(
    "workbench_executor_slots",
    "An executor's run slots, busy or free.",
    ("executor", "state"),
    mode="livesum",
)
KERNEL_START = _histogram(
    "workbench_kernel_start_duration_seconds",
    "Seconds to start a run's kernel until it answers, forked from the template or spawned.",
    ("mode",),
    buckets=_KERNEL_BUCKETS,
)
WARM_KERNELS = _gauge(
    "workbench_warm_kernels", "Started kernels waiting in the warm pools for a run.", mode="livesum"
)

# -- dashboards, sign-in, notifications ---------------------------------------------------------

DASHBOARD_REQUESTS = _histogram(
    "workbench_dashboard_request_duration_seconds",
    "Seconds the dashboards server took to answer a request, by handler class and status.",
    ("handler", "status"),
    buckets=_FAST_BUCKETS,
)
SIGN_INS = _counter(
    "workbench_sign_in_attempts_total",
    "Dashboard sign-in attempts, by result: success or failure.",
    ("result",),
)
NOTIFICATIONS = _counter(
    "workbench_notifications_total",
    "Notifications delivered about finished runs, by result: sent or failed.",
    ("result",),
)

# -- backups, the service itself --------------------------------------------------------------

BACKUP_SUCCESS = _gauge(
    "workbench_backup_last_success_timestamp_seconds",
    "Unix time of the last backup that completed.",
    mode="max",
)
BACKUP_VERIFIED = _gauge(
    "workbench_backup_last_verified_timestamp_seconds",
    "Unix time of the last backup whose restore was verified.",
    mode="max",
)
_scraped("workbench_build_info", "The running Workbench version (always 1).", ("version",))
_scraped(
    "workbench_database_up",
    "1 if the queue metrics could be read from the database when scraped, else 0.",
)


# -- recording (each call is a few in-memory operations) ---------------------------------------


def trigger_label(triggered_by: str) -> str:
    """``triggered_by`` as a label value: one of :data:`TRIGGERS`, else ``"other"``."""
    return triggered_by if triggered_by in TRIGGERS else "other"


def run_finished(status: str, triggered_by: str, seconds: float | None = None) -> None:
    """A run reached final ``status``; ``seconds`` from claim to finish when a worker ran it."""
    RUNS.labels(status=status, trigger=trigger_label(triggered_by)).inc()
    if seconds is not None:
        RUN_DURATION.labels(status=status).observe(max(seconds, 0.0))


def run_claimed(triggered_by: str, waited_seconds: float) -> None:
    """A worker claimed a run that had waited ``waited_seconds`` since it became due."""
    QUEUE_WAIT.labels(trigger=trigger_label(triggered_by)).observe(max(waited_seconds, 0.0))


def lease_expired(outcome: str, count: int = 1) -> None:
    """The reaper ended ``count`` attempts whose lease expired: ``requeued`` or ``failed``."""
    if count:
        LEASE_EXPIRIES.labels(outcome=outcome).inc(count)


def tick_finished(seconds: float) -> None:
    TICK_DURATION.observe(seconds)


def executor_slots(executor: str, *, busy: int, free: int) -> None:
    """How many of ``executor``'s slots in this process are busy and free now."""
    EXECUTOR_SLOTS.labels(executor=executor, state="busy").set(busy)
    EXECUTOR_SLOTS.labels(executor=executor, state="free").set(free)


@contextmanager
def slot_in_use(executor: str) -> Iterator[None]:
    """One of ``executor``'s slots is busy for the block (a worker process runs a run)."""
    busy = EXECUTOR_SLOTS.labels(executor=executor, state="busy")
    free = EXECUTOR_SLOTS.labels(executor=executor, state="free")
    busy.inc()
    free.dec()
    try:
        yield
    finally:
        busy.dec()
        free.inc()


def kernel_started(forked: bool, seconds: float) -> None:
    KERNEL_START.labels(mode="forked" if forked else "spawned").observe(seconds)


def warm_kernels(change: int) -> None:
    """A warm pool gained (+1) or handed out or discarded (-1) a ready kernel."""
    WARM_KERNELS.inc(change)


def dashboard_request(handler: str, status: int, seconds: float) -> None:
    """A dashboards request answered by handler class ``handler`` with HTTP ``status``."""
    DASHBOARD_REQUESTS.labels(handler=handler, status=str(status)).observe(seconds)


def sign_in(success: bool) -> None:
    SIGN_INS.labels(result="success" if success else "failure").inc()


def notification(sent: bool) -> None:
    NOTIFICATIONS.labels(result="sent" if sent else "failed").inc()


def record_backup(
    *, created: bool = False, verified: bool = False, when: datetime | None = None
) -> None:
    """A backup completed (``created``) and/or its restore was verified (``verified``) at
    ``when`` (default now); the alerts fire when either grows stale."""
    stamp = (when or utcnow()).timestamp()
    if created:
        BACKUP_SUCCESS.set(stamp)
    if verified:
        BACKUP_VERIFIED.set(stamp)


# -- the scrape-time collector ----------------------------------------------------------------


class _DatabaseCollector(Collector):
    """Build info, and the queue's state read from the workbench's database at scrape time."""

    def __init__(self, workbench: Workbench | None) -> None:
        self.workbench = workbench

    def _family(self, name: str, value: float, **labels: str) -> GaugeMetricFamily:
        definition = DEFINITIONS[name]
        family = GaugeMetricFamily(name, definition.help, labels=list(definition.labels))
        family.add_metric([labels[n] for n in definition.labels], value)
        return family

    def collect(self) -> Iterator[Metric]:
        yield self._family("workbench_build_info", 1, version=__version__)
        if self.workbench is None:
            return
        try:
            values = self._read(self.workbench)
        except SQLAlchemyError as exc:
            log.warning("metrics: the queue could not be read from the database: %s", exc)
            yield self._family("workbench_database_up", 0)
            return
        yield self._family("workbench_database_up", 1)
        for name, value in values.items():
            yield self._family(name, value)

    @staticmethod
    def _read(wb: Workbench) -> dict[str, float]:
        now = utcnow()
        due = func.coalesce(Run.not_before, Run.queued_at)
        with wb.engine.connect() as conn:
            counts = dict(
                conn.execute(
                    select(Run.status, func.count())
                    .where(Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
                    .group_by(Run.status)
                ).all()
            )
            oldest = conn.scalar(
                select(func.min(due)).where(Run.status == RunStatus.QUEUED, due <= now)
            )
            next_run = conn.scalar(
                select(func.min(Job.next_run_at)).where(
                    Job.paused.is_(False), Job.schedule.is_not(None)
                )
            )
        return {
            "workbench_runs_queued": float(counts.get(RunStatus.QUEUED, 0)),
            "workbench_runs_running": float(counts.get(RunStatus.RUNNING, 0)),
            "workbench_oldest_queued_run_age_seconds": _age(oldest, now),
            "workbench_schedule_lag_seconds": _age(next_run, now),
        }


def _age(then: datetime | None, now: datetime) -> float:
    return max((now - then).total_seconds(), 0.0) if then is not None else 0.0


_watched: list[_DatabaseCollector] = []
_watched_lock = threading.Lock()


def watch_database(workbench: Workbench) -> Callable[[], None]:
    """Report ``workbench``'s queue in this process's metrics until the returned function is
    called. A service calls it once for its life; the latest one watched is reported."""
    collector = _DatabaseCollector(workbench)
    with _watched_lock:
        _watched.append(collector)

    def unwatch() -> None:
        with _watched_lock:
            if collector in _watched:
                _watched.remove(collector)

    return unwatch


def _scrape_time() -> _DatabaseCollector:
    with _watched_lock:
        return _watched[-1] if _watched else _DatabaseCollector(None)


# -- exposition -------------------------------------------------------------------------------

_LIVE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_process_dead(pid: int) -> None:
    """Forget the live gauges (warm kernels, busy slots) of child process ``pid``, which
    exited; its counters stay, as counters never go back."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def _forget_dead(folder: str) -> None:
    """Children killed without notice (``kill -9``) leave live gauges behind: drop them."""
    pids = {int(m.group(1)) for f in glob.glob(os.path.join(folder, "gauge_live*_*.db"))
            if (m := _LIVE_FILE.search(f))}  # fmt: skip
    for pid in pids:
        if not _pid_alive(pid):
            multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def _process_metrics() -> Iterable[bytes]:
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        yield generate_latest(REGISTRY)
        return
    _forget_dead(folder)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    yield generate_latest(registry)


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format (0.0.4, which every Prometheus reads) and its
    content type, ready to serve.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, the values come from every process that wrote to
    that folder (a forking worker and its children); otherwise from this process alone. The
    scrape-time metrics (build info, the watched database's queue) are added either way.
    """
    body = b"".join(_process_metrics()) + generate_latest(_scrape_time())
    return body, CONTENT_TYPE_PLAIN_0_0_4
