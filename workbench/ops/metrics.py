"""Prometheus metrics: every Workbench metric is defined once here, and ``exposition()`` renders
them for a `/metrics` endpoint.

Counters, histograms and gauges of work done are updated in memory by the code path that does
the work, through the small functions below (cheap: never a database call). The state of the
queue (queued and running runs, the oldest queued run, schedule lag) is read from the database
only when scraped, by the collector :func:`watch_database` installs for a service's lifetime.

A service that runs work in child processes (`workbench scheduler`'s local pool, the Celery
prefork pool of `workbench worker`) sets ``PROMETHEUS_MULTIPROC_DIR`` to a private folder at
start; every process then writes its values there and ``exposition()`` adds them up. The
Prometheus client is imported, and the metrics created, only when first used, so importing
this module early (the plugins import the notifiers) cannot fix the mode before the service
chose it. Labels take a few known values only, never a user name, a notebook path or a run id
(``tests/unit/test_metrics.py`` holds them to the rules).
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from workbench.core.version import __version__
from workbench.db.models import AuditEntry, Job, Run, RunStatus
from workbench.db.types import utcnow

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram
    from prometheus_client.core import Metric
    from prometheus_client.registry import Collector
    from sqlalchemy import Connection

    from workbench.app import Workbench

__all__ = [
    "ALLOWED_LABELS",
    "DEFINITIONS",
    "MULTIPROC_ENV",
    "TICK_FAILURE_CAUSES",
    "TRIGGERS",
    "Definition",
    "dashboard_request",
    "executor_slots",
    "exposition",
    "kernel_started",
    "lease_expired",
    "mark_process_dead",
    "notification",
    "run_claimed",
    "run_finished",
    "sign_in",
    "slot_in_use",
    "tick_failed",
    "tick_finished",
    "trigger_label",
    "warm_kernels",
    "watch_database",
]

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Every label any Workbench metric may carry; each takes a small, known set of values.
ALLOWED_LABELS = frozenset(
    {
        "status",
        "trigger",
        "outcome",
        "result",
        "handler",
        "executor",
        "state",
        "mode",
        "version",
        "stage",
        "cause",
    }
)
#: What started a run, as a label; any other ``triggered_by`` counts as "other".
TRIGGERS = frozenset({"api", "cli", "manual", "schedule"})

_RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
_WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_KERNEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


@dataclass(frozen=True)
class Definition:
    """A metric as exposed: its name, type (counter, histogram, gauge, or a gauge computed
    when scraped), help text and label names; ``buckets`` of a histogram, and ``mode``, how a
    gauge's values from several processes combine (``livesum``, ``max``)."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    mode: str = ""


_ALL = (
    # runs
    Definition("workbench_runs_total", "counter",
               "Runs that reached a final status, counted by the process that wrote it.",
               ("status", "trigger")),
    Definition("workbench_run_duration_seconds", "histogram",
               "Seconds from a run's claim to its final status, for runs a worker finished.",
               ("status",), buckets=_RUN_BUCKETS),
    Definition("workbench_run_queue_wait_seconds", "histogram",
               "Seconds a run waited in the queue (since it became due) before a worker "
               "claimed it.", ("trigger",), buckets=_WAIT_BUCKETS),
    Definition("workbench_lease_expiries_total", "counter",
               "Runs whose worker stopped heartbeating, by what the reaper did: requeued or "
               "failed.", ("outcome",)),
    Definition("workbench_runs_queued", "scraped",
               "Runs waiting in the queue (retries included)."),
    Definition("workbench_runs_running", "scraped",
               "Runs a worker has claimed and not finished."),
    Definition("workbench_oldest_queued_run_age_seconds", "scraped",
               "Seconds the oldest due queued run has waited since it became due (0 when none)."),
    Definition("workbench_schedule_lag_seconds", "scraped",
               "Seconds the most overdue scheduled job is past its next run time (0 when on "
               "time)."),
    # scheduler, executors, kernels
    Definition("workbench_scheduler_tick_duration_seconds", "histogram",
               "Seconds one scheduler tick took (queue due slots, reap expired leases, "
               "dispatch).", buckets=_FAST_BUCKETS),
    Definition("workbench_scheduler_tick_failures_total", "counter",
               "Scheduler ticks (stage tick) or dispatches between ticks (stage dispatch) that "
               "failed, by cause: database, broker or other.", ("stage", "cause")),
    Definition("workbench_executor_slots", "gauge", "An executor's run slots, busy or free.",
               ("executor", "state"), mode="livesum"),
    Definition("workbench_kernel_start_duration_seconds", "histogram",
               "Seconds to start a run's kernel until it answers, forked from the template or "
               "spawned.", ("mode",), buckets=_KERNEL_BUCKETS),
    Definition("workbench_warm_kernels", "gauge",
               "Started kernels waiting in the warm pools for a run.", mode="livesum"),
    # dashboards, sign-in, notifications
    Definition("workbench_dashboard_request_duration_seconds", "histogram",
               "Seconds the dashboards server took to answer a request, by handler class and "
               "status.", ("handler", "status"), buckets=_FAST_BUCKETS),
    Definition("workbench_sign_in_attempts_total", "counter",
               "Dashboard sign-in attempts, by result: success or failure.", ("result",)),
    Definition("workbench_notifications_total", "counter",
               "Notifications delivered about finished runs, by result: sent or failed.",
               ("result",)),
    # backups, the service itself
    Definition("workbench_backup_last_success_timestamp_seconds", "scraped",
               "Unix time of the last backup that completed (from the audit log)."),
    Definition("workbench_backup_last_verified_timestamp_seconds", "scraped",
               "Unix time of the last backup whose restore was verified (from the audit log)."),
    Definition("workbench_build_info", "scraped", "The running Workbench version (always 1).",
               ("version",)),
    Definition("workbench_database_up", "scraped",
               "1 if the queue metrics could be read from the database when scraped, else 0."),
)  # fmt: skip

#: Every Workbench metric by exposed name; the naming test reads this.
DEFINITIONS: dict[str, Definition] = {d.name: d for d in _ALL}


class _Live:
    """The metrics of this process, created on first use (see the module docstring)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, values

        if os.environ.get(MULTIPROC_ENV) and not getattr(values.ValueClass, "_multiprocess", 0):
            # The client was imported before the service chose its folder: choose again.
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        # No ``*_created`` series beside every counter and histogram: they double what is
        # stored and no query here needs them (restarts show as counter resets).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.metrics: dict[str, Any] = {}
        for d in _ALL:
            if d.kind == "counter":
                self.metrics[d.name] = Counter(d.name, d.help, d.labels)
            elif d.kind == "histogram":
                self.metrics[d.name] = Histogram(d.name, d.help, d.labels, buckets=d.buckets)
            elif d.kind == "gauge":
                mode: Any = d.mode
                self.metrics[d.name] = Gauge(d.name, d.help, d.labels, multiprocess_mode=mode)


_live: _Live | None = None
_live_lock = threading.Lock()


def _metric(name: str) -> Any:
    global _live
    if _live is None:
        with _live_lock:
            if _live is None:
                _live = _Live()
    return _live.metrics[name]


def _counter(name: str) -> Counter:
    return cast("Counter", _metric(name))


def _histogram(name: str) -> Histogram:
    return cast("Histogram", _metric(name))


def _gauge(name: str) -> Gauge:
    return cast("Gauge", _metric(name))


# -- recording (each call is a few in-memory operations) ---------------------------------------


def trigger_label(triggered_by: str) -> str:
    """``triggered_by`` as a label value: one of :data:`TRIGGERS`, else ``"other"``."""
    return triggered_by if triggered_by in TRIGGERS else "other"


def run_finished(status: str, triggered_by: str, seconds: float | None = None) -> None:
    """A run reached final ``status``; ``seconds`` from claim to finish when a worker ran it."""
    _counter("workbench_runs_total").labels(
        status=status, trigger=trigger_label(triggered_by)
    ).inc()
    if seconds is not None:
        _histogram("workbench_run_duration_seconds").labels(status=status).observe(
            max(seconds, 0.0)
        )


def run_claimed(triggered_by: str, waited_seconds: float) -> None:
    """A worker claimed a run that had waited ``waited_seconds`` since it became due."""
    _histogram("workbench_run_queue_wait_seconds").labels(
        trigger=trigger_label(triggered_by)
    ).observe(max(waited_seconds, 0.0))


def lease_expired(outcome: str, count: int = 1) -> None:
    """The reaper ended ``count`` attempts whose lease expired: ``requeued`` or ``failed``."""
    if count:
        _counter("workbench_lease_expiries_total").labels(outcome=outcome).inc(count)


def tick_finished(seconds: float) -> None:
    _histogram("workbench_scheduler_tick_duration_seconds").observe(seconds)


#: What made a tick fail, as a label.
TICK_FAILURE_CAUSES = frozenset({"database", "broker", "other"})


def tick_failed(stage: str, cause: str) -> None:
    """A scheduler ``stage`` (``tick`` or ``dispatch``) failed, by ``cause``."""
    label = cause if cause in TICK_FAILURE_CAUSES else "other"
    _counter("workbench_scheduler_tick_failures_total").labels(stage=stage, cause=label).inc()


def executor_slots(executor: str, *, busy: int, free: int) -> None:
    """How many of ``executor``'s slots in this process are busy and free now."""
    _gauge("workbench_executor_slots").labels(executor=executor, state="busy").set(busy)
    _gauge("workbench_executor_slots").labels(executor=executor, state="free").set(free)


@contextmanager
def slot_in_use(executor: str) -> Iterator[None]:
    """One of ``executor``'s slots is busy for the block (a worker process runs a run)."""
    busy = _gauge("workbench_executor_slots").labels(executor=executor, state="busy")
    free = _gauge("workbench_executor_slots").labels(executor=executor, state="free")
    busy.inc()
    free.dec()
    try:
        yield
    finally:
        busy.dec()
        free.inc()


def kernel_started(forked: bool, seconds: float) -> None:
    _histogram("workbench_kernel_start_duration_seconds").labels(
        mode="forked" if forked else "spawned"
    ).observe(seconds)


def warm_kernels(change: int) -> None:
    """A warm pool gained (+1) or handed out or discarded (-1) a ready kernel."""
    _gauge("workbench_warm_kernels").inc(change)


def dashboard_request(handler: str, status: int, seconds: float) -> None:
    """A dashboards request answered by handler class ``handler`` with HTTP ``status``."""
    _histogram("workbench_dashboard_request_duration_seconds").labels(
        handler=handler, status=str(status)
    ).observe(seconds)


def sign_in(success: bool) -> None:
    _counter("workbench_sign_in_attempts_total").labels(
        result="success" if success else "failure"
    ).inc()


def notification(sent: bool) -> None:
    _counter("workbench_notifications_total").labels(result="sent" if sent else "failed").inc()


# -- the scrape-time collector ----------------------------------------------------------------


class _DatabaseCollector:
    """Build info, and the queue's state read from the workbench's database at scrape time."""

    def __init__(self, workbench: Workbench | None) -> None:
        self.workbench = workbench

    def _family(self, name: str, value: float, **labels: str) -> Metric:
        from prometheus_client.core import GaugeMetricFamily

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
            backups = _last_backups(conn)
        return {
            **backups,
            "workbench_runs_queued": float(counts.get(RunStatus.QUEUED, 0)),
            "workbench_runs_running": float(counts.get(RunStatus.RUNNING, 0)),
            "workbench_oldest_queued_run_age_seconds": _age(oldest, now),
            "workbench_schedule_lag_seconds": _age(next_run, now),
        }


def _last_backups(conn: Connection) -> dict[str, float]:
    """When the last backup was made and the last one verified, as the audit log records them:
    the same answer on every host, whichever process made or verified the backup."""
    from workbench.ops.backup.api import CREATED_ACTION, VERIFIED_ACTION

    stamps = dict(
        conn.execute(
            select(AuditEntry.action, func.max(AuditEntry.at))
            .where(AuditEntry.action.in_([CREATED_ACTION, VERIFIED_ACTION]))
            .group_by(AuditEntry.action)
        ).all()
    )
    names = {
        CREATED_ACTION: "workbench_backup_last_success_timestamp_seconds",
        VERIFIED_ACTION: "workbench_backup_last_verified_timestamp_seconds",
    }
    # 0 for none yet, so the alerts on stale backups fire on a workbench never backed up.
    return {name: _timestamp(stamps.get(action)) for action, name in names.items()}


def _timestamp(at: datetime | None) -> float:
    if at is None:
        return 0.0
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


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


def mark_process_dead(pid: int) -> None:
    """Forget the live gauges (warm kernels, busy slots) of child process ``pid``, which
    exited; its counters stay, as counters never go back."""
    from prometheus_client import multiprocess

    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def _forget_dead(folder: str) -> None:
    """Children killed without notice (``kill -9``) leave live gauges behind: drop them."""
    import psutil
    from prometheus_client import multiprocess

    pids = {int(m.group(1)) for f in glob.glob(os.path.join(folder, "gauge_live*_*.db"))
            if (m := _LIVE_FILE.search(f))}  # fmt: skip
    for pid in pids:
        if not psutil.pid_exists(pid):
            multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def _process_metrics() -> bytes:
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess

    _metric("workbench_runs_total")  # this process's metrics exist, at zero if nothing happened
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return generate_latest(REGISTRY)
    _forget_dead(folder)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format (0.0.4, which every Prometheus reads) and its
    content type, ready to serve.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, the values come from every process that wrote to
    that folder (a service and its worker processes); otherwise from this process alone. The
    scrape-time metrics (build info, the watched database's queue) are added either way.
    """
    from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

    scraped = generate_latest(cast("Collector", _scrape_time()))
    return _process_metrics() + scraped, CONTENT_TYPE_PLAIN_0_0_4
