"""Optional error tracking with Sentry, in the service processes only.

``WORKBENCH_SENTRY_DSN`` (or ``WORKBENCH_SENTRY_DSN_FILE``) turns it on in the CLI, the
scheduler, the workers and the dashboards server (:func:`init_tracking`), with ``sentry-sdk``
from ``pip install workbench[sentry]``. Without a DSN nothing is imported; with a DSN but no
``sentry-sdk`` the process says once in its log that tracking is off, and carries on.

What is sent: a command's unexpected exception (:func:`report_exception`), errors the services
log, and one event per finally failed run: this module is a built-in plugin whose
``run_failed`` hook fires once a run has no attempts left (a retried attempt never reaches it).
Every event and breadcrumb goes through the logs' redaction (:class:`~workbench.ops.logging.
Redactor`) and loses frame variables, request cookies, headers and bodies and the user's
address. Kernels are subprocesses that must see none of it: :func:`scrub_environment` is the
filter their environments pass through.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workbench.core.version import __version__
from workbench.ops.logging import Redactor, secret_values
from workbench.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from workbench.core.config import Settings
    from workbench.plugins.events import RunEvent

__all__ = [
    "RUN_FAILED_FINGERPRINT",
    "init_tracking",
    "is_tracking_variable",
    "report_exception",
    "run_failed",
    "scrub_environment",
    "tracking_enabled",
]

log = logging.getLogger(__name__)

#: The first fingerprint part of a finally failed run's event (grouped by job and error).
RUN_FAILED_FINGERPRINT = "workbench.run_failed"
#: Seconds a process waits for its events to leave after reporting one.
FLUSH_SECONDS = 5.0
#: Environment variables of Sentry itself, of this setting, and of Sentry's trace propagation.
_TRACKING_PREFIXES = ("SENTRY_", "WORKBENCH_SENTRY_", "SUBPROCESS_SENTRY_")
_TRACKING_NAMES = frozenset({"SUBPROCESS_BAGGAGE", "SUBPROCESS_TRACEPARENT"})
#: Request fields that may carry credentials or a person's data.
_REQUEST_DROPPED = ("cookies", "headers", "env", "data", "query_string")
#: Loggers whose lines carry a request's address and the client's IP in their arguments.
_REQUEST_LOGGERS = ("tornado.",)
_MASK = "***"


def is_tracking_variable(name: str) -> bool:
    """Whether the environment variable ``name`` belongs to error tracking."""
    upper = name.upper()
    return upper.startswith(_TRACKING_PREFIXES) or upper in _TRACKING_NAMES


def scrub_environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without error tracking's variables: what a kernel may start with."""
    return {k: v for k, v in env.items() if not is_tracking_variable(k)}


class _Scrubber:
    """Makes an event or breadcrumb safe to send: redacted, without private fields."""

    def __init__(self, settings: Settings) -> None:
        self._redactor = Redactor(secret_values(settings))
        # A whole value equal to a secret is masked however short the secret is.
        self._exact = frozenset(secret_values(settings, fragments=False))

    def breadcrumb(self, crumb: dict[str, Any]) -> dict[str, Any] | None:
        if str(crumb.get("category") or "").startswith(_REQUEST_LOGGERS):
            return None  # the web server's lines name requests and clients' addresses
        scrubbed: dict[str, Any] = self.value(crumb)
        return scrubbed

    def text(self, value: str) -> str:
        return _MASK if value in self._exact else self._redactor.redact(value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        request = event.get("request")
        if isinstance(request, dict):
            for name in _REQUEST_DROPPED:
                request.pop(name, None)
        user = event.get("user")
        if isinstance(user, dict):
            user.pop("ip_address", None)
        for frame in _frames(event):
            frame.pop("vars", None)
        if str(event.get("logger") or "").startswith(_REQUEST_LOGGERS):
            entry = event.get("logentry")  # its arguments: the request, the client's address
            template = entry.get("message") if isinstance(entry, Mapping) else None
            event["logentry"] = {"message": str(template or ""), "params": []}
        if (event.get("fingerprint") or [None])[0] == RUN_FAILED_FINGERPRINT:
            event.pop("breadcrumbs", None)  # a run's event carries its tags and nothing else
        scrubbed: dict[str, Any] = self.value(event)
        return scrubbed


def _frames(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every stack frame of the event: its exceptions', its threads' and its own."""
    traces: list[Any] = [event.get("stacktrace")]
    for key in ("exception", "threads"):
        section = event.get(key)
        values = section.get("values") if isinstance(section, Mapping) else None
        traces += [v.get("stacktrace") for v in values or () if isinstance(v, Mapping)]
    frames: list[dict[str, Any]] = []
    for trace in traces:
        if isinstance(trace, Mapping):
            frames += [f for f in trace.get("frames") or () if isinstance(f, dict)]
    return frames


class _State:
    """What this process's tracking is: off, or on with a scrubber for its settings."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid: int | None = None  # the process that initialised (a fork must not count)
        self.dsn: str | None = None
        self.scrubber: _Scrubber | None = None
        self.warned = False

    def active(self) -> bool:
        return self.pid == os.getpid() and self.scrubber is not None


_state = _State()


def tracking_enabled() -> bool:
    """Whether this process reports to Sentry."""
    return _state.active()


def _dsn(settings: Settings) -> str | None:
    value = settings.sentry_dsn
    return value.get_secret_value() if value is not None and value.get_secret_value() else None


def init_tracking(settings: Settings, service: str) -> bool:
    """Turn error tracking on in this process when a DSN is configured; True when it is on.

    Safe to call again (the CLI's root callback, then the service's command): a later call
    names the ``service`` and takes the settings' secrets, without a second client.
    """
    dsn = _dsn(settings)
    if dsn is None:
        return False
    with _state.lock:
        if not (_state.active() and _state.dsn == dsn) and not _start(settings, dsn):
            return False
        _state.scrubber = _Scrubber(settings)
        import sentry_sdk

        sentry_sdk.Scope.get_global_scope().set_tag("service", service)
        return True


def _start(settings: Settings, dsn: str) -> bool:
    try:
        import sentry_sdk
        from sentry_sdk.integrations.atexit import AtexitIntegration
        from sentry_sdk.integrations.dedupe import DedupeIntegration
        from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger
        from sentry_sdk.integrations.threading import ThreadingIntegration
    except ImportError as exc:
        if not _state.warned:
            _state.warned = True
            log.warning(
                "error tracking is off: WORKBENCH_SENTRY_DSN is set but sentry-sdk cannot be "
                "imported (%s); install it with `pip install 'workbench[sentry]'`",
                exc,
            )
        return False
    _state.scrubber = _Scrubber(settings)
    logging_levels, privacy = _options_of(sentry_sdk.VERSION)
    try:
        sentry_sdk.init(
            dsn=dsn,
            release=f"workbench@{__version__}",
            environment=settings.env,
            # Only what is listed: no argv, no installed modules, no subprocess patching
            # (it would put trace variables into the kernels' environment), no frameworks.
            default_integrations=False,
            auto_enabling_integrations=False,
            integrations=[
                LoggingIntegration(**logging_levels, event_level=logging.ERROR),
                AtexitIntegration(callback=_quiet_exit),
                DedupeIntegration(),
                ThreadingIntegration(),
            ],
            **privacy,
            max_request_body_size="never",
            auto_session_tracking=False,
            send_client_reports=False,
            before_send=_before_send,
            before_breadcrumb=_before_breadcrumb,
        )
    except Exception as exc:  # a malformed DSN must not stop the service
        _state.scrubber = None
        if not _state.warned:
            _state.warned = True
            log.warning("error tracking is off: sentry-sdk refused the settings (%s)", exc)
        return False
    # One line per request (address, query string, client): neither breadcrumb nor event.
    ignore_logger("tornado.access")
    _state.pid, _state.dsn = os.getpid(), dsn
    return True


def _options_of(version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options that sentry-sdk 3.0 renamed: log records as breadcrumbs only (3.0's
    ``level`` sends them as Sentry logs, which ``before_send`` never sees), and no frame
    variables, user, cookies, headers, query strings, bodies or queries (3.0's
    ``data_collection``; two flags before it)."""
    if int(version.split(".")[0]) < 3:
        return {"level": logging.INFO}, {
            "include_local_variables": False,
            "send_default_pii": False,
        }
    off = {"mode": "off"}
    return {"level": None, "breadcrumb_level": logging.INFO}, {
        "data_collection": {
            "user_info": False,
            "cookies": off,
            "http_headers": {"request": off},
            "http_bodies": [],
            "url_query_params": off,
            "database_query_data": False,
            "queues": False,
            "stack_frame_variables": False,
        }
    }


def _quiet_exit(pending: int, timeout: float) -> None:
    """Sentry's exit hook, without its message on stderr."""


def _before_send(event: Any, hint: Any) -> Any:
    scrubber = _state.scrubber
    if scrubber is None:
        return None
    try:
        return scrubber.event(event)
    except Exception:  # an event that cannot be scrubbed is not sent
        return None


def _before_breadcrumb(crumb: Any, hint: Any) -> Any:
    scrubber = _state.scrubber
    if scrubber is None:
        return None
    try:
        return scrubber.breadcrumb(crumb)
    except Exception:
        return None


def report_exception(exc: BaseException) -> None:
    """Report an unexpected exception (not a user's mistake) and wait for it to be sent."""
    if not _state.active():
        return
    import sentry_sdk

    sentry_sdk.capture_exception(exc)
    sentry_sdk.flush(timeout=FLUSH_SECONDS)


@hookimpl
def run_failed(event: RunEvent) -> None:
    """One event for a run that failed or timed out for good; cancelled runs are no error."""
    if not _state.active() or event.status == "cancelled":
        return
    try:
        _report_run(event)
    except Exception as exc:  # reporting must never change how a run ends
        log.warning("could not report run %s to error tracking: %s", event.run_id, exc)


def _report_run(event: RunEvent) -> None:
    import sentry_sdk

    error = event.error_name or "unknown"
    job = event.job_name or "-"
    notebook = os.path.basename(event.notebook) or event.notebook
    sentry_sdk.capture_event(
        {
            "message": f"Run of {event.job_name or notebook} failed: {error}",
            "level": "error",
            "logger": "workbench.runs",
            "tags": {
                "job": job[:200],
                "notebook": event.notebook[-200:],
                "attempt": str(event.attempt),
                "error": error[:200],
                "run_status": event.status,
            },
            "contexts": {
                "run": {
                    "id": str(event.run_id),
                    "status": event.status,
                    "attempt": event.attempt,
                    "triggered_by": event.triggered_by,
                }
            },
            "fingerprint": [RUN_FAILED_FINGERPRINT, event.job_name or event.notebook, error],
        }
    )
    sentry_sdk.flush(timeout=FLUSH_SECONDS)
