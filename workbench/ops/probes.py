"""Liveness and readiness, the two questions Kubernetes asks a service process.

:class:`Liveness` answers "is the process's loop still turning?": the loop touches it every
iteration, and it is alive while the last touch is younger than its bound. It never calls the
database, so a slow database cannot get a healthy process restarted.

:class:`Readiness` answers "can this process do its work now?": the database answers, its
schema is at the newest migration, Redis answers when one is configured. Each check runs in a
daemon thread of its own with a short budget, so a probe answers in well under 100 ms even
when a dependency hangs (the hung check is then reported failed, and not started again while
it is still running); results are cached for a second so a burst of probes costs one round.
Once the process is told to stop (:meth:`Readiness.drain`), it is not ready any more, at once.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.ops.health import Check, check_database, check_migrations, check_redis

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from workbench.core.config import Settings

__all__ = [
    "CHECK_BUDGET_SECONDS",
    "DRAINING",
    "READY_CACHE_SECONDS",
    "Liveness",
    "ProbeAnswer",
    "Readiness",
    "forget_after_fork",
    "service_readiness",
]

#: How long a readiness probe waits for its checks before it reports the slow ones failed.
CHECK_BUDGET_SECONDS = 0.08
#: How long one round of readiness checks answers the probes that follow it.
READY_CACHE_SECONDS = 1.0
#: Seconds a probe's database or Redis connection may take before it gives up.
PROBE_TIMEOUT_SECONDS = 2
#: The name of the failed check while the process is stopping.
DRAINING = "draining"


class Liveness:
    """When the process's loop last turned; alive while that is at most ``bound_seconds`` ago.

    ``touch()`` is one assignment, safe from any thread and from a signal handler.
    """

    def __init__(self, bound_seconds: float) -> None:
        if bound_seconds <= 0:
            raise ValueError("the liveness bound must be positive")
        self.bound_seconds = float(bound_seconds)
        self._last = time.monotonic()

    def touch(self) -> None:
        self._last = time.monotonic()

    def age(self) -> float:
        """Seconds since the loop last turned."""
        return max(0.0, time.monotonic() - self._last)

    def alive(self) -> bool:
        return self.age() <= self.bound_seconds

    def answer(self) -> ProbeAnswer:
        age = self.age()
        ok = age <= self.bound_seconds
        detail = f"last turned {age:.1f}s ago (bound {self.bound_seconds:.1f}s)"
        return ProbeAnswer(ok, [Check("loop", ok, detail)])


@dataclass(frozen=True)
class ProbeAnswer:
    """One probe's result: HTTP 200 when ``ok``, else 503, with a JSON body of its checks."""

    ok: bool
    checks: list[Check] = field(default_factory=list)

    @property
    def status_code(self) -> int:
        return 200 if self.ok else 503

    def body(self, *, verbose: bool = False) -> dict[str, Any]:
        """What the probe says. Plain: ok or not and each check's name with ok or fail, never
        a URL, host, version or error text. Verbose (for people, see the callers): the detail
        and the time of each check too."""
        checks: dict[str, Any] = {}
        for check in self.checks:
            status = "ok" if check.ok else "fail"
            if verbose:
                checks[check.name] = {
                    "status": status,
                    "detail": check.detail,
                    "ms": round(check.seconds * 1000, 1),
                }
            else:
                checks[check.name] = status
        return {"status": "ok" if self.ok else "fail", "checks": checks}


CheckFn = Callable[[], Check]


class _Pending:
    """One check running in its daemon thread; a later probe may pick up its result."""

    def __init__(self, name: str, fn: CheckFn) -> None:
        self.name = name
        self.result: Check | None = None
        self.done = threading.Event()
        self.started = time.monotonic()
        threading.Thread(target=self._run, args=(fn,), name=f"readyz-{name}", daemon=True).start()

    def _run(self, fn: CheckFn) -> None:
        start = time.perf_counter()
        try:
            check = fn()
        except Exception as exc:  # a check that raises has failed; the probe still answers
            check = Check(self.name, False, f"raised {type(exc).__name__}: {exc}")
        if not check.seconds:
            check = Check(check.name, check.ok, check.detail, time.perf_counter() - start)
        self.result = check
        self.done.set()


class Readiness:
    """Named checks run concurrently with a budget, cached briefly; not ready once draining."""

    def __init__(
        self,
        checks: Mapping[str, CheckFn],
        *,
        budget_seconds: float = CHECK_BUDGET_SECONDS,
        cache_seconds: float = READY_CACHE_SECONDS,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.checks = dict(checks)
        self.budget_seconds = budget_seconds
        self.cache_seconds = cache_seconds
        self._on_close = on_close
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._cached: tuple[float, ProbeAnswer] | None = None
        self._draining = False

    def drain(self) -> None:
        """The process is stopping: every probe from now on answers not ready.

        One assignment, so a signal handler may call it.
        """
        self._draining = True

    @property
    def draining(self) -> bool:
        return self._draining

    def answer(self) -> ProbeAnswer:
        if self._draining:
            return ProbeAnswer(False, [Check(DRAINING, False, "the process is stopping")])
        now = time.monotonic()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            pending = {
                name: self._pending.get(name) or self._start(name, fn)
                for name, fn in self.checks.items()
            }
        deadline = now + self.budget_seconds
        results: list[Check] = []
        finished = True
        for name, job in pending.items():
            if job.done.wait(max(0.0, deadline - time.monotonic())) and job.result is not None:
                results.append(job.result)
            else:
                finished = False
                running = time.monotonic() - job.started
                results.append(
                    Check(name, False, f"no answer yet (running for {running:.2f}s)", running)
                )
        answer = ProbeAnswer(all(c.ok for c in results), results)
        if self._draining:  # told to stop while the checks ran
            return self.answer()
        with self._lock:
            for name, job in pending.items():
                if job.done.is_set() and self._pending.get(name) is job:
                    del self._pending[name]
            if finished:  # an unfinished check is picked up by the next probe, not cached
                self._cached = (time.monotonic(), answer)
        return answer

    def prime(self) -> None:
        """Start a round of checks without waiting, so the first probe finds connections open
        and modules loaded (a cold first round can take longer than a probe's budget)."""
        with self._lock:
            for name, fn in self.checks.items():
                if name not in self._pending:
                    self._start(name, fn)

    def _start(self, name: str, fn: CheckFn) -> _Pending:
        job = _Pending(name, fn)
        self._pending[name] = job
        return job

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()


def forget_after_fork(engine: Engine) -> None:
    """Make a forked child drop (not close) ``engine``'s pooled connections: they belong to
    the parent, and a child closing them would cut the parent's sessions too."""
    ref = weakref.ref(engine)

    def _in_child() -> None:
        found = ref()
        if found is not None:
            found.dispose(close=False)

    os.register_at_fork(after_in_child=_in_child)


def service_readiness(settings: Settings, *, broker_url: str | None = None) -> Readiness:
    """The readiness of a service process: its database reachable and at head, Redis when
    ``WORKBENCH_REDIS_URL`` is set, and the Celery broker when it is another Redis.

    The checks use an engine of their own (two connections, short timeouts), so a pool busy
    with the service's work cannot make a probe wait.
    """
    from workbench.db import migrate
    from workbench.db.engine import create_workbench_engine

    probe_settings = settings.model_copy(
        update={
            "pool_size": 2,  # the database and the migrations checks run side by side
            "max_overflow": 0,
            "pool_timeout": PROBE_TIMEOUT_SECONDS,
            "connect_timeout": PROBE_TIMEOUT_SECONDS,
            "statement_timeout_ms": PROBE_TIMEOUT_SECONDS * 1000,
        }
    )
    engine = create_workbench_engine(probe_settings)
    forget_after_fork(engine)
    head = migrate.head_revision()
    checks: dict[str, CheckFn] = {
        "database": lambda: check_database(engine),
        "migrations": lambda: check_migrations(engine, head=head),
    }
    redis_url = settings.effective_redis_url()
    if redis_url:
        checks["redis"] = lambda: check_redis(redis_url, timeout=PROBE_TIMEOUT_SECONDS)
    if broker_url and broker_url != redis_url and broker_url.startswith(("redis://", "rediss://")):
        checks["broker"] = lambda: check_redis(
            broker_url, timeout=PROBE_TIMEOUT_SECONDS, name="broker"
        )
    return Readiness(checks, on_close=engine.dispose)
