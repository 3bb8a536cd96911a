"""Health checks shared by `workbench doctor`, the dashboards and the metrics endpoint."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from workbench.core.config import Settings, mask_url
from workbench.db import migrate
from workbench.db.models import ServiceKind
from workbench.ops.heartbeats import service_statuses, stale_after

__all__ = [
    "BACKUP_MAX_AGE_HOURS",
    "Check",
    "check_backups",
    "check_database",
    "check_migrations",
    "check_redis",
    "check_schedulers",
    "check_workers",
    "run_checks",
    "wait_for_migrations",
]


@dataclass(frozen=True)
class Check:
    """One health check's outcome; ``warning`` marks an ok check that still wants a look."""

    name: str
    ok: bool
    detail: str
    seconds: float = 0.0
    warning: bool = False

    @property
    def status(self) -> str:
        """``failed``, ``warning`` or ``ok``."""
        if not self.ok:
            return "failed"
        return "warning" if self.warning else "ok"


def _error_summary(exc: BaseException) -> str:
    # First line only: driver messages can be long, and never include the URL we passed.
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]


def check_database(engine: Engine) -> Check:
    start = time.perf_counter()
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                version = conn.execute(text("SHOW server_version")).scalar_one()
                detail = f"PostgreSQL {version} at {mask_url(str(engine.url))}"
            else:
                version = conn.execute(text("SELECT sqlite_version()")).scalar_one()
                detail = f"SQLite {version} at {engine.url.database}"
    except SQLAlchemyError as exc:
        return Check("database", False, f"unreachable: {_error_summary(exc)}")
    return Check("database", True, detail, time.perf_counter() - start)


def check_migrations(engine: Engine, *, head: str | None = None) -> Check:
    """At the newest migration or not; ``head`` saves reading the shipped migrations again."""
    try:
        if head is None:
            status = migrate.migration_status(engine)
        else:
            status = migrate.MigrationStatus(current=migrate.current_revision(engine), head=head)
    except SQLAlchemyError as exc:
        return Check("migrations", False, f"unknown: {_error_summary(exc)}")
    if status.at_head:
        return Check("migrations", True, f"at head ({status.head})")
    if status.current is None:
        return Check("migrations", False, "database not initialised: run `workbench init`")
    return Check(
        "migrations",
        False,
        f"at {status.current}, head is {status.head}: run `workbench db upgrade`",
    )


def check_redis(url: str, timeout: float = 2.0, *, name: str = "redis") -> Check:
    import redis

    start = time.perf_counter()
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        info = client.info("server")
    except redis.RedisError as exc:
        return Check(name, False, f"unreachable: {_error_summary(exc)}")
    finally:
        client.close()
    return Check(
        name,
        True,
        f"Redis {info.get('redis_version', '?')} at {mask_url(url)}",
        time.perf_counter() - start,
    )


def _check_services(
    engine: Engine, kind: ServiceKind, name: str, stale_seconds: float, restart: str
) -> tuple[Check | None, int, float]:
    """A failed check naming the stale services of ``kind``, or ``None`` and how many run."""
    start = time.perf_counter()
    try:
        statuses = service_statuses(engine, kind, stale_seconds=stale_seconds)
    except SQLAlchemyError as exc:
        return Check(name, False, f"unknown: {_error_summary(exc)}"), 0, 0.0
    elapsed = time.perf_counter() - start
    stale = [s for s in statuses if s.stale]
    live = len(statuses) - len(stale)
    if stale:
        names = "; ".join(s.describe() for s in stale)
        detail = (
            f"{len(stale)} stale (no heartbeat for over {stale_seconds:.0f}s): {names}; "
            f"{live} live. {restart}"
        )
        return Check(name, False, detail, elapsed), live, elapsed
    return None, live, elapsed


def check_schedulers(engine: Engine, *, stale_seconds: float) -> Check:
    """Fails when a scheduler's heartbeat is older than ``stale_seconds`` (it died or hangs).

    No scheduler at all is not a failure: the embedded mode often runs without one.
    """
    failed, live, elapsed = _check_services(
        engine, ServiceKind.SCHEDULER, "scheduler", stale_seconds,
        "Restart `workbench scheduler` or check its logs.",
    )  # fmt: skip
    if failed is not None:
        return failed
    if not live:
        return Check("scheduler", True, "no scheduler running", elapsed)
    return Check("scheduler", True, f"{live} running, heartbeats fresh", elapsed)


def check_workers(engine: Engine, *, stale_seconds: float, executor: str) -> Check:
    """Fails when a worker's heartbeat is older than ``stale_seconds``; with the Celery
    executor, no worker at all is a warning (runs would wait in the queue)."""
    failed, live, elapsed = _check_services(
        engine, ServiceKind.WORKER, "workers", stale_seconds,
        "Restart the worker or check its logs.",
    )  # fmt: skip
    if failed is not None:
        return failed
    if not live:
        if executor == "celery":
            return Check(
                "workers",
                True,
                "no worker running: queued runs wait until `workbench worker` starts",
                elapsed,
                warning=True,
            )
        return Check("workers", True, "no worker running", elapsed)
    return Check("workers", True, f"{live} running, heartbeats fresh", elapsed)


def wait_for_migrations(settings: Settings, wait_seconds: float) -> Check:
    """Check until the database answers and is at head, for up to ``wait_seconds``; the last
    check (ok or not) is returned. For init containers that hold a service back until then."""
    from workbench.db.engine import create_workbench_engine

    deadline = time.monotonic() + max(0.0, wait_seconds)
    head = migrate.head_revision()
    while True:
        left = deadline - time.monotonic()
        timeout = int(min(settings.connect_timeout, max(2.0, left)))
        engine = create_workbench_engine(settings.model_copy(update={"connect_timeout": timeout}))
        try:
            check = check_database(engine)
            if check.ok:
                check = check_migrations(engine, head=head)
        finally:
            engine.dispose()
        left = deadline - time.monotonic()
        if check.ok or left <= 0:
            return check
        time.sleep(min(1.0, left))  # the last try comes when the wait is over


#: In production `doctor` warns when the newest verified backup was made longer ago than this.
BACKUP_MAX_AGE_HOURS = 26.0


def check_backups(
    engine: Engine, *, max_age_hours: float = BACKUP_MAX_AGE_HOURS, now: datetime | None = None
) -> Check:
    """Warns when the newest backup that passed `workbench backup verify` was made more than
    ``max_age_hours`` ago, or there is none (read from the audit log, so every host agrees)."""
    from workbench.db.types import utcnow
    from workbench.ops.backup.api import newest_verified_backup

    start = time.perf_counter()
    try:
        newest = newest_verified_backup(engine)
    except SQLAlchemyError as exc:
        return Check("backups", False, f"unknown: {_error_summary(exc)}")
    elapsed = time.perf_counter() - start
    if newest is None:
        return Check(
            "backups",
            True,
            "no verified backup yet: run `workbench backup schedule '0 2 * * *'` (or `backup "
            "create` and `backup verify`)",
            elapsed,
            warning=True,
        )
    hours = ((now or utcnow()) - newest).total_seconds() / 3600
    if hours > max_age_hours:
        return Check(
            "backups",
            True,
            f"the newest verified backup was made {hours:.0f} h ago (over {max_age_hours:.0f} h):"
            " check the backup job's runs (`workbench runs list`)",
            elapsed,
            warning=True,
        )
    return Check("backups", True, f"newest verified backup made {hours:.1f} h ago", elapsed)


def run_checks(settings: Settings, engine: Engine) -> list[Check]:
    """Database reachability, migration status, scheduler and worker heartbeats, in production
    the age of the newest verified backup, Redis when configured."""
    checks = [check_database(engine)]
    if checks[0].ok:
        checks.append(check_migrations(engine))
        if checks[-1].ok:
            stale = stale_after(settings.scheduler_poll_seconds)
            checks.append(check_schedulers(engine, stale_seconds=stale))
            checks.append(check_workers(engine, stale_seconds=stale, executor=settings.executor))
            if settings.is_production:
                checks.append(check_backups(engine))
    redis_url = settings.effective_redis_url()
    if redis_url:
        checks.append(check_redis(redis_url))
    return checks
